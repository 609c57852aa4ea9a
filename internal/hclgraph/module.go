package hclgraph

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// rootSchema is the block structure of a graph's (or a module's) files.
var rootSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "graph"}, {Name: "prune"}, {Name: "prune_limit"}},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "variable", LabelNames: []string{"name"}},
		{Type: "locals"},
		{Type: "resource", LabelNames: []string{"kind", "label"}},
		{Type: "data", LabelNames: []string{"kind", "name"}},
		{Type: "module", LabelNames: []string{"name"}},
		{Type: "output", LabelNames: []string{"name"}},
		{Type: "account", LabelNames: []string{"name"}},
	},
}

// module is one instance of a directory of .hcl files: the root graph, or
// one instance of a module block. Values are evaluated on demand and kept.
type module struct {
	l      *loader
	dir    string
	addr   string // "" for the root, else module.NAME, module.NAME[0], module.NAME["k"] (nested: dotted)
	prefix string // addr + "." (resource names start with it), or ""
	// disp starts the display names (AWS Name tags) of the module's
	// resources: "" for the root, "web-eu-" for module.web["eu"].
	disp string
	root string // the root module's directory

	graph *hcl.Attribute // root only
	// prune and prune_limit: the graph's ownership settings (root only),
	// checked by config as YAML's are.
	prune, pruneLimit *hcl.Attribute
	// accounts are the graph's account blocks (root only), checked by
	// config as YAML's accounts: are (build.go).
	accounts []*hcl.Block

	vars      map[string]cty.Value
	varObj    cty.Value
	locals    map[string]*hcl.Attribute
	localVals map[string]cty.Value
	res       map[string]*resBlock // by refName(kind) + "." + label
	resOrder  []*resBlock
	data      map[string]*dataBlock // by refName(kind) + "." + name
	dataOrder []*dataBlock
	calls     map[string]*callBlock
	callOrder []*callBlock
	outputs   []*hcl.Block
	funcs     map[string]function.Function

	busy  map[string]bool
	stack []string
}

// resBlock is a resource block and, once expanded, its instances.
type resBlock struct {
	kind, label string
	block       *hclsyntax.Block
	expanded    bool
	mode        expandMode
	insts       []instance
	val         cty.Value
}

type dataBlock struct {
	kind, name string
	block      *hclsyntax.Block
	done       bool
	val        cty.Value
}

type callBlock struct {
	name     string
	block    *hclsyntax.Block
	source   string
	expanded bool
	mode     expandMode
	insts    []instance
	children []*module
	val      cty.Value
}

type expandMode int

const (
	single expandMode = iota
	byCount
	byEach
)

// instance is one expansion of a block with count or for_each.
type instance struct {
	suffix string // "", "[0]" or `["key"]`
	index  int
	key    string
	value  cty.Value
}

