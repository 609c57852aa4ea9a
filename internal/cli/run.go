package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"kiln/internal/awsres"
	"kiln/internal/awssim"
	"kiln/internal/config"
	"kiln/internal/engine"
	"kiln/internal/events"
	"kiln/internal/fswatch"
	"kiln/internal/hclgraph"
	"kiln/internal/lock"
	"kiln/internal/ui"
)

type runOptions struct {
	once             bool
	noop             bool
	convergedTimeout time.Duration
	workers          int
	workersSet       bool // --workers was given; else autoWorkers picks
	listen           string
	sim              simFlags
	events           eventsFlags
	lock             lockFlags
	vars             graphVars
	confirmPrune     int
}

func newRunCmd(a *app) *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run FILE",
		Short: "Converge a graph and keep it converged",
		Long: `Run converges the graph in FILE in dependency order, then keeps it converged:
every resource watches the real world and is re-checked when it drifts.

kiln watches FILE too: when it changes, the new graph is parsed and swapped
in (unchanged resources keep running untouched, changed ones restart, removed
ones stop). A new file with errors is reported and changes nothing.

What the graph owns in AWS (by its kiln:owner tag) but no longer lists is an
orphan, looked for at start and after every reload. Without prune: true in
the graph it is left in place and reported (the log, /readyz details, the
kiln_orphaned_resources metric); with it, it is destroyed, dependents first.
A prune of more than half of what the graph owns (and more than 3) is
refused, naming the count, unless --confirm-prune N names that count or the
graph's prune_limit allows it.

With --once, run exits after one convergence: 0 when every resource
converged, 1 with a summary of the failed and blocked ones otherwise.

AWS settings come from the standard configuration (credential chain,
profiles, AWS_REGION, AWS_ENDPOINT_URL). With --sim, kiln starts its EC2
simulator in-process on a loopback port and points every AWS kind at it: no
AWS account needed.

With --listen, run serves /metrics, /healthz and the events receiver,
POST /events/aws: EventBridge API-destination deliveries carrying the API key
(--events-api-key or KILN_EVENTS_API_KEY) in x-api-key, and SNS deliveries
from the --sns-topic topics (signature verified). A pushed state change
re-checks the resource that owns the instance at once. With --sim too, the
simulator pushes its events there, so drift is noticed within a second.

With --events-queue QUEUE_URL (repeatable), run long-polls an SQS queue that
an EventBridge rule fills (kiln events setup makes both) and routes its
events the same way: no endpoint that AWS must reach. A queue given by name
is looked up in the default region; with --sim it is made in the simulator,
rule included.

With --lock DSN (or KILN_LOCK), several kiln runs of one graph share a lock
per graph name in PostgreSQL: the one that holds it acts, the others stand
by (they make no AWS writes and run no checks) and one of them takes over
within --lock-ttl when the holder dies. A holder that loses its lock stops
applying at once. An unreachable server or a wrong DSN is an error at start.` + runExitHelp,
		Example: `  kiln run --once examples/local.yaml
  kiln run --once --sim examples/ec2.yaml         # EC2 on the built-in simulator
  kiln run --converged-timeout 30s graph.yaml
  kiln run --listen 127.0.0.1:9100 graph.yaml    # /metrics, /healthz, /events/aws
  kiln run --sim --listen 127.0.0.1:0 examples/ec2.yaml
  kiln run --events-queue https://sqs.us-east-1.amazonaws.com/123456789012/kiln-events graph.yaml
  kiln run --sim --events-queue kiln-events examples/ec2.yaml
  kiln run --lock postgres://kiln@db/kiln --listen :9100 graph.yaml   # active/standby pair`,
		Args: fileArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.workersSet = cmd.Flags().Changed("workers")
			return a.run(cmd.Context(), args[0], o)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.once, "once", false, "converge once and exit (0 converged, 1 not)")
	f.BoolVar(&o.noop, "noop", false, "check only: report what differs, change nothing")
	f.DurationVar(&o.convergedTimeout, "converged-timeout", 0, "exit 0 once the whole graph has been converged and idle this long")
	f.IntVar(&o.workers, "workers", defaultWorkers, "CheckApply calls at once (default: 64, or one per AWS resource up to 4096; AWS checks mostly wait on the network, and concurrent ones share batched calls)")
	f.StringVar(&o.listen, "listen", "", "serve the graph page (/), /metrics, /healthz and POST /events/aws on this address (host:port)")
	o.sim.register(f)
	o.events.register(f)
	o.lock.register(f)
	f.IntVar(&o.confirmPrune, "confirm-prune", 0, "with prune: true, let a prune of exactly N resources past the mass-prune guard (more than half of what the graph owns, and more than 3)")
	a.registerRetryTimeout(f)
	o.vars.register(f)
	return cmd
}

