package ui

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"kiln/internal/bakery"
	"kiln/internal/store"
	"kiln/internal/web"
)

// noBaker refuses every bake (the auth tests never reach one) and changes
// projects by the bakery's rules.
type noBaker struct{ bakery.Projects }

func (noBaker) Trigger(context.Context, string, string, string) (store.PushResult, error) {
	return store.PushResult{}, store.ErrNotFound
}
func (noBaker) Cancel(context.Context, int64, string) (*store.Bake, error) {
	return nil, store.ErrNotFound
}
func (noBaker) Promote(context.Context, string, string, string) (*bakery.Promotion, error) {
	return nil, store.ErrNotFound
}

func newAuthServer(t *testing.T) *httptest.Server {
	srv, _ := newPageServer(t)
	return srv
}

func newPageServer(t *testing.T) (*httptest.Server, *store.Store) {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "kiln.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	seedPages(t, st, 2, 10)
	srv := httptest.NewServer(Bakery(BakeryConfig{Records: st, Sessions: st, Service: noBaker{bakery.NewProjects(st)}, CheckToken: func(s string) bool { return s == adminToken }}))
	t.Cleanup(srv.Close)
	return srv, st
}

func client(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u string) (int, string, http.Header) {
	t.Helper()
	res, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body), res.Header
}

func post(t *testing.T, c *http.Client, u string, form url.Values) (int, string, http.Header) {
	t.Helper()
	res, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body), res.Header
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := csrfRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no CSRF token in the page")
	}
	return m[1]
}

// TestBakeryAuth runs without a browser: nothing is seen without a session,
// forms need the CSRF token, and cookies are HttpOnly and SameSite=Strict.
func TestBakeryAuth(t *testing.T) {
	srv := newAuthServer(t)
	anon := client(t)
	for _, path := range []string{"/", "/projects/p1", "/projects/new", "/bakes/1"} {
		code, body, h := get(t, anon, srv.URL+path)
		if code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/login") || strings.Contains(body, "<table") {
			t.Errorf("GET %s without a session = %d, Location %q; want 303 to /login", path, code, h.Get("Location"))
		}
	}
	if code, _, _ := get(t, anon, srv.URL+"/bakes/1/events"); code != http.StatusUnauthorized {
		t.Errorf("GET /bakes/1/events without a session = %d; want 401", code)
	}
	if code, _, _ := post(t, anon, srv.URL+"/projects/p1/bake", nil); code != http.StatusUnauthorized {
		t.Errorf("POST bake without a session = %d; want 401", code)
	}

	c := client(t)
	_, body, _ := get(t, c, srv.URL+"/login")
	code, _, h := post(t, c, srv.URL+"/login", url.Values{"csrf": {csrfOf(t, body)}, "token": {"wrong"}})
	if code != http.StatusUnauthorized {
		t.Errorf("sign-in with a wrong token = %d; want 401", code)
	}
	if code, _, _ := post(t, c, srv.URL+"/login", url.Values{"csrf": {"forged"}, "token": {adminToken}}); code != http.StatusForbidden {
		t.Errorf("sign-in without the form's token = %d; want 403", code)
	}
	_, body, _ = get(t, c, srv.URL+"/login")
	code, _, h = post(t, c, srv.URL+"/login", url.Values{"csrf": {csrfOf(t, body)}, "token": {adminToken}, "next": {"/projects/p1"}})
	if code != http.StatusSeeOther || h.Get("Location") != "/projects/p1" {
		t.Fatalf("sign-in = %d, Location %q; want 303 to /projects/p1", code, h.Get("Location"))
	}
	var session *http.Cookie
	for _, ck := range (&http.Response{Header: h}).Cookies() {
		if ck.Name == sessionCookie && ck.Value != "" {
			session = ck
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode {
		t.Errorf("session cookie = %+v; want HttpOnly, SameSite=Strict", session)
	}
	code, body, _ = get(t, c, srv.URL+"/projects/p1")
	if code != http.StatusOK || !strings.Contains(body, "/hooks/p1") {
		t.Fatalf("GET /projects/p1 signed in = %d; want 200 with the webhook URL", code)
	}
	csrf := csrfOf(t, body)
	if code, _, _ := post(t, c, srv.URL+"/projects/p1/bake", url.Values{"csrf": {"forged"}}); code != http.StatusForbidden {
		t.Errorf("POST bake with a forged CSRF token = %d; want 403", code)
	}
	if code, _, _ := get(t, c, srv.URL+"/login?next=//evil.example"); code != http.StatusOK {
		t.Errorf("GET /login = %d", code)
	}
	code, _, h = post(t, c, srv.URL+"/logout", url.Values{"csrf": {csrf}})
	if code != http.StatusSeeOther || h.Get("Location") != "/login" {
		t.Errorf("logout = %d, Location %q; want 303 to /login", code, h.Get("Location"))
	}
	if code, _, _ := get(t, c, srv.URL+"/"); code != http.StatusSeeOther {
		t.Errorf("GET / after logout = %d; want 303", code)
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/projects/web": "/projects/web", "": "/", "//evil.example": "/", "https://evil.example": "/", `/\evil`: "/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q; want %q", in, got, want)
		}
	}
}

