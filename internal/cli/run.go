package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"kiln/internal/awsres"
	"kiln/internal/awssim"
	"kiln/internal/config"
	"kiln/internal/engine"
	"kiln/internal/events"
	"kiln/internal/fswatch"
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
	a.registerRetryTimeout(f)
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
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read graph file: %w", err)
	}

	// Listen first: the simulator needs the events receiver's address.
	var (
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
	kinds := a.kinds()
	g, err := config.Parse(file, data, kinds)
	if err != nil {
		return err
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

	group, gctx := errgroup.WithContext(ctx)
	runCtx, stop := context.WithCancel(gctx)
	defer stop()
	a.runAWS(runCtx, group, sv)
	if err := a.startQueues(runCtx, group, o.events.queues, o.sim.on, m.reg); err != nil {
		stop()
		_ = group.Wait()
		return err
	}
	if !o.noop && o.lock.dsn == "" {
		a.sweepBuilders(runCtx, g) // once the simulator serves (with --lock, on taking the lease)
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
			return a.watchGraph(runCtx, file, data, kinds, view)
		})
	}
	if err := group.Wait(); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if runErr != nil {
		return a.notConverged(view, runErr)
	}
	if o.once {
		a.log.Info("converged", "resources", len(view.Status()))
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
func (a *app) notConverged(eng runView, runErr error) error {
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
		fmt.Fprintf(a.stderr, "  failed   %s: %s\n", s.ID, s.LastError)
	}
	for _, s := range blocked {
		by := s.BlockedBy
		if len(by) == 0 {
			by = s.DependsOn
		}
		fmt.Fprintf(a.stderr, "  blocked  %s (by %s)\n", s.ID, strings.Join(by, ", "))
	}
	return &exitError{code: ExitError}
}

// settle is how long the graph file must stay quiet after an event before
// it is re-read: editors often write a file in several steps.
const settle = 100 * time.Millisecond

// watchGraph re-reads file when it changes and swaps the new graph in. A
// file with errors is logged and changes nothing. It returns when ctx is
// done.
func (a *app) watchGraph(ctx context.Context, file string, last []byte, kinds config.Kinds, eng runView) error {
	// The process's shared watcher, which the file resources use too: the
	// directory is watched, so editors that rename over the file are seen.
	changed := make(chan struct{}, 1)
	watch := func() (*fswatch.Sub, error) {
		return fswatch.Shared().Watch(file, func() {
			select {
			case changed <- struct{}{}:
			default:
			}
		})
	}
	sub, err := watch()
	if err != nil {
		return fmt.Errorf("watch graph file: %w", err)
	}
	defer func() { sub.Close() }()
	// One re-read right away: the file may have changed between the first
	// read and the watch being established.
	timer := time.NewTimer(settle)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
			timer.Reset(settle)
		case err := <-sub.Err():
			a.log.Warn("graph file watch", "err", err)
			sub.Close()
			if sub, err = watch(); err != nil {
				return fmt.Errorf("watch graph file: %w", err)
			}
			timer.Reset(settle) // an edit may have gone unseen meanwhile
		case <-timer.C:
			data, err := os.ReadFile(file)
			if err != nil {
				a.log.Error("graph file unreadable; keeping the running graph", "file", file, "err", err)
				continue
			}
			if bytes.Equal(data, last) {
				continue
			}
			last = data
			g, err := config.Parse(file, data, kinds)
			if err != nil {
				a.logRejected(file, err)
				continue
			}
			eng.Swap(g)
			a.log.Info("graph reloaded", "file", file, "resources", len(g.Specs))
		}
	}
}

func (a *app) logRejected(file string, err error) {
	var cerrs config.Errors
	if !errors.As(err, &cerrs) {
		a.log.Error("graph file rejected; keeping the running graph", "file", file, "err", err)
		return
	}
	for _, e := range cerrs {
		a.log.Error("graph file rejected; keeping the running graph", "problem", e.Error())
	}
}
