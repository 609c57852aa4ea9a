// Package pgtest gives tests a PostgreSQL database of their own: a fresh,
// empty database on the server that KILN_TEST_POSTGRES names (default the
// local one, postgres://postgres@127.0.0.1:5432/postgres), dropped when the
// test ends, so tests run in parallel and leave nothing behind. When the
// server cannot be reached the test is skipped, unless CI is set: then it
// fails.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultServer is the server tests use when KILN_TEST_POSTGRES is unset.
const DefaultServer = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Server returns the DSN of the test server's maintenance database.
func Server() string {
	if v := os.Getenv("KILN_TEST_POSTGRES"); v != "" {
		return v
	}
	return DefaultServer
}

var (
	reachOnce sync.Once
	reachErr  error
)

// Available reports whether the test server answers (asked once per test
// binary).
func Available() error {
	reachOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, Server())
		if err != nil {
			reachErr = err
			return
		}
		reachErr = c.Close(ctx)
	})
	return reachErr
}

// Require skips t when the server is unreachable, or fails it under CI.
func Require(t testing.TB) {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL at KILN_TEST_POSTGRES is unreachable under CI: %v", err)
		}
		t.Skipf("PostgreSQL unreachable (set KILN_TEST_POSTGRES): %v", err)
	}
}

// DB creates an empty database for t and returns its DSN; it is dropped
// (with whatever connections are left) when t and its subtests end.
func DB(t testing.TB) string {
	t.Helper()
	Require(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "kiln_test_" + hex.EncodeToString(b[:])
	exec(t, "CREATE DATABASE "+name)
	t.Cleanup(func() { exec(t, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	u, err := url.Parse(Server())
	if err != nil {
		t.Fatalf("KILN_TEST_POSTGRES: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

func exec(t testing.TB, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, Server())
	if err != nil {
		t.Fatalf("connect to test server: %v", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
