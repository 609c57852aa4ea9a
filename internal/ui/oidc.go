package ui

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"kiln/internal/audit"
	"kiln/internal/auth"
)

// OIDC is single sign-on through an OpenID Connect provider: the
// authorization code flow with PKCE, the ID token checked by go-oidc
// (signature by the provider's keys, issuer, audience, expiry, nonce),
// the role from the groups claim through a RoleMap.
type OIDC struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	// GroupsClaim names the ID token's claim that lists the user's
	// groups; default "groups".
	GroupsClaim string
	Roles       auth.RoleMap
	// RedirectURL is where the provider sends the browser back:
	// PUBLIC_URL/login/oidc/callback, registered at the provider. Empty:
	// from each request's scheme and Host.
	RedirectURL string
	// Name is what the sign-in button says ("Sign in with NAME"); default
	// the issuer's host.
	Name string
	// HTTPClient, when set, is used to reach the provider (tests).
	HTTPClient *http.Client

	mu       sync.Mutex
	provider *oidc.Provider
}

// Paths of the sign-on flow.
const (
	oidcStart    = "/login/oidc"
	oidcCallback = "/login/oidc/callback"
	oidcCookie   = "kiln_oidc" // state, nonce, PKCE verifier and next of one sign-on
)

func (o *OIDC) ctx(ctx context.Context) context.Context {
	if o.HTTPClient != nil {
		return oidc.ClientContext(ctx, o.HTTPClient)
	}
	return ctx
}

// discover reads the provider's configuration once it answers; until it
// does, each sign-on tries again (the server starts without it).
func (o *OIDC) discover(ctx context.Context) (*oidc.Provider, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.provider != nil {
		return o.provider, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(o.ctx(ctx), o.Issuer)
	if err != nil {
		return nil, fmt.Errorf("oidc provider %s: %w", o.Issuer, err)
	}
	o.provider = p
	return p, nil
}

func (o *OIDC) config(p *oidc.Provider, r *http.Request) *oauth2.Config {
	redirect := o.RedirectURL
	if redirect == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		redirect = scheme + "://" + r.Host + oidcCallback
	}
	return &oauth2.Config{ClientID: o.ClientID, ClientSecret: o.ClientSecret, Endpoint: p.Endpoint(),
		RedirectURL: redirect, Scopes: []string{oidc.ScopeOpenID, "email", "profile", "groups"}}
}

// ButtonName is the sign-in button's provider name.
func (o *OIDC) ButtonName() string {
	if o.Name != "" {
		return o.Name
	}
	if u, err := url.Parse(o.Issuer); err == nil && u.Host != "" {
		return u.Host
	}
	return o.Issuer
}

// flow is what the browser carries between the start and the callback.
type flow struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Next     string `json:"x"`
}

// oidcStartHandler sends the browser to the provider with a new state,
// nonce and PKCE challenge; their secrets stay in a short-lived cookie.
func (b *bakeryPages) oidcStartHandler(w http.ResponseWriter, r *http.Request) {
	o := b.cfg.OIDC
	p, err := o.discover(r.Context())
	if err != nil {
		b.cfg.Log.Error("sign-on", "err", err)
		b.loginForm(w, r, http.StatusBadGateway, "The identity provider does not answer; try again, or sign in with a token.")
		return
	}
	f := flow{State: randomToken(), Nonce: randomToken(), Verifier: oauth2.GenerateVerifier(), Next: safeNext(r.FormValue("next"))}
	raw, _ := json.Marshal(f)
	// Lax, not Strict: the provider's redirect back is a cross-site
	// navigation, on which a Strict cookie is not sent.
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Value: base64.RawURLEncoding.EncodeToString(raw), Path: oidcStart,
		MaxAge: 600, HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil})
	u := o.config(p, r).AuthCodeURL(f.State, oidc.Nonce(f.Nonce), oauth2.S256ChallengeOption(f.Verifier))
	http.Redirect(w, r, u, http.StatusFound)
}

