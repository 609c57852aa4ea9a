package hclgraph_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"kiln/internal/hclgraph"
	"kiln/internal/resources"
)

// write puts files (name → text) in a new directory and returns it.
func write(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func load(t *testing.T, dir string, o hclgraph.Options) *hclgraph.Graph {
	t.Helper()
	o.Kinds = kinds()
	g, err := hclgraph.Load(dir, o)
	if err != nil {
		t.Fatalf("Load() = %v", err)
	}
	return g
}

func ids(g *hclgraph.Graph) []string {
	var out []string
	for _, s := range g.Specs {
		out = append(out, s.ID())
	}
	return out
}

func build(t *testing.T, g *hclgraph.Graph, id string) any {
	t.Helper()
	for _, s := range g.Specs {
		if s.ID() == id {
			r, _, err := s.Build(resolved)
			if err != nil {
				t.Fatalf("build %s: %v", id, err)
			}
			return r
		}
	}
	t.Fatalf("no resource %s in %v", id, ids(g))
	return nil
}

const counted = `
graph = "g"
variable "n" {
  type    = number
  default = 2
}
variable "regions" {
  type    = map(string)
  default = { eu = "eu-west-1", us = "us-east-1" }
}
resource "noop" "web" {
  count = var.n
}
resource "file" "per" {
  for_each = var.regions
  path     = "out/${each.key}.txt"
  content  = "${each.value} ${noop.web[0].x}"
}
resource "print" "all" {
  msg = "all: ${join(",", [for f in file.per : f.path])}"
}
`

func TestCountForEachGrowAndShrink(t *testing.T) {
	dir := write(t, map[string]string{"main.hcl": counted})
	g := load(t, dir, hclgraph.Options{})
	want := []string{"noop/web[0]", "noop/web[1]", `file/per["eu"]`, `file/per["us"]`, "print/all"}
	if !slices.Equal(ids(g), want) {
		t.Fatalf("ids = %v; want %v", ids(g), want)
	}
	for _, s := range g.Specs {
		if s.ID() == `file/per["eu"]` && !slices.Equal(s.Refs, []string{"noop/web[0]"}) {
			t.Errorf("file/per[eu] refs = %v; want [noop/web[0]]", s.Refs)
		}
		if s.ID() == "print/all" && !slices.Equal(s.DependsOn, []string{`file/per["eu"]`, `file/per["us"]`}) {
			t.Errorf("print/all depends on %v", s.DependsOn)
		}
	}
	g = load(t, dir, hclgraph.Options{Vars: []string{"n=4", `regions={ap="ap-south-1"}`}})
	want = []string{"noop/web[0]", "noop/web[1]", "noop/web[2]", "noop/web[3]", `file/per["ap"]`, "print/all"}
	if !slices.Equal(ids(g), want) {
		t.Fatalf("grown ids = %v; want %v", ids(g), want)
	}
	g = load(t, dir, hclgraph.Options{Vars: []string{"n=1", `regions={}`}})
	want = []string{"noop/web[0]", "print/all"}
	if !slices.Equal(ids(g), want) {
		t.Fatalf("shrunk ids = %v; want %v", ids(g), want)
	}
}

func TestVariableSources(t *testing.T) {
	dir := write(t, map[string]string{
		"main.hcl": `
graph = "g"
variable "a" { default = "from-default" }
variable "b" { default = "from-default" }
variable "c" { default = "from-default" }
variable "d" { default = "from-default" }
resource "print" "p" {
  msg = "${var.a} ${var.b} ${var.c} ${var.d}"
}
`,
	})
	vf := filepath.Join(t.TempDir(), "vars.json")
	os.WriteFile(vf, []byte(`{"c": "from-file", "d": "from-file"}`), 0o644)
	g := load(t, dir, hclgraph.Options{
		Env:      []string{"KILN_VAR_b=from-env", "KILN_VAR_c=from-env", "KILN_VAR_d=from-env", "KILN_VAR_zz=ignored"},
		VarFiles: []string{vf},
		Vars:     []string{"d=from-flag"},
	})
	if got := build(t, g, "print/p").(*resources.Print).Msg; got != "from-default from-env from-file from-flag" {
		t.Errorf("print msg = %q; want from-default from-env from-file from-flag", got)
	}
}

func TestModulesNest(t *testing.T) {
	dir := write(t, map[string]string{
		"main.hcl": `
graph = "g"
module "svc" {
  for_each = toset(["api", "web"])
  source   = "./modules/service"
  name     = each.key
}
output "addrs" {
  value = module.svc["web"].addr
}
`,
		"modules/service/main.hcl": `
variable "name" { type = string }
resource "noop" "box" {}
module "inner" {
  source = "./inner"
  tag    = "${var.name}-inner"
}
output "addr" { value = "${var.name}:${noop.box.x}:${module.inner.path}" }
`,
		"modules/service/inner/main.hcl": `
variable "tag" {}
resource "file" "f" {
  path    = "out/${var.tag}"
  content = templatefile("${path.module}/t.tpl", { tag = var.tag })
}
output "path" { value = file.f.path }
`,
		"modules/service/inner/t.tpl": `tag=${tag}`,
	})
	g := load(t, dir, hclgraph.Options{})
	want := []string{`module.svc["api"].noop/box`, `module.svc["api"].module.inner.file/f`, `module.svc["web"].noop/box`, `module.svc["web"].module.inner.file/f`}
	if !slices.Equal(ids(g), want) {
		t.Fatalf("ids = %v; want %v", ids(g), want)
	}
	if len(g.Outputs) != 1 || g.Outputs[0].Value.AsString() != `web:${module.svc["web"].noop/box.x}:${module.svc["web"].module.inner.file/f.path}` {
		t.Errorf("outputs = %#v", g.Outputs)
	}
	if f := build(t, g, `module.svc["api"].module.inner.file/f`).(*resources.File); f.Content == nil || *f.Content != "tag=api-inner" {
		t.Errorf("inner file = %+v; want content tag=api-inner", f)
	}
}

// TestDisplayNames: an expanded resource's Name tag is LABEL-INDEX or
// LABEL-KEY (in a module, the module's name and key first) unless the
// block sets name; a changed name changes the spec's hash.
func TestDisplayNames(t *testing.T) {
	dir := write(t, map[string]string{
		"main.hcl": `
graph = "g"
resource "noop" "web" { count = 2 }
resource "noop" "db" {
  for_each = toset(["eu"])
}
resource "noop" "one" {}
resource "noop" "named" {
  count = 1
  name  = "box-${count.index + 7}"
}
module "svc" {
  for_each = toset(["us"])
  source   = "./m"
}
`,
		"m/main.hcl": `resource "noop" "node" { count = 1 }`,
	})
	g := load(t, dir, hclgraph.Options{})
	want := map[string]string{
		"noop/web[0]": "web-0", "noop/web[1]": "web-1", `noop/db["eu"]`: "db-eu", "noop/one": "",
		"noop/named[0]": "box-7", `module.svc["us"].noop/node[0]`: "svc-us-node-0",
	}
	hash := map[string]string{}
	for _, s := range g.Specs {
		if s.Display != want[s.ID()] {
			t.Errorf("%s: Display = %q; want %q", s.ID(), s.Display, want[s.ID()])
		}
		hash[s.ID()] = s.Hash
	}
	if len(g.Specs) != len(want) {
		t.Errorf("ids = %v; want %d resources", ids(g), len(want))
	}
	os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(`
graph = "g"
resource "noop" "named" {
  count = 1
  name  = "box-8"
}
resource "noop" "web" { count = 1 }
`), 0o644)
	g = load(t, dir, hclgraph.Options{})
	for _, s := range g.Specs {
		same := s.Hash == hash[s.ID()]
		if want := s.ID() == "noop/web[0]"; same != want {
			t.Errorf("%s: hash unchanged = %v; want %v", s.ID(), same, want)
		}
	}
}
