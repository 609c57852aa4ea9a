package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Session is a sign-in session of the bakery pages. Its id, the cookie's
// value, is an argument of every method and is stored only as its SHA-256.
type Session struct {
	CSRF  string
	Flash string // a message for the session's next page; "" = none
	// Subject is who signed in: a user's email (or the identity
	// provider's subject), "token NAME", or "admin-token".
	Subject string
	// Role is the role the session acts with (viewer, deployer, admin).
	Role    string
	Created time.Time
	Expires time.Time
}

// sessionKey is how a session id is stored: a database read by someone else
// must not yield a cookie that signs them in.
func sessionKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// CreateSession stores a new session under id.
func (s *Store) CreateSession(ctx context.Context, id string, sess Session) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO sessions (id_sha256, csrf, flash, subject, role, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, sessionKey(id), sess.CSRF, sess.Flash, sess.Subject, sess.Role, ms(sess.Created), ms(sess.Expires))
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// Session returns the live session with id, or ErrNotFound when there is
// none or it has expired.
func (s *Store) Session(ctx context.Context, id string) (*Session, error) {
	var sess Session
	var created, expires int64
	err := s.db.QueryRowContext(ctx, `SELECT csrf, flash, subject, role, created_at, expires_at FROM sessions
		WHERE id_sha256 = $1 AND expires_at > $2`, sessionKey(id), ms(s.now())).
		Scan(&sess.CSRF, &sess.Flash, &sess.Subject, &sess.Role, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get session: %w", err)
	}
	sess.Created, sess.Expires = fromMS(created), fromMS(expires)
	return &sess, nil
}

// SetSessionFlash leaves msg for the session's next page, replacing any
// message not yet shown. ErrNotFound: the session is gone.
func (s *Store) SetSessionFlash(ctx context.Context, id, msg string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE sessions SET flash = $1 WHERE id_sha256 = $2`, msg, sessionKey(id))
	if err == nil {
		err = wantOne(res)
	}
	if err != nil {
		return fmt.Errorf("set flash of session: %w", err)
	}
	return nil
}

// TakeSessionFlash returns the session's message and forgets it, so that
// of two pages asking at once only one shows it. "" when there is none or
// the session is gone.
func (s *Store) TakeSessionFlash(ctx context.Context, id string) (string, error) {
	var msg string
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		key := sessionKey(id)
		err := tx.QueryRowContext(ctx, `SELECT flash FROM sessions WHERE id_sha256 = $1`, key).Scan(&msg)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && msg == "") {
			return nil
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE sessions SET flash = '' WHERE id_sha256 = $1`, key)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("take flash of session: %w", err)
	}
	return msg, nil
}

// MarkSessionSecret has the session's next view of project show the
// project's webhook secret once (TakeSessionSecret); rotated says it replaced
// an earlier one. The secret itself is not copied.
func (s *Store) MarkSessionSecret(ctx context.Context, id, project string, rotated bool) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO session_secrets (session_sha256, project, rotated) VALUES ($1, $2, $3)
		ON CONFLICT (session_sha256, project) DO UPDATE SET rotated = excluded.rotated`,
		sessionKey(id), project, flag(rotated))
	if err != nil {
		return fmt.Errorf("mark secret of project %q for session: %w", project, err)
	}
	return nil
}

// TakeSessionSecret returns the webhook secret of project when
// MarkSessionSecret marked it for the session, and unmarks it: it is returned
// once. secret is "" when it was not marked.
func (s *Store) TakeSessionSecret(ctx context.Context, id, project string) (secret string, rotated bool, err error) {
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `DELETE FROM session_secrets WHERE session_sha256 = $1 AND project = $2
			RETURNING rotated`, sessionKey(id), project).Scan(&rotated)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT webhook_secret FROM projects WHERE name = $1`, project).Scan(&secret)
	})
	if err == nil {
		secret, err = s.open(secret)
	}
	if err != nil {
		return "", false, fmt.Errorf("take secret of project %q for session: %w", project, err)
	}
	return secret, rotated, nil
}

// DeleteSession forgets the session (sign-out). A session already gone is
// not an error.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE id_sha256 = $1`, sessionKey(id)); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// PruneSessions forgets the expired sessions and, past the keep newest live
// ones, the oldest, and returns how many it forgot.
func (s *Store) PruneSessions(ctx context.Context, keep int) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE expires_at <= $1
		OR id_sha256 NOT IN (SELECT id_sha256 FROM sessions WHERE expires_at > $1
			ORDER BY created_at DESC, id_sha256 DESC LIMIT $2)`, ms(s.now()), max(keep, 0))
	var n int64
	if err == nil {
		n, err = res.RowsAffected()
	}
	if err != nil {
		return 0, fmt.Errorf("prune sessions: %w", err)
	}
	return n, nil
}
