package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: any input gives a graph or errors, never a panic, and a graph
// it accepts builds without panicking.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(good))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := Parse("f.yaml", data, testKinds)
		if err != nil {
			if _, ok := err.(Errors); !ok {
				t.Fatalf("Parse() error %T; want Errors", err)
			}
			return
		}
		for _, s := range g.Specs {
			if s.Build != nil {
				_, _, _ = s.Build(func(string, string) (string, bool) { return "1", true })
			}
		}
	})
}