// module reads the files of path as a module at addr, with inputs (nil
// for the root, whose variables come from the options).
func (l *loader) module(path, addr string, call *callBlock, inputs map[string]cty.Value) (*module, hcl.Diagnostics) {
	files, diags := l.parseFiles(path)
	if diags.HasErrors() {
		return nil, diags
	}
	l.collectAttrs(files)
	dir := path
	if !strings.HasSuffix(path, ".hcl") {
		dir = path
	} else {
		dir = filepath.Dir(path)
	}
	m := &module{
		l: l, dir: dir, addr: addr,
		vars: map[string]cty.Value{}, locals: map[string]*hcl.Attribute{}, localVals: map[string]cty.Value{},
		res: map[string]*resBlock{}, data: map[string]*dataBlock{}, calls: map[string]*callBlock{},
		busy: map[string]bool{},
	}
	if addr != "" {
		m.prefix = addr + "."
	}
	m.funcs = functions(dir)
	var decls []*varDecl
	for _, f := range files {
		content, d := f.Body.Content(rootSchema)
		diags = append(diags, d...)
		if a := content.Attributes["graph"]; a != nil {
			switch {
			case addr != "":
				diags = append(diags, errAt(a.NameRange, "graph is set by the root graph, not in a module"))
			case m.graph != nil:
				diags = append(diags, errAt(a.NameRange, fmt.Sprintf("graph given twice (first at %s)", short(m.graph.NameRange))))
			default:
				m.graph = a
			}
		}
		for _, a := range []*hcl.Attribute{content.Attributes["prune"], content.Attributes["prune_limit"]} {
			switch {
			case a == nil:
			case addr != "":
				diags = append(diags, errAt(a.NameRange, a.Name+" is set by the root graph, not in a module"))
			case a.Name == "prune":
				m.prune = a
			default:
				m.pruneLimit = a
			}
		}
		for _, b := range content.Blocks {
			sb, ok := b.Body.(*hclsyntax.Body)
			if !ok {
				continue
			}
			syn := &hclsyntax.Block{Type: b.Type, Labels: b.Labels, Body: sb, TypeRange: b.TypeRange, LabelRanges: b.LabelRanges}
			diags = append(diags, m.declare(b, syn, &decls)...)
		}
	}
	if addr == "" && m.graph == nil && !diags.HasErrors() {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: `no graph name: add graph = "NAME" to one file`,
			Subject: &hcl.Range{Filename: files[0].Body.MissingItemRange().Filename, Start: hcl.InitialPos, End: hcl.InitialPos}})
	}
	if diags.HasErrors() {
		return nil, diags
	}
	if addr == "" {
		m.root = dir
		l.rootDir = dir
		diags = append(diags, m.rootVars(decls)...)
	} else {
		diags = append(diags, m.inputVars(decls, call, inputs)...)
	}
	m.varObj = objectOf(m.vars)
	return m, diags
}

