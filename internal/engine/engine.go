package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// How the scheduler works.
//
// One mutex (engine.mu) guards every vertex's scheduling state; it is never
// held across resource code (Build, Init, Watch, CheckApply, Refresh, Close).
// Work is event-driven: whatever changes a vertex calls touch(v), which
// recomputes that vertex's derived flags and pushes the consequences to its
// neighbours only (a dependency that became ready pokes its dependents, a
// failure blocks its dependents transitively), so no event ever scans the
// whole graph. A vertex that can make progress (build, or check) is put on a
// FIFO queue once (v.queued) and taken by one of Options.Workers goroutines;
// a vertex is processed by at most one worker at a time (v.inflight).
// Timers (retry backoff, rate limits, poll ticks, converged timeout) are
// time.AfterFunc callbacks counted in the engine's WaitGroup, so there is no
// goroutine per vertex except the one its Watch needs.

// Defaults.
const (
	defaultDelay = 100 * time.Millisecond // retry base when Meta.Delay is 0
	maxDelay     = 5 * time.Minute        // backoff cap (unless Delay is larger)
)

type engine struct {
	opts  Options
	log   *slog.Logger
	debug bool // log every check (costly in big graphs)

	mu       sync.Mutex
	cond     sync.Cond // workers wait here for the queue
	wg       sync.WaitGroup
	ctx      context.Context // Run's; nil before Run
	graph    *Graph
	order    []*vertex
	byID     map[string]*vertex
	queue    []*vertex
	qhead    int
	idle     int // workers waiting on cond
	started  bool
	stopping bool
	ran      bool
	done     chan struct{} // closed when Once or ConvergedTimeout is met
	closed   bool
	verdict  error   // Once: the result recorded by finish
	timeout  *vtimer // ConvergedTimeout clock

	unsettled   int // vertices with work left (see vertex.isSettled)
	unconverged int // vertices whose last result is not converged
	counts      map[State]int
	work        []*vertex // touch's worklist
	touching    bool
	subs        map[chan struct{}]struct{}
	lastGauge   int // converged gauge last set: -1 unknown, 0, 1
}

// vertex is one resource in the running graph. Its fields are guarded by
// engine.mu, except spec which is replaced only under mu and read by the
// owning worker.
type vertex struct {
	spec       *Spec
	id         string
	index      int
	deps       []*vertex // DependsOn ∪ Refs
	refs       []*vertex
	dependents []*vertex
	refBy      []*vertex // vertices whose Refs include this one
	notify     []*vertex // vertices refreshed when this one changes something
	km         *kindMetrics
	lim        *rate.Limiter

	inst    *instance
	state   State // last result: pending, waiting, converged, failed
	disp    State // what Status shows; counted in engine.counts
	nBad    int   // deps that are failed or blocked
	attempt int   // consecutive failures of CheckApply
	watchN  int   // consecutive failures of Watch

	queued, inflight, checking bool
	dirty, needBuild, refresh  bool
	running, gaveUp, dead      bool
	limitOK                    bool
	bad, ready, settled, conv  bool // derived, see touch
	hasOut                     bool
	pending, wouldRefresh      bool
	refused                    bool     // noop: run would refuse every change it planned
	changes                    []string // noop: what a Changer said it would do
	planned                    []Change // noop: the same in detail

	retry, limitT *vtimer
	outputs       map[string]string

	checks, applies       int
	lastCheck, lastChange time.Time
	lastErr               string
}

// instance is one built resource of a vertex; a rebuild replaces it.
type instance struct {
	res       Resource
	fp        string
	ctx       context.Context
	cancel    context.CancelFunc
	watchDone chan struct{} // closed when the Watch goroutine returned; nil if none
	poll      *vtimer
	stopped   bool
}

type vtimer struct{ t *time.Timer }

