package store

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestAPITokens(t *testing.T) { bothDrivers(t, testAPITokens) }

func testAPITokens(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	now := time.UnixMilli(1_700_000_000_000).UTC()
	ci := APIToken{Name: "ci", Role: "deployer", CreatedBy: "admin-token", Created: now, Expires: now.Add(time.Hour)}
	if err := s.CreateToken(ctx, ci, "hash-ci"); err != nil {
		t.Fatalf("CreateToken() = %v", err)
	}
	if err := s.CreateToken(ctx, APIToken{Name: "ci", Role: "viewer", Created: now}, "hash-other"); !errors.Is(err, ErrTokenExists) {
		t.Errorf("CreateToken(name in use) = %v; want ErrTokenExists", err)
	}
	if err := s.CreateToken(ctx, APIToken{Name: "ro", Role: "viewer", Created: now}, "hash-ro"); err != nil {
		t.Fatal(err)
	}
	got, err := s.UseToken(ctx, "hash-ci", now.Add(time.Minute))
	if err != nil {
		t.Fatalf("UseToken() = %v", err)
	}
	if got.Name != "ci" || got.Role != "deployer" || !got.Expires.Equal(now.Add(time.Hour)) || !got.LastUsed.Equal(now.Add(time.Minute)) {
		t.Errorf("UseToken() = %+v", got)
	}
	if !got.Live(now.Add(59*time.Minute)) || got.Live(now.Add(time.Hour)) {
		t.Error("Live() does not end at the expiry")
	}
	// A use within usedGranularity is not written again.
	s.UseToken(ctx, "hash-ci", now.Add(time.Minute+time.Second))
	if _, err := s.UseToken(ctx, "nope", now); !errors.Is(err, ErrNotFound) {
		t.Errorf("UseToken(unknown) = %v; want ErrNotFound", err)
	}
	if err := s.RevokeToken(ctx, "ci", now.Add(2*time.Minute)); err != nil {
		t.Fatalf("RevokeToken() = %v", err)
	}
	if err := s.RevokeToken(ctx, "ci", now.Add(3*time.Minute)); err != nil {
		t.Fatalf("RevokeToken() again = %v", err)
	}
	if err := s.RevokeToken(ctx, "nope", now); !errors.Is(err, ErrNotFound) {
		t.Errorf("RevokeToken(unknown) = %v; want ErrNotFound", err)
	}
	list, err := s.Tokens(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("Tokens() = %v, %v; want 2", list, err)
	}
	if c := list[0]; c.Name != "ci" || !c.Revoked.Equal(now.Add(2*time.Minute)) || !c.LastUsed.Equal(now.Add(time.Minute)) || c.Live(now) {
		t.Errorf("Tokens()[0] = %+v; want ci revoked at +2m, last used at +1m", c)
	}
	if r := list[1]; r.Name != "ro" || !r.LastUsed.IsZero() || !r.Expires.IsZero() || !r.Live(now.Add(1000*time.Hour)) {
		t.Errorf("Tokens()[1] = %+v; want ro never used, never expiring", r)
	}
}

func TestAuditLog(t *testing.T) { bothDrivers(t, testAuditLog) }

func testAuditLog(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	t0 := time.UnixMilli(1_700_000_000_000).UTC()
	rows := []AuditEntry{
		{At: t0, Actor: "user alice@example.com", Action: "project.apply", Project: "web", Remote: "10.0.0.1", Outcome: "ok"},
		{At: t0.Add(time.Minute), Actor: "token ci", Action: "bake.trigger", Project: "web", Target: "bake 1", Outcome: "ok"},
		{At: t0.Add(2 * time.Minute), Actor: "user bob@example.com", Action: "bake.cancel", Project: "api", Target: "bake 2", Outcome: "forbidden: needs deployer"},
		{At: t0.Add(3 * time.Minute), Actor: "admin-token", Action: "token.create", Target: "ci", Outcome: "ok"},
	}
	for i, e := range rows {
		id, err := s.AppendAudit(ctx, e)
		if err != nil || id != int64(i+1) {
			t.Fatalf("AppendAudit(%d) = %d, %v", i, id, err)
		}
	}
	for _, tc := range []struct {
		q    AuditQuery
		want []int64
	}{
		{AuditQuery{}, []int64{4, 3, 2, 1}},
		{AuditQuery{Project: "web"}, []int64{2, 1}},
		{AuditQuery{Actor: "alice@example.com"}, []int64{1}},
		{AuditQuery{Actor: "admin-token"}, []int64{4}},
		{AuditQuery{Action: "bake."}, []int64{3, 2}},
		{AuditQuery{Action: "bake.cancel"}, []int64{3}},
		{AuditQuery{Action: "bake"}, nil},
		{AuditQuery{Since: t0.Add(2 * time.Minute)}, []int64{4, 3}},
		{AuditQuery{BeforeID: 3, Limit: 1}, []int64{2}},
	} {
		t.Run(fmt.Sprintf("%+v", tc.q), func(t *testing.T) {
			got, err := s.Audit(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			var ids []int64
			for _, e := range got {
				ids = append(ids, e.ID)
			}
			if fmt.Sprint(ids) != fmt.Sprint(tc.want) {
				t.Errorf("Audit(%+v) = ids %v; want %v", tc.q, ids, tc.want)
			}
		})
	}
	got, _ := s.Audit(ctx, AuditQuery{Limit: 1, BeforeID: 2})
	want := rows[0]
	want.ID = 1
	if len(got) != 1 || got[0] != want {
		t.Errorf("Audit() row = %+v; want %+v", got, want)
	}
	// Append-only: the database refuses to change or remove a row.
	if _, err := s.DB().ExecContext(ctx, `UPDATE audit SET outcome = 'ok' WHERE id = 3`); err == nil {
		t.Error("UPDATE audit succeeded; want the append-only trigger to refuse it")
	}
	if _, err := s.DB().ExecContext(ctx, `DELETE FROM audit`); err == nil {
		t.Error("DELETE FROM audit succeeded; want the append-only trigger to refuse it")
	}
}
