package engine

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// newGraph validates specs: non-nil with a Build func, unique ids, edges that
// name vertices, no self edge and no cycle over DependsOn ∪ Refs. Notify edges
// do not order anything, so they may point either way.
func newGraph(name string, specs []*Spec) (*Graph, error) {
	index := make(map[string]int, len(specs))
	for i, s := range specs {
		if s == nil {
			return nil, fmt.Errorf("graph %q: spec %d is nil", name, i)
		}
		id := s.ID()
		if s.Kind == "" || s.Name == "" {
			return nil, fmt.Errorf("graph %q: resource %q: kind and name are required", name, id)
		}
		if s.Build == nil {
			return nil, fmt.Errorf("graph %q: resource %q: no Build func", name, id)
		}
		if _, dup := index[id]; dup {
			return nil, fmt.Errorf("graph %q: duplicate resource %q", name, id)
		}
		index[id] = i
	}
	for _, s := range specs {
		id := s.ID()
		for _, edge := range []struct {
			what string
			ids  []string
		}{{"depends on", s.DependsOn}, {"refers to", s.Refs}, {"is notified by", s.NotifiedBy}} {
			for _, d := range edge.ids {
				if _, ok := index[d]; !ok {
					return nil, fmt.Errorf("graph %q: resource %q %s unknown resource %q", name, id, edge.what, d)
				}
				if d == id {
					return nil, fmt.Errorf("graph %q: resource %q %s itself", name, id, edge.what)
				}
			}
		}
	}
	if cycle := findCycle(specs, index); cycle != nil {
		return nil, fmt.Errorf("graph %q: %w: %s", name, ErrCycle, strings.Join(cycle, " -> "))
	}
	return &Graph{Name: name, Specs: specs}, nil
}

// ErrCycle is wrapped by NewGraph when the dependencies form a cycle.
var ErrCycle = errors.New("dependency cycle")

// findCycle returns one cycle as a list of ids (first id repeated at the end),
// or nil. Iterative depth-first search: graphs of 100,000 vertices in a chain
// must not overflow anything.
func findCycle(specs []*Spec, index map[string]int) []string {
	const (
		white = iota
		grey
		black
	)
	color := make([]uint8, len(specs))
	type frame struct{ v, next int }
	var stack []frame
	deps := func(i int) []string { return depsOf(specs[i]) }
	for root := range specs {
		if color[root] != white {
			continue
		}
		stack = append(stack[:0], frame{root, 0})
		color[root] = grey
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			ds := deps(top.v)
			if top.next == len(ds) {
				color[top.v] = black
				stack = stack[:len(stack)-1]
				continue
			}
			d := index[ds[top.next]]
			top.next++
			switch color[d] {
			case grey:
				var cycle []string
				start := slices.IndexFunc(stack, func(f frame) bool { return f.v == d })
				for _, f := range stack[start:] {
					cycle = append(cycle, specs[f.v].ID())
				}
				return append(cycle, specs[d].ID())
			case white:
				color[d] = grey
				stack = append(stack, frame{d, 0})
			}
		}
	}
	return nil
}

// depsOf is DependsOn ∪ Refs: a reference is an implied dependency even when
// the caller forgot to list it.
func depsOf(s *Spec) []string {
	if len(s.Refs) == 0 {
		return s.DependsOn
	}
	out := slices.Clone(s.DependsOn)
	for _, r := range s.Refs {
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}