func (m *module) declare(b *hcl.Block, syn *hclsyntax.Block, decls *[]*varDecl) hcl.Diagnostics {
	var diags hcl.Diagnostics
	dup := func(what string, first hcl.Range) {
		diags = append(diags, errAt(b.DefRange, fmt.Sprintf("%s given twice (first at %s)", what, short(first))))
	}
	switch b.Type {
	case "account":
		if m.addr != "" {
			diags = append(diags, errAt(b.DefRange, "accounts are declared by the root graph, not in a module"))
			return diags
		}
		for _, o := range m.accounts {
			if o.Labels[0] == b.Labels[0] {
				dup(fmt.Sprintf("account %q", b.Labels[0]), o.DefRange)
				return diags
			}
		}
		m.accounts = append(m.accounts, b)
	case "variable":
		v, d := decodeVariable(b)
		diags = append(diags, d...)
		for _, o := range *decls {
			if o.name == v.name {
				dup(fmt.Sprintf("variable %q", v.name), o.rng)
				return diags
			}
		}
		*decls = append(*decls, v)
	case "locals":
		attrs, d := b.Body.JustAttributes()
		diags = append(diags, d...)
		for name, a := range attrs {
			if o := m.locals[name]; o != nil {
				diags = append(diags, errAt(a.NameRange, fmt.Sprintf("local.%s given twice (first at %s)", name, short(o.NameRange))))
				continue
			}
			m.locals[name] = a
		}
	case "resource":
		kind := b.Labels[0]
		if k, ok := m.l.byRef[kind]; ok {
			kind = k
		}
		if _, ok := m.l.kinds[kind]; !ok {
			diags = append(diags, errAt(b.LabelRanges[0], fmt.Sprintf("unknown kind %q (known: %s)", b.Labels[0], strings.Join(m.l.knownKinds(), ", "))))
			return diags
		}
		if d := checkLabel(b.Labels[1], b.LabelRanges[1]); d != nil {
			return append(diags, d)
		}
		key := refName(kind) + "." + b.Labels[1]
		if o := m.res[key]; o != nil {
			dup(fmt.Sprintf("resource %s %q", kind, b.Labels[1]), o.block.DefRange())
			return diags
		}
		rb := &resBlock{kind: kind, label: b.Labels[1], block: syn}
		m.res[key] = rb
		m.resOrder = append(m.resOrder, rb)
	case "data":
		kind := b.Labels[0]
		switch kind {
		case "file", "aws:ami", "aws:ssm_parameter":
		case "aws_ami":
			kind = "aws:ami"
		case "aws_ssm_parameter":
			kind = "aws:ssm_parameter"
		default:
			diags = append(diags, errAt(b.LabelRanges[0], fmt.Sprintf("unknown data source kind %q (known: aws:ami, aws:ssm_parameter, file)", kind)))
			return diags
		}
		key := refName(kind) + "." + b.Labels[1]
		if o := m.data[key]; o != nil {
			dup(fmt.Sprintf("data %s %q", kind, b.Labels[1]), o.block.DefRange())
			return diags
		}
		db := &dataBlock{kind: kind, name: b.Labels[1], block: syn}
		m.data[key] = db
		m.dataOrder = append(m.dataOrder, db)
	case "module":
		if o := m.calls[b.Labels[0]]; o != nil {
			dup(fmt.Sprintf("module %q", b.Labels[0]), o.block.DefRange())
			return diags
		}
		if d := checkLabel(b.Labels[0], b.LabelRanges[0]); d != nil {
			return append(diags, d)
		}
		c := &callBlock{name: b.Labels[0], block: syn}
		a := syn.Body.Attributes["source"]
		if a == nil {
			return append(diags, errAt(b.DefRange, fmt.Sprintf("module %q: source is required (a local directory, ./modules/NAME)", c.name)))
		}
		v, d := a.Expr.Value(nil)
		if d.HasErrors() || v.Type() != cty.String || v.IsNull() {
			return append(diags, errAt(a.Expr.Range(), "source: want a literal path like \"./modules/service\""))
		}
		c.source = v.AsString()
		if !strings.HasPrefix(c.source, "./") && !strings.HasPrefix(c.source, "../") {
			return append(diags, errAt(a.Expr.Range(), fmt.Sprintf("source %q: only local paths (./ or ../) are supported", c.source)))
		}
		m.calls[c.name] = c
		m.callOrder = append(m.callOrder, c)
	case "output":
		for _, o := range m.outputs {
			if o.Labels[0] == b.Labels[0] {
				dup(fmt.Sprintf("output %q", b.Labels[0]), o.DefRange)
				return diags
			}
		}
		m.outputs = append(m.outputs, b)
	}
	return diags
}

// checkLabel refuses labels that cannot be part of a resource id.
func checkLabel(s string, rng hcl.Range) *hcl.Diagnostic {
	if s == "" || strings.ContainsAny(s, "/${}[]\" \t\n") {
		return errAt(rng, fmt.Sprintf("label %q: want letters, digits, '-' and '_'", s))
	}
	return nil
}