func newEngine(g *Graph, o Options) *engine {
	if o.Workers <= 0 {
		o.Workers = max(4, 2*runtime.GOMAXPROCS(0))
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if g == nil {
		g = &Graph{}
	}
	e := &engine{
		opts:      o,
		log:       o.Log,
		debug:     o.Log.Enabled(context.Background(), slog.LevelDebug),
		byID:      map[string]*vertex{},
		counts:    map[State]int{},
		lastGauge: -1,
	}
	e.cond.L = &e.mu
	e.mu.Lock()
	e.install(g)
	e.mu.Unlock()
	return e
}

// run: see Engine.Run.
func (e *engine) run(ctx context.Context) error {
	e.mu.Lock()
	if e.ran {
		e.mu.Unlock()
		return errors.New("engine: Run called twice")
	}
	e.ran = true
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e.ctx = rctx
	e.done = make(chan struct{})
	for range e.opts.Workers {
		e.wg.Go(e.worker)
	}
	e.started = true
	e.log.Info("engine started", "graph", e.graph.Name, "resources", len(e.order), "workers", e.opts.Workers)
	for _, v := range e.order {
		e.touch(v)
	}
	e.checkDone()
	e.mu.Unlock()

	var err error
	select {
	case <-ctx.Done():
		err = ctx.Err()
	case <-e.done:
	}
	cancel()

	e.mu.Lock()
	if err == nil && e.opts.Once {
		// The verdict taken when the graph settled, not now: a late event
		// (a file watch seeing kiln's own write) may have re-poked a vertex
		// since.
		err = e.verdict
	}
	e.stopping = true
	for _, v := range e.order {
		e.retire(v)
	}
	e.stopTimer(e.timeout)
	e.timeout = nil
	e.cond.Broadcast()
	e.mu.Unlock()
	e.wg.Wait()
	e.log.Info("engine stopped", "graph", e.graph.Name)
	return err
}

// notConverged returns nil when every vertex converged, else the summary.
func (e *engine) notConverged() error {
	var bad []VertexStatus
	for _, v := range e.order {
		if v.disp != StateConverged {
			bad = append(bad, e.statusOf(v))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return &NotConvergedError{Total: len(e.order), Vertices: bad}
}

// NotConvergedError is what Run returns with Options.Once when some vertices
// did not converge: the failed ones (with LastError) and the ones blocked by
// them (with BlockedBy).
type NotConvergedError struct {
	Total    int            // vertices in the graph
	Vertices []VertexStatus // failed and blocked ones, in graph order
}

func (n *NotConvergedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d resources not converged", len(n.Vertices), n.Total)
	for i, v := range n.Vertices {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		switch {
		case v.State == StateBlocked:
			fmt.Fprintf(&b, "%s blocked by %s", v.ID, strings.Join(v.BlockedBy, ", "))
		case v.LastError != "":
			fmt.Fprintf(&b, "%s %s: %s", v.ID, v.State, v.LastError)
		default:
			fmt.Fprintf(&b, "%s %s", v.ID, v.State)
		}
	}
	return b.String()
}

// swap: see Engine.Swap.
func (e *engine) swap(g *Graph) {
	if g == nil {
		g = &Graph{}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopping {
		return
	}
	e.install(g)
	e.log.Info("graph swapped", "graph", g.Name, "resources", len(g.Specs))
}

// install makes g the running graph: vertices whose Hash is unchanged are
// kept as they are, others are retired and replaced, edges are rewired and
// derived flags recomputed. Called with mu held.
func (e *engine) install(g *Graph) {
	old := e.byID
	e.graph = g
	e.byID = make(map[string]*vertex, len(g.Specs))
	e.order = make([]*vertex, 0, len(g.Specs))
	for i, s := range g.Specs {
		id := s.ID()
		v := old[id]
		if v != nil && v.spec.Hash == s.Hash {
			v.spec = s
		} else {
			var last time.Time
			if v != nil {
				e.log.Info("resource changed, restarting", "resource", id)
				e.retire(v)
				last = v.lastChange
			}
			v = e.newVertex(s, id)
			// The resource is the same one in the world: when kiln last
			// changed it outlives the spec it was changed for.
			v.lastChange = last
		}
		v.index = i
		e.byID[id] = v
		e.order = append(e.order, v)
	}
	for id, v := range old {
		if e.byID[id] != v && !v.dead {
			e.log.Info("resource removed, stopping", "resource", id)
			e.retire(v)
		}
	}
	for _, v := range e.order {
		v.dependents, v.refBy, v.notify = v.dependents[:0], v.refBy[:0], v.notify[:0]
	}
	for _, v := range e.order {
		ds := depsOf(v.spec)
		v.deps = v.deps[:0]
		for _, d := range ds {
			if dv := e.byID[d]; dv != nil {
				v.deps = append(v.deps, dv)
				dv.dependents = append(dv.dependents, v)
			}
		}
		v.refs = v.refs[:0]
		for _, r := range v.spec.Refs {
			if rv := e.byID[r]; rv != nil {
				v.refs = append(v.refs, rv)
				rv.refBy = append(rv.refBy, v)
			}
		}
		for _, n := range v.spec.NotifiedBy {
			if nv := e.byID[n]; nv != nil {
				nv.notify = append(nv.notify, v)
			}
		}
	}
	// Derived flags depend on the edges: start them from scratch and let
	// touch propagate failures and readiness along the new edges.
	for _, v := range e.order {
		v.nBad, v.bad, v.ready = 0, false, false
	}
	for _, v := range e.order {
		e.touch(v)
	}
	if e.started {
		e.checkDone()
	}
}

func (e *engine) newVertex(s *Spec, id string) *vertex {
	v := &vertex{
		spec:      s,
		id:        id,
		km:        e.opts.Metrics.kind(s.Kind),
		state:     StatePending,
		disp:      StatePending,
		dirty:     true,
		needBuild: true,
	}
	if s.Meta.Limit > 0 {
		v.lim = rate.NewLimiter(rate.Limit(s.Meta.Limit), max(1, s.Meta.Burst))
	}
	e.counts[StatePending]++
	e.opts.Metrics.moveState("", StatePending)
	e.unsettled++
	e.unconverged++
	return v
}

// retire stops v for good (removed, replaced, or shutdown). Called with mu
// held. An in-flight worker finishes the job and stops the instance then.
func (e *engine) retire(v *vertex) {
	if v.dead {
		return
	}
	v.dead = true
	e.stopTimer(v.retry)
	e.stopTimer(v.limitT)
	v.retry, v.limitT = nil, nil
	if v.inst != nil {
		v.inst.cancel()
		if !v.inflight {
			e.stopInst(v.inst)
		}
	}
	e.counts[v.disp]--
	e.opts.Metrics.moveState(v.disp, "")
	if !v.settled {
		e.unsettled--
	}
	if !v.conv {
		e.unconverged--
	}
	if !e.stopping {
		// Dependents of a removed vertex that stay in the graph lose the
		// edge in install; nothing else to do here.
		e.notifySubs()
	}
}

// stopInst cancels the instance's Watch and in-flight calls, stops its poll
// ticker, and closes it (io.Closer) once its Watch has returned.
func (e *engine) stopInst(in *instance) {
	in.cancel()
	if in.stopped {
		return
	}
	in.stopped = true
	e.stopTimer(in.poll)
	in.poll = nil
	if c, ok := in.res.(io.Closer); ok {
		done := in.watchDone
		e.wg.Go(func() {
			if done != nil {
				<-done
			}
			if err := safeClose(c); err != nil {
				e.log.Warn("close resource", "err", err)
			}
		})
	}
}

func safeClose(c io.Closer) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("close: panic: %v", p)
		}
	}()
	return c.Close()
}

// ---- the queue and the workers ----

// canBuild: Build may run (every ref has produced outputs).
func (v *vertex) canBuild() bool {
	if !v.needBuild || v.dead {
		return false
	}
	for _, r := range v.refs {
		if !r.hasOut || r.dead {
			return false
		}
	}
	return true
}

// canCheck: CheckApply may run now.
func (v *vertex) canCheck() bool {
	if v.inst == nil || !v.running || !v.dirty || v.gaveUp || v.dead ||
		v.retry != nil || v.limitT != nil || v.nBad > 0 {
		return false
	}
	for _, d := range v.deps {
		if !d.ready {
			return false
		}
	}
	return true
}

// poke queues v if it can make progress. Called with mu held.
func (e *engine) poke(v *vertex) {
	if v.queued || v.inflight || !e.started || e.stopping {
		return
	}
	if !v.canBuild() && !v.canCheck() {
		return
	}
	v.queued = true
	e.queue = append(e.queue, v)
	if e.idle > 0 {
		e.cond.Signal()
	}
}

func (e *engine) worker() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for {
		for e.qhead == len(e.queue) && !e.stopping {
			e.idle++
			e.cond.Wait()
			e.idle--
		}
		if e.stopping {
			return
		}
		v := e.queue[e.qhead]
		e.queue[e.qhead] = nil
		e.qhead++
		if e.qhead == len(e.queue) {
			e.queue, e.qhead = e.queue[:0], 0
		} else if e.qhead > 1024 && e.qhead*2 > len(e.queue) {
			n := copy(e.queue, e.queue[e.qhead:])
			clear(e.queue[n:])
			e.queue, e.qhead = e.queue[:n], 0
		}
		v.queued = false
		v.inflight = true
		e.process(v)
		v.inflight = false
		if v.dead && v.inst != nil {
			e.stopInst(v.inst)
		}
		e.touch(v)
	}
}

