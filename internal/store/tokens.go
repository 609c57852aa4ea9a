package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// APIToken is a personal API token. The token itself is never stored:
// only its hash, which callers compute (auth.HashToken).
type APIToken struct {
	Name      string
	Role      string
	CreatedBy string
	Created   time.Time
	Expires   time.Time // zero: never
	LastUsed  time.Time // zero: never used
	Revoked   time.Time // zero: live
}

// ErrTokenExists is CreateToken's answer for a name in use.
var ErrTokenExists = errors.New("a token of that name exists")

// Live reports whether the token may be used at now.
func (t *APIToken) Live(now time.Time) bool {
	return t.Revoked.IsZero() && (t.Expires.IsZero() || now.Before(t.Expires))
}

// CreateToken stores a new token under its name with the token's hash.
// A name in use, even by a revoked token, is ErrTokenExists: an audit row
// names a token, and the name must keep meaning one token.
func (s *Store) CreateToken(ctx context.Context, t APIToken, hash string) error {
	res, err := s.db.ExecContext(ctx, `INSERT INTO api_tokens (name, sha256, role, created_by, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING`,
		t.Name, hash, t.Role, t.CreatedBy, ms(t.Created), msOrZero(t.Expires))
	if err == nil {
		if n, _ := res.RowsAffected(); n == 0 {
			err = ErrTokenExists
		}
	}
	if err != nil {
		return fmt.Errorf("create token %q: %w", t.Name, err)
	}
	return nil
}

// usedGranularity bounds how often a token's last use is written: a CLI
// polling the API must not turn every read into a write.
const usedGranularity = time.Minute

// UseToken returns the token whose hash is hash, and records its use at
// now (at most once a usedGranularity). ErrNotFound: no token has that
// hash. It does not judge expiry or revocation (APIToken.Live does).
func (s *Store) UseToken(ctx context.Context, hash string, now time.Time) (*APIToken, error) {
	var t APIToken
	var created, expires, used, revoked int64
	err := s.db.QueryRowContext(ctx, `SELECT name, role, created_by, created_at, expires_at, last_used_at, revoked_at
		FROM api_tokens WHERE sha256 = $1`, hash).Scan(&t.Name, &t.Role, &t.CreatedBy, &created, &expires, &used, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("find token: %w", err)
	}
	t.Created, t.Expires, t.LastUsed, t.Revoked = fromMS(created), zeroOrMS(expires), zeroOrMS(used), zeroOrMS(revoked)
	if revoked == 0 && now.Sub(t.LastUsed) >= usedGranularity {
		if _, err := s.db.ExecContext(ctx, `UPDATE api_tokens SET last_used_at = $1 WHERE name = $2 AND last_used_at < $1`,
			ms(now), t.Name); err != nil {
			return nil, fmt.Errorf("record use of token %q: %w", t.Name, err)
		}
		t.LastUsed = now
	}
	return &t, nil
}

// Tokens lists every token, revoked ones too, by name.
func (s *Store) Tokens(ctx context.Context) ([]APIToken, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, role, created_by, created_at, expires_at, last_used_at, revoked_at
		FROM api_tokens ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	var out []APIToken
	for rows.Next() {
		var t APIToken
		var created, expires, used, revoked int64
		if err := rows.Scan(&t.Name, &t.Role, &t.CreatedBy, &created, &expires, &used, &revoked); err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		t.Created, t.Expires, t.LastUsed, t.Revoked = fromMS(created), zeroOrMS(expires), zeroOrMS(used), zeroOrMS(revoked)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

// RevokeToken revokes the token named name at now; revoking a revoked
// token keeps its first revocation time. ErrNotFound: no such token.
func (s *Store) RevokeToken(ctx context.Context, name string, now time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE api_tokens SET revoked_at = CASE WHEN revoked_at = 0 THEN $1 ELSE revoked_at END
		WHERE name = $2`, ms(now), name)
	if err == nil {
		err = wantOne(res)
	}
	if err != nil {
		return fmt.Errorf("revoke token %q: %w", name, err)
	}
	return nil
}

// msOrZero is t in milliseconds, 0 for the zero time.
func msOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return ms(t)
}

// zeroOrMS reads msOrZero's value back.
func zeroOrMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return fromMS(v)
}