// defaultWorkers bounds concurrent CheckApply calls in run and plan. Most
// time in an AWS check is spent waiting on the network, and the hub's batcher
// merges only the lookups that are in flight together, so a pool much wider
// than the cores costs little and saves calls (1,000 first checks: 253
// DescribeInstances calls with 4 workers, 11 with one per resource).
const defaultWorkers = 64

// maxAutoWorkers bounds autoWorkers.
const maxAutoWorkers = 4096

// autoWorkers is run's pool when --workers is not given: defaultWorkers,
// or one worker per AWS resource (up to maxAutoWorkers) when there are
// more. An AWS check holds its worker while it waits on AWS (a boot, a
// Route 53 change going INSYNC, ~30 s), so with 64 workers the 1,000
// records of one zone would converge in 16 INSYNC waits instead of one.
// Local kinds do not count: the engine's own figures are for its default.
func autoWorkers(g *engine.Graph) int {
	n := 0
	for _, s := range g.Specs {
		if strings.HasPrefix(s.Kind, "aws:") {
			n++
		}
	}
	return max(defaultWorkers, min(n, maxAutoWorkers))
}

func (a *app) run(ctx context.Context, file string, o runOptions) error {
	if o.convergedTimeout < 0 {
		return &usageError{cmd: "kiln run", err: errors.New("--converged-timeout must not be negative")}
	}
	if o.workers < 1 {
		return &usageError{cmd: "kiln run", err: errors.New("--workers must be at least 1")}
	}
	if err := o.sim.check("kiln run"); err != nil {
		return err
	}
	if err := o.lock.resolve(); err != nil {
		return err
	}
	if err := readable(file); err != nil {
		return err
	}
	// Listen first: the simulator needs the events receiver's address.
	var (
		err    error
		ln     net.Listener
		apiKey string
		push   []awssim.EventTarget
	)
	if o.listen != "" {
		if apiKey, err = o.events.key(o.sim.on); err != nil {
			return err
		}
		ln, err = net.Listen("tcp", o.listen)
		if err != nil {
			return fmt.Errorf("--listen: %w", err)
		}
		defer ln.Close() // when an error below means serveHTTP never runs
		a.log.Info("serving metrics", "addr", ln.Addr().String(), "events", events.Path,
			"eventbridge", apiKey != "", "sns_topics", len(o.events.topics))
		if o.sim.on && len(o.events.queues) == 0 { // with --events-queue the simulator fills the queue instead
			push = []awssim.EventTarget{{URL: eventsURL(ln), APIKey: apiKey}}
		}
	}
	sv, err := a.startSim(o.sim, push)
	if err != nil {
		return err
	}
	var lk *locked
	if o.lock.dsn != "" {
		// Before the hubs exist: every client they make is fenced.
		a.aws.Fence = func() error { return lk.fence() }
	}
	// The simulator and the hubs serve from here on: an HCL graph's data
	// sources are read while it is loaded.
	group, gctx := errgroup.WithContext(ctx)
	runCtx, stop := context.WithCancel(gctx)
	defer stop()
	a.runAWS(runCtx, group, sv)
	waited := false
	defer func() { // an early return: stop what runs
		if !waited {
			stop()
			_ = group.Wait()
		}
	}()
	src, err := a.graphSource(file, o.vars, a.kinds())
	if err != nil {
		return err
	}
	// What the watch compares with: the files before they are read, so
	// a change in between is caught by the watch's first re-read. An HCL
	// graph's files are known once it is read.
	data, err := src.snapshot()
	if err != nil {
		return fmt.Errorf("read graph file: %w", err)
	}
	g, err := src.load(runCtx)
	if err != nil {
		return err
	}
	if src.hcl {
		if data, err = src.snapshot(); err != nil {
			return fmt.Errorf("read graph file: %w", err)
		}
	}
	if err := a.checkCredentials(ctx, g); err != nil {
		return err
	}
	m := newMonitoring()
	workers := o.workers
	if !o.workersSet {
		workers = autoWorkers(g)
	}
	eo := engine.Options{
		Noop:             o.noop,
		Once:             o.once,
		ConvergedTimeout: o.convergedTimeout,
		Workers:          workers,
		Log:              a.log,
		Metrics:          m.metrics,
	}
	// view is the engine for pages and graph swaps: the one engine, or with
	// --lock the engine of the current lease.
	var (
		view   runView
		runEng func(context.Context) error
	)
	if o.lock.dsn != "" {
		lk = newLocked(nil, g, eo, a.log)
		locker, err := lock.Open(ctx, o.lock.dsn, g.Name, lock.Options{TTL: o.lock.ttl, OnStandby: lk.standby, Log: a.log})
		if err != nil {
			return err
		}
		defer locker.Close()
		lk.locker = locker
		if !o.noop {
			lk.term = a.sweepBuilders
		}
		m.reg.MustRegister(lk)
		view, runEng = lk, lk.run
	} else {
		eng := engine.New(g, eo)
		view, runEng = eng, eng.Run
	}

	if err := a.startQueues(runCtx, group, o.events.queues, o.sim.on, m.reg); err != nil {
		stop()
		_ = group.Wait()
		return err
	}
	if !o.noop && o.lock.dsn == "" {
		a.sweepBuilders(runCtx, g) // once the simulator serves (with --lock, on taking the lease)
	}
	// Orphans: found (and with prune: true destroyed) before the engine
	// starts and after every graph swap. With --lock the standby must not
	// act, so only the lease holder's engine would; not wired yet.
	pruneNow := func(g *engine.Graph) error {
		if o.lock.dsn != "" {
			return nil
		}
		return a.prune(runCtx, g, o.confirmPrune, o.noop, m.orphans)
	}
	m.accounts.set(g, a.log)
	if err := pruneNow(g); err != nil {
		stop()
		_ = group.Wait()
		return err
	}
	var runErr error
	group.Go(func() error {
		defer stop() // the engine is done: stop the file watch, the server, the hubs and the simulator
		runErr = runEng(runCtx)
		if o.once && runErr == nil && !o.noop {
			// Batch-launched instances are named in the background.
			runErr = a.awsHubs().Named(runCtx)
		}
		return nil
	})
	if ln != nil {
		evh := events.New(a.awsHubs(), events.Options{APIKey: apiKey, Topics: o.events.topics, Log: a.log})
		group.Go(func() error {
			return serveHTTP(runCtx, ln, m.mux(view, g.Name, evh), a.log)
		})
	}
	if !o.once {
		group.Go(func() error {
			return a.watchGraph(runCtx, src, data, view, func(g *engine.Graph) {
				m.accounts.set(g, a.log)
				if err := pruneNow(g); err != nil && runCtx.Err() == nil {
					a.log.Error("prune after graph reload", "err", err)
				}
			})
		})
	}
	waited = true
	if err := group.Wait(); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if runErr != nil {
		return a.notConverged(view, runErr, m.accounts.of)
	}
	if o.once {
		a.log.Info("converged", "resources", len(view.Status()))
		if eng, ok := view.(*engine.Engine); ok && src.last != nil && len(src.last.Outputs) > 0 {
			return writeOutputs(a.stdout, src.last.Outputs, eng.Output, false)
		}
	}
	return nil
}