// process builds and/or checks v. Called with mu held; releases it around
// resource code.
func (e *engine) process(v *vertex) {
	if v.canBuild() {
		e.build(v)
	}
	if !v.canCheck() {
		return
	}
	if v.lim != nil && !v.limitOK {
		if d := v.lim.Reserve().Delay(); d > 0 {
			v.limitT = e.after(d, func(t *vtimer) {
				if v.limitT != t {
					return
				}
				v.limitT, v.limitOK = nil, true
				e.touch(v)
			})
			return
		}
	}
	v.limitOK = false
	v.dirty = false // race 2: cleared before CheckApply starts
	v.checking = true
	refresh := v.refresh
	v.refresh = false
	apply := !e.opts.Noop && !v.spec.Meta.Noop
	in, meta, kind := v.inst, v.spec.Meta, v.spec.Kind
	e.touch(v)
	e.mu.Unlock()

	start := time.Now()
	ok, err := e.checkApply(in, v, meta, apply)
	refreshed := false
	if err == nil && refresh && apply {
		if r, isR := in.res.(Refresher); isR {
			refreshed = true
			err = e.guard(v.id, "refresh", func() error { return r.Refresh(in.ctx) })
		}
	}
	var (
		changes []string
		planned []Change
	)
	if err == nil && !ok && !apply {
		err = e.guard(v.id, "changes", func() error {
			changes, planned = plannedChanges(in.res)
			return nil
		})
	}
	var outs map[string]string
	if o, isO := in.res.(Outputter); isO && err == nil {
		err = e.guard(v.id, "outputs", func() error { outs = o.Outputs(); return nil })
	}
	end := time.Now()
	if km := v.km; km != nil {
		km.checks.Inc()
		km.duration.Observe(end.Sub(start).Seconds())
		if err != nil {
			km.errors.Inc()
		}
	}

	e.mu.Lock()
	v.checking = false
	v.checks++
	v.lastCheck = end
	if v.dead || in != v.inst {
		return
	}
	if err != nil {
		e.failed(v, err, refresh)
		return
	}
	v.attempt = 0
	v.lastErr = ""
	v.state = StateConverged
	changed := !ok
	switch {
	case changed && apply:
		v.applies++
		v.lastChange = end
		v.pending, v.refused = false, false
		e.log.Info("resource changed", "resource", v.id, "kind", kind)
		for _, d := range v.dependents {
			d.dirty = true
			e.touch(d)
		}
		for _, n := range v.notify {
			n.refresh, n.dirty = true, true
			e.touch(n)
		}
		e.resetTimeout()
	case changed:
		v.pending = true
		v.changes, v.planned = changes, planned
		e.log.Info("resource would change", "resource", v.id, "kind", kind)
		// A resource whose every change run would refuse (a type change
		// without allow_restart) stops run there: it changes nothing, so
		// its dependents read what it has now and nothing is refreshed.
		v.refused = allRefused(planned)
		if v.refused {
			break
		}
		for _, n := range v.notify {
			if !n.wouldRefresh {
				n.wouldRefresh = true
				e.log.Info("resource would be refreshed", "resource", n.id, "by", v.id)
			}
		}
	default:
		v.pending, v.refused = false, false
		v.changes, v.planned = nil, nil
		if e.debug {
			e.log.Debug("resource checked", "resource", v.id, "refreshed", refreshed)
		}
	}
	if !v.hasOut || !maps.Equal(outs, v.outputs) {
		v.hasOut = true
		v.outputs = outs
		for _, r := range v.refBy {
			r.needBuild = true
			e.touch(r)
		}
	}
}

