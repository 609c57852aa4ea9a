package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"kiln/internal/engine"
	"kiln/internal/lock"
)

// lockFlags are kiln run's --lock flags.
type lockFlags struct {
	dsn string
	ttl time.Duration
}

func (lf *lockFlags) register(f *pflag.FlagSet) {
	f.StringVar(&lf.dsn, "lock", "", "hold the graph's lock in this PostgreSQL database (DSN, or $KILN_LOCK) to act; stand by while another kiln holds it")
	f.DurationVar(&lf.ttl, "lock-ttl", lock.DefaultTTL, "with --lock: a dead holder's lock expires after this; renewed every quarter of it")
}

// resolve fills the DSN from KILN_LOCK and checks the flags.
func (lf *lockFlags) resolve() error {
	if lf.dsn == "" {
		lf.dsn = os.Getenv("KILN_LOCK")
	}
	if lf.ttl < 100*time.Millisecond {
		return &usageError{cmd: "kiln run", err: errors.New("--lock-ttl must be at least 100ms")}
	}
	return nil
}

// locked runs the engine only while this process holds the graph's lock:
// one engine per lease, started when the lease is taken and stopped (every
// check and watch returned) when it is lost or released. Together with the
// AWS hubs' fence (fence, asked before every write) that is the fencing: a
// standby has no engine and its writes are refused, and a holder that
// loses its lease cancels its checks and can send nothing more. For the
// page, /healthz and /metrics it is the engine of the current lease, and
// says who holds the lock.
type locked struct {
	locker *lock.Locker
	opts   engine.Options
	log    *slog.Logger
	// term runs before each lease's engine (the builder sweep).
	term func(ctx context.Context, g *engine.Graph)

	mu     sync.Mutex
	g      *engine.Graph
	eng    *engine.Engine
	lease  *lock.Lease
	holder lock.Holder // while standing by: the other holder (Token 0: nobody)
	subs   map[chan struct{}]struct{}

	acquired, lost prometheus.Counter
}

func newLocked(lk *lock.Locker, g *engine.Graph, o engine.Options, log *slog.Logger) *locked {
	return &locked{
		locker: lk, g: g, opts: o, log: log,
		subs: map[chan struct{}]struct{}{},
		acquired: prometheus.NewCounter(prometheus.CounterOpts{Name: "kiln_lock_acquired_total",
			Help: "Leases of the graph's lock this process took."}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{Name: "kiln_lock_lost_total",
			Help: "Leases this process lost (connection lost, not renewed in time) and stopped applying."}),
	}
}

// standby is the Locker's OnStandby: who holds the lock while we wait.
func (l *locked) standby(h lock.Holder) {
	l.mu.Lock()
	l.holder = h
	l.mu.Unlock()
	l.log.Info("standing by", "lock_holder", h.String())
	l.notify()
}

// fence is the AWS hubs' fence: writes go out only under a valid lease.
func (l *locked) fence() error {
	l.mu.Lock()
	s, name := l.lease, l.g.Name
	l.mu.Unlock()
	if s == nil {
		return fmt.Errorf("standing by: this kiln does not hold the lock of graph %q", name)
	}
	return s.Check()
}

// run takes the lease, runs an engine for it, and stands by again when it
// is lost, until ctx is done or the engine returns by itself (--once,
// --converged-timeout). It returns that engine's result.
func (l *locked) run(ctx context.Context) error {
	for {
		l.log.Info("waiting for the lock", "graph", l.g.Name, "where", l.locker.Where())
		s, err := l.locker.Acquire(ctx)
		if err != nil {
			return err
		}
		h := s.Holder()
		l.log.Info("lock acquired", "graph", l.g.Name, "token", s.Token(), "lock_holder", h.String())
		l.acquired.Inc()
		l.mu.Lock()
		l.lease, l.holder = s, h
		l.mu.Unlock()
		l.notify()

		err = l.runTerm(ctx, s)

		l.mu.Lock()
		l.lease, l.holder = nil, lock.Holder{}
		l.mu.Unlock()
		if lctx := s.Context(); lctx.Err() != nil && ctx.Err() == nil {
			l.lost.Inc()
			l.log.Error("lock lost: stopped applying; standing by", "graph", l.g.Name, "token", s.Token(),
				"err", context.Cause(lctx))
			l.notify()
			continue
		}
		s.Release()
		l.notify()
		return err
	}
}

