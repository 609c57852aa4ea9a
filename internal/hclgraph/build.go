package hclgraph

import (
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"go.yaml.in/yaml/v3"

	"kiln/internal/config"
)

// callValue is what an expression sees of a module: its outputs, per
// instance when the module block has count or for_each.
func (m *module) callValue(c *callBlock, rng hcl.Range) (cty.Value, hcl.Diagnostics) {
	if c.val != cty.NilVal {
		return c.val, nil
	}
	diags := m.instantiate(c, rng)
	if diags.HasErrors() {
		c.val = cty.DynamicVal
		return c.val, diags
	}
	outs := make([]cty.Value, len(c.children))
	for i, child := range c.children {
		v, d := child.outputValues()
		diags = append(diags, d...)
		outs[i] = v
	}
	switch c.mode {
	case byCount:
		c.val = tupleOf(outs)
	case byEach:
		vals := map[string]cty.Value{}
		for i, in := range c.insts {
			vals[in.key] = outs[i]
		}
		c.val = objectOf(vals)
	default:
		c.val = outs[0]
	}
	return c.val, diags
}

// instantiate expands a module block and reads one module per instance.
func (m *module) instantiate(c *callBlock, rng hcl.Range) hcl.Diagnostics {
	if c.expanded {
		return nil
	}
	c.expanded = true
	key := "module." + c.name
	if d := m.enter(key, rng); d != nil {
		return hcl.Diagnostics{d}
	}
	defer m.leave(key)
	what := fmt.Sprintf("module %q", c.name)
	mode, insts, diags := m.expand(c.block, what)
	if diags.HasErrors() {
		return diags
	}
	c.mode, c.insts = mode, insts
	dir := filepath.Join(m.dir, c.source)
	if depth := strings.Count(m.addr, "module."); depth >= maxModuleDepth {
		return append(diags, errAt(c.block.DefRange(), what+": modules nest more than 16 deep (does it include itself?)"))
	}
	for _, in := range insts {
		sc := &scopeInst{mode: mode, inst: in}
		inputs := map[string]cty.Value{}
		for name, a := range c.block.Body.Attributes {
			switch name {
			case "source", "count", "for_each", "depends_on":
				continue
			}
			v, d := m.eval(a.Expr, sc)
			diags = append(diags, d...)
			inputs[name] = v
		}
		for _, b := range c.block.Body.Blocks {
			diags = append(diags, errAt(b.TypeRange, fmt.Sprintf("%s: unexpected block %q (inputs are attributes)", what, b.Type)))
		}
		if diags.HasErrors() {
			return diags
		}
		child, d := m.l.module(dir, m.prefix+"module."+c.name+in.suffix, c, inputs)
		diags = append(diags, d...)
		if d.HasErrors() {
			return diags
		}
		child.root = m.root
		child.disp = m.disp + c.name + in.dashed() + "-"
		c.children = append(c.children, child)
	}
	return diags
}

const maxModuleDepth = 16

// outputValues evaluates the module's output blocks into an object.
func (m *module) outputValues() (cty.Value, hcl.Diagnostics) {
	outs, diags := m.outputList()
	vals := map[string]cty.Value{}
	for _, o := range outs {
		vals[o.Name] = o.Value
	}
	return objectOf(vals), diags
}

var outputSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "value", Required: true}, {Name: "description"}, {Name: "sensitive"}},
}

func (m *module) outputList() ([]Output, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	var outs []Output
	for _, b := range m.outputs {
		content, d := b.Body.Content(outputSchema)
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		key := "output." + b.Labels[0]
		if d := m.enter(key, b.DefRange); d != nil {
			diags = append(diags, d)
			continue
		}
		v, d := m.eval(content.Attributes["value"].Expr, nil)
		m.leave(key)
		diags = append(diags, d...)
		o := Output{Name: b.Labels[0], Value: v}
		if a := content.Attributes["sensitive"]; a != nil {
			s, d := a.Expr.Value(nil)
			diags = append(diags, d...)
			o.Sensitive = !d.HasErrors() && s.Type() == cty.Bool && s.True()
		}
		outs = append(outs, o)
	}
	return outs, diags
}

