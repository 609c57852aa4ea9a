package ui

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// testProvider is an OpenID Connect provider for the sign-on tests, built
// on zitadel's provider library (pkg/op): discovery, keys, the
// authorization and token endpoints, PKCE and client authentication are
// the library's. What a provider must bring itself is here: an in-memory
// storage (one client, fixed users and their groups) and a login page.
type testProvider struct {
	*httptest.Server
	op    *op.Provider
	store *providerStore
}

const (
	testClientID     = "kiln"
	testClientSecret = "kiln-client-secret"
	// testPassword is every test user's password at the provider.
	testPassword = "correct horse"
)

// newTestProvider starts a provider whose users are name → groups; kiln
// may redirect back to any /login/oidc/callback on 127.0.0.1.
func newTestProvider(t *testing.T, users map[string][]string) *testProvider {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	var cryptoKey [32]byte
	rand.Read(cryptoKey[:])
	st := &providerStore{key: key, keyID: "k1", users: users, requests: map[string]*providerRequest{},
		codes: map[string]string{}, tokens: map[string]string{}}
	p := &testProvider{store: st}
	p.Server = httptest.NewUnstartedServer(nil)
	issuer := "http://" + p.Listener.Addr().String()
	p.op, err = op.NewProvider(&op.Config{CryptoKey: cryptoKey, CodeMethodS256: true, AuthMethodPost: true},
		st, op.StaticIssuer(issuer), op.WithAllowInsecure())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", p.loginPage)
	mux.HandleFunc("POST /login", p.login)
	mux.Handle("/", p.op)
	p.Config.Handler = mux
	p.Start()
	t.Cleanup(p.Close)
	return p
}

// loginPage asks for a user name and password for one authorization
// request (the library sends the browser here with its id).
func (p *testProvider) loginPage(w http.ResponseWriter, r *http.Request) {
	p.loginForm(w, r.FormValue("id"), "")
}

func (p *testProvider) loginForm(w http.ResponseWriter, id, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, `<!doctype html><title>test provider</title><p id="msg">%s</p><form method="post" action="/login?id=%s">
<label>User <input id="username" name="username"></label>
<label>Password <input id="password" name="password" type="password"></label>
<button id="submit" type="submit">Sign in</button></form>`, html.EscapeString(msg), html.EscapeString(id))
}

// login checks the password, marks the request signed in and hands the
// browser back to the library, which redirects it to kiln with a code.
func (p *testProvider) login(w http.ResponseWriter, r *http.Request) {
	id, user := r.URL.Query().Get("id"), r.PostFormValue("username")
	if _, ok := p.store.users[user]; !ok || r.PostFormValue("password") != testPassword {
		w.WriteHeader(http.StatusUnauthorized)
		p.loginForm(w, id, "Wrong user name or password.")
		return
	}
	if err := p.store.signIn(id, user); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, op.AuthCallbackURL(p.op)(op.ContextWithIssuer(r.Context(), p.URL), id), http.StatusFound)
}

// logins counts the sign-ins at the provider.
func (p *testProvider) logins() int {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	return p.store.signIns
}

// providerStore is op.Storage in memory: the authorization requests, their
// codes and access tokens, one confidential client, the users.
type providerStore struct {
	key   *rsa.PrivateKey
	keyID string
	users map[string][]string

	mu       sync.Mutex
	requests map[string]*providerRequest // id → request
	codes    map[string]string           // code → request id
	tokens   map[string]string           // access token id → subject
	signIns  int
}

var errNotFound = errors.New("not found")

func (s *providerStore) CreateAuthRequest(_ context.Context, req *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	// The client is kiln: it must use PKCE with S256.
	if req.CodeChallenge == "" || req.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		return nil, oidc.ErrInvalidRequest().WithDescription("PKCE with S256 is required")
	}
	r := &providerRequest{AuthRequest: *req, id: rand.Text(), created: time.Now()}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests[r.id] = r
	return r, nil
}

func (s *providerStore) signIn(id, user string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.requests[id]
	if !ok {
		return fmt.Errorf("authorization request %q: %w", id, errNotFound)
	}
	r.subject, r.authTime, r.done = user, time.Now(), true
	s.signIns++
	return nil
}

func (s *providerStore) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.requests[id]; ok {
		return r, nil
	}
	return nil, fmt.Errorf("authorization request %q: %w", id, errNotFound)
}

func (s *providerStore) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	id, ok := s.codes[code]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("code: %w", errNotFound)
	}
	return s.AuthRequestByID(ctx, id)
}

func (s *providerStore) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes[code] = id
	return nil
}

func (s *providerStore) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.requests, id)
	for code, rid := range s.codes {
		if rid == id {
			delete(s.codes, code)
		}
	}
	return nil
}

func (s *providerStore) CreateAccessToken(_ context.Context, req op.TokenRequest) (string, time.Time, error) {
	id := rand.Text()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[id] = req.GetSubject()
	return id, time.Now().Add(5 * time.Minute), nil
}

func (s *providerStore) CreateAccessAndRefreshTokens(context.Context, op.TokenRequest, string) (string, string, time.Time, error) {
	return "", "", time.Time{}, errors.New("refresh tokens are not offered")
}

func (s *providerStore) TokenRequestByRefreshToken(context.Context, string) (op.RefreshTokenRequest, error) {
	return nil, op.ErrInvalidRefreshToken
}

