// Package config reads graph files: YAML in, a validated *engine.Graph out.
//
// Decoding is strict and happens entirely before anything runs. Every
// problem (YAML syntax, unknown kinds, unknown, missing or mistyped fields,
// bad durations, duplicate names, dangling depends_on / notified_by /
// ${kind/name.key} references, cycles) is collected and returned at once as
// Errors, each naming the file, line and field:
//
//	web.yaml:12: aws:ec2 "web": type: unknown instance type "t9.huge"
//
// A resource's own fields are decoded into the struct its kind's
// constructor returns (yaml tags). A ${kind/name.key} reference in any
// string is an implied dependency; Spec.Build substitutes the referenced
// outputs into the YAML and decodes a fresh resource.
package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"kiln/internal/engine"
)

// Kinds maps a kind name ("file", "aws:ec2") to a constructor returning a
// pointer to the kind's struct with its defaults and shared dependencies set.
type Kinds map[string]func() engine.Resource

// Load reads and parses the graph file at path; errors name path as given.
func Load(path string, kinds Kinds) (*engine.Graph, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read graph file: %w", err)
	}
	return Parse(path, data, kinds)
}

// common are the fields every resource has; the rest belong to its kind.
var common = map[string]bool{"kind": true, "name": true, "depends_on": true, "notified_by": true, "meta": true, "account": true}

// parser collects the problems of one file.
type parser struct {
	file  string
	kinds Kinds
	errs  Errors
	accts map[string]Account // the graph's accounts: (accounts.go)
	// where, when set, maps a node's Line to a position in another
	// front end's source (see ParseNode).
	where func(line int) Pos
}

// Pos is a position in a graph file: the file, line and column (0 when
// not known).
type Pos struct {
	File         string
	Line, Column int
}

func (p *parser) pos(line int) Pos {
	if p.where != nil {
		return p.where(line)
	}
	return Pos{File: p.file, Line: line}
}