// build evaluates everything in the root module (and the modules it uses)
// and checks the result as a graph.
func (l *loader) build(root *module) (*Graph, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	name, d := root.eval(root.graph.Expr, nil)
	diags = append(diags, d...)
	gname := stringOf(name)
	if !d.HasErrors() && gname == "" {
		diags = append(diags, errAt(root.graph.Expr.Range(), "graph: want a non-empty string"))
	}
	var items []*yaml.Node
	diags = append(diags, root.emit(&items)...)
	outs, d := root.outputList()
	diags = append(diags, d...)
	if diags.HasErrors() {
		// The resources that evaluated are still checked, so every
		// problem shows at once; references to the others are not
		// reported again.
		if gname != "" {
			_, err := config.ParseNode(root.graph.Range.Filename, l.doc(root, gname, items), l.kinds, l.where)
			for _, d := range l.toDiags(err) {
				if !strings.Contains(d.Summary, "unknown resource") {
					diags = append(diags, d)
				}
			}
		}
		return nil, diags
	}
	g, err := config.ParseNode(root.graph.Range.Filename, l.doc(root, gname, items), l.kinds, l.where)
	if err != nil {
		return nil, l.toDiags(err)
	}
	for _, s := range g.Specs {
		if d, ok := l.display[s.ID()]; ok {
			// A new Name tag is a changed spec: the swap restarts it.
			s.Display, s.Hash = d, s.Hash+"\x00name="+d
		}
	}
	slices.Sort(l.dirs)
	return &Graph{Graph: g, Outputs: outs, Data: l.data, Files: l.files, Dirs: slices.Compact(l.dirs)}, nil
}

// doc is the graph in the YAML document's shape.
func (l *loader) doc(root *module, name string, items []*yaml.Node) *yaml.Node {
	doc := &yaml.Node{Kind: yaml.MappingNode, Line: l.at(root.graph.Range)}
	doc.Content = []*yaml.Node{
		l.scalar("!!str", "name", root.graph.NameRange), l.scalar("!!str", name, root.graph.Expr.Range()),
		l.scalar("!!str", "resources", root.graph.NameRange), {Kind: yaml.SequenceNode, Tag: "!!seq", Content: items, Line: l.at(root.graph.Range)},
	}
	if accts := l.accounts(root); accts != nil {
		doc.Content = append(doc.Content, l.scalar("!!str", "accounts", root.graph.NameRange), accts)
	}
	for _, a := range []*hcl.Attribute{root.prune, root.pruneLimit} {
		if a == nil {
			continue
		}
		v, d := root.eval(a.Expr, nil)
		if d.HasErrors() || !v.IsWhollyKnown() {
			continue // reported where it was evaluated first
		}
		doc.Content = append(doc.Content, l.scalar("!!str", a.Name, a.NameRange), l.node(v, a.Expr.Range()))
	}
	return doc
}

// emit appends a YAML resource node per resource instance of the module,
// then of the modules it uses; locals and data sources nobody reads are
// evaluated too, so their problems show.
func (m *module) emit(items *[]*yaml.Node) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, name := range sortedKeys(m.locals) {
		_, d := m.local(name, m.locals[name].NameRange)
		diags = append(diags, d...)
	}
	for _, db := range m.dataOrder {
		_, d := m.dataValue(db, db.block.DefRange())
		diags = append(diags, d...)
	}
	for _, rb := range m.resOrder {
		if d := m.resInstances(rb); d.HasErrors() {
			diags = append(diags, d...)
			continue
		}
		if rb.mode != single && len(rb.insts) > 0 && !perInstance(rb.block.Body) {
			// Every instance has the same fields: evaluated and
			// checked once, the others named after them.
			n, d := m.resource(rb, rb.insts[0])
			diags = append(diags, d...)
			if !d.HasErrors() {
				*items = append(*items, m.shared(rb, n))
			}
			continue
		}
		for _, in := range rb.insts {
			n, d := m.resource(rb, in)
			diags = append(diags, d...)
			if !d.HasErrors() {
				*items = append(*items, n)
			}
		}
	}
	for _, c := range m.callOrder {
		diags = append(diags, m.instantiate(c, c.block.DefRange())...)
		for _, child := range c.children {
			diags = append(diags, child.emit(items)...)
			if _, d := child.outputList(); d.HasErrors() {
				diags = append(diags, d...)
			}
		}
	}
	return diags
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// perInstance reports whether an expression of the block's body (nested
// blocks included) reads count or each, so that its instances differ by
// more than their names.
func perInstance(b *hclsyntax.Body) bool {
	for name, a := range b.Attributes {
		if name == "count" || name == "for_each" {
			continue
		}
		for _, t := range a.Expr.Variables() {
			if r := t.RootName(); r == "count" || r == "each" {
				return true
			}
		}
	}
	for _, blk := range b.Blocks {
		if perInstance(blk.Body) {
			return true
		}
	}
	return false
}

