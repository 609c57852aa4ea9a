package hclgraph

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

var variableSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "type"}, {Name: "default"}, {Name: "description"}, {Name: "sensitive"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "validation"}},
}

var validationSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "condition", Required: true}, {Name: "error_message", Required: true}},
}

// varDecl is a variable block.
type varDecl struct {
	name        string
	rng         hcl.Range
	typ         cty.Type
	def         cty.Value // cty.NilVal: no default (required)
	validations []*hcl.BodyContent
}

func decodeVariable(b *hcl.Block) (*varDecl, hcl.Diagnostics) {
	v := &varDecl{name: b.Labels[0], rng: b.DefRange, typ: cty.DynamicPseudoType}
	content, diags := b.Body.Content(variableSchema)
	if a := content.Attributes["type"]; a != nil {
		t, d := typeexpr.TypeConstraint(a.Expr)
		diags = append(diags, d...)
		if !d.HasErrors() {
			v.typ = t
		}
	}
	if a := content.Attributes["default"]; a != nil {
		val, d := a.Expr.Value(nil)
		diags = append(diags, d...)
		if !d.HasErrors() {
			cv, err := convert.Convert(val, v.typ)
			if err != nil {
				diags = append(diags, errAt(a.Expr.Range(), fmt.Sprintf("variable %q: default: %s", v.name, err)))
			}
			v.def = cv
		}
	}
	for _, vb := range content.Blocks {
		c, d := vb.Body.Content(validationSchema)
		diags = append(diags, d...)
		if !d.HasErrors() {
			v.validations = append(v.validations, c)
		}
	}
	return v, diags
}

// given is one value for a variable from outside the graph.
type given struct {
	val cty.Value
	raw string // from --var or the environment: parsed by the variable's type
	rng hcl.Range
	src string // how to name it in a message
}

// rootVars sets the root module's variables from the options, in
// Terraform's order: default < KILN_VAR_NAME < --var-file < --var.
func (m *module) rootVars(decls []*varDecl) hcl.Diagnostics {
	var diags hcl.Diagnostics
	byName := map[string]*varDecl{}
	for _, d := range decls {
		byName[d.name] = d
	}
	values := map[string]given{}
	for _, kv := range m.l.o.Env {
		k, v, ok := strings.Cut(kv, "=")
		if name, found := strings.CutPrefix(k, "KILN_VAR_"); ok && found && byName[name] != nil {
			values[name] = given{raw: v, src: "KILN_VAR_" + name}
		}
	}
	for _, path := range m.l.o.VarFiles {
		var f *hcl.File
		var d hcl.Diagnostics
		if strings.HasSuffix(path, ".json") {
			f, d = m.l.parser.ParseJSONFile(path)
		} else {
			f, d = m.l.parser.ParseHCLFile(path)
		}
		if d.HasErrors() {
			if _, err := os.Stat(path); err != nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: fmt.Sprintf("--var-file %s: %s", path, err)})
				continue
			}
			diags = append(diags, d...)
			continue
		}
		attrs, d := f.Body.JustAttributes()
		diags = append(diags, d...)
		names := make([]string, 0, len(attrs))
		for n := range attrs {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			a := attrs[n]
			if byName[n] == nil {
				diags = append(diags, errAt(a.NameRange, fmt.Sprintf("variable %q is not declared in the graph", n)))
				continue
			}
			val, d := a.Expr.Value(nil)
			diags = append(diags, d...)
			values[n] = given{val: val, rng: a.Expr.Range(), src: "--var-file " + path}
		}
	}
	for _, kv := range m.l.o.Vars {
		n, v, ok := strings.Cut(kv, "=")
		if !ok || n == "" {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: fmt.Sprintf("--var %q: want NAME=VALUE", kv)})
			continue
		}
		if byName[n] == nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: fmt.Sprintf("--var %s: variable %q is not declared in the graph", n, n)})
			continue
		}
		values[n] = given{raw: v, src: "--var " + n}
	}
	for _, d := range decls {
		g, ok := values[d.name]
		diags = append(diags, m.setVar(d, g, ok, fmt.Sprintf("set it with --var %s=VALUE, --var-file or KILN_VAR_%s", d.name, d.name))...)
	}
	return diags
}

