package hclgraph

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"go.yaml.in/yaml/v3"
)

// Convert writes the YAML graph data (the contents of filename) as HCL in
// canonical form: the same resources, fields and edges, with each
// ${kind/name.key} reference written as an HCL reference. The YAML is not
// checked beyond its shape: check it with config.Parse first.
func Convert(filename string, data []byte) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("convert %s: %w", filename, err)
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("convert %s: want a mapping with name: and resources:", filename)
	}
	var b strings.Builder
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "name":
			fmt.Fprintf(&b, "graph = %s\n", quote(v.Value))
		case "resources":
			for _, r := range v.Content {
				if err := convertResource(&b, r); err != nil {
					return nil, fmt.Errorf("convert %s:%d: %w", filename, r.Line, err)
				}
			}
		}
	}
	return hclwrite.Format([]byte(b.String())), nil
}

func convertResource(b *strings.Builder, n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("want a resource mapping")
	}
	var kind, name string
	for i := 0; i+1 < len(n.Content); i += 2 {
		switch n.Content[i].Value {
		case "kind":
			kind = n.Content[i+1].Value
		case "name":
			name = n.Content[i+1].Value
		}
	}
	if head := n.HeadComment; head != "" {
		b.WriteString("\n" + head + "\n")
	} else {
		b.WriteString("\n")
	}
	fmt.Fprintf(b, "resource %s %s {\n", quote(kind), quote(name))
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "kind", "name":
		case "depends_on", "notified_by":
			var ids []string
			for _, e := range v.Content {
				id, ok := idExpr(e.Value)
				if !ok {
					return fmt.Errorf("%s: want kind/name, got %q", k.Value, e.Value)
				}
				ids = append(ids, id)
			}
			fmt.Fprintf(b, "%s = [%s]\n", k.Value, strings.Join(ids, ", "))
		case "meta":
			b.WriteString("meta {\n")
			for j := 0; j+1 < len(v.Content); j += 2 {
				fmt.Fprintf(b, "%s = %s\n", v.Content[j].Value, value(v.Content[j+1]))
			}
			b.WriteString("}\n")
		default:
			fmt.Fprintf(b, "%s = %s\n", key(k.Value), value(v))
		}
	}
	b.WriteString("}\n")
	return nil
}

// idExpr is the HCL reference to resource id kind/name.
func idExpr(id string) (string, bool) {
	kind, name, ok := strings.Cut(id, "/")
	if !ok || kind == "" || name == "" {
		return "", false
	}
	if hclsyntax.ValidIdentifier(name) {
		return refName(kind) + "." + name, true
	}
	return refName(kind) + "[" + quote(name) + "]", true
}

func key(k string) string {
	if hclsyntax.ValidIdentifier(k) {
		return k
	}
	return quote(k)
}

// value is n written as an HCL expression.
func value(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		parts := make([]string, len(n.Content))
		for i, c := range n.Content {
			parts[i] = value(c)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case yaml.MappingNode:
		var b strings.Builder
		b.WriteString("{\n")
		for i := 0; i+1 < len(n.Content); i += 2 {
			fmt.Fprintf(&b, "%s = %s\n", key(n.Content[i].Value), value(n.Content[i+1]))
		}
		b.WriteString("}")
		return b.String()
	}
	switch n.ShortTag() {
	case "!!null":
		return "null"
	case "!!int", "!!float", "!!bool":
		return n.Value
	}
	return text(n.Value)
}

// text is s as an HCL string: a lone reference bare, multi-line text as a
// heredoc, the rest quoted; references become interpolations, and a
// literal ${ or %{ is escaped.
func text(s string) string {
	if expr, ok := loneRef(s); ok {
		return expr
	}
	if strings.HasSuffix(s, "\n") && strings.Count(s, "\n") > 1 && !strings.Contains(s, "\nEOT\n") && !strings.ContainsAny(s, "\r") {
		return "<<EOT\n" + template(s, false) + "EOT"
	}
	return `"` + template(s, true) + `"`
}

func loneRef(s string) (string, bool) {
	if !strings.HasPrefix(s, "${") || !strings.HasSuffix(s, "}") || strings.Count(s, "${") != 1 {
		return "", false
	}
	return refExpr(s[2 : len(s)-1])
}

// refExpr turns kind/name.key into aws_ec2.name.key.
func refExpr(inner string) (string, bool) {
	if !strings.Contains(inner, "/") || strings.ContainsAny(inner, " \t\n${") {
		return "", false
	}
	dot := strings.LastIndexByte(inner, '.')
	if dot <= 0 || dot == len(inner)-1 {
		return "", false
	}
	id, ok := idExpr(inner[:dot])
	if !ok {
		return "", false
	}
	return id + "." + inner[dot+1:], true
}

// template writes s as HCL template text (quoted: with escapes).
func template(s string, quoted bool) string {
	var b strings.Builder
	lit := func(t string) {
		if quoted {
			q := strconv.Quote(t)
			t = q[1 : len(q)-1]
		}
		t = strings.ReplaceAll(t, "%{", "%%{")
		b.WriteString(t)
	}
	for {
		j := strings.Index(s, "${")
		if j < 0 {
			lit(s)
			return b.String()
		}
		if j > 0 && s[j-1] == '$' { // YAML's $${: a literal ${
			lit(s[:j-1])
			b.WriteString("$${")
			s = s[j+2:]
			continue
		}
		lit(s[:j])
		end := strings.IndexByte(s[j:], '}')
		if end < 0 {
			b.WriteString("$${")
			s = s[j+2:]
			continue
		}
		inner := s[j+2 : j+end]
		if expr, ok := refExpr(inner); ok {
			b.WriteString("${" + expr + "}")
		} else {
			b.WriteString("$${")
			lit(inner + "}")
		}
		s = s[j+end+1:]
	}
}

func quote(s string) string {
	q := strconv.Quote(s)
	return strings.ReplaceAll(strings.ReplaceAll(q, "${", "$${"), "%{", "%%{")
}