// shared adds to n, the node of rb's first instance, the names of the
// others (config makes them from it: see config's clones), and records
// their display names.
func (m *module) shared(rb *resBlock, n *yaml.Node) *yaml.Node {
	l := m.l
	b := rb.block
	first := m.id(rb, rb.insts[0])
	named, fixed := l.display[first]
	fixed = fixed && b.Body.Attributes["name"] != nil // name = "..." names them all
	seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: l.at(b.LabelRanges[1]), Content: make([]*yaml.Node, 0, len(rb.insts)-1)}
	line := l.at(b.LabelRanges[1])
	for _, in := range rb.insts[1:] {
		seq.Content = append(seq.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: m.prefix + rb.label + in.suffix, Line: line})
		disp := m.disp + rb.label + in.dashed()
		if fixed {
			disp = named
		}
		if disp != rb.label {
			l.display[m.id(rb, in)] = disp
		}
	}
	n.Content = append(n.Content, l.scalar("!!str", "instances", b.LabelRanges[1]), seq)
	return n
}

// reserved are a resource block's attributes that are not its kind's fields.
var reserved = map[string]bool{"count": true, "for_each": true, "depends_on": true, "notified_by": true}

// resource makes the YAML node of one resource instance: kind, name,
// depends_on, notified_by, meta and the kind's fields, in source order.
func (m *module) resource(rb *resBlock, in instance) (*yaml.Node, hcl.Diagnostics) {
	l := m.l
	b := rb.block
	sc := &scopeInst{mode: rb.mode, inst: in}
	var diags hcl.Diagnostics
	label := fmt.Sprintf("%s %q", rb.kind, rb.label)
	disp := m.disp + rb.label + in.dashed()
	defer func() {
		if disp != rb.label {
			l.display[m.id(rb, in)] = disp
		}
	}()
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: l.at(b.DefRange())}
	add := func(k *yaml.Node, v *yaml.Node) { n.Content = append(n.Content, k, v) }
	add(l.scalar("!!str", "kind", b.TypeRange), l.scalar("!!str", rb.kind, b.LabelRanges[0]))
	add(l.scalar("!!str", "name", b.LabelRanges[1]), l.scalar("!!str", m.prefix+rb.label+in.suffix, b.LabelRanges[1]))
	if m.addr != "" {
		add(l.scalar("!!str", "module", b.LabelRanges[1]), l.scalar("!!str", m.addr, b.LabelRanges[1]))
	}
	for _, field := range []string{"depends_on", "notified_by"} {
		a := b.Body.Attributes[field]
		if a == nil {
			continue
		}
		ids, d := m.edges(a, label)
		diags = append(diags, d...)
		seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: l.at(a.Expr.Range())}
		for _, id := range ids {
			seq.Content = append(seq.Content, l.scalar("!!str", id.id, id.rng))
		}
		add(l.scalar("!!str", field, a.NameRange), seq)
	}
	attrs := make([]*hclsyntax.Attribute, 0, len(b.Body.Attributes))
	for name, a := range b.Body.Attributes {
		switch {
		case reserved[name]:
			continue
		case name == "kind" || name == "meta":
			diags = append(diags, errAt(a.NameRange, fmt.Sprintf("%s: %s is not a field here (the block's label is the kind; meta is a block)", label, name)))
			continue
		case name == "name":
			v, d := m.eval(a.Expr, sc)
			diags = append(diags, d...)
			switch {
			case d.HasErrors():
			case v.IsNull() || !v.IsKnown() || v.Type() != cty.String || v.AsString() == "" || config.HasRef(v.AsString()):
				diags = append(diags, errAt(a.Expr.Range(), fmt.Sprintf("%s: name: want a non-empty string known before the run (the AWS Name tag)", label)))
			default:
				disp = v.AsString()
			}
			continue
		}
		attrs = append(attrs, a)
	}
	slices.SortFunc(attrs, func(x, y *hclsyntax.Attribute) int { return x.SrcRange.Start.Byte - y.SrcRange.Start.Byte })
	for _, a := range attrs {
		v, d := m.eval(a.Expr, sc)
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		if v.ContainsMarked() {
			diags = append(diags, errAt(a.Expr.Range(), fmt.Sprintf("%s: %s: a secret (SecureString) value cannot be a field: kiln would show it", label, a.Name)))
			continue
		}
		add(l.scalar("!!str", a.Name, a.NameRange), l.node(v, a.Expr.Range()))
	}
	seen := map[string]int{}
	for _, blk := range b.Body.Blocks {
		seen[blk.Type]++
	}
	lists := map[string]*yaml.Node{}
	for _, blk := range b.Body.Blocks {
		if len(blk.Labels) > 0 {
			diags = append(diags, errAt(blk.LabelRanges[0], fmt.Sprintf("%s: block %s takes no labels", label, blk.Type)))
			continue
		}
		v, d := m.blockNode(blk, sc)
		diags = append(diags, d...)
		if seen[blk.Type] == 1 && !m.l.listField(rb.kind, blk.Type) {
			add(l.scalar("!!str", blk.Type, blk.TypeRange), v)
			continue
		}
		if blk.Type == "meta" {
			diags = append(diags, errAt(blk.TypeRange, label+": meta given twice"))
			continue
		}
		seq := lists[blk.Type]
		if seq == nil {
			seq = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: l.at(blk.TypeRange)}
			lists[blk.Type] = seq
			add(l.scalar("!!str", blk.Type, blk.TypeRange), seq)
		}
		seq.Content = append(seq.Content, v)
	}
	return n, diags
}

