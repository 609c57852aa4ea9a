package store

import (
	"context"
	"fmt"
)

// Sealer encrypts the secrets the store keeps (webhook secrets) before
// they reach the database, and decrypts them on the way out;
// *secrets.Keyring satisfies it.
type Sealer interface {
	Seal(plain string) (string, error)
	// Open returns a sealed value's clear text, and a value that is not
	// sealed (written before sealing was on) as it is.
	Open(v string) (string, error)
	// Primary reports whether v is sealed under the key Seal uses now.
	Primary(v string) bool
}

// UseSecrets has the store seal every secret it writes from now on with k
// and open what it reads. Call it right after Open, before serving; then
// ResealSecrets seals what was written in clear before.
func (s *Store) UseSecrets(k Sealer) {
	s.secrets = k
	s.hooks.invalidateAll()
}

func (s *Store) seal(v string) (string, error) {
	if s.secrets == nil || v == "" {
		return v, nil
	}
	return s.secrets.Seal(v)
}

func (s *Store) open(v string) (string, error) {
	if s.secrets == nil || v == "" {
		return v, nil
	}
	return s.secrets.Open(v)
}

// ResealSecrets seals, under the sealer's current key, every stored secret
// that is in clear text or sealed under an older key (a key rotation), and
// returns how many it rewrote. Each project's secret is rewritten in its
// own statement, only if it is still the value read, so a concurrent
// rotation of the secret wins.
func (s *Store) ResealSecrets(ctx context.Context) (int, error) {
	if s.secrets == nil {
		return 0, fmt.Errorf("reseal secrets: no secret key")
	}
	rows, err := s.db.QueryContext(ctx, `SELECT name, webhook_secret FROM projects WHERE webhook_secret <> ''`)
	if err != nil {
		return 0, fmt.Errorf("reseal secrets: %w", err)
	}
	type row struct{ name, v string }
	var todo []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.name, &r.v); err != nil {
			rows.Close()
			return 0, fmt.Errorf("reseal secrets: %w", err)
		}
		if !s.secrets.Primary(r.v) {
			todo = append(todo, r)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("reseal secrets: %w", err)
	}
	n := 0
	for _, r := range todo {
		plain, err := s.secrets.Open(r.v)
		if err != nil {
			return n, fmt.Errorf("reseal secret of project %q: %w", r.name, err)
		}
		sealed, err := s.secrets.Seal(plain)
		if err != nil {
			return n, fmt.Errorf("reseal secret of project %q: %w", r.name, err)
		}
		res, err := s.db.ExecContext(ctx, `UPDATE projects SET webhook_secret = $1 WHERE name = $2 AND webhook_secret = $3`,
			sealed, r.name, r.v)
		if err != nil {
			return n, fmt.Errorf("reseal secret of project %q: %w", r.name, err)
		}
		if c, _ := res.RowsAffected(); c > 0 {
			n++
		}
		s.hooks.invalidate(r.name)
	}
	for _, c := range sealedColumns {
		m, err := s.resealColumn(ctx, c.table, c.column)
		n += m
		if err != nil {
			return n, err
		}
	}
	if n > 0 {
		if err := s.scrub(ctx); err != nil {
			return n, err
		}
	}
	return n, nil
}

// scrub rewrites the database so that the values just replaced are not
// left behind in free pages (SQLite: VACUUM, then the WAL checkpointed and
// truncated) or in dead row versions (PostgreSQL: VACUUM FULL of projects;
// the server's own WAL files are its to recycle).
func (s *Store) scrub(ctx context.Context) error {
	stmts := []string{`VACUUM`, `PRAGMA wal_checkpoint(TRUNCATE)`}
	if s.pg != nil {
		stmts = []string{`VACUUM FULL projects`, `VACUUM FULL notify_targets`, `VACUUM FULL commit_status`}
	}
	for _, q := range stmts {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("reseal secrets: %s: %w", q, err)
		}
	}
	return nil
}

// sealedColumns are the secrets kept beside the projects' webhook secret
// (migration 011): notification secrets and commit-status tokens.
var sealedColumns = []struct{ table, column string }{
	{"notify_targets", "secret"},
	{"commit_status", "token"},
}

// resealColumn reseals every value of table.column that is not sealed
// under the primary key, each only if it is still the value read.
func (s *Store) resealColumn(ctx context.Context, table, column string) (int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT `+column+` FROM `+table+` WHERE `+column+` <> ''`)
	if err != nil {
		return 0, fmt.Errorf("reseal %s: %w", table, err)
	}
	var todo []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return 0, fmt.Errorf("reseal %s: %w", table, err)
		}
		if !s.secrets.Primary(v) {
			todo = append(todo, v)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("reseal %s: %w", table, err)
	}
	n := 0
	for _, v := range todo {
		plain, err := s.secrets.Open(v)
		if err != nil {
			return n, fmt.Errorf("reseal %s: %w", table, err)
		}
		sealed, err := s.secrets.Seal(plain)
		if err != nil {
			return n, fmt.Errorf("reseal %s: %w", table, err)
		}
		res, err := s.db.ExecContext(ctx, `UPDATE `+table+` SET `+column+` = $1 WHERE `+column+` = $2`, sealed, v)
		if err != nil {
			return n, fmt.Errorf("reseal %s: %w", table, err)
		}
		if c, _ := res.RowsAffected(); c > 0 {
			n += int(c)
		}
	}
	return n, nil
}
