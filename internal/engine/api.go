package engine

import (
	"context"
	"log/slog"
	"strings"
	"time"
)

// Lookup reads output key of the vertex id ("kind/name"); ok is false when the
// vertex has not produced it (yet).
type Lookup func(id, key string) (value string, ok bool)

// Spec is one vertex as the engine needs it: identity, policies, edges and a
// way to build the resource once the outputs it references exist.
type Spec struct {
	Kind string
	Name string
	// Display is the name people see on what the resource makes (the AWS
	// Name tag): the HCL front end sets it for expanded resources (web-0,
	// web-eu) and from a block's name attribute. Empty means Name.
	Display string
	// Module is the HCL module address (module.web["eu"]) the resource was
	// written in, "" at the root: ID puts it first.
	Module string
	Meta   Meta
	// DependsOn are ids ("kind/name") this vertex waits for, explicit or
	// implied by references. Refs ⊆ DependsOn.
	DependsOn []string
	// Refs are the ids whose outputs Build reads.
	Refs []string
	// NotifiedBy are ids whose changes call this vertex's Refresh.
	NotifiedBy []string
	// Hash identifies the unresolved spec: a graph swap keeps a vertex whose
	// Hash is unchanged running untouched.
	Hash string
	// Build makes the resource with references resolved through lookup. It
	// returns the resolved fingerprint: when it changes (an output it reads
	// changed), the engine stops the old resource and starts the new one.
	// Build runs on a worker, never concurrently for one vertex, and should
	// return a fresh resource and open nothing: with an unchanged fingerprint
	// the engine keeps the running resource and closes the new one.
	Build func(lookup Lookup) (r Resource, fingerprint string, err error)
}

// ID is the vertex's "kind/name", or for a resource of an HCL module
// "module.NAME.kind/label" (Name then starts with Module and a dot, so
// that it stays unique in the graph).
func (s *Spec) ID() string {
	if s.Module != "" {
		return s.Module + "." + s.Kind + "/" + strings.TrimPrefix(s.Name, s.Module+".")
	}
	return s.Kind + "/" + s.Name
}

// Graph is a validated set of specs.
type Graph struct {
	Name  string
	Specs []*Spec
	// Prune destroys what the graph owns (by its tags) but no longer
	// lists; without it such orphans are only reported. Both front ends
	// (YAML prune: true, HCL prune = true) fill it.
	Prune bool
	// PruneLimit > 0 lets a prune of up to that many resources past the
	// mass-prune guard (PruneGuard) without --confirm-prune.
	PruneLimit int
}

// NewGraph checks ids are unique, every edge names a vertex, and there is no
// cycle. (The config package reports the same faults with file and line;
// this is the engine's own guard.)
func NewGraph(name string, specs []*Spec) (*Graph, error) {
	return newGraph(name, specs)
}

// Options configure an Engine.
type Options struct {
	Workers int          // CheckApply calls at once; default 2*GOMAXPROCS, at least 4
	Noop    bool         // check only, everywhere (kiln plan, run --noop)
	Log     *slog.Logger // default: discard
	Metrics *Metrics     // nil: none
	// Once: Run returns when every vertex has settled (converged, failed for
	// good, or blocked by a failed dependency). The error lists the failures.
	Once bool
	// ConvergedTimeout > 0: Run returns nil once the whole graph has been
	// converged and idle this long.
	ConvergedTimeout time.Duration
}

// ChangeAction is what a planned change does to the resource in the world.
type ChangeAction string

// The actions of a planned change, as kiln plan counts them.
const (
	ActionCreate  ChangeAction = "create"  // it does not exist yet
	ActionUpdate  ChangeAction = "update"  // changed in place
	ActionRestart ChangeAction = "restart" // changed in place, with a stop and start
	ActionReplace ChangeAction = "replace" // destroyed and created anew
	ActionDelete  ChangeAction = "delete"  // removed
)

// A Change is one thing a check-only pass found a resource would do.
type Change struct {
	Action  ChangeAction
	Summary string // "launch instance", "start instance i-0abc (stopped)"
	Attrs   []Attr // what it sets; for a create, Old is empty
	Diff    string // a unified diff of content, when there is content
	// Refused, when set, says why run would stop before making this change
	// ("set replace: true to let kiln replace it"): plan still lists it.
	Refused string
}

// Attr is one attribute a change sets: Old is what the world has, New
// what the spec wants (KnownAfterApply where only the run will tell).
type Attr struct{ Name, Old, New string }

// KnownAfterApply is what a reference resolves to in a check-only pass
// when the resource it names would change and has no value for it yet (a
// new instance's private_ip): the dependent is planned against it.
const KnownAfterApply = "(known after apply)"

// State of a vertex.
type State string

const (
	StatePending   State = "pending"   // not started
	StateWaiting   State = "waiting"   // on a dependency
	StateChecking  State = "checking"  // CheckApply running
	StateConverged State = "converged" // last check found it right
	StateFailed    State = "failed"    // last CheckApply failed (may retry)
	StateBlocked   State = "blocked"   // a dependency failed
)

// VertexStatus is a snapshot of one vertex, for plan, summaries and pages.
type VertexStatus struct {
	ID, Kind, Name string
	State          State
	DependsOn      []string
	Pending        bool     // noop: a check found it differs (would change)
	Changes        []string // noop: what it would do, when the resource is a Changer
	Planned        []Change // noop: the same in detail (ChangePlanner, else from Changes)
	WouldRefresh   bool     // noop: a resource notifying this one would have changed
	Checks         int      // CheckApply calls
	Applies        int      // CheckApply calls that changed something
	LastCheck      time.Time
	LastChange     time.Time
	LastError      string
	BlockedBy      []string // StateBlocked: the dependencies that failed or are blocked
}

// Engine runs graphs. Use New, then Run; Swap may be called at any time.
type Engine struct{ e *engine }

// New makes an engine for g. It starts nothing.
func New(g *Graph, o Options) *Engine { return &Engine{newEngine(g, o)} }

// Run converges the graph and keeps it converged until ctx is done (or, with
// Once / ConvergedTimeout, until that condition). Every Watch is stopped and
// every goroutine has returned before Run returns. After ctx is cancelled it
// returns ctx.Err() (context.Canceled on a clean shutdown). With Once it
// returns nil when every vertex converged, else a *NotConvergedError listing
// the failed and blocked vertices. With ConvergedTimeout it returns nil once
// the graph has been converged, with no change and no failure, that long.
// Run may be called once per Engine.
func (e *Engine) Run(ctx context.Context) error { return e.e.run(ctx) }

// Swap replaces the graph: vertices whose Hash is unchanged keep running
// untouched, changed ones restart, removed ones stop, new ones start.
func (e *Engine) Swap(g *Graph) { e.e.swap(g) }

// Status returns a snapshot of every vertex, in graph order.
func (e *Engine) Status() []VertexStatus { return e.e.status() }

// Output returns the output key of vertex id as its dependents would read
// it now: ok is false while it has none (not run yet, or failed), and in
// a check-only run a value only applying would give is KnownAfterApply.
func (e *Engine) Output(id, key string) (value string, ok bool) { return e.e.lookup(id, key) }

// Subscribe returns a channel (capacity 1, coalescing) that receives a value
// whenever any vertex's status changes, and a cancel func. For live pages.
func (e *Engine) Subscribe() (<-chan struct{}, func()) { return e.e.subscribe() }