// failed records a failed check and schedules the retry, if any.
func (e *engine) failed(v *vertex, err error, refresh bool) {
	v.state = StateFailed
	v.lastErr = err.Error()
	if refresh {
		v.refresh = true // a retry refreshes again
	}
	v.attempt++
	m := v.spec.Meta
	if IsPermanent(err) || (m.Retry >= 0 && v.attempt > m.Retry) {
		v.gaveUp = true
		e.log.Error("resource failed", "resource", v.id, "attempts", v.attempt, "permanent", IsPermanent(err), "err", err)
		return
	}
	d := backoff(m.Delay, v.attempt)
	e.log.Warn("resource check failed, retrying", "resource", v.id, "attempt", v.attempt, "in", d, "err", err)
	v.retry = e.after(d, func(t *vtimer) {
		if v.retry != t {
			return
		}
		v.retry = nil
		v.dirty = true
		e.touch(v)
	})
}

// backoff is the wait before retry number attempt (1-based): Delay·2^(n-1)
// plus up to 25% jitter, capped at 5 minutes (or Delay when that is larger).
// Delay 0 means 100ms.
func backoff(base time.Duration, attempt int) time.Duration {
	if base <= 0 {
		base = defaultDelay
	}
	limit := max(maxDelay, base)
	d := base << min(attempt-1, 30)
	if d <= 0 || d > limit {
		d = limit
	}
	return d + rand.N(d/4+1)
}