// checkCredentials makes sure, once and before anything runs, that a graph
// with AWS resources has AWS credentials to work with: without them every
// AWS resource would fail with the SDK's chain of errors, and kiln says
// instead what it tried and what to do (awsapi.CredentialsError).
func (a *app) checkCredentials(ctx context.Context, g *engine.Graph) error {
	for _, s := range g.Specs {
		if strings.HasPrefix(s.Kind, "aws:") {
			return a.awsHubs().CheckCredentials(ctx)
		}
	}
	return nil
}

// runView is what run's pages, summaries and graph swaps use of the engine:
// *engine.Engine, or *locked.
type runView interface {
	ui.EngineView
	Swap(g *engine.Graph)
}

// sweepTimeout bounds the start-up sweep of builders: a kiln that cannot
// reach AWS logs it and goes on (its resources will say why they fail).
const sweepTimeout = 30 * time.Second

// sweepBuilders terminates the builders of aws:ami resources that left the
// graph while a kiln was killed mid-bake (awsres.SweepBuilders), before the
// engine starts. A failure is logged, never fatal.
func (a *app) sweepBuilders(ctx context.Context, g *engine.Graph) {
	rs := map[string]any{}
	for _, s := range g.Specs {
		if r, _, err := s.Build(unresolved); err == nil {
			rs[s.ID()] = r
		}
	}
	ctx, cancel := context.WithTimeout(ctx, sweepTimeout)
	defer cancel()
	if _, err := awsres.SweepBuilders(ctx, a.awsHubs(), g.Name, rs, a.log); err != nil {
		a.log.Warn("sweep builders of the graph", "err", err)
	}
}

