package config

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

var durationType = reflect.TypeFor[time.Duration]()

// decoder decodes YAML nodes into a kind's struct strictly: every key must
// name a field (by its yaml tag, or the lowercased field name as yaml does),
// and every problem is reported with its line and dotted field path.
type decoder struct {
	report func(line int, field, msg string)
	n      int            // problems reported so far
	lines  map[string]int // field path -> line of its key
	// skip: top-level fields holding a reference that cannot be decoded
	// into their Go type before it is resolved.
	skip map[string]bool
	// failed: top-level fields that did not decode (Validate's view of
	// them would only repeat the problem).
	failed map[string]bool
}

// structFields maps YAML keys to field indexes of struct type t.
func structFields(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = i
	}
	return m
}

// mapping decodes mapping node n into the struct v (addressable).
func (d *decoder) mapping(n *yaml.Node, v reflect.Value, prefix string) {
	fields := structFields(v.Type())
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.problem(k.Line, prefix, "keys must be plain names")
			continue
		}
		path := prefix + k.Value
		if seen[k.Value] {
			d.problem(k.Line, path, "given twice")
			continue
		}
		seen[k.Value] = true
		idx, ok := fields[k.Value]
		if !ok {
			d.problem(k.Line, "", fmt.Sprintf("unknown field %q", path))
			continue
		}
		d.lines[path] = k.Line
		if prefix == "" && d.skip[k.Value] {
			continue
		}
		before := d.n
		d.value(val, v.Field(idx), path)
		if prefix == "" && d.n > before {
			d.failed[k.Value] = true
		}
	}
}

// value decodes n into v.
func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return
	}
	t := v.Type()
	switch {
	case t == durationType:
		if n.Kind != yaml.ScalarNode {
			d.problem(n.Line, path, "want a duration like \"10s\", got "+describe(n))
			return
		}
		dur, err := time.ParseDuration(n.Value)
		if err != nil {
			d.problem(n.Line, path, fmt.Sprintf("invalid duration %q (want e.g. \"10s\", \"5m\")", n.Value))
			return
		}
		if dur < 0 {
			d.problem(n.Line, path, fmt.Sprintf("negative duration %q", n.Value))
			return
		}
		v.SetInt(int64(dur))
		return
	case t.Kind() == reflect.Pointer && t.Elem() == durationType: // optional, 0 allowed
		p := reflect.New(durationType)
		d.value(n, p.Elem(), path)
		v.Set(p)
		return
	case t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.problem(n.Line, path, "want a mapping, got "+describe(n))
			return
		}
		p := reflect.New(t.Elem())
		d.mapping(n, p.Elem(), path+".")
		v.Set(p)
		return
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.problem(n.Line, path, "want a mapping, got "+describe(n))
			return
		}
		d.mapping(n, v, path+".")
		return
	case t.Kind() == reflect.Slice && (t.Elem().Kind() == reflect.Struct || t.Elem() == durationType):
		if n.Kind != yaml.SequenceNode {
			d.problem(n.Line, path, "want a list, got "+describe(n))
			return
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, e := range n.Content {
			d.value(e, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
		return
	}
	if err := n.Decode(v.Addr().Interface()); err != nil {
		d.problem(n.Line, path, fmt.Sprintf("want %s, got %s", typeName(t), describe(n)))
	}
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Pointer:
		return typeName(t.Elem())
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(typeName(t.Elem()), "a "), "an ") + "s"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	}
	return t.String()
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}

func (d *decoder) problem(line int, field, msg string) {
	d.n++
	d.report(line, field, msg)
}