func (l *loader) knownKinds() []string {
	var out []string
	for k := range l.kinds {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// enter marks key as being evaluated; re-entering it is a cycle.
func (m *module) enter(key string, rng hcl.Range) *hcl.Diagnostic {
	if m.busy[key] {
		i := slices.Index(m.stack, key)
		path := append(append([]string{}, m.stack[i:]...), key)
		return errAt(rng, "cycle through expressions: "+strings.Join(path, " -> "))
	}
	m.busy[key] = true
	m.stack = append(m.stack, key)
	return nil
}

func (m *module) leave(key string) {
	delete(m.busy, key)
	m.stack = m.stack[:len(m.stack)-1]
}

// eval evaluates expr in the module's scope, for instance in (nil: the
// block has neither count nor for_each).
func (m *module) eval(expr hcl.Expression, in *scopeInst) (cty.Value, hcl.Diagnostics) {
	ctx, diags := m.ctx(expr, in)
	if diags.HasErrors() {
		return cty.DynamicVal, diags
	}
	v, d := expr.Value(ctx)
	return v, append(diags, d...)
}

// scopeInst is what count and each are while a block's instance is
// evaluated.
type scopeInst struct {
	mode expandMode
	inst instance
}

// ctx builds the evaluation context expr needs, evaluating (once) the
// locals, data sources, modules and resource expansions it refers to.
func (m *module) ctx(expr hcl.Expression, in *scopeInst) (*hcl.EvalContext, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	vars := map[string]cty.Value{}
	locals := map[string]cty.Value{}
	data := map[string]map[string]cty.Value{}
	res := map[string]map[string]cty.Value{}
	mods := map[string]cty.Value{}
	for _, t := range expr.Variables() {
		root := t.RootName()
		second, _ := attrAt(t, 1)
		switch root {
		case "var":
			vars["var"] = m.varObj
			if second != "" {
				if _, ok := m.vars[second]; !ok {
					diags = append(diags, errAt(t.SourceRange(), fmt.Sprintf("unknown variable var.%s (declare it with a variable block)", second)))
				}
			}
		case "local":
			if second == "" {
				diags = append(diags, errAt(t.SourceRange(), "want local.NAME"))
				continue
			}
			v, d := m.local(second, t.SourceRange())
			diags = append(diags, d...)
			locals[second] = v
		case "count":
			if in == nil || in.mode != byCount {
				diags = append(diags, errAt(t.SourceRange(), "count.index is only known in a block that sets count"))
				continue
			}
			vars["count"] = cty.ObjectVal(map[string]cty.Value{"index": cty.NumberIntVal(int64(in.inst.index))})
		case "each":
			if in == nil || in.mode != byEach {
				diags = append(diags, errAt(t.SourceRange(), "each.key and each.value are only known in a block that sets for_each"))
				continue
			}
			vars["each"] = cty.ObjectVal(map[string]cty.Value{"key": cty.StringVal(in.inst.key), "value": in.inst.value})
		case "path":
			vars["path"] = cty.ObjectVal(map[string]cty.Value{"module": cty.StringVal(m.dir), "root": cty.StringVal(m.l.rootDir)})
		case "data":
			third, _ := attrAt(t, 2)
			if second == "" || third == "" {
				diags = append(diags, errAt(t.SourceRange(), "want data.KIND.NAME"))
				continue
			}
			db := m.data[second+"."+third]
			if db == nil {
				diags = append(diags, errAt(t.SourceRange(), fmt.Sprintf("unknown data source data.%s.%s", second, third)))
				continue
			}
			v, d := m.dataValue(db, t.SourceRange())
			diags = append(diags, d...)
			if data[second] == nil {
				data[second] = map[string]cty.Value{}
			}
			data[second][third] = v
		case "module":
			c := m.calls[second]
			if c == nil {
				diags = append(diags, errAt(t.SourceRange(), fmt.Sprintf("unknown module module.%s", second)))
				continue
			}
			v, d := m.callValue(c, t.SourceRange())
			diags = append(diags, d...)
			mods[second] = v
		default:
			kind, ok := m.l.byRef[root]
			if !ok {
				continue // hcl reports an unknown variable
			}
			if second == "" {
				diags = append(diags, errAt(t.SourceRange(), fmt.Sprintf("want %s.LABEL", root)))
				continue
			}
			rb := m.res[root+"."+second]
			if rb == nil {
				diags = append(diags, errAt(t.SourceRange(), fmt.Sprintf("unknown resource %s.%s (%s %q is not in this module)", root, second, kind, second)))
				continue
			}
			v, d := m.resValue(rb, t.SourceRange())
			diags = append(diags, d...)
			if res[root] == nil {
				res[root] = map[string]cty.Value{}
			}
			res[root][second] = v
		}
	}
	if len(locals) > 0 {
		vars["local"] = cty.ObjectVal(locals)
	}
	for k, v := range data {
		data := vars["data"]
		inner := map[string]cty.Value{}
		if data != cty.NilVal {
			inner = data.AsValueMap()
		}
		inner[k] = cty.ObjectVal(v)
		vars["data"] = cty.ObjectVal(inner)
	}
	if len(mods) > 0 {
		vars["module"] = cty.ObjectVal(mods)
	}
	for k, v := range res {
		vars[k] = cty.ObjectVal(v)
	}
	return &hcl.EvalContext{Variables: vars, Functions: m.funcs}, diags
}

func attrAt(t hcl.Traversal, i int) (string, bool) {
	if len(t) <= i {
		return "", false
	}
	switch s := t[i].(type) {
	case hcl.TraverseAttr:
		return s.Name, true
	case hcl.TraverseRoot:
		return s.Name, true
	case hcl.TraverseIndex: // aws_route53_zone["shop.example"]: a label with a dot
		if i == 1 && s.Key.Type() == cty.String && !s.Key.IsNull() {
			return s.Key.AsString(), true
		}
	}
	return "", false
}

func (m *module) local(name string, rng hcl.Range) (cty.Value, hcl.Diagnostics) {
	if v, ok := m.localVals[name]; ok {
		return v, nil
	}
	a := m.locals[name]
	if a == nil {
		return cty.DynamicVal, hcl.Diagnostics{errAt(rng, fmt.Sprintf("unknown local value local.%s", name))}
	}
	key := "local." + name
	if d := m.enter(key, rng); d != nil {
		return cty.DynamicVal, hcl.Diagnostics{d}
	}
	v, diags := m.eval(a.Expr, nil)
	m.leave(key)
	if diags.HasErrors() {
		v = cty.DynamicVal
	}
	m.localVals[name] = v
	return v, diags
}

// expand evaluates a block's count or for_each. Their values must be known
// without running anything: an expression that reads a resource is an
// error naming it.
func (m *module) expand(b *hclsyntax.Block, what string) (expandMode, []instance, hcl.Diagnostics) {
	count, each := b.Body.Attributes["count"], b.Body.Attributes["for_each"]
	switch {
	case count != nil && each != nil:
		return single, nil, hcl.Diagnostics{errAt(each.NameRange, what+": count and for_each cannot both be set")}
	case count == nil && each == nil:
		return single, []instance{{}}, nil
	}
	a := count
	if a == nil {
		a = each
	}
	key := what + "." + a.Name
	if d := m.enter(key, a.Expr.Range()); d != nil {
		return single, nil, hcl.Diagnostics{d}
	}
	defer m.leave(key)
	for _, t := range a.Expr.Variables() {
		if _, ok := m.l.byRef[t.RootName()]; ok {
			return single, nil, hcl.Diagnostics{errAt(t.SourceRange(), fmt.Sprintf("%s: %s must be known without running anything, and %s is a resource's output", what, a.Name, traversalText(t)))}
		}
	}
	v, diags := m.eval(a.Expr, nil)
	if diags.HasErrors() {
		return single, nil, diags
	}
	bad := func(msg string) (expandMode, []instance, hcl.Diagnostics) {
		return single, nil, append(diags, errAt(a.Expr.Range(), what+": "+a.Name+": "+msg))
	}
	if !v.IsWhollyKnown() {
		return bad("must be known without running anything")
	}
	if v.ContainsMarked() {
		return bad("cannot be built from a secret (SecureString) value")
	}
	if v.IsNull() {
		return bad("must not be null")
	}
	if a == count {
		if !v.Type().Equals(cty.Number) {
			return bad("want a whole number, got " + v.Type().FriendlyName())
		}
		n, acc := v.AsBigFloat().Int64()
		if acc != 0 || n < 0 {
			return bad(fmt.Sprintf("want a whole number 0 or more, got %s", v.AsBigFloat().Text('g', -1)))
		}
		insts := make([]instance, n)
		for i := range insts {
			insts[i] = instance{suffix: "[" + strconv.Itoa(i) + "]", index: i}
		}
		return byCount, insts, diags
	}
	ty := v.Type()
	var insts []instance
	switch {
	case ty.IsSetType():
		if !ty.ElementType().Equals(cty.String) {
			return bad("a set must hold strings, got " + ty.FriendlyName())
		}
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			insts = append(insts, instance{key: e.AsString(), value: e})
		}
	case ty.IsMapType() || ty.IsObjectType():
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			insts = append(insts, instance{key: k.AsString(), value: e})
		}
	default:
		return bad("want a map, or a set of strings (toset(...)), got " + ty.FriendlyName())
	}
	for i := range insts {
		k := insts[i].key
		if k == "" || strings.ContainsAny(k, "/${}\"\\ \t\n") {
			return bad(fmt.Sprintf("key %q: keys must be known without running anything, and hold no spaces, '/', '\"', '$' or braces", k))
		}
		insts[i].suffix = fmt.Sprintf("[%q]", k)
	}
	return byEach, insts, diags
}

