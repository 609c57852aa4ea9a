package store

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// testSession stores a session made at now that lives ttl, under id.
func testSession(t *testing.T, s *Store, id string, now time.Time, ttl time.Duration) {
	t.Helper()
	if err := s.CreateSession(t.Context(), id, Session{CSRF: "csrf-" + sessionKey(id)[:8], Created: now, Expires: now.Add(ttl)}); err != nil {
		t.Fatalf("CreateSession(%q) = %v", id, err)
	}
}

func TestSessionCRUD(t *testing.T) { bothDrivers(t, testSessionCRUD) }

func testSessionCRUD(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	now := time.UnixMilli(1_700_000_000_000).UTC()
	s.now = func() time.Time { return now }
	testSession(t, s, "id-a", now, time.Hour)
	testSession(t, s, "id-b", now, time.Hour)

	got, err := s.Session(ctx, "id-a")
	if err != nil {
		t.Fatalf("Session() = %v", err)
	}
	want := Session{CSRF: "csrf-" + sessionKey("id-a")[:8], Created: now, Expires: now.Add(time.Hour)}
	if *got != want {
		t.Errorf("Session() = %+v; want %+v", *got, want)
	}
	if _, err := s.Session(ctx, "id-c"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Session(unknown) = %v; want ErrNotFound", err)
	}
	if err := s.CreateSession(ctx, "id-a", want); err == nil {
		t.Error("CreateSession() with an id in use = nil error; want one")
	}

	if err := s.SetSessionFlash(ctx, "id-a", "deleted"); err != nil {
		t.Fatalf("SetSessionFlash() = %v", err)
	}
	if got, _ := s.Session(ctx, "id-a"); got.Flash != "deleted" {
		t.Errorf("Session().Flash = %q; want %q", got.Flash, "deleted")
	}
	if msg, err := s.TakeSessionFlash(ctx, "id-b"); err != nil || msg != "" {
		t.Errorf("TakeSessionFlash(other session) = %q, %v; want \"\", nil", msg, err)
	}
	if msg, err := s.TakeSessionFlash(ctx, "id-a"); err != nil || msg != "deleted" {
		t.Errorf("TakeSessionFlash() = %q, %v; want %q", msg, err, "deleted")
	}
	if msg, err := s.TakeSessionFlash(ctx, "id-a"); err != nil || msg != "" {
		t.Errorf("second TakeSessionFlash() = %q, %v; want \"\" (shown once)", msg, err)
	}
	if err := s.SetSessionFlash(ctx, "id-c", "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetSessionFlash(unknown) = %v; want ErrNotFound", err)
	}

	if err := s.DeleteSession(ctx, "id-a"); err != nil {
		t.Fatalf("DeleteSession() = %v", err)
	}
	if _, err := s.Session(ctx, "id-a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Session() after DeleteSession = %v; want ErrNotFound", err)
	}
	if err := s.DeleteSession(ctx, "id-a"); err != nil {
		t.Errorf("DeleteSession() again = %v; want nil", err)
	}
	if _, err := s.Session(ctx, "id-b"); err != nil {
		t.Errorf("Session(id-b) after deleting id-a = %v", err)
	}
}

func TestSessionExpiryAndPrune(t *testing.T) { bothDrivers(t, testSessionExpiryAndPrune) }

