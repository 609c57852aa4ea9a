// Package hclgraph is kiln's second graph front end: graphs written in HCL
// (the language of Terraform and Packer), with variables, locals,
// count/for_each, modules, data sources, outputs and cty's functions.
//
// It reads a .hcl file or a directory of them, decodes the block structure
// with a schema per block, evaluates every expression against a scope
// (var, local, count, each, path, data, module, and one object per kind:
// aws_ec2, file, ...) and hands the result to config.ParseNode in the
// shape of a YAML graph, so both front ends make the same specs and the
// engine and the kinds never see HCL.
//
// A reference to a resource (aws_ec2.web.private_ip) cannot be known until
// the engine runs: it evaluates to the YAML reference text
// "${aws:ec2/web.private_ip}", which is an implied dependency and is
// resolved by Spec.Build, exactly as in YAML. String expressions over such
// references (joins, templates, for expressions) keep them in place.
//
// Every problem is returned at once, as Diagnostics located by file, line
// and column; nothing is returned half-evaluated.
package hclgraph

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"kiln/internal/config"
	"kiln/internal/engine"
)

// Options are what a graph is evaluated with besides its files.
type Options struct {
	Kinds config.Kinds
	// Vars are --var NAME=VALUE values, in the order given; VarFiles the
	// --var-file paths (HCL, or JSON when the name ends in .json). Env is
	// the environment (os.Environ's form), read for KILN_VAR_NAME. The
	// precedence is Terraform's: default < environment < files < --var.
	Vars     []string
	VarFiles []string
	Env      []string
	// Data reads a data source of a kind other than file (aws:ami,
	// aws:ssm_parameter). Nil: such a data source is an error.
	Data DataReader
	// Ctx bounds data source reads; nil means context.Background.
	Ctx context.Context
}

// DataReader reads one data source: its kind, its arguments as strings,
// and returns its attributes. Secret lists the attributes that must never
// be shown (an SSM SecureString's value).
type DataReader interface {
	ReadData(ctx context.Context, kind string, args map[string]string) (attrs map[string]string, secret []string, err error)
}

// Graph is an evaluated HCL graph.
type Graph struct {
	*engine.Graph
	// Outputs are the root module's outputs, evaluated; a value holding a
	// ${kind/name.key} reference is resolved with Resolve once the
	// resources have run.
	Outputs []Output
	// Data are the data sources read, with the values evaluation used:
	// Changed reports whether reading them again gives something else.
	Data []DataValue
	// Files are the graph's source files, for watching.
	Files []string
	// Dirs are the directories whose *.hcl files were read together (the
	// graph's, when it is a directory, and every module's): a file added
	// to one, or removed, changes the graph.
	Dirs []string
}

// Output is one output block's value.
type Output struct {
	Name      string
	Value     cty.Value
	Sensitive bool
}

// DataValue is one data source as read during evaluation.
type DataValue struct {
	Addr  string // data.aws_ami.base, or module.x.data.aws_ami.base
	Kind  string
	Args  map[string]string
	Attrs map[string]string
	Meta  engine.Meta // meta { poll }: how often it is re-read
	dir   string      // the module's directory, for file paths
}

// Load reads the graph at path (a .hcl file, or a directory whose *.hcl
// files are read together) and evaluates it.
func Load(path string, o Options) (*Graph, error) {
	l := newLoader(o)
	root, diags := l.module(path, "", nil, nil)
	if diags.HasErrors() {
		return nil, l.fail(diags)
	}
	g, diags := l.build(root)
	if diags.HasErrors() {
		return nil, l.fail(diags)
	}
	return g, nil
}

// IsHCL reports whether path names an HCL graph: a .hcl file or a
// directory.
func IsHCL(path string) bool {
	if strings.HasSuffix(path, ".hcl") {
		return true
	}
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}

// loader is one evaluation: the parsed files, the kinds, the YAML nodes
// made so far and where each came from.
type loader struct {
	o      Options
	parser *hclparse.Parser
	kinds  config.Kinds
	// byRef maps a kind as written in expressions (aws_ec2) to its name
	// (aws:ec2).
	byRef map[string]string
	// attrs are every attribute name read anywhere in the graph: the
	// attributes a resource's placeholder object carries.
	attrs   []string
	pos     []hcl.Range // pos[i] is where YAML node line i+1 came from
	lines   map[hcl.Range]int
	files   []string
	dirs    []string
	data    []DataValue
	rootDir string
	// display are the display names (Spec.Display) by resource id.
	display map[string]string
}

func newLoader(o Options) *loader {
	if o.Ctx == nil {
		o.Ctx = context.Background()
	}
	l := &loader{o: o, parser: hclparse.NewParser(), kinds: o.Kinds, byRef: map[string]string{}, lines: map[hcl.Range]int{}, display: map[string]string{}}
	for k := range o.Kinds {
		l.byRef[refName(k)] = k
	}
	return l
}

// refName is how a kind is written in expressions: ':' becomes '_'.
func refName(kind string) string { return strings.ReplaceAll(kind, ":", "_") }

