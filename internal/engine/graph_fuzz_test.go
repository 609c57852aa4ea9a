package engine

import (
	"errors"
	"strconv"
	"testing"
)

// FuzzNewGraph checks NewGraph against an independent topological sort: a
// graph is accepted exactly when its dependencies have no cycle.
func FuzzNewGraph(f *testing.F) {
	f.Add([]byte{3, 0, 1, 1, 2})       // chain
	f.Add([]byte{3, 0, 1, 1, 2, 2, 0}) // cycle
	f.Add([]byte{2, 1, 1})             // self edge
	f.Add([]byte{5, 0, 1, 0, 2, 1, 3, 2, 3, 3, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		n := int(b[0]%16) + 1
		specs := make([]*Spec, n)
		name := func(i int) string { return strconv.Itoa(i) }
		for i := range specs {
			specs[i] = &Spec{Kind: "k", Name: name(i), Build: func(Lookup) (Resource, string, error) { return &fake{}, "", nil }}
		}
		self := false
		for i := 1; i+1 < len(b); i += 2 {
			from, to := int(b[i])%n, int(b[i+1])%n
			if from == to {
				self = true
			}
			if b[i]&0x80 != 0 {
				specs[from].Refs = append(specs[from].Refs, "k/"+name(to))
			} else {
				specs[from].DependsOn = append(specs[from].DependsOn, "k/"+name(to))
			}
		}
		_, err := NewGraph("fuzz", specs)
		acyclic := topoSortable(specs)
		switch {
		case self:
			if err == nil {
				t.Fatal("NewGraph() accepted a self edge")
			}
		case acyclic && err != nil:
			t.Fatalf("NewGraph() = %v; want nil for an acyclic graph", err)
		case !acyclic && !errors.Is(err, ErrCycle):
			t.Fatalf("NewGraph() = %v; want ErrCycle", err)
		}
	})
}

// topoSortable is Kahn's algorithm over DependsOn ∪ Refs.
func topoSortable(specs []*Spec) bool {
	idx := map[string]int{}
	for i, s := range specs {
		idx[s.ID()] = i
	}
	indeg := make([]int, len(specs))
	out := make([][]int, len(specs))
	for i, s := range specs {
		seen := map[int]bool{}
		for _, d := range append(append([]string(nil), s.DependsOn...), s.Refs...) {
			j := idx[d]
			if !seen[j] {
				seen[j] = true
				indeg[i]++
				out[j] = append(out[j], i)
			}
		}
	}
	var q []int
	for i, d := range indeg {
		if d == 0 {
			q = append(q, i)
		}
	}
	done := 0
	for len(q) > 0 {
		x := q[0]
		q = q[1:]
		done++
		for _, y := range out[x] {
			if indeg[y]--; indeg[y] == 0 {
				q = append(q, y)
			}
		}
	}
	return done == len(specs)
}