// blockNode is a nested block (meta { poll = "30s" }, base { ... }) as a
// mapping.
func (m *module) blockNode(b *hclsyntax.Block, sc *scopeInst) (*yaml.Node, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: m.l.at(b.DefRange())}
	attrs := make([]*hclsyntax.Attribute, 0, len(b.Body.Attributes))
	for _, a := range b.Body.Attributes {
		attrs = append(attrs, a)
	}
	slices.SortFunc(attrs, func(x, y *hclsyntax.Attribute) int { return x.SrcRange.Start.Byte - y.SrcRange.Start.Byte })
	for _, a := range attrs {
		v, d := m.eval(a.Expr, sc)
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		if v.ContainsMarked() {
			diags = append(diags, errAt(a.Expr.Range(), fmt.Sprintf("%s: a secret (SecureString) value cannot be a field: kiln would show it", a.Name)))
			continue
		}
		n.Content = append(n.Content, m.l.scalar("!!str", a.Name, a.NameRange), m.l.node(v, a.Expr.Range()))
	}
	for _, blk := range b.Body.Blocks {
		v, d := m.blockNode(blk, sc)
		diags = append(diags, d...)
		n.Content = append(n.Content, m.l.scalar("!!str", blk.Type, blk.TypeRange), v)
	}
	return n, diags
}

type idAt struct {
	id  string
	rng hcl.Range
}

// edges reads depends_on or notified_by: a list of resources
// (aws_ec2.web, aws_ec2.web[0], or the YAML form "aws:ec2/web"). A
// resource with count or for_each stands for all its instances.
func (m *module) edges(a *hclsyntax.Attribute, label string) ([]idAt, hcl.Diagnostics) {
	exprs, diags := hcl.ExprList(a.Expr)
	if diags.HasErrors() {
		return nil, hcl.Diagnostics{errAt(a.Expr.Range(), fmt.Sprintf("%s: %s: want a list of resources like [aws_ec2.web]", label, a.Name))}
	}
	var out []idAt
	for _, e := range exprs {
		rng := e.Range()
		if t, d := hcl.AbsTraversalForExpr(e); !d.HasErrors() {
			root := t.RootName()
			kind, ok := m.l.byRef[root]
			name, _ := attrAt(t, 1)
			if !ok || name == "" {
				diags = append(diags, errAt(rng, fmt.Sprintf("%s: %s: want a resource like aws_ec2.web, got %s", label, a.Name, traversalText(t))))
				continue
			}
			rb := m.res[root+"."+name]
			if rb == nil {
				diags = append(diags, errAt(rng, fmt.Sprintf("%s: %s: unknown resource %s.%s", label, a.Name, root, name)))
				continue
			}
			if d := m.resInstances(rb); d.HasErrors() {
				diags = append(diags, d...)
				continue
			}
			if len(t) > 2 {
				idx, ok := t[2].(hcl.TraverseIndex)
				if !ok {
					diags = append(diags, errAt(rng, fmt.Sprintf("%s: %s: want %s.%s or %s.%s[KEY]", label, a.Name, root, name, root, name)))
					continue
				}
				suffix := ""
				switch {
				case idx.Key.Type() == cty.Number:
					suffix = fmt.Sprintf("[%s]", idx.Key.AsBigFloat().Text('f', -1))
				case idx.Key.Type() == cty.String:
					suffix = fmt.Sprintf("[%q]", idx.Key.AsString())
				}
				found := false
				for _, in := range rb.insts {
					found = found || in.suffix == suffix
				}
				if !found {
					diags = append(diags, errAt(rng, fmt.Sprintf("%s: %s: %s.%s has no instance %s", label, a.Name, root, name, suffix)))
					continue
				}
				out = append(out, idAt{m.id(&resBlock{kind: kind, label: name}, instance{suffix: suffix}), rng})
				continue
			}
			for _, in := range rb.insts {
				out = append(out, idAt{m.id(rb, in), rng})
			}
			continue
		}
		v, d := m.eval(e, nil)
		if d.HasErrors() || v.Type() != cty.String || v.IsNull() {
			diags = append(diags, errAt(rng, fmt.Sprintf("%s: %s: want a resource like aws_ec2.web", label, a.Name)))
			continue
		}
		out = append(out, idAt{v.AsString(), rng})
	}
	return out, diags
}

