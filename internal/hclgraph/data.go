package hclgraph

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"kiln/internal/engine"
)

// dataValue reads a data source (once per evaluation) and returns its
// attributes as an object of strings.
func (m *module) dataValue(db *dataBlock, rng hcl.Range) (cty.Value, hcl.Diagnostics) {
	if db.done {
		return db.val, nil
	}
	key := "data." + refName(db.kind) + "." + db.name
	if d := m.enter(key, rng); d != nil {
		return cty.DynamicVal, hcl.Diagnostics{d}
	}
	defer m.leave(key)
	db.done, db.val = true, cty.DynamicVal
	what := fmt.Sprintf("data %s %q", db.kind, db.name)
	var diags hcl.Diagnostics
	args := map[string]string{}
	for name, a := range db.block.Body.Attributes {
		if name == "count" || name == "for_each" || name == "depends_on" {
			diags = append(diags, errAt(a.NameRange, what+": "+name+" is not supported on data sources"))
			continue
		}
		v, d := m.eval(a.Expr, nil)
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		if v.ContainsMarked() {
			diags = append(diags, errAt(a.Expr.Range(), fmt.Sprintf("%s: %s: a secret value cannot be an argument", what, name)))
			continue
		}
		s, err := convert.Convert(v, cty.String)
		if err != nil || s.IsNull() {
			diags = append(diags, errAt(a.Expr.Range(), fmt.Sprintf("%s: %s: want a string, number or bool", what, name)))
			continue
		}
		if strings.Contains(s.AsString(), "${") {
			diags = append(diags, errAt(a.Expr.Range(), fmt.Sprintf("%s: %s must be known without running anything (it reads a resource's output)", what, name)))
			continue
		}
		args[name] = s.AsString()
	}
	var meta engine.Meta
	for _, b := range db.block.Body.Blocks {
		if b.Type != "meta" {
			diags = append(diags, errAt(b.TypeRange, fmt.Sprintf("%s: unknown block %q (want meta)", what, b.Type)))
			continue
		}
		meta, diags = m.dataMeta(b.Body.Attributes, what, diags)
	}
	if diags.HasErrors() {
		return cty.DynamicVal, diags
	}
	attrs, secret, err := m.readData(db.kind, args)
	if err != nil {
		return cty.DynamicVal, append(diags, errAt(db.block.DefRange(), fmt.Sprintf("%s: %s", what, err)))
	}
	vals := make(map[string]cty.Value, len(attrs))
	for k, v := range attrs {
		vals[k] = cty.StringVal(v)
		if slices.Contains(secret, k) {
			vals[k] = vals[k].Mark(secretMark)
		}
	}
	db.val = objectOf(vals)
	m.l.data = append(m.l.data, DataValue{Addr: m.prefix + "data." + refName(db.kind) + "." + db.name, Kind: db.kind, Args: args, Attrs: attrs, Meta: meta, dir: m.dir})
	return db.val, diags
}

// secretMark marks a value that must never be shown (SecureString).
const secretMark = "secret"

// dataMeta reads a data source's meta block: poll, how often it is re-read.
func (m *module) dataMeta(attrs hclsyntax.Attributes, what string, diags hcl.Diagnostics) (engine.Meta, hcl.Diagnostics) {
	var meta engine.Meta
	for name, a := range attrs {
		if name != "poll" {
			diags = append(diags, errAt(a.NameRange, fmt.Sprintf("%s: meta: unknown attribute %q (want poll)", what, name)))
			continue
		}
		v, d := m.eval(a.Expr, nil)
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		dur, err := time.ParseDuration(stringOf(v))
		if err != nil || dur <= 0 {
			diags = append(diags, errAt(a.Expr.Range(), fmt.Sprintf("%s: meta.poll: want a duration like \"5m\"", what)))
			continue
		}
		meta.Poll = dur
	}
	return meta, diags
}

func stringOf(v cty.Value) string {
	s, err := convert.Convert(v, cty.String)
	if err != nil || s.IsNull() || !s.IsKnown() {
		return ""
	}
	return s.AsString()
}

// readData reads one data source: file here, the AWS kinds through the
// options' reader.
func (m *module) readData(kind string, args map[string]string) (map[string]string, []string, error) {
	return readData(m.l.o, m.dir, kind, args)
}

func readData(o Options, dir, kind string, args map[string]string) (map[string]string, []string, error) {
	if kind == "file" {
		p, ok := args["path"]
		if !ok || len(args) != 1 {
			return nil, nil, fmt.Errorf("want exactly one argument, path")
		}
		data, err := os.ReadFile(resolvePath(dir, p))
		if err != nil {
			return nil, nil, fmt.Errorf("read file: %w", err)
		}
		return map[string]string{"content": string(data), "path": p}, nil, nil
	}
	if o.Data == nil {
		return nil, nil, fmt.Errorf("no reader for data sources of kind %s here", kind)
	}
	return o.Data.ReadData(o.Ctx, kind, args)
}