// checkApply runs CheckApply with the vertex's timeout, recovering panics
// (the same call Converge makes); a retrying AWS call's reason becomes the
// vertex's last error while the check runs.
func (e *engine) checkApply(in *instance, v *vertex, m Meta, apply bool) (ok bool, err error) {
	ctx := withReporter(in.ctx, func(reason string) {
		e.mu.Lock()
		defer e.mu.Unlock()
		if v.inst == in && v.checking {
			v.lastErr = reason
		}
	})
	return checkApply(ctx, e.log, in.res, v.id, m, apply)
}

// guard runs resource code, turning a panic into an error (stack in the log).
func (e *engine) guard(id, op string, f func() error) error { return guard(e.log, id, op, f) }

// ---- building and watching ----

// build (re)makes v's resource. Called with mu held, by v's worker.
func (e *engine) build(v *vertex) {
	v.needBuild = false
	spec := v.spec
	e.mu.Unlock()
	var (
		r   Resource
		fp  string
		err error
	)
	err = e.guard(v.id, "build", func() error {
		var err error
		r, fp, err = spec.Build(e.lookup)
		if err == nil && r == nil {
			err = errors.New("build returned no resource")
		}
		return err
	})
	e.mu.Lock()
	if v.dead {
		if r != nil {
			e.discard(r)
		}
		return
	}
	if err != nil {
		v.state, v.gaveUp, v.lastErr = StateFailed, true, err.Error()
		e.log.Error("resource build failed", "resource", v.id, "err", err)
		if v.inst != nil { // built from outputs that no longer resolve: stale
			e.stopInst(v.inst)
			v.inst = nil
		}
		return
	}
	if v.inst != nil && v.inst.fp == fp {
		if !sameResource(r, v.inst.res) {
			e.discard(r)
		}
		return
	}
	if v.inst != nil {
		e.log.Info("resource rebuilt", "resource", v.id)
		e.stopInst(v.inst)
		v.inst = nil
	}
	e.stopTimer(v.retry)
	v.retry, v.gaveUp, v.attempt, v.watchN = nil, false, 0, 0

	// Init and SetPoll run before Watch, outside the lock.
	e.mu.Unlock()
	if i, ok := r.(Initer); ok {
		env := Env{
			Graph: e.graphName(), ID: v.id, Kind: spec.Kind, Name: spec.Name,
			Display: spec.Display, Meta: spec.Meta, Log: e.log.With("resource", v.id),
		}
		err = e.guard(v.id, "init", func() error { return i.Init(env) })
	}
	sp, selfPoll := r.(SelfPoller)
	if err == nil && selfPoll && spec.Meta.Poll > 0 {
		err = e.guard(v.id, "set poll", func() error { sp.SetPoll(spec.Meta.Poll); return nil })
	}
	e.mu.Lock()
	if v.dead {
		e.discard(r)
		return
	}
	if err != nil {
		v.state, v.gaveUp, v.lastErr = StateFailed, true, err.Error()
		e.log.Error("resource init failed", "resource", v.id, "err", err)
		e.discard(r)
		return
	}
	in := &instance{res: r, fp: fp}
	in.ctx, in.cancel = context.WithCancel(e.ctx)
	v.inst = in
	v.running = false
	v.dirty = true
	if v.state != StateFailed {
		v.state = StateWaiting
	}
	switch {
	case spec.Meta.Poll > 0 && !selfPoll:
		v.running = true
		e.schedulePoll(v, in, spec.Meta.Poll)
	case isStatic(r):
		v.running = true
	default:
		e.startWatch(v, in)
	}
}

