package ui

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"kiln/internal/pgtest"
	"kiln/internal/store"
)

// TestSessionAcrossServers: two servers on one PostgreSQL database (one
// bakery behind a load balancer). A session made on one is good on the
// other, CSRF token and all, and signing out on the other ends it on both.
func TestSessionAcrossServers(t *testing.T) {
	dsn := pgtest.DB(t)
	var servers []restartable
	for range 2 {
		st, err := store.Open(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		servers = append(servers, restartable{t, st})
	}
	p := store.Project{Name: "p0", Region: "us-east-1", BaseOwner: "amazon", BaseName: alPattern,
		BaseMostRecent: true, Type: "t3.small", Script: "#!/bin/sh\ntrue\n", Keep: 5,
		ScriptTimeout: 30 * time.Minute, ImageTimeout: time.Hour}
	if _, err := servers[0].st.PutProject(t.Context(), p, "0123456789abcdef0123"); err != nil {
		t.Fatal(err)
	}
	a, b := servers[0].restart(), servers[1].restart()
	id := sessionOf(t, signedIn(t, a), a)
	_, body, _ := get(t, withCookie(t, a, id), a.URL+"/")
	csrf := csrfOf(t, body)

	onB := withCookie(t, b, id)
	code, body, _ := get(t, onB, b.URL+"/projects/p0")
	if code != http.StatusOK || !strings.Contains(body, "/hooks/p0") {
		t.Fatalf("GET /projects/p0 on the other server = %d; want 200 with the project", code)
	}
	if got := csrfOf(t, body); got != csrf {
		t.Errorf("CSRF token on the other server = %q; want the session's %q", got, csrf)
	}
	if code, _, _ := post(t, onB, b.URL+"/logout", url.Values{"csrf": {csrf}}); code != http.StatusSeeOther {
		t.Fatalf("sign-out on the other server = %d; want 303", code)
	}
	noRedirect := withCookie(t, a, id)
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if code, _, _ := get(t, noRedirect, a.URL+"/projects/p0"); code == http.StatusOK {
		t.Errorf("GET /projects/p0 on the first server after signing out = %d; want the sign-in page", code)
	}
}
