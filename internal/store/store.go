// Package store keeps the bakery's state in one database: projects (with
// their webhook secrets), bakes and their steps, webhook deliveries (for
// dedupe), the images kept per project, sign-in sessions and the leases
// that make several servers on one database one bakery (bake ownership,
// leader election). The same database holds River's tables, so a bake's
// row and its durable job are written in one transaction.
//
// Two drivers, one API and one set of queries (written with $N
// placeholders, which both understand): SQLite (a file path, the embedded
// default, pure Go) and PostgreSQL (a postgres:// URL, pgx v5, with River's
// riverpgxv5 driver for jobs). The schema is the same in both, written once
// per dialect (migrations/ and migrations/postgres/, the same versions).
//
// Open runs the store's versioned migrations and River's migrations before it
// returns, so a freshly opened Store is ready for use and a newer binary
// upgrades an older database in place. Each migration runs in one
// transaction with its schema_version row (nothing is half-migrated); on
// PostgreSQL an advisory lock lets only one server migrate at a time.
//
// Concurrency on SQLite: SQLite allows one writer at a time, and River's
// SQLite driver works best with a single connection, so the pool holds
// exactly ONE connection shared by the store and River. Every method is safe
// for concurrent use; calls queue for the connection in order. The one rule
// for code that borrows the pool (DB, a River worker's own transactions, the
// EnqueueFunc of EnqueuePush): never start a second query on the pool while a
// transaction or an open *sql.Rows holds the connection, use that
// transaction instead, or the call waits forever. On PostgreSQL the pool has
// many connections and the rule is merely good manners.
//
// Several servers on one database: the writes that must not race across
// servers (a push's dedupe and coalescing, a bake's claim) first lock their
// project's row, so they are serialised per project in every driver.
//
// Webhook intake is the hot path: EnqueuePush group-commits concurrent pushes
// in one transaction and its statements are prepared once at Open.
// HookTarget, the other query of every webhook, answers from memory for up
// to a second (hookTTL; a write through this Store is seen at once, one by
// another process within the second) and otherwise reads through a second,
// read-only pool (SQLite's WAL lets readers run beside the writer), so it
// neither waits for a group commit nor holds up the next one.
//
// Errors: ErrNotFound when a named row does not exist; other errors wrap the
// database error as "op object: err".
package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// ErrNotFound is returned when the project, bake or delivery asked for does
// not exist.
var ErrNotFound = errors.New("not found")

// Store is the bakery's database. The zero value is not usable; call Open.
type Store struct {
	db      *sql.DB
	rdb     *sql.DB          // read-only pool for qHookTarget; see readers
	now     func() time.Time // replaced in tests
	pushes  pushBatcher
	hooks   hookCache
	bakery  string               // BakeryID, read at Open
	stmts   map[string]*sql.Stmt // hotQueries, prepared at Open
	name    string               // names the database in errors: a quoted path, or "postgres database ..."
	pg      *pgxpool.Pool        // PostgreSQL only: the pool under db, River's and LISTEN's
	dialect dialect
	secrets Sealer // nil: secrets are kept as given (see UseSecrets)
}

// dialect holds the few statements whose text differs between the drivers:
// locking rows, which SQLite does not do (its transactions hold the file),
// and, on PostgreSQL, the common push in one statement (qCoalesce and
// qInsertDelivery joined by a data-modifying WITH, which SQLite lacks), as
// every statement there is a round trip to the server.
type dialect struct {
	lockProject  string // $1 a project name: a row when it exists, locked
	lockProjects string // $1 a JSON array of names: those that exist, locked in name order
	// coalesceRecord is qCoalesce then qInsertDelivery for the bake it
	// updated ($1-$6 as qCoalesce's, $7 the project), returning the bake's
	// id; no row when it updated none. "" when the dialect has none.
	coalesceRecord string
}