func (e *engine) graphName() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.graph.Name
}

// discard closes a resource that was built but never started.
func (e *engine) discard(r Resource) {
	if c, ok := r.(io.Closer); ok {
		e.wg.Go(func() { _ = safeClose(c) })
	}
}

// sameResource reports whether Build handed back the running resource itself
// (it must not be closed then).
func sameResource(a, b Resource) bool {
	t := reflect.TypeOf(a)
	return t == reflect.TypeOf(b) && t.Comparable() && a == b
}

func isStatic(r Resource) bool {
	s, ok := r.(Static)
	return ok && s.Static()
}

func (e *engine) schedulePoll(v *vertex, in *instance, d time.Duration) {
	in.poll = e.after(d, func(t *vtimer) {
		if in.poll != t || v.inst != in || v.dead {
			return
		}
		if v.km != nil {
			v.km.events.Inc()
		}
		v.dirty = true
		e.schedulePoll(v, in, d)
		e.touch(v)
	})
}

func (e *engine) startWatch(v *vertex, in *instance) {
	done := make(chan struct{})
	in.watchDone = done
	ev := &events{e: e, v: v, in: in}
	e.wg.Go(func() {
		defer close(done)
		err := e.guard(v.id, "watch", func() error { return in.res.Watch(in.ctx, ev) })
		e.watchEnded(v, in, err)
	})
}

// watchEnded handles a Watch that returned. Returning nil before ctx is done
// means "nothing (more) to watch": the vertex counts as running.
func (e *engine) watchEnded(v *vertex, in *instance, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if v.inst != in || v.dead || in.ctx.Err() != nil {
		return
	}
	if err == nil {
		v.running = true
		e.touch(v)
		return
	}
	v.running = false
	v.state = StateFailed
	v.lastErr = "watch: " + err.Error()
	v.watchN++
	m := v.spec.Meta
	if IsPermanent(err) || (m.Retry >= 0 && v.watchN > m.Retry) {
		v.gaveUp = true
		e.log.Error("resource watch failed", "resource", v.id, "err", err)
		e.touch(v)
		return
	}
	d := backoff(m.Delay, v.watchN)
	e.log.Warn("resource watch failed, restarting", "resource", v.id, "in", d, "err", err)
	v.retry = e.after(d, func(t *vtimer) {
		if v.retry != t || v.inst != in {
			return
		}
		v.retry = nil
		v.dirty = true
		e.startWatch(v, in)
		e.touch(v)
	})
	e.touch(v)
}

// lookup is the Lookup handed to Build. In a check-only pass, a value that
// a resource which would change does not have yet is KnownAfterApply, so
// that its dependents are planned too.
func (e *engine) lookup(id, key string) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v := e.byID[id]
	if v == nil || !v.hasOut {
		return "", false
	}
	val, ok := v.outputs[key]
	if v.pending && !v.refused && val == "" && e.opts.Noop {
		return KnownAfterApply, true
	}
	return val, ok
}

