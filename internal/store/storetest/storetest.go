// Package storetest opens stores for tests: one SQLite file in the test's
// temporary directory, closed when the test ends.
package storetest

import (
	"path/filepath"
	"testing"

	"kiln/internal/store"
)

// Open opens a store in a temporary directory of t; it is closed when the
// test ends.
func Open(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "kiln.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
