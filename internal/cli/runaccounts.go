package cli

import (
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"

	"kiln/internal/awsres"
	"kiln/internal/engine"
)

// resourceAccounts are the accounts of a running graph's resources that
// work in another account than the starting credentials' (account: NAME),
// by resource id: the engine page shows them beside the resources, the
// log names them when the graph is loaded, and a run that does not
// converge names the account of each failed or blocked resource.
type resourceAccounts struct {
	mu sync.Mutex
	m  map[string]string
}

// set reads the accounts of g's resources (building each, which opens
// nothing and calls nothing) and logs, for each other account, its
// resources.
func (ra *resourceAccounts) set(g *engine.Graph, log *slog.Logger) {
	m := map[string]string{}
	for _, s := range g.Specs {
		if !strings.HasPrefix(s.Kind, "aws:") {
			continue
		}
		r, _, err := s.Build(unresolved)
		if err != nil {
			continue
		}
		if a := awsres.Account(r); a != "" {
			m[s.ID()] = a
		}
		if c, ok := r.(io.Closer); ok {
			_ = c.Close()
		}
	}
	ra.mu.Lock()
	ra.m = m
	ra.mu.Unlock()
	byAccount := map[string][]string{}
	for id, a := range m {
		byAccount[a] = append(byAccount[a], id)
	}
	for _, a := range slices.Sorted(maps.Keys(byAccount)) {
		ids := byAccount[a]
		slices.Sort(ids)
		log.Info("resources in another account", "graph", g.Name, "account", a, "resources", strings.Join(ids, ", "))
	}
}

// get is the accounts by resource id (a copy).
func (ra *resourceAccounts) get() map[string]string {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	return maps.Clone(ra.m)
}

// of is id's account in a summary line (" (account prod)"), "" for the
// starting credentials.
func (ra *resourceAccounts) of(id string) string {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if a := ra.m[id]; a != "" {
		return " (account " + a + ")"
	}
	return ""
}
