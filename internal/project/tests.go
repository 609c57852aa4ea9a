package project

import (
	"slices"

	"go.yaml.in/yaml/v3"

	"kiln/internal/pipeline"
	"kiln/internal/store"
)

// A project's image tests (tests:): the same block as aws:ami's,
// pipeline.Tests, checked by pipeline.Builder's Validate. Stored apart from
// the project's row (store.ImageTests).

// tests decodes tests: {type, subnet, security_groups, script, timeout};
// null is none.
func (pp *projectParser) tests(n *yaml.Node, lines map[string]int) *pipeline.Tests {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		pp.errorf(n.Line, "tests", "want {script: ..., type: ..., subnet: ..., security_groups: [...], timeout: 10m}")
		return nil
	}
	t := &pipeline.Tests{}
	pp.fields(n, "tests.", lines, map[string]func(*yaml.Node){
		"type":            func(v *yaml.Node) { t.Type = pp.str(v, "tests.type") },
		"subnet":          func(v *yaml.Node) { t.Subnet = pp.str(v, "tests.subnet") },
		"security_groups": func(v *yaml.Node) { t.SecurityGroups = pp.strList(v, "tests.security_groups") },
		"script":          func(v *yaml.Node) { t.Script = pp.str(v, "tests.script") },
		"timeout": func(v *yaml.Node) {
			if d, ok := pp.duration(v, "tests.timeout"); ok {
				t.Timeout = d
			}
		},
	})
	return t
}

// TestsRecord is t as the store keeps it (nil: none).
func TestsRecord(t *pipeline.Tests) *store.ImageTests {
	if t == nil {
		return nil
	}
	return &store.ImageTests{Type: t.Type, Subnet: t.Subnet, SecurityGroups: slices.Clone(t.SecurityGroups),
		Script: t.Script, Timeout: t.Timeout}
}

// TestsFromRecord is the stored t back (nil: none).
func TestsFromRecord(t *store.ImageTests) *pipeline.Tests {
	if t == nil {
		return nil
	}
	return &pipeline.Tests{Type: t.Type, Subnet: t.Subnet, SecurityGroups: t.SecurityGroups, Script: t.Script, Timeout: t.Timeout}
}