// files returns the .hcl files of path, sorted, or path itself.
func hclFiles(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read graph: %w", err)
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	names, err := filepath.Glob(filepath.Join(path, "*.hcl"))
	if err != nil {
		return nil, fmt.Errorf("read graph directory %s: %w", path, err)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("read graph directory %s: no .hcl files", path)
	}
	slices.Sort(names)
	return names, nil
}

// parseFiles parses path's files with the loader's parser (which keeps
// their text for diagnostics).
func (l *loader) parseFiles(path string) ([]*hcl.File, hcl.Diagnostics) {
	names, err := hclFiles(path)
	if err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: err.Error()}}
	}
	if len(names) != 1 || names[0] != path {
		l.dirs = append(l.dirs, path)
	}
	var files []*hcl.File
	var diags hcl.Diagnostics
	for _, n := range names {
		f, d := l.parser.ParseHCLFile(n)
		diags = append(diags, d...)
		if f != nil && !d.HasErrors() {
			files = append(files, f)
			l.files = append(l.files, n)
		}
	}
	return files, diags
}

// collectAttrs records every attribute name traversed in the files.
func (l *loader) collectAttrs(files []*hcl.File) {
	seen := map[string]bool{}
	for _, a := range l.attrs {
		seen[a] = true
	}
	for _, f := range files {
		body, ok := f.Body.(*hclsyntax.Body)
		if !ok {
			continue
		}
		_ = hclsyntax.VisitAll(body, func(n hclsyntax.Node) hcl.Diagnostics {
			var tr hcl.Traversal
			switch e := n.(type) {
			case *hclsyntax.ScopeTraversalExpr:
				tr = e.Traversal
			case *hclsyntax.RelativeTraversalExpr:
				tr = e.Traversal
			case *hclsyntax.SplatExpr:
				return nil
			}
			for _, step := range tr {
				if a, ok := step.(hcl.TraverseAttr); ok && !seen[a.Name] {
					seen[a.Name] = true
					l.attrs = append(l.attrs, a.Name)
				}
			}
			return nil
		})
	}
	slices.Sort(l.attrs)
}

// where maps a YAML node line back to its HCL position.
func (l *loader) where(line int) config.Pos {
	if line < 1 || line > len(l.pos) {
		return config.Pos{}
	}
	r := l.pos[line-1]
	return config.Pos{File: r.Filename, Line: r.Start.Line, Column: r.Start.Column}
}

// at returns the line standing for rng, recording it the first time: the
// instances of one block share their lines.
func (l *loader) at(rng hcl.Range) int {
	if line, ok := l.lines[rng]; ok {
		return line
	}
	l.pos = append(l.pos, rng)
	l.lines[rng] = len(l.pos)
	return len(l.pos)
}

// Path is the file a file data source reads (relative paths resolved).
func (d DataValue) Path() string { return resolvePath(d.dir, d.Args["path"]) }

// KnownAfterApply is what an output shows for a value only a run can tell.
const KnownAfterApply = "(known after apply)"

// Resolve replaces the references in v's strings with the outputs lookup
// has; a string whose reference lookup cannot answer becomes
// KnownAfterApply.
func Resolve(v cty.Value, lookup engine.Lookup) cty.Value {
	out, _ := cty.Transform(v, func(_ cty.Path, v cty.Value) (cty.Value, error) {
		if v.IsMarked() {
			return v, nil // a secret stays as it is, never shown
		}
		if v.IsNull() || !v.IsKnown() || !v.Type().Equals(cty.String) {
			return v, nil
		}
		s, err := config.Substitute(v.AsString(), lookup)
		if err != nil {
			return cty.StringVal(KnownAfterApply), nil
		}
		return cty.StringVal(s), nil
	})
	return out
}

// DefaultDataPoll is how often a data source without meta { poll } is
// read again while kiln runs.
const DefaultDataPoll = 5 * time.Minute

// Changed reads the data source again (as o reads it) and reports
// whether it now gives other values than evaluation used.
func (d DataValue) Changed(ctx context.Context, o Options) (bool, error) {
	o.Ctx = ctx
	attrs, _, err := readData(o, d.dir, d.Kind, d.Args)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", d.Addr, err)
	}
	return !maps.Equal(attrs, d.Attrs), nil
}

// PollEvery is the period of the tick at which the graph's data sources
// (other than file, which is watched) may be due to be read again: the
// greatest common divisor of their meta { poll } (DefaultDataPoll when a
// source sets none), at least a second, so that each is read at its own
// period (see DataValue.PollEvery); 0 when there are none.
func (g *Graph) PollEvery() time.Duration {
	var every time.Duration
	for _, d := range g.Data {
		if d.Kind == "file" {
			continue
		}
		p := d.PollEvery()
		for every, p = p, every; p != 0; {
			every, p = p, every%p
		}
	}
	if every > 0 && every < time.Second {
		every = time.Second
	}
	return every
}

// PollEvery is how often the data source is read again while kiln runs:
// its meta { poll }, else DefaultDataPoll.
func (d DataValue) PollEvery() time.Duration {
	if d.Meta.Poll > 0 {
		return d.Meta.Poll
	}
	return DefaultDataPoll
}
