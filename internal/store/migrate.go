package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// migrations holds the store's schema as numbered files NNN_name.sql:
// SQLite's in migrations/, PostgreSQL's in migrations/postgres/, the same
// versions with the same tables, columns and indexes in each. A released
// file never changes; a schema change is a new file in both.
//
//go:embed migrations/*.sql migrations/postgres/*.sql
var migrations embed.FS

// The folders of each dialect's migrations.
const (
	sqliteMigrations   = "migrations"
	postgresMigrations = "migrations/postgres"
)

// migrationDir is the folder of the store's dialect.
func (s *Store) migrationDir() string {
	if s.pg != nil {
		return postgresMigrations
	}
	return sqliteMigrations
}

type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads the embedded migrations in version order and checks
// that versions run 1, 2, 3, ... without gaps or repeats.
func loadMigrations(fsys fs.FS, dir string) ([]migration, error) {
	names, err := fs.Glob(fsys, dir+"/*.sql")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, name := range names {
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNN_name.sql", base)
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: base, sql: string(body)})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: want version %d", m.name, i+1)
		}
	}
	return out, nil
}

// migrate applies every migration newer than the database's schema_version,
// each in its own transaction together with its schema_version row, so a
// crash (or a failing statement) leaves the database at a whole version.
// A database at a newer version than this binary knows is refused.
func (s *Store) migrate(ctx context.Context) error {
	return s.migrateFS(ctx, migrations, s.migrationDir())
}

// migrateFS is migrate with the migrations in fsys's dir.
func (s *Store) migrateFS(ctx context.Context, fsys fs.FS, dir string) error {
	all, err := loadMigrations(fsys, dir)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	schemaVersion := `CREATE TABLE IF NOT EXISTS schema_version (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	) STRICT`
	if s.pg != nil {
		schemaVersion = `CREATE TABLE IF NOT EXISTS schema_version (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at BIGINT  NOT NULL
	)`
	}
	if _, err := s.db.ExecContext(ctx, schemaVersion); err != nil {
		return fmt.Errorf("migrate: create schema_version: %w", err)
	}
	current, err := s.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if current > len(all) {
		return fmt.Errorf("migrate: database schema version %d is newer than this kiln knows (%d): run a newer kiln", current, len(all))
	}
	for _, m := range all[current:] {
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3)`,
				m.version, m.name, ms(s.now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate %s: %w", m.name, err)
		}
	}
	return nil
}

// SchemaVersion returns the highest store migration applied to the file.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}
