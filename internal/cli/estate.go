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
	"kiln/internal/ui"
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
// is no longer a vertex of g. Every kind is looked at, whatever kinds g
// declares: a graph that drops its last aws:asg still owns its groups.
func (a *app) estateOf(ctx context.Context, g *engine.Graph) (owned, orphans []engine.Owned, err error) {
	var rs []engine.Resource
	for _, s := range g.Specs {
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
		got, err := awsres.NewEstate(h, a.log).Owned(ctx, g.Name, awsres.Regions(rs))
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

// destroySummary says what destroying o does, for plan: its AWS id and
// region (Route 53 has none).
func destroySummary(o engine.Owned) string {
	what := o.Ref
	if o.Part != "" {
		what = o.Part + " " + what
	}
	if o.Region == "" {
		return "destroy " + what
	}
	return "destroy " + what + " in " + o.Region
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

// orphanSet is what run last found orphaned, for /readyz, /metrics and
// the engine page.
type orphanSet struct {
	mu    sync.Mutex
	ids   []string
	prune bool   // prune will destroy them
	why   string // what happens to them, for the page
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

func (o *orphanSet) set(ids []string) { o.setStatus(ids, false, "") }

// setStatus records ids with whether prune will destroy them and why.
func (o *orphanSet) setStatus(ids []string, prune bool, why string) {
	o.mu.Lock()
	o.ids, o.prune, o.why = ids, prune, why
	o.mu.Unlock()
	o.gauge.Set(float64(len(ids)))
}

// page is the set as the engine page shows it.
func (o *orphanSet) page() []ui.Orphan {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]ui.Orphan, len(o.ids))
	for i, id := range o.ids {
		out[i] = ui.Orphan{ID: id, Prune: o.prune, Why: o.why}
	}
	return out
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
	owned, orphans, err := a.estateOf(ctx, g)
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
		why := "prune is off: set prune to destroy it"
		if g.Prune {
			why = "noop: prune is not applied"
		}
		set.setStatus(ids, false, why)
		for _, id := range ids {
			a.log.Warn("orphaned resource left in place: it carries this graph's tags but the graph no longer lists it (set prune to destroy it)", "resource", id)
		}
		return nil
	}
	if err := pruneRefusal(g, owned, orphans, confirm); err != nil {
		set.setStatus(ids, false, "prune refused: "+err.Error())
		return err
	}
	set.setStatus(ids, true, "being destroyed (removed from the graph)")
	a.log.Info("pruning resources removed from the graph", "resources", strings.Join(ids, ", "))
	if err := a.destroyOwned(ctx, orphans); err != nil {
		set.setStatus(ids, true, "destroy failed: "+err.Error())
		return fmt.Errorf("prune graph %q: %w", g.Name, err)
	}
	set.set(nil)
	return nil
}

// errProtected is wrapped by destroy's refusals of protected resources.
var errProtected = errors.New("protected")

// pruneRefusal says why a prune of orphans must not go ahead (nil when
// it may): the mass-prune guard (confirm is --confirm-prune), or an
// orphan that carries the kiln:protect tag.
func pruneRefusal(g *engine.Graph, owned, orphans []engine.Owned, confirm int) error {
	if err := g.PruneGuard(len(orphanIDs(orphans)), engine.OwnedIDs(owned), confirm); err != nil {
		return err
	}
	if prot := engine.Protected(g, orphans); len(prot) > 0 {
		return fmt.Errorf("graph %q: prune refused: %w: %s %s the kiln:protect tag (meta protect was set); delete the tag to let prune destroy %s",
			g.Name, errProtected, strings.Join(prot, ", "), plural(len(prot), "carries", "carry"), plural(len(prot), "it", "them"))
	}
	return nil
}

// estatePolicy is what kiln does to a graph's estate, for kiln
// iam-policy: the reads of the orphan scan (every kind's listing,
// whatever kinds the graph declares) and, with prune, the destroy calls.
type estatePolicy struct{ prune bool }

func (e estatePolicy) IAMActions() []string {
	acts := awsres.EstateIAMActions()
	if e.prune {
		acts = append(acts, awsres.EstateDestroyIAMActions()...)
	}
	return acts
}
