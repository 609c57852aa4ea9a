package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// root is the checkout's top, where docs/ lives.
var root = filepath.Join("..", "..")

// TestKindPages: every kind of KindTable has its page, docs/kinds/NAME.md
// headed with its name, and a row in the kinds index with its summary.
func TestKindPages(t *testing.T) {
	index, err := os.ReadFile(filepath.Join(root, "docs", "kinds", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range KindTable {
		page, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(k.DocPage())))
		if err != nil {
			t.Errorf("kind %q has no page: %v", k.Name, err)
			continue
		}
		if head, _, _ := strings.Cut(string(page), "\n"); head != "# `"+k.Name+"`" {
			t.Errorf("%s starts with %q; want \"# `%s`\"", k.DocPage(), head, k.Name)
		}
		row := "| [`" + k.Name + "`](" + filepath.Base(k.DocPage()) + ") | " + k.Summary + " |"
		if !strings.Contains(string(index), row) {
			t.Errorf("docs/kinds/README.md lacks the row %s", row)
		}
	}
}

// TestKindsCommand: kiln kinds prints every kind of KindTable, in order,
// one line each with its summary.
func TestKindsCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"kinds"}, &out, &errb); code != ExitOK {
		t.Fatalf("kiln kinds = exit %d; want 0 (stderr %q)", code, errb.String())
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) != len(KindTable) {
		t.Fatalf("kiln kinds printed %d lines; want %d:\n%s", len(lines), len(KindTable), out.String())
	}
	seen := map[string]bool{}
	for i, k := range KindTable {
		name, summary, _ := strings.Cut(lines[i], " ")
		if name != k.Name || strings.TrimSpace(summary) != k.Summary {
			t.Errorf("line %d = %q; want %s and %q", i+1, lines[i], k.Name, k.Summary)
		}
		if k.Summary == "" || strings.Contains(k.Summary, "\n") {
			t.Errorf("kind %q: summary %q; want one non-empty line", k.Name, k.Summary)
		}
		if seen[k.Name] {
			t.Errorf("kind %q listed twice", k.Name)
		}
		seen[k.Name] = true
	}
}

// TestCLIReference: docs/cli is what the commands generate now (run go
// generate ./internal/cli after changing a command), and every command a
// user runs has its page there.
func TestCLIReference(t *testing.T) {
	dir := t.TempDir()
	if err := writeCLIReference(dir); err != nil {
		t.Fatal(err)
	}
	want := readDir(t, dir)
	got := readDir(t, filepath.Join(root, "docs", "cli"))
	for name, w := range want {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("docs/cli/%s is missing: run go generate ./internal/cli", name)
		case g != w:
			t.Errorf("docs/cli/%s is not current: run go generate ./internal/cli", name)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("docs/cli/%s belongs to no command: run go generate ./internal/cli", name)
		}
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if !c.IsAvailableCommand() && c.HasParent() {
			return
		}
		page := strings.ReplaceAll(c.CommandPath(), " ", "_") + ".md"
		if _, ok := got[page]; !ok {
			t.Errorf("command %q has no reference page docs/cli/%s", c.CommandPath(), page)
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(newRoot(&app{}))
}

func readDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m[filepath.Base(f)] = string(b)
	}
	return m
}

// TestArchitectureLayout: the layout on docs/architecture.md names every
// directory under internal/ and cmd/, and only directories that exist.
func TestArchitectureLayout(t *testing.T) {
	page, err := os.ReadFile(filepath.Join(root, "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(page), "## Layout\n")
	if !ok {
		t.Fatal("docs/architecture.md has no ## Layout section")
	}
	_, block, ok := strings.Cut(rest, "```\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal("docs/architecture.md's Layout has no ``` block")
	}
	var listed []string
	for line := range strings.Lines(block) {
		if f := strings.Fields(line); len(f) > 0 && strings.HasSuffix(f[0], "/") && line[0] != ' ' {
			listed = append(listed, strings.TrimSuffix(f[0], "/"))
		}
	}
	var tree []string
	for _, top := range []string{"internal", "cmd"} {
		entries, err := os.ReadDir(filepath.Join(root, top))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.IsDir() {
				tree = append(tree, top+"/"+e.Name())
			}
		}
	}
	for _, d := range tree {
		if !slices.Contains(listed, d) {
			t.Errorf("docs/architecture.md's layout lacks %s/", d)
		}
	}
	for _, d := range listed {
		if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(d))); err != nil {
			t.Errorf("docs/architecture.md's layout lists %s/, which does not exist", d)
		}
	}
}