// scalar makes a scalar node located at rng.
func (l *loader) scalar(tag, value string, rng hcl.Range) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value, Line: l.at(rng)}
}

// node turns an evaluated value into the YAML node the same value would
// be written as. A string holding a ${...} reference is left plain, so
// that once resolved its text may decode as a number or bool, as in YAML.
func (l *loader) node(v cty.Value, rng hcl.Range) *yaml.Node {
	line := l.at(rng)
	if v.IsNull() || !v.IsKnown() {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null", Line: line}
	}
	ty := v.Type()
	switch {
	case ty == cty.String:
		s := v.AsString()
		n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s, Line: line, Style: yaml.DoubleQuotedStyle}
		if config.HasRef(s) {
			n.Style = 0
		}
		return n
	case ty == cty.Number:
		f := v.AsBigFloat()
		if f.IsInt() {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: f.Text('f', -1), Line: line}
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: f.Text('g', -1), Line: line}
	case ty == cty.Bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: fmt.Sprint(v.True()), Line: line}
	case ty.IsListType() || ty.IsSetType() || ty.IsTupleType():
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: line}
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			n.Content = append(n.Content, l.node(e, rng))
		}
		return n
	case ty.IsMapType() || ty.IsObjectType():
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: line}
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			n.Content = append(n.Content, l.scalar("!!str", k.AsString(), rng), l.node(e, rng))
		}
		return n
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v.GoString(), Line: line}
}

// listField reports whether the kind's field name is a list, so that a
// single nested block of that name still makes a list of one.
func (l *loader) listField(kind, name string) bool {
	newRes, ok := l.kinds[kind]
	if !ok {
		return false
	}
	t := reflect.TypeOf(newRes())
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return false
	}
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "" {
			tag = strings.ToLower(f.Name)
		}
		if tag == name {
			return f.Type.Kind() == reflect.Slice
		}
	}
	return false
}

// accounts is the root's account blocks as YAML's accounts: mapping
// (account "prod" { role_arn = ... } → prod: {role_arn: ...}), nil when
// there are none. Their attributes are evaluated as the root's (var and
// local may be used); config checks the names and values.
func (l *loader) accounts(root *module) *yaml.Node {
	if len(root.accounts) == 0 {
		return nil
	}
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: l.at(root.accounts[0].DefRange)}
	for _, b := range root.accounts {
		attrs, _ := b.Body.JustAttributes()
		m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: l.at(b.DefRange)}
		for _, name := range sortedKeys(attrs) {
			a := attrs[name]
			v, d := root.eval(a.Expr, nil)
			if d.HasErrors() || !v.IsWhollyKnown() {
				continue
			}
			m.Content = append(m.Content, l.scalar("!!str", name, a.NameRange), l.node(v, a.Expr.Range()))
		}
		out.Content = append(out.Content, l.scalar("!!str", b.Labels[0], b.LabelRanges[0]), m)
	}
	return out
}
