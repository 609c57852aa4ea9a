package hclgraph_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"kiln/internal/hclgraph"
)

// FuzzLoad: any text either loads or is refused with located Diagnostics;
// it never panics.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("../../examples/*.hcl")
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(counted))
	f.Add([]byte(`graph = "g"` + "\n" + `resource "noop" "a" { count = -1 }`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		p := filepath.Join(dir, "main.hcl")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		g, err := hclgraph.Load(p, hclgraph.Options{Kinds: kinds()})
		if err == nil && g == nil {
			t.Fatal("Load() = nil, nil")
		}
		var d *hclgraph.Diagnostics
		if err != nil && !errors.As(err, &d) {
			t.Fatalf("Load() = %v; want Diagnostics", err)
		}
	})
}