var (
	sqliteDialect = dialect{
		lockProject:  `SELECT 1 FROM projects WHERE name = $1`,
		lockProjects: `SELECT name FROM projects WHERE name IN (SELECT value FROM json_each($1)) ORDER BY name`,
	}
	postgresDialect = dialect{
		lockProject: `SELECT 1 FROM projects WHERE name = $1 FOR NO KEY UPDATE`,
		lockProjects: `SELECT name FROM projects WHERE name IN (SELECT json_array_elements_text($1::json))
			ORDER BY name FOR NO KEY UPDATE`,
		coalesceRecord: `WITH c AS (UPDATE bakes SET commit_sha = $1, ref = $2, message = $3, repo = $4, delivery_id = $5,
				updated_at = $6
			WHERE project = $7 AND state = 'queued'
			AND NOT EXISTS (SELECT 1 FROM deliveries WHERE project = $7 AND delivery_id = $5) RETURNING id)
			INSERT INTO deliveries (project, delivery_id, bake_id, received_at) SELECT $7, $5, id, $6 FROM c
			RETURNING bake_id`,
	}
)

// busyTimeout bounds how long a connection waits for another process holding
// the write lock (a second kiln on the same file, or the sqlite3 shell)
// before the call fails with SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// dsn builds the driver's data source name for path: WAL so readers of other
// processes do not block the writer, synchronous=NORMAL (durable at every
// checkpoint, safe against corruption in WAL mode), foreign keys on, and
// IMMEDIATE transactions so a transaction takes the write lock when it begins
// instead of failing on an upgrade from read to write.
func dsn(path string) string {
	return path + "?_pragma=busy_timeout(" + fmt.Sprint(busyTimeout.Milliseconds()) + ")" +
		"&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(NORMAL)" +
		"&_pragma=foreign_keys(1)" +
		"&_txlock=immediate"
}

// readers is the size of the read-only pool: HookTarget lookups of
// concurrent webhooks run in parallel, each connection with its own page
// cache.
const readers = 4

// readDSN is dsn for the read-only pool: the file is already in WAL mode,
// and query_only refuses any write.
func readDSN(path string) string {
	return path + "?_pragma=busy_timeout(" + fmt.Sprint(busyTimeout.Milliseconds()) + ")" +
		"&_pragma=query_only(1)"
}

// Open opens the bakery's database named by target and returns the Store:
// a postgres:// or postgresql:// URL (or a "host=... dbname=..." keyword
// string) is a PostgreSQL database, anything else the path of a SQLite file,
// created when missing. It runs the store's migrations and River's before it
// returns, and blocks until they are done; ctx cancels them. A database
// whose schema is newer than this binary's is refused. The caller closes
// the Store.
func Open(ctx context.Context, target string) (*Store, error) {
	if IsPostgres(target) {
		return openPostgres(ctx, target)
	}
	return openSQLite(ctx, target)
}

func openSQLite(ctx context.Context, path string) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("open database %q: want a plain file path without '?' or '#'", path)
	}
	db, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		return nil, fmt.Errorf("open database %q: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	s := &Store{db: db, now: time.Now, name: fmt.Sprintf("%q", path), dialect: sqliteDialect}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %q: %w", path, err)
	}
	if err := s.setUp(ctx); err != nil {
		db.Close()
		return nil, err
	}
	// After the migrations: the file is in WAL mode and has its tables.
	if s.rdb, err = sql.Open("sqlite", readDSN(path)); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %q: %w", path, err)
	}
	s.rdb.SetMaxOpenConns(readers)
	s.rdb.SetMaxIdleConns(readers)
	s.rdb.SetConnMaxLifetime(0)
	s.rdb.SetConnMaxIdleTime(0)
	if err := s.prepareHot(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open database %q: %w", path, err)
	}
	return s, nil
}

