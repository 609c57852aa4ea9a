package config

import (
	"strings"
	"testing"
)

func TestParsePrune(t *testing.T) {
	g, err := Parse("g.yaml", []byte(`name: shop
prune: true
prune_limit: 20
resources:
  - kind: noop
    name: db
    meta: {protect: true}
  - kind: noop
    name: web
`), testKinds)
	if err != nil {
		t.Fatal(err)
	}
	if !g.Prune || g.PruneLimit != 20 {
		t.Errorf("Prune, PruneLimit = %v, %d; want true, 20", g.Prune, g.PruneLimit)
	}
	if !g.Specs[0].Meta.Protect || g.Specs[1].Meta.Protect {
		t.Errorf("Protect = %v, %v; want true, false", g.Specs[0].Meta.Protect, g.Specs[1].Meta.Protect)
	}

	g, err = Parse("g.yaml", []byte("name: shop\nresources: []\n"), testKinds)
	if err != nil {
		t.Fatal(err)
	}
	if g.Prune || g.PruneLimit != 0 {
		t.Errorf("default Prune, PruneLimit = %v, %d; want false, 0", g.Prune, g.PruneLimit)
	}
}

func TestParsePruneErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"name: shop\nprune: yes please\nresources: []\n", `g.yaml:2: prune: want true or false`},
		{"name: shop\nprune_limit: -1\nresources: []\n", `g.yaml:2: prune_limit: want a count of resources`},
		{"name: shop\nprune_limit: many\nresources: []\n", `g.yaml:2: prune_limit: want a count of resources`},
		{"name: shop\nresources:\n  - kind: noop\n    name: a\n    meta: {protect: maybe}\n", `g.yaml:5: noop "a": meta.protect`},
	} {
		_, err := Parse("g.yaml", []byte(tc.src), testKinds)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v; want an error containing %q", tc.src, err, tc.want)
		}
	}
}
