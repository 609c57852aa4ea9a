package testsupport_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// maxSleeps is how many fixed time.Sleep calls the tests may hold, each with
// a comment saying why it must be a sleep. Every other test waits on an
// event, a condition (testsupport.Eventually) or a fake clock.
const maxSleeps = 10

// TestFixedSleeps counts the fixed sleeps in the module's *_test.go files
// and fails above maxSleeps, naming each; each must follow a comment (or
// carry one) saying why it is a sleep.
func TestFixedSleeps(t *testing.T) {
	root := filepath.Join("..", "..")
	var found []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		lines := strings.Split(string(b), "\n")
		for i, line := range lines {
			if !strings.Contains(line, "time.Sleep"+"(") {
				continue
			}
			rel, _ := filepath.Rel(root, path)
			at := filepath.ToSlash(rel) + ":" + strconv.Itoa(i+1)
			found = append(found, at)
			if !strings.Contains(line, "//") && (i == 0 || !strings.HasPrefix(strings.TrimSpace(lines[i-1]), "//")) {
				t.Errorf("%s: a fixed sleep without a comment saying why", at)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) > maxSleeps {
		t.Errorf("%d fixed time.Sleep calls in tests; want at most %d (wait on an event, testsupport.Eventually or a fake clock):\n%s",
			len(found), maxSleeps, strings.Join(found, "\n"))
	}
}
