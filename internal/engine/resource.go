// Package engine converges a graph of resources and keeps it converged.
//
// A resource says two things: Watch (tell me when the real world may have
// drifted) and CheckApply (is the real world right; if not and apply is true,
// make it so). The engine adds everything else: dependency order, a bounded
// worker pool, retries, rate limits, timeouts, notify edges, outputs and
// references, converged detection and graph swaps.
//
// Two races are part of the contract:
//
//  1. Running means watching. A vertex's first CheckApply runs only after its
//     Watch has called Events.Running, so a change between "checked" and
//     "watching" cannot be missed.
//  2. No lost event during CheckApply. The engine clears a vertex's dirty flag
//     before CheckApply starts; an event that arrives while it runs marks the
//     vertex dirty again and causes exactly one more pass. Events coalesce; they
//     are never dropped.
//
// Scheduling rules:
//
//   - A vertex is built (Spec.Build) once every vertex in its Refs has finished
//     a successful CheckApply (its outputs, possibly none, exist), and rebuilt
//     when one of those outputs changes and Build returns another fingerprint:
//     the old resource's Watch is cancelled and it is closed (io.Closer).
//   - A vertex's CheckApply runs when it is dirty (first start, an event, a
//     dependency changed something, a retry or poll tick), its Watch is
//     running, and every dependency's last check converged with no check of
//     that dependency in flight. At most Options.Workers run at once.
//   - ok=false in apply mode means "changed": dependents are re-checked and
//     vertices listing it in NotifiedBy get Refresh after their next
//     successful CheckApply. In noop mode (Options.Noop or Meta.Noop) it means
//     "would change": the vertex counts as converged with Pending set, and the
//     notified vertices get WouldRefresh; nothing is refreshed.
//   - An error or a panic (logged with its stack) fails the vertex, never the
//     process. A failed CheckApply or Refresh is retried: retry n waits
//     Delay·2^(n-1) (Delay 0: 100ms) plus up to 25% jitter, capped at 5
//     minutes; Permanent errors and exhausted retries leave it failed until
//     its next Changed event, which earns a fresh set of retries. A failed
//     Watch is restarted with the same budget and backoff. A failed Build or
//     Init stays failed until an output it references changes. A failed
//     vertex blocks its dependents, transitively; everything else carries on.
//   - Events during a retry's backoff or a rate-limit wait coalesce into the
//     pass that follows it. Limit/Burst is a token bucket on CheckApply.
//     Timeout bounds each CheckApply's ctx.
package engine

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// Resource is one thing the engine keeps converged. Implementations are
// synchronous: the engine adds the concurrency.
type Resource interface {
	// Watch blocks until ctx is done. It calls ev.Running() exactly once, as soon
	// as the watch is really established, and ev.Changed() whenever the real
	// state may have drifted. Changed never blocks; calls coalesce. A non-nil
	// error other than ctx.Err() fails the vertex (and is retried per meta).
	Watch(ctx context.Context, ev Events) error
	// CheckApply reports whether the real state already matches the spec. When
	// it does not and apply is true, it converges it first and returns ok=false
	// (something was changed). It must be idempotent. Errors are retried per the
	// meta-params unless marked Permanent.
	CheckApply(ctx context.Context, apply bool) (ok bool, err error)
}

// Events is what Watch reports to the engine. Both methods are safe for
// concurrent use and never block.
type Events interface {
	// Running says the watch is established. Only the first call counts.
	Running()
	// Changed says the real state may have drifted: check again.
	Changed()
}

// Polled tells the engine, through the Events a Watch was handed, that the
// Watch's own poll looked at the real state: the vertex's last check (on
// the engine page and in its status) follows the poll, not only CheckApply.
// A SelfPoller's Watch calls it after each poll that succeeded, whether or
// not it found a difference (then it calls Changed as well). Events that do
// not take it (a test's) ignore it.
func Polled(ev Events) {
	if p, ok := ev.(interface{ Polled() }); ok {
		p.Polled()
	}
}

// Optional interfaces, found by type assertion.
type (
	// Initer receives the vertex's identity and logger before Watch starts.
	Initer interface {
		Init(env Env) error
	}
	// Outputter exposes values that dependents read as ${kind/name.key}.
	// Called after a successful CheckApply.
	Outputter interface {
		Outputs() map[string]string
	}
	// Refresher is called (apply mode only) when a resource that notifies this
	// one changed something; e.g. exec's refresh_only commands run here.
	Refresher interface {
		Refresh(ctx context.Context) error
	}
	// Changer lists what the last CheckApply with apply=false found it
	// would do, one line each ("start instance i-0abc (stopped)"). Read
	// after a check-only pass that found a difference; kiln plan prints it.
	Changer interface {
		Changes() []string
	}
	// ChangePlanner is Changer with the detail kiln plan shows: what kind
	// of change each is (create, update, restart, replace, delete), the
	// attributes it sets with their old and new values, a unified diff of
	// content. A resource that is one need not be a Changer.
	ChangePlanner interface {
		PlannedChanges() []Change
	}
	// SelfPoller is a resource whose Watch already polls (with events as the
	// fast path). The poll meta-param is handed to it instead of the engine
	// replacing Watch with a ticker.
	SelfPoller interface {
		SetPoll(d time.Duration)
	}
	// Static is a resource with nothing to watch (noop, print): when Static
	// returns true the engine starts no Watch goroutine and treats the
	// resource as running at once. It is checked when started, when a
	// dependency changes something, on retries and on poll ticks. Saves a
	// goroutine per resource in big graphs.
	Static interface {
		Static() bool
	}
)

// Env is what the engine tells a resource about itself.
type Env struct {
	Graph string // the graph's name (kiln tags what it creates with it)
	ID    string // "kind/name"
	Kind  string // e.g. "aws:ec2"
	Name  string // the resource's name
	// Display is the name for people (the AWS Name tag); see NameTag.
	Display string
	Meta    Meta         // its meta-params
	Log     *slog.Logger // with "resource" = ID
}

// NameTag is the name a resource writes where people read it (the AWS
// Name tag): Display when the graph set one, else Name.
func (e Env) NameTag() string {
	if e.Display != "" {
		return e.Display
	}
	return e.Name
}

// Meta are the per-resource policies (mgmt's names).
type Meta struct {
	Poll    time.Duration // >0: replace Watch with a ticker of this period (see SelfPoller)
	Retry   int           // retries of a failed CheckApply; -1 forever
	Delay   time.Duration // first delay between retries; grows with backoff
	Limit   float64       // CheckApply calls per second; 0 means unlimited
	Burst   int           // burst for Limit
	Noop    bool          // check only, never apply
	Timeout time.Duration // per CheckApply; 0 means none
	Protect bool          // never destroyed by a prune or kiln destroy
}

// Permanent marks an error that retrying cannot fix (unknown AMI,
// UnauthorizedOperation): the engine stops retrying and reports it.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

type permanentError struct{ err error }

func (p *permanentError) Error() string { return p.err.Error() }
func (p *permanentError) Unwrap() error { return p.err }
