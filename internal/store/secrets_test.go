package store

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kiln/internal/secrets"
)

// rawContains reports whether the database holds needle anywhere: in
// SQLite's files (the database, its WAL and shared memory), or, on
// PostgreSQL, in any row of any kiln table as text.
func rawContains(t *testing.T, s *Store, target, needle string) bool {
	t.Helper()
	if onPostgres(t) {
		var n int
		err := s.DB().QueryRowContext(t.Context(), `SELECT
			(SELECT COUNT(*) FROM projects p WHERE row_to_json(p)::text LIKE '%' || $1 || '%') +
			(SELECT COUNT(*) FROM sessions x WHERE row_to_json(x)::text LIKE '%' || $1 || '%') +
			(SELECT COUNT(*) FROM audit a WHERE row_to_json(a)::text LIKE '%' || $1 || '%') +
			(SELECT COUNT(*) FROM notify_targets n WHERE row_to_json(n)::text LIKE '%' || $1 || '%') +
			(SELECT COUNT(*) FROM commit_status c WHERE row_to_json(c)::text LIKE '%' || $1 || '%')`, needle).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		return n > 0
	}
	files, _ := filepath.Glob(target + "*")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte(needle)) {
			t.Logf("%s holds %q", filepath.Base(f), needle)
			return true
		}
	}
	return false
}

func TestSecretsAtRest(t *testing.T) { bothDrivers(t, testSecretsAtRest) }