func traversalText(t hcl.Traversal) string {
	var b strings.Builder
	for _, s := range t {
		switch s := s.(type) {
		case hcl.TraverseRoot:
			b.WriteString(s.Name)
		case hcl.TraverseAttr:
			b.WriteString("." + s.Name)
		case hcl.TraverseIndex:
			b.WriteString("[...]")
		}
	}
	return b.String()
}

func (m *module) resInstances(rb *resBlock) hcl.Diagnostics {
	if rb.expanded {
		return nil
	}
	mode, insts, diags := m.expand(rb.block, fmt.Sprintf("%s %q", rb.kind, rb.label))
	rb.expanded, rb.mode, rb.insts = true, mode, insts
	return diags
}

// dashed is the instance's index or key as a display name's tail: "",
// "-0" or "-eu".
func (in instance) dashed() string {
	switch {
	case in.suffix == "":
		return ""
	case strings.HasPrefix(in.suffix, `["`):
		return "-" + in.key
	}
	return "-" + strconv.Itoa(in.index)
}

// id is the resource id of rb's instance.
func (m *module) id(rb *resBlock, in instance) string {
	if m.addr != "" {
		return m.addr + "." + rb.kind + "/" + rb.label + in.suffix
	}
	return rb.kind + "/" + rb.label + in.suffix
}

