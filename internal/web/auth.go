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

// requireToken lets a request through only with "Authorization: Bearer
// <token>" matching the admin token.
func (s *Server) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearer(r.Header.Get("Authorization"))
		if !ok || !s.cfg.Token.Match(token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kiln"`)
			writeError(w, http.StatusUnauthorized, "bad or missing token")
			return
		}
		next.ServeHTTP(w, r)
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