// oidcCallbackHandler finishes a sign-on: the state matches, the code is
// exchanged with the PKCE verifier, the ID token verified, its nonce
// checked, and the groups claim mapped to a role.
func (b *bakeryPages) oidcCallbackHandler(w http.ResponseWriter, r *http.Request) {
	if !b.cfg.SignInLimit.Allow(audit.RemoteAddr(r)) {
		b.loginForm(w, r, http.StatusTooManyRequests, "Too many sign-in attempts from your address; wait a minute and try again.")
		return
	}
	p, next, status, msg := b.oidcPrincipal(r)
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Value: "", Path: oidcStart, MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	if msg != "" {
		audit.NoteOf(r).Detail = msg
		b.cfg.Log.Warn("sign-on refused", "remote", r.RemoteAddr, "reason", msg)
		b.loginForm(w, r, status, msg)
		return
	}
	audit.NoteOf(r).Actor = p.String()
	audit.NoteOf(r).Detail = "role " + string(p.Role) + " through " + b.cfg.OIDC.Issuer
	s, err := b.ss.create(r.Context(), p)
	if err != nil {
		b.fail(w, r, err)
		return
	}
	setCookie(w, r, sessionCookie, s.id, int(sessionTTL/time.Second))
	// A page, not a redirect: the session cookie is SameSite=Strict, and
	// a redirect continuing the provider's cross-site navigation would
	// not carry it.
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintf(w, `<!doctype html><meta http-equiv="refresh" content="0;url=%s"><title>signed in · kiln</title><p>Signed in. <a id="continue" href="%s">Continue</a></p>`,
		template.HTMLEscapeString(next), template.HTMLEscapeString(next))
}

// oidcPrincipal reads the callback; msg (with status) says why it failed.
func (b *bakeryPages) oidcPrincipal(r *http.Request) (p auth.Principal, next string, status int, msg string) {
	o := b.cfg.OIDC
	c, err := r.Cookie(oidcCookie)
	var f flow
	if err == nil {
		raw, derr := base64.RawURLEncoding.DecodeString(c.Value)
		err = errors.Join(derr, json.Unmarshal(raw, &f))
	}
	q := r.URL.Query()
	if err != nil || f.State == "" || !equal(q.Get("state"), f.State) {
		return p, "", http.StatusForbidden, "The sign-in expired or did not start here; try again."
	}
	if e := q.Get("error"); e != "" {
		return p, "", http.StatusUnauthorized, "The identity provider refused: " + e + " " + q.Get("error_description")
	}
	prov, err := o.discover(r.Context())
	if err != nil {
		return p, "", http.StatusBadGateway, "The identity provider does not answer; try again."
	}
	ctx := o.ctx(r.Context())
	tok, err := o.config(prov, r).Exchange(ctx, q.Get("code"), oauth2.VerifierOption(f.Verifier))
	if err != nil {
		b.cfg.Log.Warn("sign-on code exchange", "err", err)
		return p, "", http.StatusUnauthorized, "The identity provider did not accept the sign-in; try again."
	}
	rawID, ok := tok.Extra("id_token").(string)
	if !ok {
		return p, "", http.StatusUnauthorized, "The identity provider sent no ID token."
	}
	id, err := prov.Verifier(&oidc.Config{ClientID: o.ClientID}).Verify(ctx, rawID)
	if err != nil {
		b.cfg.Log.Warn("sign-on ID token", "err", err)
		return p, "", http.StatusUnauthorized, "The ID token did not verify."
	}
	if !equal(id.Nonce, f.Nonce) {
		return p, "", http.StatusUnauthorized, "The ID token is not for this sign-in (nonce)."
	}
	var claims map[string]any
	if err := id.Claims(&claims); err != nil {
		return p, "", http.StatusUnauthorized, "The ID token's claims could not be read."
	}
	name := id.Subject
	if email, _ := claims["email"].(string); email != "" {
		name = email
	}
	groupsClaim := o.GroupsClaim
	if groupsClaim == "" {
		groupsClaim = "groups"
	}
	groups := stringsOf(claims[groupsClaim])
	role, ok := o.Roles.Role(groups)
	if !ok {
		return auth.Principal{Name: name, Kind: auth.KindUser}, "", http.StatusForbidden,
			fmt.Sprintf("%s is in no group that has a role here (groups: %s).", name, strings.Join(groups, ", "))
	}
	return auth.Principal{Name: name, Kind: auth.KindUser, Role: role}, f.Next, 0, ""
}

// stringsOf reads a groups claim: a list of strings, or one string.
func stringsOf(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
