package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

// IsPostgres reports whether target names a PostgreSQL database (a
// postgres:// or postgresql:// URL, or a libpq keyword string such as
// "host=db dbname=kiln") rather than a SQLite file.
func IsPostgres(target string) bool {
	t := strings.ToLower(target)
	return strings.HasPrefix(t, "postgres://") || strings.HasPrefix(t, "postgresql://") ||
		(strings.Contains(t, "dbname=") && strings.Contains(t, "="))
}

// Pool sizes on PostgreSQL. The store's database/sql pool takes at most
// pgSQLConns of the pgx pool; the rest serve River (its producers,
// completer and leader elector) and the LISTEN connection.
const (
	pgPoolConns = 24
	pgSQLConns  = 16
)

// pgConnectTimeout bounds the first connection, so that an unreachable
// server is an error at start, not a hang.
const pgConnectTimeout = 10 * time.Second

// pgMigrateLock is the advisory lock key under which one server at a time
// migrates a database ("kiln" in ASCII).
const pgMigrateLock = 0x6b696c6e

func openPostgres(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors never repeat the password.
		return nil, fmt.Errorf("open postgres database: %w", err)
	}
	name := fmt.Sprintf("postgres database %q on %s:%d", cfg.ConnConfig.Database, cfg.ConnConfig.Host, cfg.ConnConfig.Port)
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = pgConnectTimeout
	}
	cfg.MaxConns = pgPoolConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open %s: %w", name, pgError(err))
	}
	db := stdlib.OpenDBFromPool(pool)
	db.SetMaxOpenConns(pgSQLConns)
	db.SetMaxIdleConns(pgSQLConns)
	s := &Store{db: db, rdb: db, pg: pool, now: time.Now, name: name, dialect: postgresDialect}
	s.pushes.committers = pgCommitters
	if err := s.lockedSetUp(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.prepareHot(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	return s, nil
}

// lockedSetUp is setUp under the migration lock: servers starting together
// migrate one after the other, the later ones finding nothing to do.
func (s *Store) lockedSetUp(ctx context.Context) error {
	conn, err := s.pg.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("open %s: %w", s.name, err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, pgMigrateLock); err != nil {
		return fmt.Errorf("open %s: lock for migrations: %w", s.name, err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, pgMigrateLock) //nolint:errcheck // the session ends with the connection anyway
	return s.setUp(ctx)
}

// pgError makes pgx's connection errors read plainly: the server's message
// for a refused login or a missing database.
func pgError(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s (SQLSTATE %s)", pe.Message, pe.Code)
	}
	return err
}

// connTx is the pgx.Tx that River's pgx driver sees inside a store
// transaction: the transaction's own connection, already in the transaction
// that database/sql began on it. Commit and Rollback belong to the store;
// Begin nests with a savepoint as pgx's own transactions do.
type connTx struct {
	c     *pgx.Conn
	depth int
}

func (t *connTx) Begin(ctx context.Context) (pgx.Tx, error) {
	n := &connTx{c: t.c, depth: t.depth + 1}
	if _, err := t.c.Exec(ctx, fmt.Sprintf("SAVEPOINT kiln_sp_%d", n.depth)); err != nil {
		return nil, err
	}
	return n, nil
}

var errOuterTx = errors.New("the store commits or rolls back its own transaction")

func (t *connTx) Commit(ctx context.Context) error {
	if t.depth == 0 {
		return errOuterTx
	}
	_, err := t.c.Exec(ctx, fmt.Sprintf("RELEASE SAVEPOINT kiln_sp_%d", t.depth))
	return err
}

func (t *connTx) Rollback(ctx context.Context) error {
	if t.depth == 0 {
		return errOuterTx
	}
	_, err := t.c.Exec(ctx, fmt.Sprintf("ROLLBACK TO SAVEPOINT kiln_sp_%d", t.depth))
	return err
}

func (t *connTx) CopyFrom(ctx context.Context, table pgx.Identifier, cols []string, src pgx.CopyFromSource) (int64, error) {
	return t.c.CopyFrom(ctx, table, cols, src)
}

func (t *connTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return t.c.SendBatch(ctx, b)
}

func (t *connTx) LargeObjects() pgx.LargeObjects { return pgx.LargeObjects{} } // River uses none

func (t *connTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	return t.c.Prepare(ctx, name, sql)
}

func (t *connTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return t.c.Exec(ctx, sql, args...)
}

func (t *connTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return t.c.Query(ctx, sql, args...)
}

func (t *connTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return t.c.QueryRow(ctx, sql, args...)
}

func (t *connTx) Conn() *pgx.Conn { return t.c }

var _ pgx.Tx = (*connTx)(nil)