// resValue is what an expression sees of a resource: an object per
// instance whose attributes are references to its outputs.
func (m *module) resValue(rb *resBlock, rng hcl.Range) (cty.Value, hcl.Diagnostics) {
	if rb.val != cty.NilVal {
		return rb.val, nil
	}
	if diags := m.resInstances(rb); diags.HasErrors() {
		return cty.DynamicVal, diags
	}
	obj := func(in instance) cty.Value {
		id := m.id(rb, in)
		attrs := make(map[string]cty.Value, len(m.l.attrs))
		for _, a := range m.l.attrs {
			attrs[a] = cty.StringVal("${" + id + "." + a + "}")
		}
		return objectOf(attrs)
	}
	switch rb.mode {
	case byCount:
		vals := make([]cty.Value, len(rb.insts))
		for i, in := range rb.insts {
			vals[i] = obj(in)
		}
		rb.val = tupleOf(vals)
	case byEach:
		vals := make(map[string]cty.Value, len(rb.insts))
		for _, in := range rb.insts {
			vals[in.key] = obj(in)
		}
		rb.val = objectOf(vals)
	default:
		rb.val = obj(rb.insts[0])
	}
	return rb.val, nil
}

func objectOf(m map[string]cty.Value) cty.Value {
	if len(m) == 0 {
		return cty.EmptyObjectVal
	}
	return cty.ObjectVal(m)
}

func tupleOf(vs []cty.Value) cty.Value {
	if len(vs) == 0 {
		return cty.EmptyTupleVal
	}
	return cty.TupleVal(vs)
}

func errAt(rng hcl.Range, msg string) *hcl.Diagnostic {
	r := rng
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: msg, Subject: &r}
}

func short(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}
