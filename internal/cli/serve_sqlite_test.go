package cli

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeOneServerPerSQLiteFile is issue 22's item 5: a second kiln serve
// on the SQLite file of a running one refuses to start, saying another
// server holds the file and that several servers need PostgreSQL; once the
// first has stopped, a server starts on the file again.
func TestServeOneServerPerSQLiteFile(t *testing.T) {
	t.Setenv("KILN_TOKEN", "serve-test-token")
	db := filepath.Join(t.TempDir(), "kiln.db")
	_, stop := startServe(t, "--db", db)

	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"serve", "--sim", "--db", db, "--listen", "127.0.0.1:0"}, &stdout, &stderr)
	if code != ExitError {
		t.Errorf("second kiln serve on %s = exit %d; want %d", db, code, ExitError)
	}
	for _, want := range []string{"held by another kiln serve", "several servers need PostgreSQL", db} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("second kiln serve said %q; want it to say %q", stderr.String(), want)
		}
	}
	if stdout.Len() != 0 {
		t.Errorf("second kiln serve printed %q; want nothing (no token, no server)", stdout.String())
	}

	if code, errs := stop(); code != ExitInterrupted && code != ExitOK {
		t.Fatalf("first kiln serve = exit %d: %s", code, errs)
	}
	_, stop = startServe(t, "--db", db)
	stop()
}
