package config

import (
	"slices"
	"strconv"

	"go.yaml.in/yaml/v3"

	"kiln/internal/engine"
)

// clones makes the other instances of a resource that the HCL front end
// wrote once for all the instances of a count or for_each block whose
// fields do not depend on count.index or each (instances: their names).
// They share the first one's decoded fields and its checks (a problem is
// reported once, for the block); each has its own name, build (errors name
// it) and hash, and goes through the graph's checks (duplicates, edges,
// cycles, peers) like any resource. Cost per instance: a spec, no decoding.
func (p *parser) clones(it *item) []*item {
	n := it.instances
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n.Line, it.label, "instances", "want a list of names, got %s", describe(n))
		return nil
	}
	out := make([]*item, len(n.Content))
	all := make([]item, len(n.Content))
	specs := make([]engine.Spec, len(n.Content))
	for i, nm := range n.Content {
		c, spec := &all[i], &specs[i]
		*c, *spec = *it, *it.spec
		spec.Name = nm.Value
		spec.NotifiedBy = slices.Clone(it.spec.NotifiedBy)
		spec.Hash = it.hashBase + "\x00" + nm.Value
		c.spec, c.instances = spec, nil
		c.label = spec.Kind + " " + strconv.Quote(spec.Name) // as resource's %q
		if it.newRes != nil && it.res != nil {
			p.buildFunc(c)
		}
		out[i] = c
	}
	return out
}

// hashShared is hashNode of a resource without its name and instances:
// what its instances have in common.
func hashShared(n *yaml.Node) string {
	c := *n
	c.Content = make([]*yaml.Node, 0, len(n.Content))
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i].Value; k != "name" && k != "instances" {
			c.Content = append(c.Content, n.Content[i], n.Content[i+1])
		}
	}
	return hashNode(&c)
}
