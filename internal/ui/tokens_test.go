package ui

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"kiln/internal/auth"
	"kiln/internal/store"
)

// TestTokensPage: an admin lists the tokens with their last use and
// expiry, creates one (shown on that page only, and it signs in with its
// role), and revokes it (it no longer signs in); a deployer may do none
// of it; creation and revocation are audited.
func TestTokensPage(t *testing.T) {
	srv, st := newTeamServer(t, 100)
	ctx := t.Context()
	used := tokenOf(t, st, "ci", auth.Deployer)
	if _, code := signInWith(t, srv, used); code != http.StatusSeeOther {
		t.Fatalf("sign-in with ci's token = %d", code)
	}
	if err := st.CreateToken(ctx, store.APIToken{Name: "old", Role: "viewer", Created: time.Now().Add(-48 * time.Hour),
		Expires: time.Now().Add(-24 * time.Hour)}, auth.HashToken(auth.NewToken())); err != nil {
		t.Fatal(err)
	}

	admin, _ := signInWith(t, srv, adminToken)
	code, body, _ := get(t, admin, srv.URL+"/tokens")
	if code != http.StatusOK {
		t.Fatalf("GET /tokens = %d", code)
	}
	row := func(body, name string) string {
		m := regexp.MustCompile(`(?s)<tr id="token-` + name + `">.*?</tr>`).FindString(body)
		if m == "" {
			t.Fatalf("no row for token %s in the page", name)
		}
		return m
	}
	if r := row(body, "ci"); !strings.Contains(r, `<td class="last-used"><span title=`) || !strings.Contains(r, "just now") ||
		!strings.Contains(r, `<td class="token-state">live</td>`) || !strings.Contains(r, "Revoke") {
		t.Errorf("ci's row = %s; want its last use (just now), live, and a revoke button", r)
	}
	if r := row(body, "old"); !strings.Contains(r, `<td class="token-state">expired</td>`) || strings.Contains(r, "Revoke") ||
		!strings.Contains(r, `<td class="last-used"><span class="muted">never</span>`) {
		t.Errorf("old's row = %s; want expired, never used, no revoke button", r)
	}
	if !strings.Contains(body, `href="/tokens"`) {
		t.Error("an admin's pages do not link the tokens page")
	}

	// Create: refused with the reason, then made and shown once.
	code, body, _ = post(t, admin, srv.URL+"/tokens", url.Values{"csrf": {csrfOf(t, body)}, "name": {"bad name"}, "role": {"viewer"}})
	if code != http.StatusBadRequest || !strings.Contains(body, `id="token-error"`) || !strings.Contains(body, "want 1 to 64 letters") {
		t.Errorf("POST /tokens with a bad name = %d; want 400 with the reason", code)
	}
	code, body, h := post(t, admin, srv.URL+"/tokens", url.Values{"csrf": {csrfOf(t, body)}, "name": {"deploy-bot"}, "role": {"deployer"}, "expires": {"7d"}})
	m := regexp.MustCompile(`<code id="token-secret">([^<]+)</code>`).FindStringSubmatch(body)
	if code != http.StatusCreated || m == nil || h.Get("Cache-Control") != "no-store" {
		t.Fatalf("POST /tokens = %d (Cache-Control %q); want 201 showing the token, not cached", code, h.Get("Cache-Control"))
	}
	secret := m[1]
	if r := row(body, "deploy-bot"); !strings.Contains(r, "<td>deployer</td>") || strings.Contains(r, `<td><span class="muted">never</span></td>`) {
		t.Errorf("deploy-bot's row = %s; want deployer, with an expiry", r)
	}
	code, body, _ = post(t, admin, srv.URL+"/tokens", url.Values{"csrf": {csrfOf(t, body)}, "name": {"deploy-bot"}, "role": {"viewer"}})
	if code != http.StatusConflict || strings.Contains(body, secret) {
		t.Errorf("POST /tokens with a name in use = %d; want 409", code)
	}
	_, body, _ = get(t, admin, srv.URL+"/tokens")
	if strings.Contains(body, secret) || strings.Contains(body, `id="token-secret"`) {
		t.Error("the tokens page shows the token again")
	}
	bot, code := signInWith(t, srv, secret)
	if code != http.StatusSeeOther {
		t.Fatalf("sign-in with the new token = %d; want 303", code)
	}
	if _, b, _ := get(t, bot, srv.URL+"/"); !strings.Contains(b, `id="who">token deploy-bot (deployer)`) {
		t.Error("the new token does not sign in as deploy-bot (deployer)")
	}

	// A deployer may not see or use the page.
	if code, _, _ := get(t, bot, srv.URL+"/tokens"); code != http.StatusForbidden {
		t.Errorf("GET /tokens as a deployer = %d; want 403", code)
	}
	_, b, _ := get(t, bot, srv.URL+"/")
	if code, _, _ := post(t, bot, srv.URL+"/tokens/ci/revoke", url.Values{"csrf": {csrfOf(t, b)}}); code != http.StatusForbidden {
		t.Errorf("revoke as a deployer = %d; want 403", code)
	}
	if code, _, _ := post(t, bot, srv.URL+"/tokens", url.Values{"csrf": {csrfOf(t, b)}, "name": {"x"}, "role": {"admin"}}); code != http.StatusForbidden {
		t.Errorf("create as a deployer = %d; want 403", code)
	}

	// Revoke: the row says so, and the token no longer signs in.
	code, _, h = post(t, admin, srv.URL+"/tokens/deploy-bot/revoke", url.Values{"csrf": {csrfOf(t, body)}})
	if code != http.StatusSeeOther || h.Get("Location") != "/tokens#token-deploy-bot" {
		t.Fatalf("revoke = %d %q; want 303 back to the row", code, h.Get("Location"))
	}
	_, body, _ = get(t, admin, srv.URL+"/tokens")
	if r := row(body, "deploy-bot"); !strings.Contains(r, `<td class="token-state">revoked</td>`) || strings.Contains(r, "Revoke") {
		t.Errorf("revoked row = %s", r)
	}
	if _, code := signInWith(t, srv, secret); code == http.StatusSeeOther {
		t.Error("a revoked token still signs in")
	}
	if code, _, _ := post(t, admin, srv.URL+"/tokens/nobody/revoke", url.Values{"csrf": {csrfOf(t, body)}}); code != http.StatusNotFound {
		t.Errorf("revoking an unknown token = %d; want 404", code)
	}

	rows, err := st.Audit(ctx, store.AuditQuery{Action: "token."})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range rows {
		got = append(got, e.Actor+" "+e.Action+" "+e.Target+" "+e.Outcome)
	}
	want := []string{
		"admin-token token.revoke token nobody 404: not found",
		"admin-token token.revoke token deploy-bot ok",
		"token deploy-bot token.create  403: this needs the admin role; token deploy-bot has deployer",
		"token deploy-bot token.revoke  403: this needs the admin role; token deploy-bot has deployer",
		"admin-token token.create token deploy-bot 409: Conflict",
		"admin-token token.create token deploy-bot ok",
		"admin-token token.create token bad name 400: Bad Request",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