func (p *parser) errorf(line int, res, field, format string, args ...any) {
	at := p.pos(line)
	p.errs = append(p.errs, &Error{File: at.File, Line: at.Line, Column: at.Column, Resource: res, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// item is one resource while the file is checked.
type item struct {
	spec   *engine.Spec
	label  string     // `file "motd"`
	line   int        // line of the resource's first key
	node   *yaml.Node // the whole resource mapping
	fields *yaml.Node // the kind's own fields only
	newRes func() engine.Resource
	deps   []edge // depends_on and notified_by entries, with lines
	refs   []refAt
	// res is the decoded resource (nil when its kind is unknown), lines
	// its fields' lines and skip the fields that still hold a reference:
	// what peers checks.
	res   engine.Resource
	lines map[string]int
	skip  map[string]bool
	// instances (HCL only) names the other instances that share this
	// resource's fields (see clones); hashBase is their hash without the
	// name.
	instances *yaml.Node
	hashBase  string
}

type edge struct {
	id, field string
	line      int
}

type refAt struct {
	ref
	field string
	line  int
}

// Parse checks data (the contents of filename) and returns its graph, or
// Errors listing every problem found.
func Parse(filename string, data []byte, kinds Kinds) (*engine.Graph, error) {
	p := &parser{file: filename, kinds: kinds}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		syn := SyntaxOf(data, err)
		p.errs = append(p.errs, &Error{File: p.file, Line: syn.Line, Column: syn.Column, Msg: syn.Msg})
		return nil, p.errs
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		p.errorf(1, "", "", "empty graph file (want name: and resources:)")
		return nil, p.errs
	}
	root := doc.Content[0]
	if line := findAlias(root); line > 0 {
		p.errorf(line, "", "", "YAML aliases (*name) are not supported")
		return nil, p.errs
	}
	return p.graph(root)
}

// ParseNode checks a graph that another front end (HCL) has turned into
// the YAML document's shape: a mapping with name and resources. where maps
// each node's Line to the position in that front end's source that it
// came from; every Error, including those of Spec.Build, is located
// through it. Specs are what Parse makes of the same document.
func ParseNode(filename string, root *yaml.Node, kinds Kinds, where func(line int) Pos) (*engine.Graph, error) {
	p := &parser{file: filename, kinds: kinds, where: where}
	return p.graph(root)
}

// graph checks the document's root mapping.
func (p *parser) graph(root *yaml.Node) (*engine.Graph, error) {
	if root.Kind != yaml.MappingNode {
		p.errorf(root.Line, "", "", "want a mapping with name: and resources:, got %s", describe(root))
		return nil, p.errs
	}
	var name string
	var items []*item
	var haveName, haveResources bool
	var prune bool
	var pruneLimit int
	for i := 0; i+1 < len(root.Content); i += 2 { // accounts first: resources name them
		if root.Content[i].Value == "accounts" {
			p.accts = p.accounts(root.Content[i+1])
		}
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "name":
			haveName = true
			if v.Kind != yaml.ScalarNode || v.Value == "" {
				p.errorf(v.Line, "", "name", "want a non-empty string, got %s", describe(v))
				continue
			}
			name = v.Value
		case "resources":
			haveResources = true
			if v.Kind != yaml.SequenceNode {
				if v.ShortTag() != "!!null" {
					p.errorf(v.Line, "", "resources", "want a list, got %s", describe(v))
				}
				continue
			}
			for j, rn := range v.Content {
				if it := p.resource(j, rn); it != nil {
					items = append(items, it)
					items = append(items, p.clones(it)...)
				}
			}
		case "prune":
			if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!bool" {
				p.errorf(v.Line, "", "prune", "want true or false, got %s", describe(v))
				continue
			}
			prune = strings.EqualFold(v.Value, "true")
		case "prune_limit":
			n, err := strconv.Atoi(v.Value)
			if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!int" || err != nil || n < 0 {
				p.errorf(v.Line, "", "prune_limit", "want a count of resources (0 or more), got %s", describe(v))
				continue
			}
			pruneLimit = n
		case "accounts":
		default:
			p.errorf(k.Line, "", "", "unknown field %q (want name, resources, prune, prune_limit, accounts)", k.Value)
		}
	}
	if !haveName {
		p.errorf(root.Line, "", "name", "required")
	}
	if !haveResources {
		p.errorf(root.Line, "", "resources", "required")
	}
	p.link(items)
	p.peers(items)
	if len(p.errs) > 0 {
		p.errs.sort()
		return nil, p.errs
	}
	specs := make([]*engine.Spec, len(items))
	for i, it := range items {
		specs[i] = it.spec
	}
	g, err := engine.NewGraph(name, specs)
	if err != nil {
		return nil, err
	}
	g.Prune, g.PruneLimit = prune, pruneLimit
	return g, nil
}

func findAlias(n *yaml.Node) int {
	if n.Kind == yaml.AliasNode {
		return n.Line
	}
	for _, c := range n.Content {
		if l := findAlias(c); l > 0 {
			return l
		}
	}
	return 0
}