func (s *providerStore) TerminateSession(context.Context, string, string) error { return nil }

func (s *providerStore) RevokeToken(_ context.Context, token, _, _ string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tokens, token)
	return nil
}

func (s *providerStore) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}

func (s *providerStore) SigningKey(context.Context) (op.SigningKey, error) {
	return signingKey{s.key, s.keyID}, nil
}

func (s *providerStore) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *providerStore) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{publicKey{signingKey{s.key, s.keyID}}}, nil
}

func (s *providerStore) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	if id != testClientID {
		return nil, fmt.Errorf("client %q: %w", id, errNotFound)
	}
	return providerClient{}, nil
}

func (s *providerStore) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	if id != testClientID || secret != testClientSecret {
		return oidc.ErrInvalidClient().WithDescription("wrong client id or secret")
	}
	return nil
}

// SetUserinfoFromScopes fills the claims that go into the ID token: the
// email for "email", the user's groups for "groups".
func (s *providerStore) SetUserinfoFromScopes(_ context.Context, info *oidc.UserInfo, user, _ string, scopes []string) error {
	groups, ok := s.users[user]
	if !ok {
		return fmt.Errorf("user %q: %w", user, errNotFound)
	}
	info.Subject = "sub-" + user
	for _, scope := range scopes {
		switch scope {
		case oidc.ScopeEmail:
			info.Email, info.EmailVerified = user+"@example.com", true
		case oidc.ScopeProfile:
			info.Name = user
		case "groups":
			info.AppendClaims("groups", groups)
		}
	}
	return nil
}

func (s *providerStore) SetUserinfoFromToken(ctx context.Context, info *oidc.UserInfo, tokenID, _, _ string) error {
	s.mu.Lock()
	user, ok := s.tokens[tokenID]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("access token: %w", errNotFound)
	}
	return s.SetUserinfoFromScopes(ctx, info, user, testClientID, []string{oidc.ScopeEmail, oidc.ScopeProfile, "groups"})
}

func (s *providerStore) SetIntrospectionFromToken(context.Context, *oidc.IntrospectionResponse, string, string, string) error {
	return errors.New("introspection is not offered")
}

func (s *providerStore) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

func (s *providerStore) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("JWT profile is not offered")
}

func (s *providerStore) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("JWT profile is not offered")
}

func (s *providerStore) Health(context.Context) error { return nil }

// providerRequest is one authorization request and, once the user signed
// in at the login page, who it was.
type providerRequest struct {
	oidc.AuthRequest
	id       string
	created  time.Time
	subject  string
	authTime time.Time
	done     bool
}

func (r *providerRequest) GetID() string          { return r.id }
func (r *providerRequest) GetACR() string         { return "" }
func (r *providerRequest) GetAMR() []string       { return []string{"pwd"} }
func (r *providerRequest) GetAudience() []string  { return []string{r.ClientID} }
func (r *providerRequest) GetAuthTime() time.Time { return r.authTime }
func (r *providerRequest) GetClientID() string    { return r.ClientID }
func (r *providerRequest) GetCodeChallenge() *oidc.CodeChallenge {
	return &oidc.CodeChallenge{Challenge: r.CodeChallenge, Method: r.CodeChallengeMethod}
}
func (r *providerRequest) GetNonce() string    { return r.Nonce }
func (r *providerRequest) GetScopes() []string { return r.Scopes }
func (r *providerRequest) GetSubject() string  { return r.subject }
func (r *providerRequest) Done() bool          { return r.done }

// providerClient is kiln, a confidential web client with a secret, that
// may be sent back to a callback on any loopback port.
type providerClient struct{}

func (providerClient) GetID() string          { return testClientID }
func (providerClient) RedirectURIs() []string { return nil }
func (providerClient) RedirectURIGlobs() []string {
	return []string{"http://127.0.0.1:*/login/oidc/callback"}
}
func (providerClient) PostLogoutRedirectURIs() []string     { return nil }
func (providerClient) PostLogoutRedirectURIGlobs() []string { return nil }
func (providerClient) ApplicationType() op.ApplicationType  { return op.ApplicationTypeWeb }
func (providerClient) AuthMethod() oidc.AuthMethod          { return oidc.AuthMethodBasic }
func (providerClient) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (providerClient) GrantTypes() []oidc.GrantType        { return []oidc.GrantType{oidc.GrantTypeCode} }
func (providerClient) LoginURL(id string) string           { return "/login?id=" + id }
func (providerClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeBearer }
func (providerClient) IDTokenLifetime() time.Duration      { return 5 * time.Minute }
func (providerClient) DevMode() bool                       { return false }
func (providerClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (providerClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (providerClient) IsScopeAllowed(scope string) bool { return scope == "groups" }

// IDTokenUserinfoClaimsAssertion puts the email and groups into the ID
// token itself, where kiln reads them.
func (providerClient) IDTokenUserinfoClaimsAssertion() bool { return true }
func (providerClient) ClockSkew() time.Duration             { return 0 }

type signingKey struct {
	key *rsa.PrivateKey
	id  string
}

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k signingKey) Key() any                                    { return k.key }
func (k signingKey) ID() string                                  { return k.id }

type publicKey struct{ signingKey }

func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return &k.key.PublicKey }

var (
	_ op.Storage          = (*providerStore)(nil)
	_ op.HasRedirectGlobs = providerClient{}
)