// notConverged prints a summary of the failed and blocked vertices.
func (a *app) notConverged(eng runView, runErr error, account func(id string) string) error {
	var failed, blocked []engine.VertexStatus
	for _, s := range eng.Status() {
		switch s.State {
		case engine.StateFailed:
			failed = append(failed, s)
		case engine.StateBlocked:
			blocked = append(blocked, s)
		}
	}
	if len(failed)+len(blocked) == 0 {
		return &exitError{code: ExitError, err: fmt.Errorf("not converged: %w", runErr)}
	}
	fmt.Fprintf(a.stderr, "kiln: not converged: %d failed, %d blocked\n", len(failed), len(blocked))
	for _, s := range failed {
		fmt.Fprintf(a.stderr, "  failed   %s%s: %s\n", s.ID, account(s.ID), s.LastError)
	}
	for _, s := range blocked {
		by := s.BlockedBy
		if len(by) == 0 {
			by = s.DependsOn
		}
		fmt.Fprintf(a.stderr, "  blocked  %s%s (by %s)\n", s.ID, account(s.ID), strings.Join(by, ", "))
	}
	return &exitError{code: ExitError}
}

// settle is how long the graph file must stay quiet after an event before
// it is re-read: editors often write a file in several steps.
const settle = 100 * time.Millisecond