// resource checks one entry of resources:. It returns nil when the entry
// has no usable identity.
func (p *parser) resource(idx int, n *yaml.Node) *item {
	label := fmt.Sprintf("resource #%d", idx+1)
	if n.Kind != yaml.MappingNode {
		p.errorf(n.Line, label, "", "want a mapping with kind: and name:, got %s", describe(n))
		return nil
	}
	it := &item{node: n, line: n.Line, spec: &engine.Spec{}}
	it.fields = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line, Column: n.Column}
	keys := make(map[string]*yaml.Node)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if common[k.Value] || ((k.Value == "module" || k.Value == "instances") && p.where != nil) {
			if keys[k.Value] != nil {
				p.errorf(k.Line, label, k.Value, "given twice")
				continue
			}
			keys[k.Value] = v
			continue
		}
		it.fields.Content = append(it.fields.Content, k, v)
	}
	// Identity first, so later messages can name the resource.
	kind := p.identity(keys["kind"], "kind", label, n.Line)
	name := p.identity(keys["name"], "name", label, n.Line)
	switch {
	case kind != "" && name != "":
		label = fmt.Sprintf("%s %q", kind, name)
	case kind != "":
		label = fmt.Sprintf("%s (resource #%d)", kind, idx+1)
	}
	it.label = label
	if kind != "" {
		newRes, ok := p.kinds[kind]
		if !ok {
			p.errorf(keys["kind"].Line, label, "kind", "unknown kind %q (known: %s)", kind, strings.Join(p.known(), ", "))
		}
		it.newRes = newRes
	}
	if v := keys["account"]; v != nil {
		it.newRes = p.inAccount(it, v, it.newRes) // accounts.go
	}
	it.spec.Kind, it.spec.Name = kind, name
	if m := keys["module"]; m != nil {
		// Only the HCL front end (ParseNode) writes module:.
		it.spec.Module = m.Value
	}
	it.deps = append(p.idList(keys["depends_on"], "depends_on", label), p.idList(keys["notified_by"], "notified_by", label)...)
	for _, e := range it.deps {
		if e.field == "notified_by" {
			it.spec.NotifiedBy = append(it.spec.NotifiedBy, e.id)
		}
	}
	if m := keys["meta"]; m != nil {
		it.spec.Meta = p.meta(m, label)
	}
	p.fields(it)
	if in := keys["instances"]; in != nil {
		// Only the HCL front end (ParseNode) writes instances:.
		it.instances = in
		it.hashBase = hashShared(n)
		it.spec.Hash = it.hashBase + "\x00" + name
	} else {
		it.spec.Hash = hashNode(n)
	}
	if kind == "" || name == "" {
		return nil
	}
	return it
}