func testSessionExpiryAndPrune(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	now := time.UnixMilli(1_700_000_000_000).UTC()
	s.now = func() time.Time { return now }
	testSession(t, s, "short", now, time.Minute)
	testSession(t, s, "long", now, time.Hour)

	now = now.Add(time.Minute) // "short" expires at this very millisecond
	if _, err := s.Session(ctx, "short"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Session(expired) = %v; want ErrNotFound", err)
	}
	if _, err := s.Session(ctx, "long"); err != nil {
		t.Errorf("Session(live) = %v", err)
	}
	if n, err := s.PruneSessions(ctx, 10); err != nil || n != 1 {
		t.Errorf("PruneSessions() = %d, %v; want 1 (the expired one)", n, err)
	}
	var rows int
	if err := s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM sessions`).Scan(&rows); err != nil || rows != 1 {
		t.Errorf("sessions rows after prune = %d, %v; want 1", rows, err)
	}

	// Past keep, the oldest live sessions go.
	for i := range 4 {
		now = now.Add(time.Second)
		testSession(t, s, fmt.Sprint("n", i), now, time.Hour)
	}
	if n, err := s.PruneSessions(ctx, 2); err != nil || n != 3 {
		t.Errorf("PruneSessions(keep 2) = %d, %v; want 3", n, err)
	}
	for id, live := range map[string]bool{"long": false, "n0": false, "n1": false, "n2": true, "n3": true} {
		_, err := s.Session(ctx, id)
		if live && err != nil || !live && !errors.Is(err, ErrNotFound) {
			t.Errorf("Session(%q) after PruneSessions(keep 2) = %v; want live %v", id, err, live)
		}
	}
}

// A copy of the database must not hold a usable cookie value.
func TestSessionIDNotStored(t *testing.T) { bothDrivers(t, testSessionIDNotStored) }

func testSessionIDNotStored(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	mustPut(t, s, "web")
	const id = "Zm9vYmFyLXNlc3Npb24taWQtdGhhdC1tdXN0LW5vdC1sZWFr"
	testSession(t, s, id, time.Now(), time.Hour)
	if err := s.MarkSessionSecret(ctx, id, "web", false); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"sessions", "session_secrets"} {
		rows, err := s.DB().QueryContext(ctx, `SELECT * FROM `+table)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		n := 0
		for rows.Next() {
			n++
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				if str := fmt.Sprint(v); strings.Contains(str, id) {
					t.Errorf("%s.%s holds the session id in clear: %q", table, cols[i], str)
				}
			}
		}
		rows.Close()
		if n != 1 {
			t.Errorf("%s rows = %d; want 1", table, n)
		}
	}
	var key string
	if err := s.DB().QueryRowContext(ctx, `SELECT id_sha256 FROM sessions`).Scan(&key); err != nil {
		t.Fatal(err)
	}
	if key != sessionKey(id) || len(key) != 64 {
		t.Errorf("id_sha256 = %q; want the SHA-256 of the id in hex", key)
	}
}

func TestSessionSecret(t *testing.T) { bothDrivers(t, testSessionSecret) }

func testSessionSecret(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	mustPut(t, s, "web")
	mustPut(t, s, "api")
	testSession(t, s, "a", time.Now(), time.Hour)
	testSession(t, s, "b", time.Now(), time.Hour)

	if secret, _, err := s.TakeSessionSecret(ctx, "a", "web"); err != nil || secret != "" {
		t.Errorf("TakeSessionSecret(unmarked) = %q, %v; want \"\"", secret, err)
	}
	if err := s.MarkSessionSecret(ctx, "a", "web", false); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkSessionSecret(ctx, "a", "web", true); err != nil { // marked again: the latest says
		t.Fatal(err)
	}
	if secret, _, _ := s.TakeSessionSecret(ctx, "b", "web"); secret != "" {
		t.Error("another session sees the secret")
	}
	if secret, _, _ := s.TakeSessionSecret(ctx, "a", "api"); secret != "" {
		t.Error("another project's secret is shown")
	}
	secret, rotated, err := s.TakeSessionSecret(ctx, "a", "web")
	if err != nil || secret != "s3cret-web" || !rotated {
		t.Errorf("TakeSessionSecret() = %q, %v, %v; want %q, true", secret, rotated, err, "s3cret-web")
	}
	if secret, _, _ := s.TakeSessionSecret(ctx, "a", "web"); secret != "" {
		t.Error("the secret is returned a second time")
	}
	if err := s.MarkSessionSecret(ctx, "nope", "web", false); err == nil {
		t.Error("MarkSessionSecret(unknown session) = nil error; want one")
	}

	// Marks go with their session and with their project.
	if err := s.MarkSessionSecret(ctx, "a", "web", false); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkSessionSecret(ctx, "b", "api", false); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSession(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteProject(ctx, "api"); err != nil {
		t.Fatal(err)
	}
	var rows int
	if err := s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM session_secrets`).Scan(&rows); err != nil || rows != 0 {
		t.Errorf("session_secrets rows = %d, %v; want 0 after their session and project went", rows, err)
	}
}
