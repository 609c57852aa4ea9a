package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"kiln/internal/auth"
	"kiln/internal/store"
)

// TokenHash is the SHA-256 of the admin token. Only the hash is kept, in
// memory and in the database: the token is 32 random bytes (or whatever the
// operator chose as KILN_TOKEN), so a plain hash is enough to make a stolen
// database useless for calling the API.
type TokenHash [sha256.Size]byte

// HashToken returns the hash of token.
func HashToken(token string) TokenHash { return sha256.Sum256([]byte(token)) }

// Match reports, in constant time, whether token hashes to h.
func (h TokenHash) Match(token string) bool {
	got := HashToken(token)
	return subtle.ConstantTimeCompare(got[:], h[:]) == 1
}

// GenerateToken returns a new admin token: 32 bytes from crypto/rand,
// base64url without padding.
func GenerateToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails
	return "kiln_" + base64.RawURLEncoding.EncodeToString(b)
}

// Token sources, as AdminToken reports them.
const (
	TokenFromEnv       = "environment" // KILN_TOKEN was set
	TokenFromDatabase  = "database"    // the hash stored at an earlier start
	TokenFromGenerated = "generated"   // new: print it once
)

// AdminToken settles the admin token of a server on db (the store's pool):
//
//   - envToken non-empty (KILN_TOKEN): it is the token; its hash replaces
//     the stored one, so a later start without KILN_TOKEN accepts it too;
//   - otherwise the stored hash is used;
//   - otherwise a token is generated, its hash stored, and the token itself
//     returned in generated, for the caller to print exactly once.
//
// The hash lives in table admin_token (store migration 004).
func AdminToken(ctx context.Context, db *sql.DB, envToken string) (hash TokenHash, source, generated string, err error) {
	store := func(h TokenHash) error {
		_, err := db.ExecContext(ctx, `INSERT INTO admin_token (id, sha256, created_at) VALUES (1, $1, $2)
			ON CONFLICT (id) DO UPDATE SET sha256 = excluded.sha256, created_at = excluded.created_at`,
			hex.EncodeToString(h[:]), time.Now().UnixMilli())
		if err != nil {
			return fmt.Errorf("admin token: store hash: %w", err)
		}
		return nil
	}
	if envToken != "" {
		h := HashToken(envToken)
		return h, TokenFromEnv, "", store(h)
	}
	var stored string
	err = db.QueryRowContext(ctx, `SELECT sha256 FROM admin_token WHERE id = 1`).Scan(&stored)
	switch {
	case err == nil:
		raw, err := hex.DecodeString(stored)
		if err != nil || len(raw) != sha256.Size {
			return TokenHash{}, "", "", errors.New("admin token: stored hash is corrupt; set KILN_TOKEN to replace it")
		}
		return TokenHash(raw), TokenFromDatabase, "", nil
	case !errors.Is(err, sql.ErrNoRows):
		return TokenHash{}, "", "", fmt.Errorf("admin token: read hash: %w", err)
	}
	token := GenerateToken()
	h := HashToken(token)
	if err := store(h); err != nil {
		return TokenHash{}, "", "", err
	}
	return h, TokenFromGenerated, token, nil
}

// authenticate lets a request through with "Authorization: Bearer
// <token>": the admin token (role admin), or a live personal API token
// (its role). The principal rides in the request's context for the role
// checks (need) and the audit log. Otherwise the answer is 401, saying
// when a token is known but revoked or expired.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, msg := s.principal(r)
		if msg != "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kiln"`)
			writeError(w, http.StatusUnauthorized, msg)
			return
		}
		next.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
	})
}

// principal is who the request's bearer token is; msg says why not.
func (s *Server) principal(r *http.Request) (auth.Principal, string) {
	token, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		return auth.Principal{}, "bad or missing token"
	}
	if s.cfg.Token.Match(token) {
		return auth.Principal{Name: "admin", Kind: auth.KindAdminToken, Role: auth.Admin}, ""
	}
	if !strings.HasPrefix(token, auth.TokenPrefix) {
		return auth.Principal{}, "bad or missing token"
	}
	now := time.Now()
	t, err := s.cfg.Store.UseToken(r.Context(), auth.HashToken(token), now)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return auth.Principal{}, "bad or missing token"
	case err != nil:
		s.cfg.Log.Error("token lookup", "err", err)
		return auth.Principal{}, "bad or missing token"
	case !t.Revoked.IsZero():
		return auth.Principal{}, fmt.Sprintf("token %q was revoked", t.Name)
	case !t.Live(now):
		return auth.Principal{}, fmt.Sprintf("token %q expired at %s", t.Name, t.Expires.Format(time.RFC3339))
	}
	return auth.Principal{Name: t.Name, Kind: auth.KindToken, Role: auth.Role(t.Role)}, ""
}

// need lets a request through only when its principal has role need;
// otherwise the answer is 403 naming the role.
func need(role auth.Role, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := auth.FromContext(r.Context())
		if !p.Role.Allows(role) {
			writeError(w, http.StatusForbidden, auth.ForbiddenMessage(p, role))
			return
		}
		h(w, r)
	})
}

func bearer(h string) (string, bool) {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
