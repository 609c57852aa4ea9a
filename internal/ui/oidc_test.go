package ui

import (
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"kiln/internal/audit"
	"kiln/internal/auth"
	"kiln/internal/bakery"
	"kiln/internal/store"
)

func newSSOServer(t *testing.T, p *testProvider, roleMap string) (*httptest.Server, *store.Store) {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "kiln.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	seedPages(t, st, 1, 1)
	roles, err := auth.ParseRoleMap(roleMap)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(Bakery(BakeryConfig{Records: st, Sessions: st, Service: noBaker{bakery.NewProjects(st)},
		CheckToken: func(s string) bool { return s == adminToken }, Tokens: st, Audit: audit.New(st, nil),
		OIDC: &OIDC{Issuer: p.URL, ClientID: testClientID, ClientSecret: testClientSecret, Roles: roles}}))
	t.Cleanup(srv.Close)
	return srv, st
}

// ssoSignIn goes through the sign-on as a browser would without script:
// kiln's start, the provider's login page and form, kiln's callback.
func ssoSignIn(t *testing.T, c *http.Client, p *testProvider, srv *httptest.Server, user string) (int, string) {
	t.Helper()
	code, body, h := get(t, c, srv.URL+"/login/oidc?next=/projects/p0")
	if code != http.StatusFound {
		t.Fatalf("GET /login/oidc = %d %s", code, body)
	}
	// The provider's authorization endpoint sends the browser on to its
	// login page.
	loc := h.Get("Location")
	for range 3 {
		code, body, h = get(t, c, loc)
		if code != http.StatusFound {
			break
		}
		loc = resolve(t, loc, h.Get("Location"))
	}
	if code != http.StatusOK || !strings.Contains(body, `id="username"`) {
		t.Fatalf("provider's login page = %d %s", code, body)
	}
	action := html.UnescapeString(regexp.MustCompile(`action="([^"]+)"`).FindStringSubmatch(body)[1])
	code, _, h = post(t, c, resolve(t, loc, action), url.Values{"username": {user}, "password": {testPassword}})
	if code != http.StatusFound {
		t.Fatalf("provider's sign-in = %d", code)
	}
	// The login hands back to the library, which redirects to kiln with
	// the code.
	loc = resolve(t, loc, h.Get("Location"))
	for strings.HasPrefix(loc, p.URL) {
		code, body, h = get(t, c, loc)
		if code != http.StatusFound {
			t.Fatalf("provider after sign-in = %d %s", code, body)
		}
		loc = resolve(t, loc, h.Get("Location"))
	}
	code, body, _ = get(t, c, loc)
	return code, body
}

