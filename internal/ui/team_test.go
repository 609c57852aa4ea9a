package ui

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kiln/internal/audit"
	"kiln/internal/auth"
	"kiln/internal/bakery"
	"kiln/internal/store"
)

// newTeamServer serves the pages with personal tokens, the audit log and
// a sign-in limit of limit attempts per address.
func newTeamServer(t *testing.T, limit int) (*httptest.Server, *store.Store) {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "kiln.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	seedPages(t, st, 2, 10)
	srv := httptest.NewServer(Bakery(BakeryConfig{Records: st, Sessions: st, Service: noBaker{bakery.NewProjects(st)},
		CheckToken: func(s string) bool { return s == adminToken }, Tokens: st, Audit: audit.New(st, nil),
		SignInLimit: NewLimiter(limit, time.Hour)}))
	t.Cleanup(srv.Close)
	return srv, st
}

// tokenOf stores a personal token of role and returns it.
func tokenOf(t *testing.T, st *store.Store, name string, role auth.Role) string {
	t.Helper()
	tok := auth.NewToken()
	if err := st.CreateToken(t.Context(), store.APIToken{Name: name, Role: string(role), Created: time.Now()}, auth.HashToken(tok)); err != nil {
		t.Fatal(err)
	}
	return tok
}

func signInWith(t *testing.T, srv *httptest.Server, token string) (*http.Client, int) {
	t.Helper()
	c := client(t)
	_, body, _ := get(t, c, srv.URL+"/login")
	code, _, _ := post(t, c, srv.URL+"/login", url.Values{"csrf": {csrfOf(t, body)}, "token": {token}})
	return c, code
}

