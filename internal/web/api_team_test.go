package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"kiln/internal/auth"
	"kiln/internal/pgtest"
	"kiln/internal/store"
)

// roleTokens creates a personal token of each role through the API and
// returns them by role.
func roleTokens(t *testing.T, f *fixture) map[auth.Role]string {
	t.Helper()
	out := map[auth.Role]string{}
	for _, r := range auth.Roles {
		nt, err := f.c.CreateToken(t.Context(), TokenRequest{Name: "t-" + string(r), Role: r, Expires: "30d"})
		if err != nil {
			t.Fatalf("CreateToken(%s) = %v", r, err)
		}
		if !strings.HasPrefix(nt.Secret, auth.TokenPrefix) || nt.Role != r || nt.ExpiresAt == nil {
			t.Fatalf("CreateToken(%s) = %+v", r, nt)
		}
		out[r] = nt.Secret
	}
	return out
}

// TestRolesOnEveryRoute calls every API route with a token of each role:
// a role below the route's gets 403 naming the role needed, and a row in
// the audit log when the route changes something; a role at or above it
// gets past the check.
func TestRolesOnEveryRoute(t *testing.T) {
	f := newFixture(t, nil)
	ctx := t.Context()
	if _, err := f.c.Apply(ctx, "web.yaml", []byte(webYAML), nil); err != nil {
		t.Fatal(err)
	}
	tokens := roleTokens(t, f)
	routes := []struct {
		method, path string
		need         auth.Role
		body         string
	}{
		{"GET", "/api/projects", auth.Viewer, ""},
		{"GET", "/api/projects/web", auth.Viewer, ""},
		{"GET", "/api/projects/web/environments", auth.Viewer, ""},
		{"GET", "/api/bakes", auth.Viewer, ""},
		{"GET", "/api/bakes/1", auth.Viewer, ""},
		{"GET", "/api/audit", auth.Viewer, ""},
		{"GET", "/api/whoami", auth.Viewer, ""},
		{"POST", "/api/projects/web/bakes", auth.Deployer, ""},
		{"POST", "/api/bakes/1/cancel", auth.Deployer, ""},
		{"POST", "/api/projects/web/environments/prod/promote", auth.Deployer, ""},
		{"POST", "/api/projects/web/environments/prod/approve", auth.Deployer, ""},
		{"POST", "/api/projects/web/images/ami-0123456789abcdef0/revoke", auth.Admin, `{"reason": "bad"}`},
		{"POST", "/api/projects", auth.Admin, webYAML},
		{"POST", "/api/projects/web/secret", auth.Admin, ""},
		{"GET", "/api/tokens", auth.Admin, ""},
		{"POST", "/api/tokens", auth.Admin, `{"name": "x", "role": "viewer"}`},
		{"DELETE", "/api/tokens/nope", auth.Admin, ""},
		{"DELETE", "/api/projects/web", auth.Admin, ""},
	}
	for _, rt := range routes {
		for _, role := range auth.Roles {
			status, body := f.call(t, rt.method, rt.path, tokens[role], rt.body, nil)
			if role.Allows(rt.need) {
				if status == http.StatusForbidden || status == http.StatusUnauthorized {
					t.Errorf("%s %s as %s = %d %s; want past the role check", rt.method, rt.path, role, status, body)
				}
				continue
			}
			want := "this needs the " + string(rt.need) + " role; token t-" + string(role) + " has " + string(role)
			if status != http.StatusForbidden || !strings.Contains(body, want) {
				t.Errorf("%s %s as %s = %d %s; want 403 %q", rt.method, rt.path, role, status, body, want)
			}
		}
	}
	// Refusals of changes are audited; reads are not.
	rows, err := f.st.Audit(ctx, store.AuditQuery{Actor: "t-viewer", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	changes := 0
	for _, rt := range routes {
		if rt.method != "GET" {
			changes++
		}
	}
	if len(rows) != changes {
		t.Errorf("audit rows of the viewer token = %d; want %d (one per change refused)", len(rows), changes)
	}
	for _, e := range rows {
		if !strings.HasPrefix(e.Outcome, "403: this needs the ") || e.Remote != "127.0.0.1" {
			t.Errorf("audit row %+v; want a 403 outcome from 127.0.0.1", e)
		}
	}
}

// TestTokenLifecycle: a token works until it expires or is revoked, is
// listed with its last use, and is never stored or listed in clear.
func TestTokenLifecycle(t *testing.T) {
	f := newFixture(t, nil)
	ctx := t.Context()
	nt, err := f.c.CreateToken(ctx, TokenRequest{Name: "ci", Role: auth.Deployer})
	if err != nil {
		t.Fatal(err)
	}
	ci := NewClient(f.srv.URL, nt.Secret)
	who, err := ci.Whoami(ctx)
	if err != nil || *who != (Whoami{Name: "ci", Kind: auth.KindToken, Role: auth.Deployer}) {
		t.Errorf("Whoami() = %+v, %v; want token ci, deployer", who, err)
	}
	if _, err := f.c.CreateToken(ctx, TokenRequest{Name: "ci", Role: auth.Viewer}); !isStatus(err, http.StatusConflict) {
		t.Errorf("CreateToken(name in use) = %v; want 409", err)
	}
	for _, bad := range []TokenRequest{{Name: "", Role: auth.Viewer}, {Name: "a b", Role: auth.Viewer},
		{Name: "x", Role: "root"}, {Name: "x", Role: auth.Viewer, Expires: "-1d"}, {Name: "x", Role: auth.Viewer, Expires: "soon"}} {
		if _, err := f.c.CreateToken(ctx, bad); !isStatus(err, http.StatusBadRequest) {
			t.Errorf("CreateToken(%+v) = %v; want 400", bad, err)
		}
	}
	list, err := f.c.Tokens(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "ci" || list[0].LastUsed == nil || list[0].ExpiresAt != nil || list[0].CreatedBy != "admin-token" {
		t.Errorf("Tokens() = %+v, %v; want ci, used, never expiring, created by the admin token", list, err)
	}
	raw, _ := json.Marshal(list)
	if strings.Contains(string(raw), nt.Secret) {
		t.Error("the token list shows the token")
	}
	var n int
	f.st.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM api_tokens WHERE sha256 = $1`, auth.HashToken(nt.Secret)).Scan(&n)
	if n != 1 {
		t.Errorf("api_tokens rows with the token's hash = %d; want 1", n)
	}

	// Expired: refused with a message that says so.
	past := time.Now().Add(-time.Hour)
	if err := f.st.CreateToken(ctx, store.APIToken{Name: "old", Role: "admin", Created: past.Add(-time.Hour), Expires: past}, auth.HashToken("kiln_pat_old")); err != nil {
		t.Fatal(err)
	}
	if _, err := NewClient(f.srv.URL, "kiln_pat_old").Projects(ctx); err == nil || !strings.Contains(err.Error(), `token "old" expired at`) {
		t.Errorf("Projects() with an expired token = %v; want 401 saying it expired", err)
	}

	// Revoked: refused at once.
	if err := f.c.RevokeToken(ctx, "ci"); err != nil {
		t.Fatal(err)
	}
	if _, err := ci.Projects(ctx); !isStatus(err, http.StatusUnauthorized) || !strings.Contains(err.Error(), `token "ci" was revoked`) {
		t.Errorf("Projects() with a revoked token = %v; want 401 saying it was revoked", err)
	}
	if err := f.c.RevokeToken(ctx, "nope"); !isStatus(err, http.StatusNotFound) {
		t.Errorf("RevokeToken(unknown) = %v; want 404", err)
	}
	// The admin token stays the break-glass.
	if who, err := f.c.Whoami(ctx); err != nil || who.Role != auth.Admin || who.Kind != auth.KindAdminToken {
		t.Errorf("Whoami() with the admin token = %+v, %v", who, err)
	}
}

func isStatus(err error, status int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == status
}

// TestAuditOfEachAction: every change through the API leaves one row
// with who, what, where from and the outcome; GET /api/audit pages and
// filters them.
func TestAuditOfEachAction(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testAuditOfEachAction(t, filepath.Join(t.TempDir(), "kiln.db")) })
	t.Run("postgres", func(t *testing.T) { testAuditOfEachAction(t, pgtest.DB(t)) })
}

func testAuditOfEachAction(t *testing.T, target string) {
	hooks := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		w.Write([]byte(`{"bake": 7}`))
	})
	f := newFixtureAt(t, hooks, target)
	ctx := t.Context()
	if _, err := f.c.Apply(ctx, "web.yaml", []byte(webYAML), nil); err != nil {
		t.Fatal(err)
	}
	nt, err := f.c.CreateToken(ctx, TokenRequest{Name: "ci", Role: auth.Deployer})
	if err != nil {
		t.Fatal(err)
	}
	ci := NewClient(f.srv.URL, nt.Secret)
	tr, err := ci.Trigger(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ci.Cancel(ctx, tr.Bake.ID, "wrong commit"); err != nil {
		t.Fatal(err)
	}
	if _, err := ci.Promote(ctx, "web", "prod", "ami-1"); !isStatus(err, http.StatusBadRequest) {
		t.Fatalf("Promote(no such env) = %v; want 400", err)
	}
	if _, err := f.c.RotateSecret(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.call(t, "POST", "/hooks/web", "", "{}", map[string]string{"X-GitHub-Delivery": "d-42"}); st != http.StatusAccepted {
		t.Fatalf("hook = %d", st)
	}
	if err := f.c.RevokeToken(ctx, "ci"); err != nil {
		t.Fatal(err)
	}
	if err := f.c.DeleteProject(ctx, "web"); err != nil {
		t.Fatal(err)
	}

	type row struct{ actor, action, project, target, outcome string }
	want := []row{
		{"admin-token", "project.delete", "web", "", "ok"},
		{"admin-token", "token.revoke", "", "token ci", "ok"},
		{"webhook d-42", "bake.webhook", "web", "", "ok"},
		{"admin-token", "secret.rotate", "web", "", "ok"},
		{"token ci", "promotion.start", "web", "environment prod", "400: no environment prod"},
		{"token ci", "bake.cancel", "web", "bake 1", "ok"},
		{"token ci", "bake.trigger", "web", "bake 1", "ok"},
		{"admin-token", "token.create", "", "token ci", "ok"},
		{"admin-token", "project.apply", "web", "", "ok"},
	}
	list, err := f.c.Audit(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Entries) != len(want) {
		t.Fatalf("Audit() = %d rows; want %d: %+v", len(list.Entries), len(want), list.Entries)
	}
	for i, e := range list.Entries {
		if got := (row{e.Actor, e.Action, e.Project, e.Target, e.Outcome}); got != want[i] || e.Remote != "127.0.0.1" || e.At.IsZero() {
			t.Errorf("Audit()[%d] = %+v; want %+v from 127.0.0.1", i, e, want[i])
		}
	}
	if d := list.Entries[5].Detail; d != "wrong commit" {
		t.Errorf("cancel row detail = %q; want the reason", d)
	}

	// Filters and pages.
	page, err := f.c.Audit(ctx, url.Values{"actor": {"ci"}, "limit": {"2"}})
	if err != nil || len(page.Entries) != 2 || page.NextBefore == 0 || page.Entries[0].Action != "promotion.start" {
		t.Fatalf("Audit(actor=ci, limit=2) = %+v, %v", page, err)
	}
	next, err := f.c.Audit(ctx, url.Values{"actor": {"ci"}, "before": {itoa(page.NextBefore)}})
	if err != nil || len(next.Entries) != 1 || next.Entries[0].Action != "bake.trigger" || next.NextBefore != 0 {
		t.Errorf("Audit(actor=ci, next page) = %+v, %v", next, err)
	}
	if got, _ := f.c.Audit(ctx, url.Values{"action": {"token."}}); len(got.Entries) != 2 {
		t.Errorf("Audit(action=token.) = %+v; want 2 rows", got.Entries)
	}
	if got, _ := f.c.Audit(ctx, url.Values{"since": {"1h"}, "project": {"web"}}); len(got.Entries) != 7 {
		t.Errorf("Audit(since=1h, project=web) = %d rows; want 7", len(got.Entries))
	}
	for _, bad := range []string{"since=yesterday", "limit=0", "before=x"} {
		if st, body := f.call(t, "GET", "/api/audit?"+bad, testToken, "", nil); st != http.StatusBadRequest {
			t.Errorf("GET /api/audit?%s = %d %s; want 400", bad, st, body)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