// TestSingleSignOn signs in through the provider: the groups claim maps
// to a role, the session acts with it, and the sign-ins are audited; a
// user in no mapped group is refused; a callback whose state did not
// start here is refused.
func TestSingleSignOn(t *testing.T) {
	p := newTestProvider(t, map[string][]string{"alice": {"eng", "kiln-deployers"}, "olga": {"kiln-admins"}, "mallory": {"sales"}})
	srv, st := newSSOServer(t, p, auth.DefaultRoleMap)

	_, body, _ := get(t, client(t), srv.URL+"/login")
	if !strings.Contains(body, `id="sso" href="/login/oidc?next=`) || !strings.Contains(body, "Sign in with 127.0.0.1") {
		t.Errorf("the sign-in page does not offer the provider")
	}

	alice := client(t)
	code, body := ssoSignIn(t, alice, p, srv, "alice")
	if code != http.StatusOK || !strings.Contains(body, `href="/projects/p0"`) {
		t.Fatalf("callback = %d %s; want 200 and a way on to next", code, body)
	}
	code, body, _ = get(t, alice, srv.URL+"/projects/p0")
	if code != http.StatusOK || !strings.Contains(body, `id="who">user alice@example.com (deployer)`) {
		t.Fatalf("project page after sign-on = %d; want alice signed in as deployer", code)
	}
	if !strings.Contains(body, "Bake now") || strings.Contains(body, `id="rotate"`) {
		t.Error("a deployer's page should offer Bake now and not a new webhook secret")
	}
	_, body, _ = get(t, alice, srv.URL+"/")
	if code, _, _ := post(t, alice, srv.URL+"/projects/p0/secret", url.Values{"csrf": {csrfOf(t, body)}}); code != http.StatusForbidden {
		t.Errorf("a deployer rotating a secret = %d; want 403", code)
	}

	olga := client(t)
	ssoSignIn(t, olga, p, srv, "olga")
	if _, body, _ := get(t, olga, srv.URL+"/"); !strings.Contains(body, `user olga@example.com (admin)`) {
		t.Error("olga (kiln-admins) is not an admin")
	}

	mallory := client(t)
	code, body = ssoSignIn(t, mallory, p, srv, "mallory")
	if code != http.StatusForbidden || !strings.Contains(body, "mallory@example.com is in no group that has a role here (groups: sales).") {
		t.Errorf("sign-on of a user in no mapped group = %d; want 403 saying so", code)
	}
	if code, _, _ := get(t, mallory, srv.URL+"/"); code != http.StatusSeeOther {
		t.Errorf("GET / after a refused sign-on = %d; want 303 to sign-in", code)
	}

	// A callback this browser did not start (forged, or replayed) is refused.
	eve := client(t)
	if code, _, _ := get(t, eve, srv.URL+"/login/oidc/callback?code=x&state=y"); code != http.StatusForbidden {
		t.Errorf("callback without the flow's cookie = %d; want 403", code)
	}

	rows, err := st.Audit(t.Context(), store.AuditQuery{Action: "signin"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range rows {
		got = append(got, e.Actor+" "+e.Outcome)
	}
	want := []string{"anonymous 403: Forbidden", "anonymous 403: Forbidden", "user olga@example.com ok", "user alice@example.com ok"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("sign-in audit rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(rows[1].Detail, "mallory@example.com is in no group") {
		t.Errorf("refused sign-on's detail = %q; want the reason", rows[1].Detail)
	}
}

// TestSingleSignOnBrowser signs in in chromium through the provider's
// login page: kiln's button, the provider's form, back to the page asked
// for, signed in with the role of the user's groups.
func TestSingleSignOnBrowser(t *testing.T) {
	ctx := tab(t)
	p := newTestProvider(t, map[string][]string{"alice": {"kiln-deployers"}})
	srv, _ := newSSOServer(t, p, auth.DefaultRoleMap)
	do(t, ctx, "sign on", chromedp.Navigate(srv.URL+"/projects/p0"),
		chromedp.WaitVisible(chromedp.CSS(`#sso`)),
		chromedp.Click(chromedp.CSS(`#sso`)),
		chromedp.WaitVisible(chromedp.CSS(`#username`)),
		chromedp.SendKeys(chromedp.CSS(`#username`), "alice"),
		chromedp.SendKeys(chromedp.CSS(`#password`), testPassword),
		chromedp.Click(chromedp.CSS(`#submit`)),
		chromedp.WaitVisible(chromedp.CSS(`#who`)))
	if got := text(t, ctx, `#who`); got != "user alice@example.com (deployer)" {
		t.Errorf("signed in as %q; want user alice@example.com (deployer)", got)
	}
	if got := eval[string](t, ctx, `location.pathname`); got != "/projects/p0" {
		t.Errorf("after sign-on the browser is at %q; want the page it asked for, /projects/p0", got)
	}
}

// resolve reads ref against the URL base.
func resolve(t *testing.T, base, ref string) string {
	t.Helper()
	b, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	r, err := b.Parse(ref)
	if err != nil {
		t.Fatal(err)
	}
	return r.String()
}

// TestSingleSignOnRoleMap maps the provider's groups claim through a
// role map of the operator's: a group named in it gives its role, the
// highest of several wins, and the provider's own login refuses a wrong
// password before kiln sees anything.
func TestSingleSignOnRoleMap(t *testing.T) {
	p := newTestProvider(t, map[string][]string{"vic": {"eng"}, "dora": {"eng", "ops"}, "ann": {"root"}})
	srv, _ := newSSOServer(t, p, "viewer=eng,deployer=ops,admin=root")
	for _, tc := range []struct{ user, want string }{
		{"vic", "user vic@example.com (viewer)"},
		{"dora", "user dora@example.com (deployer)"},
		{"ann", "user ann@example.com (admin)"},
	} {
		c := client(t)
		if code, body := ssoSignIn(t, c, p, srv, tc.user); code != http.StatusOK {
			t.Fatalf("sign-on of %s = %d %s", tc.user, code, body)
		}
		if _, body, _ := get(t, c, srv.URL+"/"); !strings.Contains(body, `id="who">`+tc.want) {
			t.Errorf("%s signed in; want %q on the page", tc.user, tc.want)
		}
	}
	if got := p.logins(); got != 3 {
		t.Errorf("provider saw %d sign-ins; want 3", got)
	}

	c := client(t)
	_, _, h := get(t, c, srv.URL+"/login/oidc?next=/")
	loc := h.Get("Location")
	code, body, h := get(t, c, loc)
	for code == http.StatusFound {
		loc = resolve(t, loc, h.Get("Location"))
		code, body, h = get(t, c, loc)
	}
	action := html.UnescapeString(regexp.MustCompile(`action="([^"]+)"`).FindStringSubmatch(body)[1])
	code, body, _ = post(t, c, resolve(t, loc, action), url.Values{"username": {"vic"}, "password": {"guess"}})
	if code != http.StatusUnauthorized || !strings.Contains(body, "Wrong user name or password.") {
		t.Errorf("wrong password at the provider = %d; want 401 and its login page again", code)
	}
}