// setUp runs the migrations (the store's, then River's) and reads the
// bakery id. Its errors name the database.
func (s *Store) setUp(ctx context.Context) error {
	if err := s.migrate(ctx); err != nil {
		return fmt.Errorf("open database %s: %w", s.name, err)
	}
	if err := s.migrateRiver(ctx); err != nil {
		return fmt.Errorf("open database %s: %w", s.name, err)
	}
	if err := s.db.QueryRowContext(ctx, `SELECT bakery_id FROM bakery`).Scan(&s.bakery); err != nil {
		return fmt.Errorf("open database %s: read bakery id: %w", s.name, err)
	}
	return nil
}

// Close closes the database. Stop every River client made from this Store
// first: they use the same pool.
func (s *Store) Close() error {
	s.pushes.close()
	for _, st := range s.stmts {
		st.Close()
	}
	var rerr error
	if s.rdb != nil && s.rdb != s.db {
		rerr = s.rdb.Close()
	}
	err := cmp.Or(s.db.Close(), rerr)
	if s.pg != nil {
		s.pg.Close()
	}
	if err != nil {
		return fmt.Errorf("close database: %w", err)
	}
	return nil
}

// BakeryID is this database's identity, 16 hex digits made at random when
// the file was created: the builders a bakery launches carry it, so that two
// bakeries in one account (two databases) tell their builders apart.
func (s *Store) BakeryID() string { return s.bakery }

// Name names the database for people and logs: the SQLite file's path, or
// the PostgreSQL database and its host (never a password).
func (s *Store) Name() string { return s.name }

// Postgres reports whether the store is on PostgreSQL (else SQLite).
func (s *Store) Postgres() bool { return s.pg != nil }

// DB returns the underlying pool (one connection; see the package comment),
// for River workers that complete a job in their own transaction.
func (s *Store) DB() *sql.DB { return s.db }

// inTx runs fn in a transaction and commits it when fn returns nil.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Tx is a store transaction as an EnqueueFunc sees it: Jobs.InsertTx puts a
// River job into it, whichever the driver.
type Tx struct {
	sql  *sql.Tx
	conn *sql.Conn // the transaction's connection: River's pgx driver works on it directly
}

// beginConnTx begins a transaction on a connection of its own, so that
// River's pgx driver can join it (see Jobs.InsertTx). The caller ends the
// transaction and then closes conn.
func (s *Store) beginConnTx(ctx context.Context) (*Tx, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return &Tx{sql: tx, conn: conn}, nil
}

// inJobTx is inTx for transactions that may insert River jobs.
func (s *Store) inJobTx(ctx context.Context, fn func(tx *Tx) error) error {
	tx, err := s.beginConnTx(ctx)
	if err != nil {
		return err
	}
	defer tx.conn.Close()
	if err := fn(tx); err != nil {
		_ = tx.sql.Rollback()
		return err
	}
	return tx.sql.Commit()
}

// hotQueries are prepared once at Open: SQLite spends more time parsing the
// webhook path's small statements than running them. They must be prepared
// before any transaction exists: with one connection, preparing on the pool
// while a transaction holds the connection would wait forever. Inside a
// transaction Tx.StmtContext finds them on the same connection.
var hotQueries = []string{
	qDeliveryBake, qCoalesce, qInsertBake, qInsertDelivery, qHookTarget, qInsertAudit,
	`SAVEPOINT push`, `RELEASE push`, `ROLLBACK TO push`,
}

// readOnly are the hotQueries prepared on the read-only pool: they run on
// their own, never in a transaction.
var readOnly = map[string]bool{qHookTarget: true}

// prepareHot prepares hotQueries; s.stmts is read-only afterwards.
func (s *Store) prepareHot(ctx context.Context) error {
	s.stmts = make(map[string]*sql.Stmt, len(hotQueries)+2)
	for _, q := range append(slices.Clone(hotQueries), s.dialect.lockProject, s.dialect.lockProjects, s.dialect.coalesceRecord) {
		if q == "" {
			continue
		}
		db := s.db
		if readOnly[q] {
			db = s.rdb
		}
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
		s.stmts[q] = st
	}
	return nil
}

// Times are stored as Unix milliseconds; NULL or 0 reads as the zero time.

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

func fromNullMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMS(v.Int64)
}