// TestPageRoles: a viewer sees the pages without the buttons it may not
// use and gets 403 naming the role for each action; a deployer may bake
// but not edit; each refusal is audited with the session's subject.
func TestPageRoles(t *testing.T) {
	srv, st := newTeamServer(t, 100)
	viewer, code := signInWith(t, srv, tokenOf(t, st, "ro", auth.Viewer))
	if code != http.StatusSeeOther {
		t.Fatalf("sign-in with a viewer token = %d; want 303", code)
	}
	deployer, _ := signInWith(t, srv, tokenOf(t, st, "ci", auth.Deployer))
	admin, _ := signInWith(t, srv, adminToken)

	_, body, _ := get(t, viewer, srv.URL+"/projects/p1")
	for _, hidden := range []string{"Bake now", `id="rotate"`, `id="delete-form"`, "/edit", `href="/projects/new"`} {
		if strings.Contains(body, hidden) {
			t.Errorf("viewer's project page offers %q", hidden)
		}
	}
	if !strings.Contains(body, `id="who">token ro (viewer)`) {
		t.Error("the page does not say who is signed in")
	}
	_, body, _ = get(t, admin, srv.URL+"/projects/p1")
	for _, shown := range []string{"Bake now", `id="rotate"`, `id="delete-form"`, "/edit"} {
		if !strings.Contains(body, shown) {
			t.Errorf("admin's project page lacks %q", shown)
		}
	}

	csrf := func(c *http.Client) string {
		_, body, _ := get(t, c, srv.URL+"/")
		return csrfOf(t, body)
	}
	actions := []struct {
		method, path string
		need         auth.Role
	}{
		{"GET", "/projects/new", auth.Admin},
		{"POST", "/projects/new", auth.Admin},
		{"GET", "/projects/p1/edit", auth.Admin},
		{"POST", "/projects/p1/edit", auth.Admin},
		{"POST", "/projects/p1/secret", auth.Admin},
		{"GET", "/projects/p1/delete", auth.Admin},
		{"POST", "/projects/p1/delete", auth.Admin},
		{"POST", "/projects/p1/bake", auth.Deployer},
		{"POST", "/projects/p1/environments/prod/promote", auth.Deployer},
		{"POST", "/projects/p1/environments/prod/approve", auth.Deployer},
		{"POST", "/projects/p1/images/ami-0123456789abcdef0/revoke", auth.Admin},
		{"POST", "/bakes/1/cancel", auth.Deployer},
	}
	for who, c := range map[auth.Role]*http.Client{auth.Viewer: viewer, auth.Deployer: deployer} {
		token := csrf(c)
		for _, a := range actions {
			var code int
			var body string
			if a.method == "GET" {
				code, body, _ = get(t, c, srv.URL+a.path)
			} else {
				code, body, _ = post(t, c, srv.URL+a.path, url.Values{"csrf": {token}})
			}
			if who.Allows(a.need) {
				if code == http.StatusForbidden {
					t.Errorf("%s %s as %s = 403; want allowed", a.method, a.path, who)
				}
				continue
			}
			if want := "this needs the " + string(a.need) + " role"; code != http.StatusForbidden || !strings.Contains(body, want) {
				t.Errorf("%s %s as %s = %d %q; want 403 %q", a.method, a.path, who, code, body, want)
			}
		}
	}
	rows, err := st.Audit(t.Context(), store.AuditQuery{Actor: "ro", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	// The viewer's sign-in and its 9 refused changes.
	if len(rows) != 10 || rows[len(rows)-1].Action != "signin" || rows[len(rows)-1].Outcome != "ok" {
		t.Errorf("viewer's audit rows = %+v; want its sign-in and 9 refusals", rows)
	}
	for _, e := range rows[:len(rows)-1] {
		if !strings.HasPrefix(e.Outcome, "403: this needs the") || e.Actor != "token ro" {
			t.Errorf("audit row %+v; want a 403 of token ro", e)
		}
	}
}

// TestSignInRefusedAndLimited: a wrong, revoked or expired token does not
// sign in and is audited; past the limit an address gets 429.
func TestSignInRefusedAndLimited(t *testing.T) {
	srv, st := newTeamServer(t, 4)
	ctx := t.Context()
	revoked := tokenOf(t, st, "gone", auth.Admin)
	if err := st.RevokeToken(ctx, "gone", time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, code := signInWith(t, srv, "kiln_pat_nope"); code != http.StatusUnauthorized {
		t.Errorf("sign-in with an unknown token = %d; want 401", code)
	}
	if _, code := signInWith(t, srv, revoked); code != http.StatusUnauthorized {
		t.Errorf("sign-in with a revoked token = %d; want 401", code)
	}
	if _, code := signInWith(t, srv, adminToken); code != http.StatusSeeOther {
		t.Errorf("sign-in with the admin token = %d; want 303", code)
	}
	if _, code := signInWith(t, srv, adminToken); code != http.StatusSeeOther {
		t.Errorf("4th sign-in = %d; want 303", code)
	}
	if _, code := signInWith(t, srv, adminToken); code != http.StatusTooManyRequests {
		t.Errorf("5th sign-in from one address = %d; want 429", code)
	}
	rows, err := st.Audit(ctx, store.AuditQuery{Action: "signin"})
	if err != nil {
		t.Fatal(err)
	}
	var outcomes []string
	for _, e := range rows {
		outcomes = append(outcomes, e.Actor+": "+e.Outcome)
	}
	want := []string{"anonymous: 429: Too Many Requests", "admin-token: ok", "admin-token: ok", "anonymous: 401: Unauthorized", "anonymous: 401: Unauthorized"}
	if strings.Join(outcomes, "\n") != strings.Join(want, "\n") {
		t.Errorf("sign-in audit rows:\n%s\nwant:\n%s", strings.Join(outcomes, "\n"), strings.Join(want, "\n"))
	}
}

// TestAuditPage lists the log newest first, filters it and pages it.
func TestAuditPage(t *testing.T) {
	srv, st := newTeamServer(t, 100)
	ctx := t.Context()
	for i := range 150 {
		project := "p1"
		if i%3 == 0 {
			project = "p2"
		}
		if _, err := st.AppendAudit(ctx, store.AuditEntry{Actor: "token ci", Action: "bake.trigger", Project: project, Outcome: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := signInWith(t, srv, tokenOf(t, st, "ro", auth.Viewer))
	code, body, _ := get(t, c, srv.URL+"/audit")
	if code != http.StatusOK || !strings.Contains(body, `<td>token ro</td><td><code>signin</code>`) {
		t.Fatalf("GET /audit = %d; want the newest row, the sign-in, first", code)
	}
	if n := strings.Count(body, "<tr><td"); n != auditPageSize {
		t.Errorf("audit page rows = %d; want %d", n, auditPageSize)
	}
	if !strings.Contains(body, `id="older-audit"`) {
		t.Error("no link to older rows")
	}
	_, body, _ = get(t, c, srv.URL+"/audit?project=p2")
	if n := strings.Count(body, "<tr><td"); n != 50 || strings.Contains(body, `id="older-audit"`) {
		t.Errorf("audit page of p2 = %d rows; want 50 and no older page", n)
	}
	if code, body, _ := get(t, c, srv.URL+"/audit?since=soon"); code != http.StatusBadRequest || !strings.Contains(body, "since=&#34;soon&#34;") {
		t.Errorf("GET /audit?since=soon = %d; want 400 naming the filter", code)
	}
}
