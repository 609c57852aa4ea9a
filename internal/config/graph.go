package config

import (
	"fmt"
	"strings"
)

// link resolves identities into edges: duplicates, dangling references and
// cycles are reported; Spec.DependsOn and Spec.Refs are filled in.
func (p *parser) link(items []*item) {
	byID := make(map[string]*item, len(items))
	var live []*item
	for _, it := range items {
		id := it.spec.ID()
		if first, ok := byID[id]; ok {
			p.errorf(it.line, it.label, "", "duplicate resource %s (first at %s)", id, p.at(first.line))
			continue
		}
		byID[id] = it
		live = append(live, it)
	}
	for _, it := range live {
		seen := make(map[string]bool)
		add := func(id string) {
			if !seen[id] {
				seen[id] = true
				it.spec.DependsOn = append(it.spec.DependsOn, id)
			}
		}
		for _, e := range it.deps {
			if byID[e.id] == nil {
				p.errorf(e.line, it.label, e.field, "unknown resource %s", e.id)
				continue
			}
			add(e.id)
		}
		refSeen := make(map[string]bool)
		for _, r := range it.refs {
			if byID[r.ID] == nil {
				p.errorf(r.line, it.label, r.field, "reference %s: unknown resource %s", r.Raw, r.ID)
				continue
			}
			add(r.ID)
			if !refSeen[r.ID] {
				refSeen[r.ID] = true
				it.spec.Refs = append(it.spec.Refs, r.ID)
			}
		}
	}
	p.cycles(live, byID)
}

// cycles reports every cycle once, named by its members. It peels off
// vertices without unfinished dependencies (Kahn); whatever remains sits on
// or behind a cycle, and following unfinished dependencies from it must
// come back to a vertex already on the walk.
func (p *parser) cycles(items []*item, byID map[string]*item) {
	pending := make(map[string]int, len(items)) // unfinished dependencies
	dependents := make(map[string][]string)
	var ready []string
	for _, it := range items {
		id := it.spec.ID()
		pending[id] = len(it.spec.DependsOn)
		for _, d := range it.spec.DependsOn {
			dependents[d] = append(dependents[d], id)
		}
		if pending[id] == 0 {
			ready = append(ready, id)
		}
	}
	for len(ready) > 0 {
		id := ready[len(ready)-1]
		ready = ready[:len(ready)-1]
		delete(pending, id)
		for _, d := range dependents[id] {
			pending[d]--
			if pending[d] == 0 {
				ready = append(ready, d)
			}
		}
	}
	if len(pending) == 0 {
		return
	}
	done := make(map[string]bool)
	for _, it := range items {
		start := it.spec.ID()
		if _, stuck := pending[start]; !stuck || done[start] {
			continue
		}
		pos := make(map[string]int)
		var walk []string
		for id := start; ; {
			if i, ok := pos[id]; ok {
				p.reportCycle(walk[i:], byID)
				break
			}
			if done[id] {
				break
			}
			pos[id] = len(walk)
			walk = append(walk, id)
			done[id] = true
			next := ""
			for _, d := range byID[id].spec.DependsOn {
				if _, stuck := pending[d]; stuck {
					next = d
					break
				}
			}
			if next == "" {
				break
			}
			id = next
		}
	}
}

func (p *parser) reportCycle(cycle []string, byID map[string]*item) {
	// Start at the member that comes first in the file.
	first := 0
	for i, id := range cycle {
		if byID[id].line < byID[cycle[first]].line {
			first = i
		}
	}
	path := append(append([]string{}, cycle[first:]...), cycle[:first]...)
	path = append(path, path[0])
	p.errorf(byID[path[0]].line, "", "", "dependency cycle: %s", strings.Join(path, " -> "))
}

// at names a line for a message: "line 3", or "file.hcl:3:5" for another
// front end's source.
func (p *parser) at(line int) string {
	pos := p.pos(line)
	if p.where == nil {
		return fmt.Sprintf("line %d", pos.Line)
	}
	return fmt.Sprintf("%s:%d:%d", pos.File, pos.Line, pos.Column)
}
