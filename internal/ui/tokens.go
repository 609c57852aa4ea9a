package ui

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"kiln/internal/audit"
	"kiln/internal/auth"
	"kiln/internal/store"
	"kiln/internal/web"
)

// tokensData is what the tokens page reads.
type tokensData struct {
	Tokens []tokenRow
	// The create form as typed, and why it was refused.
	Name, Role, Expires, Error string
	// New is the token just created, shown on this one page only.
	New     string
	NewName string
}

// tokenRow is one token in the list.
type tokenRow struct {
	store.APIToken
	State string // live, expired or revoked
}

// tokensPage lists the personal API tokens with their last use and
// expiry, and offers the create form.
func (b *bakeryPages) tokensPage(w http.ResponseWriter, r *http.Request, s *session) {
	b.showTokens(w, r, s, http.StatusOK, tokensData{Role: string(auth.Viewer), Expires: "30d"})
}

func (b *bakeryPages) showTokens(w http.ResponseWriter, r *http.Request, s *session, status int, d tokensData) {
	ts, err := b.cfg.Tokens.Tokens(r.Context())
	if err != nil {
		b.fail(w, r, err)
		return
	}
	now := time.Now()
	for _, t := range ts {
		row := tokenRow{APIToken: t, State: "live"}
		switch {
		case !t.Revoked.IsZero():
			row.State = "revoked"
		case !t.Live(now):
			row.State = "expired"
		}
		d.Tokens = append(d.Tokens, row)
	}
	// The one page that shows a new token must not be kept by a cache or
	// the browser's history.
	w.Header().Set("Cache-Control", "no-store")
	b.show(w, r, s, status, "tokens", "tokens", d)
}

// createToken makes a token from the form (name, role, expires) and shows
// it once; the store keeps only its hash.
func (b *bakeryPages) createToken(w http.ResponseWriter, r *http.Request, s *session) {
	req := web.TokenRequest{Name: r.PostFormValue("name"), Role: auth.Role(r.PostFormValue("role")), Expires: r.PostFormValue("expires")}
	d := tokensData{Name: req.Name, Role: string(req.Role), Expires: req.Expires}
	n := audit.NoteOf(r)
	n.Target, n.Detail = "token "+req.Name, "role "+string(req.Role)
	rec, err := web.TokenRecord(req, s.principal(), time.Now())
	if err != nil {
		d.Error = err.Error()
		b.showTokens(w, r, s, http.StatusBadRequest, d)
		return
	}
	if !rec.Expires.IsZero() {
		n.Detail += ", expires " + rec.Expires.Format(time.RFC3339)
	}
	secret := auth.NewToken()
	err = b.cfg.Tokens.CreateToken(r.Context(), rec, auth.HashToken(secret))
	if errors.Is(err, store.ErrTokenExists) {
		d.Error = web.TokenExistsMessage(req.Name)
		b.showTokens(w, r, s, http.StatusConflict, d)
		return
	}
	if err != nil {
		b.fail(w, r, err)
		return
	}
	b.cfg.Log.Info("token created from the pages", "token", rec.Name, "role", rec.Role, "by", s.principal().String())
	b.showTokens(w, r, s, http.StatusCreated, tokensData{Role: string(auth.Viewer), Expires: "30d", New: secret, NewName: rec.Name})
}

// revokeToken revokes the token named in the path.
func (b *bakeryPages) revokeToken(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("token")
	audit.NoteOf(r).Target = "token " + name
	if err := b.cfg.Tokens.RevokeToken(r.Context(), name, time.Now()); err != nil {
		b.fail(w, r, err)
		return
	}
	b.cfg.Log.Info("token revoked from the pages", "token", name)
	http.Redirect(w, r, "/tokens#token-"+url.PathEscape(name), http.StatusSeeOther)
}
