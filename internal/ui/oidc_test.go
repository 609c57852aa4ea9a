package ui

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/go-jose/go-jose/v4"

	"kiln/internal/audit"
	"kiln/internal/auth"
	"kiln/internal/bakery"
	"kiln/internal/store"
)

// testProvider is an OpenID Connect provider for tests: discovery, keys,
// a login page that asks for a user name, and a token endpoint that
// insists on PKCE (S256) and the client's secret. Users and their groups
// are fixed.
type testProvider struct {
	*httptest.Server
	key    *rsa.PrivateKey
	users  map[string][]string // name → groups
	mu     sync.Mutex
	codes  map[string]grant
	logins int
}

type grant struct {
	user, nonce, challenge, redirect string
}

const (
	testClientID     = "kiln"
	testClientSecret = "kiln-client-secret"
)

func newTestProvider(t *testing.T, users map[string][]string) *testProvider {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := &testProvider{key: key, users: users, codes: map[string]grant{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{
			"issuer": p.URL, "authorization_endpoint": p.URL + "/authorize", "token_endpoint": p.URL + "/token",
			"jwks_uri": p.URL + "/keys", "response_types_supported": []string{"code"},
			"subject_types_supported": []string{"public"}, "id_token_signing_alg_values_supported": []string{"RS256"},
			"code_challenge_methods_supported": []string{"S256"},
		})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	mux.HandleFunc("GET /authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("client_id") != testClientID || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
			http.Error(w, "want client_id and a S256 code_challenge", http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, `<!doctype html><title>test provider</title><form method="post" action="/authorize?%s">
<label>User <input id="username" name="username"></label><button id="submit" type="submit">Sign in</button></form>`, html.EscapeString(r.URL.RawQuery))
	})
	mux.HandleFunc("POST /authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		user := r.PostFormValue("username")
		if _, ok := p.users[user]; !ok {
			http.Error(w, "no such user", http.StatusUnauthorized)
			return
		}
		code := randomToken()
		p.mu.Lock()
		p.codes[code] = grant{user: user, nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), redirect: q.Get("redirect_uri")}
		p.logins++
		p.mu.Unlock()
		http.Redirect(w, r, q.Get("redirect_uri")+"?"+url.Values{"code": {code}, "state": {q.Get("state")}}.Encode(), http.StatusFound)
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		if !ok {
			id, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
		}
		p.mu.Lock()
		g, found := p.codes[r.PostFormValue("code")]
		delete(p.codes, r.PostFormValue("code"))
		p.mu.Unlock()
		sum := sha256.Sum256([]byte(r.PostFormValue("code_verifier")))
		switch {
		case id != testClientID || secret != testClientSecret:
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		case !found || g.redirect != r.PostFormValue("redirect_uri"):
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
			return
		case base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge:
			http.Error(w, `{"error":"invalid_grant","error_description":"PKCE verifier does not match"}`, http.StatusBadRequest)
			return
		}
		now := time.Now()
		claims, _ := json.Marshal(map[string]any{"iss": p.URL, "sub": "sub-" + g.user, "aud": testClientID,
			"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "nonce": g.nonce,
			"email": g.user + "@example.com", "groups": p.users[g.user]})
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: p.key, KeyID: "k1"}}, nil)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		jws, err := signer.Sign(claims)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		idToken, _ := jws.CompactSerialize()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": randomToken(), "token_type": "Bearer", "expires_in": 300, "id_token": idToken})
	})
	p.Server = httptest.NewServer(mux)
	t.Cleanup(p.Close)
	return p
}

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
func ssoSignIn(t *testing.T, c *http.Client, srv *httptest.Server, user string) (int, string) {
	t.Helper()
	code, body, h := get(t, c, srv.URL+"/login/oidc?next=/projects/p0")
	if code != http.StatusFound {
		t.Fatalf("GET /login/oidc = %d %s", code, body)
	}
	authz := h.Get("Location")
	code, body, _ = get(t, c, authz)
	if code != http.StatusOK || !strings.Contains(body, `id="username"`) {
		t.Fatalf("provider's login page = %d %s", code, body)
	}
	action := html.UnescapeString(regexp.MustCompile(`action="([^"]+)"`).FindStringSubmatch(body)[1])
	u, _ := url.Parse(authz)
	code, _, h = post(t, c, u.Scheme+"://"+u.Host+action, url.Values{"username": {user}})
	if code != http.StatusFound {
		t.Fatalf("provider's sign-in = %d", code)
	}
	code, body, _ = get(t, c, h.Get("Location"))
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
	code, body := ssoSignIn(t, alice, srv, "alice")
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
	ssoSignIn(t, olga, srv, "olga")
	if _, body, _ := get(t, olga, srv.URL+"/"); !strings.Contains(body, `user olga@example.com (admin)`) {
		t.Error("olga (kiln-admins) is not an admin")
	}

	mallory := client(t)
	code, body = ssoSignIn(t, mallory, srv, "mallory")
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
		chromedp.Click(chromedp.CSS(`#submit`)),
		chromedp.WaitVisible(chromedp.CSS(`#who`)))
	if got := text(t, ctx, `#who`); got != "user alice@example.com (deployer)" {
		t.Errorf("signed in as %q; want user alice@example.com (deployer)", got)
	}
	if got := eval[string](t, ctx, `location.pathname`); got != "/projects/p0" {
		t.Errorf("after sign-on the browser is at %q; want the page it asked for, /projects/p0", got)
	}
}
