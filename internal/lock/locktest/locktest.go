// Package locktest finds the PostgreSQL server that lock tests run against.
package locktest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultDSN is the local server of a development machine or CI.
const DefaultDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// DSN returns KILN_TEST_POSTGRES (default DefaultDSN). When the server is
// unreachable the test is skipped, or fails when CI is set.
func DSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("KILN_TEST_POSTGRES")
	if dsn == "" {
		dsn = DefaultDSN
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL (KILN_TEST_POSTGRES) unreachable with CI set: %v", err)
		}
		t.Skipf("PostgreSQL unreachable (set KILN_TEST_POSTGRES): %v", err)
	}
	_ = c.Close(ctx)
	return dsn
}

// Terminate kills the backends whose application_name is app, as an
// operator's pg_terminate_backend would, and returns how many it killed.
func Terminate(t testing.TB, dsn, app string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int
	err = c.QueryRow(ctx, `SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE application_name = $1 AND pid <> pg_backend_pid()) k`, app).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