// testSecretsAtRest: with a key, webhook secrets are sealed before they
// reach the database and read back in clear; secrets written in clear
// before are sealed by ResealSecrets (and gone from the files); a key
// rotation re-wraps them all.
func testSecretsAtRest(t *testing.T) {
	s, target := openTest(t)
	ctx := t.Context()
	// A project from before sealing was on.
	if _, err := s.PutProject(ctx, testProject("legacy"), "legacy-secret-0123456789"); err != nil {
		t.Fatal(err)
	}
	oldKey, newKey := bytes.Repeat([]byte{7}, secrets.KeySize), bytes.Repeat([]byte{9}, secrets.KeySize)
	k, _ := secrets.NewKeyring(oldKey)
	s.UseSecrets(k)
	if n, err := s.ResealSecrets(ctx); err != nil || n != 1 {
		t.Fatalf("ResealSecrets() = %d, %v; want 1", n, err)
	}
	if _, err := s.PutProject(ctx, testProject("web"), "web-secret-0123456789"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutProject(ctx, testProject("api"), "api-secret-first"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetProjectSecret(ctx, "api", "api-secret-rotated-0123"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSession(ctx, "sess", Session{CSRF: "c", Created: s.now(), Expires: s.now().Add(3600e9)}); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkSessionSecret(ctx, "sess", "web", false); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"legacy": "legacy-secret-0123456789", "web": "web-secret-0123456789", "api": "api-secret-rotated-0123"}
	check := func(when string) {
		t.Helper()
		for name, secret := range want {
			if got, err := s.ProjectSecret(ctx, name); err != nil || got != secret {
				t.Errorf("%s: ProjectSecret(%s) = %q, %v; want %q", when, name, got, err, secret)
			}
			if h, err := s.HookTarget(ctx, name); err != nil || h.Secret != secret {
				t.Errorf("%s: HookTarget(%s).Secret = %q, %v; want %q", when, name, h.Secret, err, secret)
			}
		}
	}
	check("sealed")
	if got, _, err := s.TakeSessionSecret(ctx, "sess", "web"); err != nil || got != want["web"] {
		t.Errorf("TakeSessionSecret() = %q, %v; want the clear text", got, err)
	}
	for _, secret := range append([]string{"api-secret-first"}, want["legacy"], want["web"], want["api"]) {
		if rawContains(t, s, target, secret) {
			t.Errorf("the database holds %q in clear text", secret)
		}
	}

	// Rotation: the new key first, the old one to read; afterwards the new
	// key alone reads everything.
	both, _ := secrets.NewKeyring(newKey, oldKey)
	s.UseSecrets(both)
	if n, err := s.ResealSecrets(ctx); err != nil || n != 3 {
		t.Fatalf("ResealSecrets() after rotation = %d, %v; want 3", n, err)
	}
	only, _ := secrets.NewKeyring(newKey)
	s.UseSecrets(only)
	check("rotated")
	if n, err := s.ResealSecrets(ctx); err != nil || n != 0 {
		t.Errorf("ResealSecrets() again = %d, %v; want 0", n, err)
	}
	var stored string
	s.DB().QueryRowContext(ctx, `SELECT webhook_secret FROM projects WHERE name = 'web'`).Scan(&stored)
	if !strings.HasPrefix(stored, "kiln:v1:"+secrets.KeyID(newKey)+":") {
		t.Errorf("stored secret = %q; want sealed under the new key", stored)
	}
}

func TestNotifySecretsAtRest(t *testing.T) { bothDrivers(t, testNotifySecretsAtRest) }

// testNotifySecretsAtRest: notification secrets and commit-status tokens
// are sealed like webhook secrets: those written in clear are sealed by
// ResealSecrets, new ones on the way in, and a rotation re-wraps them.
func testNotifySecretsAtRest(t *testing.T) {
	s, target := openTest(t)
	ctx := t.Context()
	if _, err := s.PutProject(ctx, testProject("web"), "web-secret-0123456789"); err != nil {
		t.Fatal(err)
	}
	put := func(secret, token string) {
		t.Helper()
		if err := s.PutNotifyTargets(ctx, "web", []NotifyTarget{{URL: "http://127.0.0.1/x", Secret: secret, Events: []string{"bake.failed"}}}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutCommitStatus(ctx, "web", &CommitStatus{Provider: "github", APIURL: "https://api.github.com", Token: token}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(when, secret, token string) {
		t.Helper()
		ts, err := s.NotifyTargets(ctx, "web")
		if err != nil || len(ts) != 1 || ts[0].Secret != secret {
			t.Errorf("%s: NotifyTargets() = %+v, %v; want secret %q", when, ts, err, secret)
		}
		c, err := s.CommitStatusOf(ctx, "web")
		if err != nil || c == nil || c.Token != token {
			t.Errorf("%s: CommitStatusOf() = %+v, %v; want token %q", when, c, err, token)
		}
	}
	put("notify-secret-in-clear-0", "ghp_token_in_clear_0")
	oldKey, newKey := bytes.Repeat([]byte{7}, secrets.KeySize), bytes.Repeat([]byte{9}, secrets.KeySize)
	k, _ := secrets.NewKeyring(oldKey)
	s.UseSecrets(k)
	if n, err := s.ResealSecrets(ctx); err != nil || n != 3 {
		t.Fatalf("ResealSecrets() = %d, %v; want 3 (webhook, notification, token)", n, err)
	}
	check("resealed", "notify-secret-in-clear-0", "ghp_token_in_clear_0")
	put("notify-secret-sealed-1", "ghp_token_sealed_1")
	check("sealed", "notify-secret-sealed-1", "ghp_token_sealed_1")
	for _, secret := range []string{"notify-secret-in-clear-0", "ghp_token_in_clear_0", "notify-secret-sealed-1", "ghp_token_sealed_1"} {
		if rawContains(t, s, target, secret) {
			t.Errorf("the database holds %q in clear text", secret)
		}
	}
	both, _ := secrets.NewKeyring(newKey, oldKey)
	s.UseSecrets(both)
	if n, err := s.ResealSecrets(ctx); err != nil || n != 3 {
		t.Fatalf("ResealSecrets() after rotation = %d, %v; want 3", n, err)
	}
	only, _ := secrets.NewKeyring(newKey)
	s.UseSecrets(only)
	check("rotated", "notify-secret-sealed-1", "ghp_token_sealed_1")
}