// watchGraph re-reads the graph when one of its files changes (for an
// HCL graph: its .hcl files, modules included, variable files and the
// files its data sources read) and swaps the new graph in. A graph with
// errors is logged and changes nothing; after a swap it calls swapped
// with the new graph (the prune). It returns when ctx is done.
//
// The files are watched through the process's shared watcher, which the
// file resources use too (one inotify instance per process): each path
// through its directory, so editors that rename over a file are seen. The
// directories an HCL graph reads whole (its own, its modules') are watched
// by glob (fswatch.WatchGlob): a *.hcl file added, removed or renamed there
// re-reads the graph at once.
func (a *app) watchGraph(ctx context.Context, src *graphSrc, last []byte, eng runView, swapped func(*engine.Graph)) error {
	changed := make(chan struct{}, 1)
	broken := make(chan error, 1)
	subs := map[string]*fswatch.Sub{}
	// Each subscription's error is forwarded by a goroutine that this
	// function owns: it ends when watchGraph returns.
	var wg sync.WaitGroup
	defer wg.Wait()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer func() {
		for _, sub := range subs {
			sub.Close()
		}
	}()
	watch := func() error {
		// want maps a key of subs to whether it is a glob.
		want := map[string]bool{}
		for _, f := range src.watched() {
			want[f] = false
		}
		for _, g := range src.globs() {
			want["glob:"+g] = true
		}
		for f, sub := range subs {
			if _, ok := want[f]; !ok {
				sub.Close()
				delete(subs, f)
			}
		}
		for f, glob := range want {
			if subs[f] != nil {
				continue
			}
			poke := func() {
				select {
				case changed <- struct{}{}:
				default:
				}
			}
			var sub *fswatch.Sub
			var err error
			if glob {
				sub, err = fswatch.Shared().WatchGlob(strings.TrimPrefix(f, "glob:"), poke)
			} else {
				sub, err = fswatch.Shared().Watch(f, poke)
			}
			if err != nil {
				return fmt.Errorf("watch graph file %s: %w", f, err)
			}
			subs[f] = sub
			wg.Go(func() {
				select {
				case err := <-sub.Err():
					select {
					case broken <- err:
					default:
					}
				case <-wctx.Done():
				}
			})
		}
		return nil
	}
	if err := watch(); err != nil {
		return err
	}
	// One re-read right away: the file may have changed between the first
	// read and the watch being established.
	timer := time.NewTimer(settle)
	defer timer.Stop()
	// An HCL graph's AWS data sources are read again every poll: a new
	// value re-evaluates the graph, and the swap restarts only the
	// resources whose specs changed.
	var poll <-chan time.Time
	var ticker *time.Ticker
	repoll := func() {
		if ticker != nil {
			ticker.Stop()
			ticker, poll = nil, nil
		}
		if every := src.pollEvery(); every > 0 {
			ticker = time.NewTicker(every)
			poll = ticker.C
		}
	}
	repoll()
	defer func() {
		if ticker != nil {
			ticker.Stop()
		}
	}()
	force := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-poll:
			changed, err := src.dataChanged(ctx)
			if err != nil {
				a.log.Warn("data source unreadable; keeping its last value", "err", err)
			}
			if changed {
				a.log.Info("data source changed; re-evaluating the graph", "file", src.path)
				force = true
				timer.Reset(0)
			}
		case <-changed:
			timer.Reset(settle)
		case err := <-broken:
			a.log.Warn("graph file watch", "err", err)
			for f, sub := range subs {
				sub.Close()
				delete(subs, f)
			}
			if err := watch(); err != nil {
				return err
			}
			timer.Reset(settle) // an edit may have gone unseen meanwhile
		case <-timer.C:
			data, err := src.snapshot()
			if err != nil {
				a.log.Error("graph file unreadable; keeping the running graph", "file", src.path, "err", err)
				continue
			}
			if bytes.Equal(data, last) && !force {
				continue
			}
			last, force = data, false
			g, err := src.load(ctx)
			if err != nil {
				a.logRejected(src.path, err)
				continue
			}
			if last, err = src.snapshot(); err != nil { // the new graph's files
				last = data
			}
			if err := watch(); err != nil {
				a.log.Warn("graph file watch", "err", err)
			}
			repoll()
			eng.Swap(g)
			a.log.Info("graph reloaded", "file", src.path, "resources", len(g.Specs))
			swapped(g)
		}
	}
}

func (a *app) logRejected(file string, err error) {
	var diags *hclgraph.Diagnostics
	if errors.As(err, &diags) {
		for _, l := range diags.Lines() {
			a.log.Error("graph file rejected; keeping the running graph", "problem", l)
		}
		return
	}
	var cerrs config.Errors
	if !errors.As(err, &cerrs) {
		a.log.Error("graph file rejected; keeping the running graph", "file", file, "err", err)
		return
	}
	for _, e := range cerrs {
		a.log.Error("graph file rejected; keeping the running graph", "problem", e.Error())
	}
}