// runTerm runs one engine under lease s until it returns or s ends.
func (l *locked) runTerm(ctx context.Context, s *lock.Lease) error {
	tctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(s.Context(), func() { cancel(context.Cause(s.Context())) })
	defer stop()

	l.mu.Lock()
	g := l.g
	l.mu.Unlock()
	if l.term != nil {
		l.term(tctx, g)
	}
	l.mu.Lock()
	eng := engine.New(l.g, l.opts) // the latest graph: a swap may have come meanwhile
	l.eng = eng
	l.mu.Unlock()
	ch, unsub := eng.Subscribe()
	fwd := make(chan struct{})
	go func() {
		defer unsub()
		for {
			select {
			case <-ch:
				l.notify()
			case <-fwd:
				return
			}
		}
	}()
	defer close(fwd)
	err := eng.Run(tctx)
	if s.Context().Err() != nil && ctx.Err() == nil {
		// Lost: stand by with no engine. Otherwise the stopped engine stays
		// for the summary of --once.
		l.mu.Lock()
		l.eng = nil
		l.mu.Unlock()
	}
	return err
}

// Swap keeps the new graph for the next lease and swaps it into the
// running engine, if any.
func (l *locked) Swap(g *engine.Graph) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.g = g
	if l.eng != nil {
		l.eng.Swap(g)
	}
}

// Status is the running engine's, or every resource pending while
// standing by.
func (l *locked) Status() []engine.VertexStatus {
	l.mu.Lock()
	eng, g := l.eng, l.g
	l.mu.Unlock()
	if eng != nil {
		return eng.Status()
	}
	st := make([]engine.VertexStatus, 0, len(g.Specs))
	for _, s := range g.Specs {
		st = append(st, engine.VertexStatus{ID: s.ID(), Kind: s.Kind, Name: s.Name, State: engine.StatePending, DependsOn: s.DependsOn})
	}
	return st
}

// Subscribe signals (coalesced) on every status change of the current
// engine and on every change of the lock's holder.
func (l *locked) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	l.mu.Lock()
	l.subs[ch] = struct{}{}
	l.mu.Unlock()
	return ch, func() {
		l.mu.Lock()
		delete(l.subs, ch)
		l.mu.Unlock()
	}
}

func (l *locked) notify() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for ch := range l.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// LockStatus says who holds the lock, for the engine page.
func (l *locked) LockStatus() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.lease != nil:
		return fmt.Sprintf("held by this kiln (%s, token %d)", l.holder, l.holder.Token)
	case l.holder.Token != 0:
		return fmt.Sprintf("standing by; held by %s (token %d)", l.holder, l.holder.Token)
	}
	return "standing by; nobody holds it"
}

var (
	lockHeldDesc = prometheus.NewDesc("kiln_lock_held",
		"1 while this process holds the graph's lock and acts, 0 while it stands by.", []string{"graph"}, nil)
	lockHolderDesc = prometheus.NewDesc("kiln_lock_holder",
		"Who holds the graph's lock (1; absent when nobody does): host, pid, since (RFC 3339) and fencing token.",
		[]string{"graph", "host", "pid", "since", "token"}, nil)
)

// Describe and Collect export the lock's state beside the engine's.
func (l *locked) Describe(ch chan<- *prometheus.Desc) {
	ch <- lockHeldDesc
	ch <- lockHolderDesc
	l.acquired.Describe(ch)
	l.lost.Describe(ch)
}

func (l *locked) Collect(ch chan<- prometheus.Metric) {
	l.mu.Lock()
	held, h, name := l.lease != nil, l.holder, l.g.Name
	l.mu.Unlock()
	v := 0.0
	if held {
		v = 1
	}
	ch <- prometheus.MustNewConstMetric(lockHeldDesc, prometheus.GaugeValue, v, name)
	if h.Token != 0 {
		ch <- prometheus.MustNewConstMetric(lockHolderDesc, prometheus.GaugeValue, 1, name, h.Host,
			strconv.Itoa(h.PID), h.Since.UTC().Format(time.RFC3339), strconv.FormatInt(h.Token, 10))
	}
	l.acquired.Collect(ch)
	l.lost.Collect(ch)
}