// TestFormMatchesParser: the form's errors are the project-file parser's.
func TestFormMatchesParser(t *testing.T) {
	tests := []struct {
		name string
		f    projectForm
		want []string // "field: message"
	}{
		{"ok", projectForm{Name: "web", Region: "us-east-1", BaseID: "ami-0123456789abcdef0", Type: "t3.small", Script: "true", Keep: "3"}, nil},
		{"bad", projectForm{Name: "a b", Region: "mars", BaseID: "ami-0123456789abcdef0", Type: "t3.small", Script: "true", Keep: "0"},
			[]string{`name: "a b": use letters`, `region: "mars" is not a region name`, "keep: must be at least 1"}},
		{"empty", projectForm{}, []string{"name: must not be empty", "region: must not be empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.f.parse()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("parse() = %v; want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("parse() = nil; want errors")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("parse() = %v; want %q", err, w)
				}
			}
		})
	}
}

// signedIn is a client with a session on srv.
func signedIn(t *testing.T, srv *httptest.Server) *http.Client {
	t.Helper()
	c := client(t)
	_, body, _ := get(t, c, srv.URL+"/login")
	if code, _, _ := post(t, c, srv.URL+"/login", url.Values{"csrf": {csrfOf(t, body)}, "token": {adminToken}}); code != http.StatusSeeOther {
		t.Fatalf("sign-in = %d; want 303", code)
	}
	return c
}

// TestFailedBakePage shows the reason and the console tail of a failed
// bake, and no cancel button.
func TestFailedBakePage(t *testing.T) {
	srv, st := newPageServer(t)
	if _, err := st.DB().ExecContext(t.Context(), `UPDATE bakes SET state = 'failed', image_id = '',
		reason = 'script exited with status 1', console_tail = '+ dnf install nginx<br>
No match for argument: nginx' WHERE id = 3`); err != nil {
		t.Fatal(err)
	}
	c := signedIn(t, srv)
	code, body, _ := get(t, c, srv.URL+"/bakes/3")
	if code != http.StatusOK {
		t.Fatalf("GET /bakes/3 = %d", code)
	}
	for _, want := range []string{`id="reason">script exited with status 1`, `<pre id="console">&#43; dnf install nginx&lt;br&gt;` + "\nNo match for argument: nginx</pre>", `state failed`} {
		if !strings.Contains(body, want) {
			t.Errorf("failed bake page lacks %q", want)
		}
	}
	if strings.Contains(body, `id="cancel"`) || strings.Contains(body, `data-live="/bakes`) {
		t.Error("a finished bake shows a cancel button or a live stream")
	}
}

// TestMountsBesideAPI mounts the pages the way kiln serve does: at "/" of
// the API server, whose own routes keep answering.
func TestMountsBesideAPI(t *testing.T) {
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "kiln.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	hash := web.HashToken(adminToken)
	api := web.New(web.Config{Store: st, Bakery: noBaker{bakery.NewProjects(st)}, Token: hash})
	api.Handle("/", Bakery(BakeryConfig{Records: st, Sessions: st, Service: noBaker{bakery.NewProjects(st)}, CheckToken: hash.Match}))
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	c := client(t)
	for path, want := range map[string]int{"/": 303, "/login": 200, "/api/projects": 401, "/healthz": 200, "/nope": 404} {
		if code, _, _ := get(t, c, srv.URL+path); code != want {
			t.Errorf("GET %s = %d; want %d", path, code, want)
		}
	}
}