// inputVars sets a module instance's variables from its block's inputs.
func (m *module) inputVars(decls []*varDecl, call *callBlock, inputs map[string]cty.Value) hcl.Diagnostics {
	var diags hcl.Diagnostics
	declared := map[string]bool{}
	for _, d := range decls {
		declared[d.name] = true
		v, ok := inputs[d.name]
		g := given{val: v, src: "module " + call.name}
		if a := call.block.Body.Attributes[d.name]; a != nil {
			g.rng = a.Expr.Range()
		}
		diags = append(diags, m.setVar(d, g, ok, fmt.Sprintf("set it in module %q at %s", call.name, short(call.block.DefRange())))...)
	}
	for n := range inputs {
		if !declared[n] {
			diags = append(diags, errAt(call.block.Body.Attributes[n].NameRange, fmt.Sprintf("module %q has no variable %q", call.name, n)))
		}
	}
	return diags
}

func (m *module) setVar(d *varDecl, g given, ok bool, how string) hcl.Diagnostics {
	val := d.def
	if ok {
		if g.raw != "" || g.val == cty.NilVal {
			v, diag := parseRaw(g.raw, d.typ)
			if diag != "" {
				return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: fmt.Sprintf("variable %q (from %s): %s", d.name, g.src, diag), Subject: rangePtr(d.rng)}}
			}
			val = v
		} else {
			v, err := convert.Convert(g.val, d.typ)
			if err != nil {
				r := g.rng
				if r.Filename == "" {
					r = d.rng
				}
				return hcl.Diagnostics{errAt(r, fmt.Sprintf("variable %q (from %s): want %s: %s", d.name, g.src, d.typ.FriendlyNameForConstraint(), err))}
			}
			val = v
		}
	}
	if val == cty.NilVal {
		return hcl.Diagnostics{errAt(d.rng, fmt.Sprintf("variable %q: no value given (%s)", d.name, how))}
	}
	m.vars[d.name] = val
	var diags hcl.Diagnostics
	for _, c := range d.validations {
		cond := c.Attributes["condition"]
		ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"var": cty.ObjectVal(map[string]cty.Value{d.name: val})}, Functions: m.funcs}
		ok, dg := cond.Expr.Value(ctx)
		diags = append(diags, dg...)
		if dg.HasErrors() {
			continue
		}
		if ok.Type() != cty.Bool || ok.IsNull() || !ok.IsKnown() {
			diags = append(diags, errAt(cond.Expr.Range(), fmt.Sprintf("variable %q: condition: want true or false", d.name)))
			continue
		}
		if ok.False() {
			msgV, dg := c.Attributes["error_message"].Expr.Value(ctx)
			msg := "invalid value"
			if !dg.HasErrors() && msgV.Type() == cty.String && !msgV.IsNull() {
				msg = msgV.AsString()
			}
			diags = append(diags, errAt(cond.Expr.Range(), fmt.Sprintf("variable %q: %s", d.name, msg)))
		}
	}
	return diags
}

// parseRaw reads a value given as text: as it is for a string (or an
// untyped variable), else as an HCL expression of the variable's type
// (Terraform's rule for -var).
func parseRaw(raw string, ty cty.Type) (cty.Value, string) {
	if ty == cty.String || ty == cty.DynamicPseudoType {
		return cty.StringVal(raw), ""
	}
	expr, diags := hclsyntax.ParseExpression([]byte(raw), "<value>", hcl.InitialPos)
	if diags.HasErrors() {
		return cty.NilVal, fmt.Sprintf("want %s, got %q", ty.FriendlyNameForConstraint(), raw)
	}
	v, diags := expr.Value(nil)
	if diags.HasErrors() {
		return cty.NilVal, fmt.Sprintf("want %s, got %q", ty.FriendlyNameForConstraint(), raw)
	}
	cv, err := convert.Convert(v, ty)
	if err != nil {
		return cty.NilVal, fmt.Sprintf("want %s, got %q", ty.FriendlyNameForConstraint(), raw)
	}
	return cv, ""
}

func rangePtr(r hcl.Range) *hcl.Range { return &r }