func (p *parser) known() []string {
	names := make([]string, 0, len(p.kinds))
	for k := range p.kinds {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

var badName = regexp.MustCompile(`[/\s${}]`)

func (p *parser) identity(v *yaml.Node, field, label string, line int) string {
	if v == nil {
		p.errorf(line, label, field, "required")
		return ""
	}
	if v.Kind != yaml.ScalarNode || v.ShortTag() == "!!null" || v.Value == "" {
		p.errorf(v.Line, label, field, "want a non-empty string, got %s", describe(v))
		return ""
	}
	if field == "name" && badName.MatchString(v.Value) {
		p.errorf(v.Line, label, field, "%q: names cannot hold '/', '$', braces or spaces", v.Value)
		return ""
	}
	return v.Value
}

func (p *parser) idList(v *yaml.Node, field, label string) []edge {
	if v == nil || v.ShortTag() == "!!null" {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		p.errorf(v.Line, label, field, "want a list of kind/name, got %s", describe(v))
		return nil
	}
	var out []edge
	for _, e := range v.Content {
		if e.Kind != yaml.ScalarNode || !strings.Contains(e.Value, "/") || strings.HasPrefix(e.Value, "/") || strings.HasSuffix(e.Value, "/") {
			p.errorf(e.Line, label, field, "want kind/name, got %s", describe(e))
			continue
		}
		out = append(out, edge{id: e.Value, field: field, line: e.Line})
	}
	return out
}

// metaYAML is the meta: block as written.
type metaYAML struct {
	Poll    time.Duration `yaml:"poll"`
	Retry   *int          `yaml:"retry"`
	Delay   time.Duration `yaml:"delay"`
	Limit   *float64      `yaml:"limit"`
	Burst   *int          `yaml:"burst"`
	Noop    bool          `yaml:"noop"`
	Timeout time.Duration `yaml:"timeout"`
	Protect bool          `yaml:"protect"`
}

func (p *parser) meta(n *yaml.Node, label string) engine.Meta {
	var m metaYAML
	if n.ShortTag() == "!!null" {
		return engine.Meta{}
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n.Line, label, "meta", "want a mapping, got %s", describe(n))
		return engine.Meta{}
	}
	d := &decoder{lines: map[string]int{}, failed: map[string]bool{}, report: func(line int, field, msg string) {
		p.errorf(line, label, field, "%s", msg)
	}}
	d.mapping(n, reflect.ValueOf(&m).Elem(), "meta.")
	out := engine.Meta{Poll: m.Poll, Delay: m.Delay, Noop: m.Noop, Timeout: m.Timeout, Protect: m.Protect}
	if m.Retry != nil {
		if *m.Retry < -1 {
			p.errorf(d.lines["meta.retry"], label, "meta.retry", "want -1 (forever) or more, got %d", *m.Retry)
		}
		out.Retry = *m.Retry
	}
	if m.Limit != nil {
		if *m.Limit < 0 {
			p.errorf(d.lines["meta.limit"], label, "meta.limit", "want 0 (unlimited) or more, got %v", *m.Limit)
		}
		out.Limit = *m.Limit
	}
	if m.Burst != nil {
		if *m.Burst < 0 {
			p.errorf(d.lines["meta.burst"], label, "meta.burst", "want 0 or more, got %d", *m.Burst)
		}
		out.Burst = *m.Burst
	}
	return out
}

// fields checks the kind's own fields and collects their references.
func (p *parser) fields(it *item) {
	skip := map[string]bool{}
	for i := 0; i+1 < len(it.fields.Content); i += 2 {
		k, v := it.fields.Content[i], it.fields.Content[i+1]
		walkValues(v, func(s *yaml.Node) {
			refs, bad := scanRefs(s.Value)
			for _, b := range bad {
				p.errorf(s.Line, it.label, k.Value, "bad reference %q: want ${kind/name.output}", b)
			}
			for _, r := range refs {
				it.refs = append(it.refs, refAt{ref: r, field: k.Value, line: s.Line})
				skip[k.Value] = true
			}
		})
	}
	if it.newRes == nil {
		return
	}
	d := &decoder{lines: map[string]int{}, skip: map[string]bool{}, failed: map[string]bool{}, report: func(line int, field, msg string) {
		p.errorf(line, it.label, field, "%s", msg)
	}}
	res := it.newRes()
	rv := reflect.ValueOf(res)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		p.errorf(it.line, it.label, "", "kind %s: constructor must return a pointer to a struct", it.spec.Kind)
		return
	}
	// A field holding a reference decodes now only if it is a plain string
	// (the raw ${...} text); otherwise it waits for Build.
	fields := structFields(rv.Elem().Type())
	for f := range skip {
		if idx, ok := fields[f]; ok && rv.Elem().Field(idx).Kind() != reflect.String {
			d.skip[f] = true
		}
	}
	d.mapping(it.fields, rv.Elem(), "")
	for f := range d.failed {
		skip[f] = true
	}
	p.validate(res, d.lines, skip, it)
	it.res, it.lines, it.skip = res, d.lines, skip
	p.buildFunc(it)
}

// peers runs ValidatePeers of every resource that has it, with the
// resources of its kind that come before it in the file.
func (p *parser) peers(items []*item) {
	earlier := map[string][]Peer{}
	for _, it := range items {
		if it.res == nil {
			continue
		}
		if v, ok := it.res.(PeerValidator); ok {
			p.attach(v.ValidatePeers(earlier[it.spec.Kind]), it.lines, it.skip, it)
		}
		earlier[it.spec.Kind] = append(earlier[it.spec.Kind], Peer{Name: it.spec.Name, Res: it.res})
	}
}

// validate runs the kind's Validate and attaches each field error's line.
// Errors about fields that still hold a reference are ignored when
// ignore is set (parse time).
func (p *parser) validate(res engine.Resource, lines map[string]int, ignore map[string]bool, it *item) {
	v, ok := res.(Validator)
	if !ok {
		return
	}
	p.attach(v.Validate(), lines, ignore, it)
}