// allRefused reports whether there are changes and run would refuse each.
func allRefused(cs []Change) bool {
	for _, c := range cs {
		if c.Refused == "" {
			return false
		}
	}
	return len(cs) > 0
}

// plannedChanges asks a resource that would change what it would do: in
// detail when it is a ChangePlanner, else its Changer's lines, each an
// action by its first word (actionOf).
func plannedChanges(r Resource) ([]string, []Change) {
	var lines []string
	if c, ok := r.(Changer); ok {
		lines = c.Changes()
	}
	if p, ok := r.(ChangePlanner); ok {
		planned := p.PlannedChanges()
		if lines == nil {
			for _, c := range planned {
				lines = append(lines, c.Summary)
			}
		}
		return lines, planned
	}
	planned := make([]Change, len(lines))
	for i, l := range lines {
		planned[i] = Change{Action: actionOf(l), Summary: l}
	}
	return lines, planned
}

// actionOf reads a Changer's line ("create zone shop.example.", "delete
// record ...") as an action by its verb; a line with any other verb is an
// update.
func actionOf(line string) ChangeAction {
	verb, _, _ := strings.Cut(line, " ")
	switch verb {
	case "create", "launch", "bake", "add", "import":
		return ActionCreate
	case "delete", "remove", "terminate", "destroy", "deregister":
		return ActionDelete
	case "replace":
		return ActionReplace
	}
	return ActionUpdate
}

var _ Events = (*events)(nil)

// events is the Events handed to one instance's Watch; events of a stopped
// instance are ignored.
type events struct {
	e  *engine
	v  *vertex
	in *instance
}

func (ev *events) Running() {
	e, v := ev.e, ev.v
	e.mu.Lock()
	defer e.mu.Unlock()
	if v.inst != ev.in || v.dead || v.running {
		return
	}
	v.running = true
	v.watchN = 0
	e.touch(v)
}

