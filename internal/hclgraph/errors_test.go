package hclgraph_test

import (
	"errors"
	"strings"
	"testing"

	"kiln/internal/hclgraph"
)

// TestErrors: each class of problem is reported as FILE:LINE:COL with
// the source line underlined, and nothing is returned.
func TestErrors(t *testing.T) {
	for _, c := range []struct {
		name, src string
		want      []string // each a line of Lines(), after the directory
	}{
		{"syntax", "graph = \"g\"\nresource \"noop\" \"a\" {\n  x = = 1\n}\n",
			[]string{"main.hcl:3:7: Invalid expression"}},
		{"unknown kind", "graph = \"g\"\nresource \"aws:nope\" \"a\" {}\n",
			[]string{`main.hcl:2:10: unknown kind "aws:nope"`}},
		{"unknown attribute", "graph = \"g\"\nresource \"file\" \"a\" {\n  path = \"x\"\n  colour = \"red\"\n}\n",
			[]string{`main.hcl:4:3: file "a": unknown field "colour"`}},
		{"type", "graph = \"g\"\nresource \"exec\" \"a\" {\n  cmd = \"true\"\n  refresh_only = [1]\n}\n",
			[]string{`main.hcl:4:18: exec "a": refresh_only: want true or false, got a list`}},
		{"unknown reference", "graph = \"g\"\nresource \"print\" \"a\" {\n  msg = file.nope.path\n}\n",
			[]string{`main.hcl:3:9: unknown resource file.nope`}},
		{"unknown variable", "graph = \"g\"\nresource \"print\" \"a\" {\n  msg = var.nope\n}\n",
			[]string{`main.hcl:3:9: unknown variable var.nope`}},
		{"cycle through locals", "graph = \"g\"\nlocals {\n  a = local.b\n  b = local.a\n}\n",
			[]string{`main.hcl:4:7: cycle through expressions: local.a -> local.b -> local.a`}},
		{"cycle through resources", "graph = \"g\"\nresource \"print\" \"a\" {\n  msg = print.b.x\n}\nresource \"print\" \"b\" {\n  msg = print.a.x\n}\n",
			[]string{`main.hcl:2:1: dependency cycle: print/a -> print/b -> print/a`}},
		{"for_each over an output", "graph = \"g\"\nresource \"noop\" \"a\" {}\nresource \"print\" \"b\" {\n  for_each = toset([noop.a.id])\n  msg = \"x\"\n}\n",
			[]string{`main.hcl:4:21: print "b": for_each must be known without running anything, and noop.a.id is a resource's output`}},
		{"for_each over a list", "graph = \"g\"\nresource \"print\" \"b\" {\n  for_each = [\"x\"]\n  msg = \"x\"\n}\n",
			[]string{`main.hcl:3:14: print "b": for_each: want a map, or a set of strings (toset(...)), got tuple`}},
		{"missing variable", "graph = \"g\"\nvariable \"region\" {\n  type = string\n}\n",
			[]string{`main.hcl:2:1: variable "region": no value given (set it with --var region=VALUE, --var-file or KILN_VAR_region)`}},
		{"validation", "graph = \"g\"\nvariable \"n\" {\n  default = 0\n  validation {\n    condition = var.n > 0\n    error_message = \"n must be positive\"\n  }\n}\n",
			[]string{`main.hcl:5:17: variable "n": n must be positive`}},
		{"every problem at once", "graph = \"g\"\nresource \"print\" \"a\" {\n  msg = var.x\n}\nresource \"print\" \"b\" {\n  msg = local.y\n}\n",
			[]string{`main.hcl:3:9: unknown variable var.x`, `main.hcl:6:9: unknown local value local.y`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := write(t, map[string]string{"main.hcl": c.src})
			g, err := hclgraph.Load(dir, hclgraph.Options{Kinds: kinds()})
			if g != nil {
				t.Fatalf("Load() returned a graph with errors")
			}
			var d *hclgraph.Diagnostics
			if !errors.As(err, &d) {
				t.Fatalf("Load() = %v; want Diagnostics", err)
			}
			lines := d.Lines()
			for i := range lines {
				lines[i] = strings.TrimPrefix(lines[i], dir+"/")
			}
			if len(lines) != len(c.want) {
				t.Fatalf("problems = %q; want %q", lines, c.want)
			}
			for i, w := range c.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("problem %d = %q; want %q...", i, lines[i], w)
				}
			}
			if !strings.Contains(err.Error(), "\n    | ") && !strings.Contains(err.Error(), "| ") {
				t.Errorf("Error() = %q; want the source line underlined", err)
			}
		})
	}
}
