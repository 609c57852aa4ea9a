package cli

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"kiln/internal/testsupport"

	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"kiln": func() { os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs testdata/script/*.txtar against the real kiln binary.
// Each script starts with a copy of examples/ in $WORK/examples.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			// Under -race every process sleeps 1s at exit by default.
			env.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
			return copyDir(filepath.Join("..", "..", "examples"), filepath.Join(env.WorkDir, "examples"))
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"waitfile": waitFile,
			"setenvre": setEnvRE,
			"post":     post,
		},
	})
}

// waitFile: waitfile FILE [REGEXP] blocks until FILE exists (and its content
// matches REGEXP). It is how scripts wait for a background kiln without
// sleeping for a guessed time; the deadline only catches a hung test.
func waitFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: waitfile FILE [REGEXP]")
	}
	var re *regexp.Regexp
	if len(args) == 2 {
		re = regexp.MustCompile("(?m)" + args[1]) // like testscript's stdout
	}
	path := ts.MkAbs(args[0])
	var data []byte
	var err error
	if !testsupport.Within(30*time.Second, func() bool {
		data, err = os.ReadFile(path)
		return err == nil && (re == nil || re.Match(data))
	}) {
		ts.Fatalf("waitfile %s: gave up; last content %q (err %v)", args[0], data, err)
	}
}

// post: post URL [FILE] sends a POST, empty or with FILE as its JSON body (a simulator control call, say), and
// fails unless the answer is 2xx.
func post(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: post URL [FILE]")
	}
	var body io.Reader
	if len(args) == 2 {
		body = strings.NewReader(ts.ReadFile(args[1]))
	}
	resp, err := http.Post(args[0], "application/json", body)
	if err != nil {
		ts.Fatalf("post %s: %v", args[0], err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		ts.Fatalf("post %s: %s: %s", args[0], resp.Status, answer)
	}
}

func copyDir(from, to string) error {
	return filepath.WalkDir(from, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	})
}

// TestReadmeQuickStart keeps the README's quick start pointing at the
// examples the scripts run (run_sim.txtar, examples.txtar).
func TestReadmeQuickStart(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"go run ./cmd/kiln run --sim --once examples/ec2.yaml",
		"go run ./cmd/kiln run --once examples/local.yaml",
		"go test -race ./...",
	} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("README.md lacks %q", want)
		}
	}
}