func (ev *events) Changed() {
	e, v := ev.e, ev.v
	if v.km != nil {
		v.km.events.Inc()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if v.inst != ev.in || v.dead {
		return
	}
	v.dirty = true
	if v.gaveUp {
		v.gaveUp, v.attempt = false, 0 // a new event earns a fresh set of retries
	}
	e.touch(v)
}

// Polled records a poll of the Watch as v's last check (see engine.Polled).
func (ev *events) Polled() {
	e, v := ev.e, ev.v
	e.mu.Lock()
	defer e.mu.Unlock()
	if v.inst != ev.in || v.dead {
		return
	}
	v.lastCheck = time.Now()
	e.notifySubs()
}

// ---- timers ----

// after runs f(t) with mu held after d, unless stopped or the engine stops.
// The callback is counted in wg so Run outlives it.
func (e *engine) after(d time.Duration, f func(t *vtimer)) *vtimer {
	t := &vtimer{}
	e.wg.Add(1)
	t.t = time.AfterFunc(d, func() {
		defer e.wg.Done()
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.stopping {
			return
		}
		f(t)
	})
	return t
}

func (e *engine) stopTimer(t *vtimer) {
	if t != nil && t.t.Stop() {
		e.wg.Done()
	}
}

// ---- derived state ----

func (v *vertex) display() State {
	switch {
	case v.checking:
		return StateChecking
	case v.nBad > 0:
		return StateBlocked
	}
	return v.state
}

// isSettled: nothing left to do for v until a new event.
func (v *vertex) isSettled() bool {
	switch {
	case v.queued || v.inflight:
		return false
	case v.nBad > 0:
		return true
	case v.state == StateFailed:
		return v.gaveUp
	case v.state == StateConverged:
		return !v.dirty && !v.needBuild && v.retry == nil && v.limitT == nil
	}
	return false
}

// touch recomputes v's derived flags and propagates what changed to its
// neighbours, then queues whatever can make progress. Called with mu held.
func (e *engine) touch(v *vertex) {
	e.work = append(e.work, v)
	if e.touching {
		return
	}
	e.touching = true
	for len(e.work) > 0 {
		x := e.work[len(e.work)-1]
		e.work = e.work[:len(e.work)-1]
		e.recompute(x)
	}
	e.touching = false
	e.notifySubs()
	if e.started {
		e.checkDone()
	}
}

func (e *engine) recompute(v *vertex) {
	if v.dead {
		return
	}
	e.poke(v)
	if d := v.display(); d != v.disp {
		e.counts[v.disp]--
		e.counts[d]++
		e.opts.Metrics.moveState(v.disp, d)
		v.disp = d
	}
	if bad := v.disp == StateFailed || v.disp == StateBlocked; bad != v.bad {
		v.bad = bad
		for _, d := range v.dependents {
			if bad {
				d.nBad++
			} else {
				d.nBad--
			}
			e.work = append(e.work, d)
		}
	}
	if ready := v.inst != nil && v.state == StateConverged && !v.checking && v.nBad == 0; ready != v.ready {
		v.ready = ready
		if ready {
			e.work = append(e.work, v.dependents...)
		}
	}
	if s := v.isSettled(); s != v.settled {
		v.settled = s
		if s {
			e.unsettled--
		} else {
			e.unsettled++
		}
	}
	if c := v.state == StateConverged && v.nBad == 0; c != v.conv {
		v.conv = c
		if c {
			e.unconverged--
		} else {
			e.unconverged++
		}
	}
}

// checkDone ends Run when Once or ConvergedTimeout is met, and keeps the
// converged gauge. Called with mu held.
func (e *engine) checkDone() {
	all := e.unconverged == 0 && e.unsettled == 0
	if g := b2i(all); g != e.lastGauge {
		e.lastGauge = g
		e.opts.Metrics.setConverged(all)
	}
	if e.stopping || e.closed {
		return
	}
	if e.opts.Once && e.unsettled == 0 {
		e.finish()
		return
	}
	if e.opts.ConvergedTimeout > 0 {
		switch {
		case e.unconverged == 0 && e.timeout == nil:
			e.timeout = e.after(e.opts.ConvergedTimeout, func(t *vtimer) {
				if e.timeout == t {
					e.timeout = nil
					e.log.Info("graph converged and idle", "for", e.opts.ConvergedTimeout)
					e.finish()
				}
			})
		case e.unconverged > 0 && e.timeout != nil:
			e.stopTimer(e.timeout)
			e.timeout = nil
		}
	}
}

// resetTimeout restarts the converged-timeout clock: something changed.
func (e *engine) resetTimeout() {
	if e.timeout != nil {
		e.stopTimer(e.timeout)
		e.timeout = nil
	}
}

// finish ends Run. Called with mu held; with Once it records the verdict
// while the graph is still in the state that settled it.
func (e *engine) finish() {
	if !e.closed {
		if e.opts.Once {
			e.verdict = e.notConverged()
		}
		e.closed = true
		close(e.done)
	}
}

// ---- status ----

func (e *engine) status() []VertexStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]VertexStatus, len(e.order))
	for i, v := range e.order {
		out[i] = e.statusOf(v)
	}
	return out
}

func (e *engine) statusOf(v *vertex) VertexStatus {
	s := VertexStatus{
		ID: v.id, Kind: v.spec.Kind, Name: v.spec.Name,
		State:        v.disp,
		DependsOn:    slices.Clone(v.spec.DependsOn),
		Pending:      v.pending,
		Changes:      slices.Clone(v.changes),
		Planned:      slices.Clone(v.planned),
		WouldRefresh: v.wouldRefresh,
		Checks:       v.checks,
		Applies:      v.applies,
		LastCheck:    v.lastCheck,
		LastChange:   v.lastChange,
		LastError:    v.lastErr,
	}
	if v.disp == StateBlocked {
		for _, d := range v.deps {
			if d.bad {
				s.BlockedBy = append(s.BlockedBy, d.id)
			}
		}
	}
	return s
}

func (e *engine) subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	e.mu.Lock()
	if e.subs == nil {
		e.subs = map[chan struct{}]struct{}{}
	}
	e.subs[ch] = struct{}{}
	e.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			e.mu.Lock()
			delete(e.subs, ch)
			e.mu.Unlock()
		})
	}
}

func (e *engine) notifySubs() {
	for ch := range e.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