// attach reports the errors of a Validate or ValidatePeers, each field
// error at its field's line.
func (p *parser) attach(verr error, lines map[string]int, ignore map[string]bool, it *item) {
	for _, err := range flatten(verr) {
		var fe *FieldError
		if errors.As(err, &fe) {
			top, _, _ := strings.Cut(fe.Field, ".")
			top, _, _ = strings.Cut(top, "[")
			if ignore[top] {
				continue
			}
			line, ok := lines[fe.Field]
			if !ok {
				line, ok = lines[top]
			}
			if !ok {
				line = it.line
			}
			p.errorf(line, it.label, fe.Field, "%s", fe.Msg)
			continue
		}
		p.errorf(it.line, it.label, "", "%s", err)
	}
}

func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// walkValues calls fn for every scalar value under n (not mapping keys).
func walkValues(n *yaml.Node, fn func(*yaml.Node)) {
	switch n.Kind {
	case yaml.ScalarNode:
		fn(n)
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			walkValues(n.Content[i], fn)
		}
	case yaml.SequenceNode, yaml.DocumentNode:
		for _, c := range n.Content {
			walkValues(c, fn)
		}
	}
}

// buildFunc sets Spec.Build: substitute, decode a fresh resource, validate.
func (p *parser) buildFunc(it *item) {
	file, where, label, fields, newRes := p.file, p.where, it.label, it.fields, it.newRes
	it.spec.Build = func(lookup engine.Lookup) (engine.Resource, string, error) {
		n := cloneNode(fields)
		var subErr error
		// unknown are the fields holding a value that only the run will
		// tell (a check-only pass: engine.KnownAfterApply): Validate's
		// errors about them are ignored, as at parse time, and the kind
		// plans against the placeholder.
		unknown := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			walkValues(n.Content[i+1], func(s *yaml.Node) {
				if subErr != nil || !strings.Contains(s.Value, "${") {
					return
				}
				v, err := substitute(s.Value, lookup)
				if err != nil {
					subErr = err
					return
				}
				if v != s.Value {
					s.Value = v
					if s.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
						s.Tag = "" // let the resolved text pick its type (a number, say)
					}
				}
				if strings.Contains(v, engine.KnownAfterApply) {
					unknown[key] = true
				}
			})
		}
		if subErr != nil {
			return nil, "", fmt.Errorf("%s: %w", label, subErr)
		}
		bp := &parser{file: file, where: where}
		d := &decoder{lines: map[string]int{}, failed: map[string]bool{}, report: func(line int, field, msg string) {
			bp.errorf(line, label, field, "%s", msg)
		}}
		res := newRes()
		d.mapping(n, reflect.ValueOf(res).Elem(), "")
		for f := range unknown {
			d.failed[f] = true
		}
		bp.validate(res, d.lines, d.failed, &item{label: label, line: n.Line})
		if len(bp.errs) > 0 {
			bp.errs.sort()
			return nil, "", engine.Permanent(bp.errs)
		}
		return res, hashNode(n), nil
	}
}

func cloneNode(n *yaml.Node) *yaml.Node {
	c := *n
	if n.Content != nil {
		c.Content = make([]*yaml.Node, len(n.Content))
		for i, k := range n.Content {
			c.Content[i] = cloneNode(k)
		}
	}
	return &c
}

// hashNode is a stable digest of a node's kinds, tags and values (not its
// lines or comments, so moving a resource in the file changes nothing).
func hashNode(n *yaml.Node) string {
	h := sha256.New()
	var buf []byte
	writeNode(h, n, &buf)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func writeNode(h hash.Hash, n *yaml.Node, buf *[]byte) {
	b := (*buf)[:0]
	b = strconv.AppendInt(b, int64(n.Kind), 10)
	b = append(b, ':')
	b = append(b, n.ShortTag()...)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(len(n.Value)), 10)
	b = append(b, ':')
	b = append(b, n.Value...)
	b = append(b, ';')
	b = strconv.AppendInt(b, int64(len(n.Content)), 10)
	b = append(b, '{')
	h.Write(b)
	*buf = b
	for _, c := range n.Content {
		writeNode(h, c, buf)
	}
	h.Write([]byte{'}'})
}
