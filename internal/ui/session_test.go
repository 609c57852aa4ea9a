package ui

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"kiln/internal/bakery"
	"kiln/internal/store"
)

// restartable is a bakery server over one store: restart serves the same
// database from a new handler, as a restarted kiln serve (or a second one
// on the same file) would.
type restartable struct {
	t  *testing.T
	st *store.Store
}

func (rs restartable) restart() *httptest.Server {
	srv := httptest.NewServer(Bakery(BakeryConfig{Records: rs.st, Sessions: rs.st, Service: noBaker{bakery.NewProjects(rs.st)}, CheckToken: func(s string) bool { return s == adminToken }}))
	rs.t.Cleanup(srv.Close)
	return srv
}

// withCookie is a client that sends the session cookie value to srv.
func withCookie(t *testing.T, srv *httptest.Server, value string) *http.Client {
	t.Helper()
	c := client(t)
	u, _ := url.Parse(srv.URL)
	c.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: value, Path: "/"}})
	return c
}

// sessionOf is the session cookie value c holds for srv.
func sessionOf(t *testing.T, c *http.Client, srv *httptest.Server) string {
	t.Helper()
	u, _ := url.Parse(srv.URL)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == sessionCookie && ck.Value != "" {
			return ck.Value
		}
	}
	t.Fatal("no session cookie")
	return ""
}

// TestSessionSurvivesRestart: a session, its CSRF token, its message and
// a secret to show once are all in the database, seen by a new handler.
func TestSessionSurvivesRestart(t *testing.T) {
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "kiln.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	seedPages(t, st, 2, 10)
	rs := restartable{t, st}

	first := rs.restart()
	id := sessionOf(t, signedIn(t, first), first)
	_, body, _ := get(t, withCookie(t, first, id), first.URL+"/")
	csrf := csrfOf(t, body)
	first.Close()

	second := rs.restart()
	c := withCookie(t, second, id)
	code, body, _ := get(t, c, second.URL+"/projects/p0")
	if code != http.StatusOK || !strings.Contains(body, "/hooks/p0") {
		t.Fatalf("GET /projects/p0 after a restart = %d; want 200 with the project", code)
	}
	if got := csrfOf(t, body); got != csrf {
		t.Errorf("CSRF token after a restart = %q; want the session's %q", got, csrf)
	}
	// CSRF is still enforced, with the token from before the restart.
	for _, form := range []url.Values{nil, {"csrf": {"forged"}}} {
		if code, _, _ := post(t, c, second.URL+"/projects/p0/secret", form); code != http.StatusForbidden {
			t.Errorf("POST secret with csrf %q = %d; want 403", form.Get("csrf"), code)
		}
	}
	if code, _, _ := post(t, c, second.URL+"/projects/p0/secret", url.Values{"csrf": {csrf}}); code != http.StatusSeeOther {
		t.Fatalf("POST secret = %d; want 303", code)
	}
	if code, _, _ := post(t, c, second.URL+"/projects/p1/delete", url.Values{"csrf": {csrf}, "confirm": {"yes"}}); code != http.StatusSeeOther {
		t.Fatalf("delete p1 = %d; want 303", code)
	}
	second.Close()

	// The secret to show once and the message left before this restart.
	third := rs.restart()
	c = withCookie(t, third, id)
	if _, body, _ = get(t, c, third.URL+"/"); !strings.Contains(body, `id="flash">Project p1 deleted`) {
		t.Error("after a restart, the projects page lacks the message left by the delete")
	}
	if _, body, _ = get(t, c, third.URL+"/"); strings.Contains(body, `id="flash"`) {
		t.Error("the message is shown a second time")
	}
	secret, err := st.ProjectSecret(t.Context(), "p0")
	if err != nil {
		t.Fatal(err)
	}
	_, body, _ = get(t, c, third.URL+"/projects/p0")
	if !strings.Contains(body, `<code id="secret-value">`+secret+`</code>`) || !strings.Contains(body, "New webhook secret") {
		t.Error("after a restart, the project page does not show the rotated secret")
	}
	if _, body, _ = get(t, c, third.URL+"/projects/p0"); strings.Contains(body, secret) {
		t.Error("the rotated secret is shown a second time")
	}

	// Signing out ends the session for every handler on the database.
	if code, _, _ := post(t, c, third.URL+"/logout", url.Values{"csrf": {csrf}}); code != http.StatusSeeOther {
		t.Fatalf("logout = %d; want 303", code)
	}
	fourth := rs.restart()
	if code, _, h := get(t, withCookie(t, fourth, id), fourth.URL+"/"); code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/login") {
		t.Errorf("GET / with a signed-out cookie = %d, Location %q; want 303 to /login", code, h.Get("Location"))
	}
	var rows int
	if err := st.DB().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM sessions`).Scan(&rows); err != nil || rows != 0 {
		t.Errorf("sessions rows after logout = %d, %v; want 0", rows, err)
	}
}

// TestSessionRefused: a made-up cookie, the stored hash of a real one (a
// stolen database) and an expired session all go to the sign-in page.
func TestSessionRefused(t *testing.T) {
	srv, st := newPageServer(t)
	id := sessionOf(t, signedIn(t, srv), srv)
	if code, _, _ := get(t, withCookie(t, srv, id), srv.URL+"/"); code != http.StatusOK {
		t.Fatalf("GET / signed in = %d; want 200", code)
	}
	sum := sha256.Sum256([]byte(id))
	for name, value := range map[string]string{
		"made up":     randomToken(),
		"stored hash": hex.EncodeToString(sum[:]),
		"truncated":   id[:len(id)-1],
	} {
		code, body, h := get(t, withCookie(t, srv, value), srv.URL+"/")
		if code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/login") || strings.Contains(body, "<table") {
			t.Errorf("GET / with a %s cookie = %d, Location %q; want 303 to /login", name, code, h.Get("Location"))
		}
		if code, _, _ := post(t, withCookie(t, srv, value), srv.URL+"/projects/p0/bake", url.Values{"csrf": {"x"}}); code != http.StatusUnauthorized {
			t.Errorf("POST bake with a %s cookie = %d; want 401", name, code)
		}
	}

	if _, err := st.DB().ExecContext(t.Context(), `UPDATE sessions SET expires_at = 1`); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := get(t, withCookie(t, srv, id), srv.URL+"/"); code != http.StatusSeeOther {
		t.Errorf("GET / with an expired session = %d; want 303", code)
	}
	// The next sign-in forgets it.
	signedIn(t, srv)
	var expired int
	if err := st.DB().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM sessions WHERE expires_at = 1`).Scan(&expired); err != nil || expired != 0 {
		t.Errorf("expired sessions after a sign-in = %d, %v; want 0", expired, err)
	}
}
