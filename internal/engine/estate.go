package engine

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// Owned is one thing in the world that carries a graph's owner tag
// (kiln:owner = graph, kiln:resource = ID). What a graph owns is found by
// its tags, never from a state file.
type Owned struct {
	ID     string // "kind/name", the kiln:resource tag
	Kind   string // e.g. "aws:ec2"
	Region string
	Ref    string // the provider's id: i-0abc, sg-0abc, a key pair's name
	// Part is what of the resource this is when it has several ("launch
	// template" beside an Auto Scaling group); "" for the resource itself.
	Part string
	// Rank orders a prune or a destroy: lower ranks go first, so what uses
	// a thing goes before it (instances before security groups).
	Rank int
	// Protected is set when the thing carries the kiln:protect tag (meta
	// protect wrote it): a prune or destroy refuses it while the graph
	// no longer lists it.
	Protected bool
}

// The prune guard's thresholds: a prune of more than half of what the
// graph owns, and of more than pruneGuardMin resources, needs a
// confirmation. A truncated or emptied graph file must never terminate a
// fleet.
const pruneGuardMin = 3

// Orphans returns the things in owned whose ID is not a vertex of g, in
// destroy order (rank, then ID, then Ref).
func Orphans(g *Graph, owned []Owned) []Owned {
	in := make(map[string]bool, len(g.Specs))
	for _, s := range g.Specs {
		in[s.ID()] = true
	}
	var out []Owned
	for _, o := range owned {
		if !in[o.ID] {
			out = append(out, o)
		}
	}
	SortOwned(out)
	return out
}

// SortOwned sorts owned into destroy order: rank, then ID, then Ref.
func SortOwned(owned []Owned) {
	slices.SortStableFunc(owned, func(a, b Owned) int {
		return cmp.Or(cmp.Compare(a.Rank, b.Rank), cmp.Compare(a.ID, b.ID), cmp.Compare(a.Ref, b.Ref))
	})
}

// OwnedIDs is the number of distinct resource ids in owned: an Auto
// Scaling group and its launch template are one resource.
func OwnedIDs(owned []Owned) int {
	ids := map[string]bool{}
	for _, o := range owned {
		ids[o.ID] = true
	}
	return len(ids)
}

// ErrPruneGuard is wrapped by PruneGuard's refusals.
var ErrPruneGuard = errors.New("mass prune refused")

// PruneGuard refuses a prune of orphans (resource ids) out of owned that
// would remove more than half of what the graph owns and more than 3
// resources, unless confirm equals orphans (kiln run --confirm-prune N) or
// the graph's PruneLimit allows that many.
func (g *Graph) PruneGuard(orphans, owned, confirm int) error {
	if orphans <= pruneGuardMin || 2*orphans <= owned {
		return nil
	}
	if confirm == orphans || (g.PruneLimit > 0 && orphans <= g.PruneLimit) {
		return nil
	}
	return fmt.Errorf("graph %q: %w: it would destroy %d of the %d resources the graph owns; run with --confirm-prune %d (or set prune_limit) if that is meant",
		g.Name, ErrPruneGuard, orphans, owned, orphans)
}

// Protected returns the ids among owned that a prune or destroy must
// refuse: g's vertices with meta protect set, and things tagged
// kiln:protect (meta protect wrote it) that g no longer lists. A resource
// g lists without protect is not refused, whatever its tag says: the
// file decides while it names the resource.
func Protected(g *Graph, owned []Owned) []string {
	prot := map[string]bool{}
	listed := map[string]bool{}
	for _, s := range g.Specs {
		listed[s.ID()] = true
		if s.Meta.Protect {
			prot[s.ID()] = true
		}
	}
	var out []string
	seen := map[string]bool{}
	for _, o := range owned {
		if (prot[o.ID] || (o.Protected && !listed[o.ID])) && !seen[o.ID] {
			seen[o.ID] = true
			out = append(out, o.ID)
		}
	}
	slices.Sort(out)
	return out
}
