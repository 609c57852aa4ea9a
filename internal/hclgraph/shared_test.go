package hclgraph_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"kiln/internal/engine"
	"kiln/internal/hclgraph"
	"kiln/internal/resources"
)

// TestSharedInstances: the instances of a count or for_each block whose
// fields do not read count or each are evaluated and checked once and
// shared; each is still a resource of its own: its id, display name,
// edges (both ways), build (errors name it), peer checks and a hash that
// stays put when the block grows or shrinks.
func TestSharedInstances(t *testing.T) {
	main := `
graph = "g"
resource "noop" "src" {}
resource "noop" "a" {}
resource "print" "msg" {
  count      = 3
  msg        = "v=${noop.src.x}"
  depends_on = [noop.a]
}
resource "noop" "after" {
  depends_on = [print.msg[2]]
}
resource "print" "idx" {
  count = 2
  msg   = "i=${count.index}"
}
resource "file" "f" {
  for_each = toset(["eu", "us"])
  path     = noop.src.path
  content  = "same"
}
`
	dir := write(t, map[string]string{"main.hcl": main})
	g := load(t, dir, hclgraph.Options{})
	want := []string{"noop/src", "noop/a", "print/msg[0]", "print/msg[1]", "print/msg[2]", "noop/after", "print/idx[0]", "print/idx[1]", `file/f["eu"]`, `file/f["us"]`}
	if got := ids(g); !slices.Equal(sorted(got), sorted(want)) {
		t.Fatalf("ids = %q; want %q", got, want)
	}
	byID := map[string]*engine.Spec{}
	for _, s := range g.Specs {
		byID[s.ID()] = s
	}
	for i, id := range []string{"print/msg[0]", "print/msg[1]", "print/msg[2]"} {
		s := byID[id]
		if !slices.Equal(sorted(s.DependsOn), []string{"noop/a", "noop/src"}) || !slices.Equal(s.Refs, []string{"noop/src"}) {
			t.Errorf("%s: DependsOn = %q, Refs = %q; want noop/a and noop/src, noop/src", id, s.DependsOn, s.Refs)
		}
		if want := "msg-" + string(rune('0'+i)); s.Display != want {
			t.Errorf("%s: Display = %q; want %q", id, s.Display, want)
		}
		if got := build(t, g, id).(*resources.Print).Msg; got != "v=v-x" {
			t.Errorf("%s built with msg %q; want v=v-x", id, got)
		}
	}
	if d := byID["noop/after"].DependsOn; !slices.Equal(d, []string{"print/msg[2]"}) {
		t.Errorf("noop/after DependsOn = %q; want print/msg[2]", d)
	}
	// A build error names the instance it is about.
	_, _, err := byID[`file/f["us"]`].Build(func(id, key string) (string, bool) { return "", true })
	if err == nil || !strings.Contains(err.Error(), `f[\"us\"]`) {
		t.Errorf(`Build of file/f["us"] with an empty path = %v; want an error naming f["us"]`, err)
	}

	// The block grows and shrinks: the instances that stay keep their hash.
	hash := map[string]string{}
	for _, s := range g.Specs {
		hash[s.ID()] = s.Hash
	}
	grown := strings.Replace(strings.Replace(main, "count      = 3", "count      = 4", 1), `toset(["eu", "us"])`, `toset(["us"])`, 1)
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(grown), 0o644); err != nil {
		t.Fatal(err)
	}
	g = load(t, dir, hclgraph.Options{})
	for _, s := range g.Specs {
		old, ok := hash[s.ID()]
		if ok && old != s.Hash {
			t.Errorf("%s: hash changed when its block grew or shrank", s.ID())
		}
		if !ok && s.ID() != "print/msg[3]" {
			t.Errorf("new resource %s; want only print/msg[3]", s.ID())
		}
	}
	// A changed field changes every instance's hash.
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(strings.Replace(grown, "v=", "w=", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	g = load(t, dir, hclgraph.Options{})
	for _, s := range g.Specs {
		if strings.HasPrefix(s.ID(), "print/msg[") && s.Hash == hash[s.ID()] {
			t.Errorf("%s: hash unchanged after its msg changed", s.ID())
		}
	}
}

// TestSharedInstancesChecked: a shared block's field problem is reported
// once, at the block; the peers check still compares every instance.
func TestSharedInstancesChecked(t *testing.T) {
	dir := write(t, map[string]string{"main.hcl": `
graph = "g"
resource "file" "bad" {
  count   = 3
  path    = "x"
  nope    = 1
}
resource "aws:route53_record" "www" {
  count  = 2
  zone   = "shop.example"
  record = "www.shop.example"
  type   = "A"
  values = ["10.0.0.1"]
}
`})
	_, err := hclgraph.Load(dir, hclgraph.Options{Kinds: kinds()})
	if err == nil {
		t.Fatal("Load() = nil; want errors")
	}
	msg := err.Error()
	if n := strings.Count(msg, `unknown field "nope"`); n != 1 {
		t.Errorf("unknown field reported %d times; want once:\n%s", n, msg)
	}
	if !strings.Contains(msg, "main.hcl:6:3") {
		t.Errorf("errors lack the field's position main.hcl:6:3:\n%s", msg)
	}
	if !strings.Contains(msg, "declared by aws:route53_record/www[0] already") {
		t.Errorf("errors lack the duplicate record between www[0] and www[1]:\n%s", msg)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
