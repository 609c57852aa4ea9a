package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"kiln/internal/awsres"
	"kiln/internal/engine"
)

// scansEstate reports whether kiln looks for what g owns in AWS: when it
// has an AWS resource or sets prune (an emptied graph with prune: true
// must still be guarded, and an AWS-free graph without it needs no
// credentials).
func scansEstate(g *engine.Graph) bool {
	if g.Prune {
		return true
	}
	for _, s := range g.Specs {
		if strings.HasPrefix(s.Kind, "aws:") {
			return true
		}
	}
	return false
}

// estateOf lists everything g's name owns in the regions g names (and
// the default region), and its orphans: what carries the owner tag but
// is no longer a vertex of g.
//
// With all false, only the kinds g uses are listed (run and plan: no call
// for a kind the graph never declared); kiln destroy lists every kind.
func (a *app) estateOf(ctx context.Context, g *engine.Graph, all bool) (owned, orphans []engine.Owned, err error) {
	var rs []engine.Resource
	var kinds []string
	for _, s := range g.Specs {
		kinds = append(kinds, s.Kind)
		if r, _, err := s.Build(unresolved); err == nil {
			rs = append(rs, r)
		}
	}
	anyRS := make([]any, len(rs))
	for i, r := range rs {
		anyRS[i] = r
	}
	// Each account the graph works in has its own estate (accounts.go):
	// its owned things are listed with their account's hubs, and carry
	// the account in their region ("prod/us-west-2").
	for _, h := range awsres.AccountHubs(a.awsHubs(), anyRS) {
		est := awsres.NewEstate(h, a.log)
		if !all {
			est.OnlyKinds(kinds)
		}
		got, err := est.Owned(ctx, g.Name, awsres.Regions(rs))
		if err != nil {
			if name := h.AccountName(); name != "" {
				err = fmt.Errorf("account %q: %w", name, err)
			}
			return nil, nil, err
		}
		for i := range got {
			got[i].Region = accountRegion(h.AccountName(), got[i].Region)
		}
		owned = append(owned, got...)
	}
	engine.SortOwned(owned)
	return owned, engine.Orphans(g, owned), nil
}

// accountRegion is where an owned thing lives as plans show it: its
// region, after its account's name and a slash when it is not in the
// starting account.
func accountRegion(account, region string) string {
	if account == "" {
		return region
	}
	return account + "/" + region
}

// destroyOwned destroys owned (estateOf's), each with its account's hubs.
func (a *app) destroyOwned(ctx context.Context, owned []engine.Owned) error {
	byAccount := map[string][]engine.Owned{}
	var order []string
	for _, o := range owned {
		acct, region, ok := strings.Cut(o.Region, "/")
		if !ok {
			acct, region = "", o.Region
		}
		o.Region = region
		if _, seen := byAccount[acct]; !seen {
			order = append(order, acct)
		}
		byAccount[acct] = append(byAccount[acct], o)
	}
	for _, acct := range order {
		h := a.awsHubs().AccountNamed(acct)
		if h == nil {
			return fmt.Errorf("account %q: not declared by the graph", acct)
		}
		if err := awsres.NewEstate(h, a.log).Destroy(ctx, byAccount[acct]); err != nil {
			if acct != "" {
				return fmt.Errorf("account %q: %w", acct, err)
			}
			return err
		}
	}
	return nil
}

// orphanIDs are the distinct resource ids of owned, in order.
func orphanIDs(owned []engine.Owned) []string {
	var ids []string
	for _, o := range owned {
		if !slices.Contains(ids, o.ID) {
			ids = append(ids, o.ID)
		}
	}
	return ids
}

// orphanSet is what run last found orphaned, for /readyz and /metrics.
type orphanSet struct {
	mu    sync.Mutex
	ids   []string
	gauge prometheus.Gauge
}

func newOrphanSet(reg prometheus.Registerer) *orphanSet {
	o := &orphanSet{gauge: prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "kiln_orphaned_resources",
		Help: "Resources the graph owns by tag but no longer lists, left in place (prune is off, or refused).",
	})}
	reg.MustRegister(o.gauge)
	return o
}

func (o *orphanSet) set(ids []string) {
	o.mu.Lock()
	o.ids = ids
	o.mu.Unlock()
	o.gauge.Set(float64(len(ids)))
}

func (o *orphanSet) get() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.ids)
}

// prune looks for g's orphans and, with prune set, destroys them in rank
// order after the mass-prune guard (confirm is --confirm-prune). Without
// prune, it logs and records them. noop only reports. A failure to list
// what the graph owns is logged, not returned: it must not keep the
// graph's own resources from converging.
func (a *app) prune(ctx context.Context, g *engine.Graph, confirm int, noop bool, set *orphanSet) error {
	if !scansEstate(g) {
		set.set(nil)
		return nil
	}
	owned, orphans, err := a.estateOf(ctx, g, false)
	if err != nil {
		// The graph's own resources still converge (and say why AWS
		// fails): only pruning waits for the next look.
		a.log.Warn("could not look for orphans", "graph", g.Name, "err", err)
		return nil
	}
	ids := orphanIDs(orphans)
	if len(ids) == 0 {
		set.set(nil)
		return nil
	}
	if !g.Prune || noop {
		set.set(ids)
		for _, id := range ids {
			a.log.Warn("orphaned resource left in place: it carries this graph's tags but the graph no longer lists it (set prune to destroy it)", "resource", id)
		}
		return nil
	}
	if err := g.PruneGuard(len(ids), engine.OwnedIDs(owned), confirm); err != nil {
		set.set(ids)
		return err
	}
	a.log.Info("pruning resources removed from the graph", "resources", strings.Join(ids, ", "))
	if err := a.destroyOwned(ctx, orphans); err != nil {
		set.set(ids)
		return fmt.Errorf("prune graph %q: %w", g.Name, err)
	}
	set.set(nil)
	return nil
}

// errProtected is wrapped by destroy's refusals of protected resources.
var errProtected = errors.New("protected")
