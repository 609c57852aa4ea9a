package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kiln/internal/testsupport"
)

// TestRunSeesNewHCLFiles: while kiln run runs an HCL graph directory, a
// .hcl file added to it (or to a module's directory) is read at once,
// with no known file edited; one renamed away or removed drops its
// resources from the graph.
func TestRunSeesNewHCLFiles(t *testing.T) {
	dir := t.TempDir()
	graph := filepath.Join(dir, "graph")
	out := filepath.Join(dir, "out")
	write := func(path, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fileRes := func(label string) string {
		return `resource "file" "` + label + `" {
  path    = "` + filepath.Join(out, label) + `"
  content = "` + label + `\n"
}
`
	}
	write(filepath.Join(graph, "main.hcl"), "graph = \"watch\"\nmodule \"m\" {\n  source = \"./mod\"\n}\n"+fileRes("a"))
	write(filepath.Join(graph, "mod", "one.hcl"), fileRes("m1"))
	exists := func(label string) func() bool {
		return func() bool { _, err := os.Stat(filepath.Join(out, label)); return err == nil }
	}

	ctx, cancel := context.WithCancel(t.Context())
	var stderr testsupport.Buffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"run", graph}, &testsupport.Buffer{}, &stderr) }()
	defer func() {
		cancel()
		if code := <-done; code != ExitInterrupted {
			t.Errorf("kiln run = %d; want %d\n%s", code, ExitInterrupted, stderr.String())
		}
	}()
	testsupport.Eventually(t, "a and m1 written", func() bool { return exists("a")() && exists("m1")() })

	reloads := func(n string) func() bool {
		return func() bool {
			return strings.Contains(stderr.String(), `msg="graph reloaded"`) && strings.HasSuffix(lastReload(stderr.String()), "resources="+n)
		}
	}
	write(filepath.Join(graph, "b.hcl"), fileRes("b"))
	testsupport.Eventually(t, "b.hcl read: b written", exists("b"))
	testsupport.Eventually(t, "a reload with 3 resources", reloads("3"))

	write(filepath.Join(graph, "mod", "two.hcl"), fileRes("m2"))
	testsupport.Eventually(t, "the module's new two.hcl read: m2 written", exists("m2"))
	testsupport.Eventually(t, "a reload with 4 resources", reloads("4"))

	if err := os.Rename(filepath.Join(graph, "b.hcl"), filepath.Join(graph, "b.hcl.off")); err != nil {
		t.Fatal(err)
	}
	testsupport.Eventually(t, "b.hcl renamed away: 3 resources", reloads("3"))
	if err := os.Remove(filepath.Join(graph, "mod", "two.hcl")); err != nil {
		t.Fatal(err)
	}
	testsupport.Eventually(t, "two.hcl removed: 2 resources", reloads("2"))
	if strings.Contains(stderr.String(), "rejected") || strings.Contains(stderr.String(), "unreadable") {
		t.Errorf("a graph change was refused:\n%s", stderr.String())
	}
}

// lastReload is the last "graph reloaded" log line.
func lastReload(log string) string {
	var last string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, `msg="graph reloaded"`) {
			last = strings.TrimSpace(l)
		}
	}
	return last
}
