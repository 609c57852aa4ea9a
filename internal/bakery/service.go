package bakery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"kiln/internal/awsapi"
	"kiln/internal/hook"
	"kiln/internal/pipeline"
	"kiln/internal/store"
)

// Options tune a Service. The zero value is production's.
type Options struct {
	// Workers is how many bakes run at once in this process (all projects
	// together; one per project at most). Default store.DefaultMaxWorkers.
	Workers int
	// SweepInterval is how often the sweeper looks for builders whose bake is
	// over (it also runs once at start). Default 1 minute.
	SweepInterval time.Duration
	// BusySnooze is how long a bake whose project is busy waits before it
	// tries to claim again. Default 5 s.
	BusySnooze time.Duration
	// FetchPollInterval is how often River looks for new jobs (SQLite has no
	// LISTEN/NOTIFY). Default store.DefaultFetchPollInterval.
	FetchPollInterval time.Duration
	// Lease is how long a server owns a running bake without renewing it,
	// and the bakery's leader its role: a server that dies (SIGKILL, lost
	// network) has its bakes taken over, and its leadership, once Lease has
	// passed. The owner renews every Lease/3. Default DefaultLease.
	Lease time.Duration
	// ServerID names this server among those sharing the database (bake
	// owner, leader). Default: host name, process id and a random suffix.
	ServerID string
	// Pipeline tunes the steps' waits (console retry, defaults for timeouts).
	Pipeline pipeline.PipelineOptions
	// Notifier, when set, is told of bakes and promotions (notify:,
	// commit_status:); its worker runs on the service's River client.
	Notifier Notifier
}

func (o *Options) fill() {
	if o.Workers <= 0 {
		o.Workers = store.DefaultMaxWorkers
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = time.Minute
	}
	if o.BusySnooze <= 0 {
		o.BusySnooze = 5 * time.Second
	}
	if o.Lease <= 0 {
		o.Lease = DefaultLease
	}
	if o.ServerID == "" {
		o.ServerID = newServerID()
	}
}

// Service runs bakes: the River workers that take queued bakes through the
// pipeline, and the sweeper that terminates builders whose bake is over.
// One Service per database file: bakes are serialised per project through
// the store, and a process restart resumes the bakes it finds running.
//
// Its AWS clients come from hubs; hubs.Run must be running while the
// Service runs (its batcher serves the builders' DescribeInstances).
type Service struct {
	Projects // the rules for changing projects

	store *store.Store
	hubs  *awsapi.Hubs
	log   *slog.Logger
	o     Options
	river *store.Jobs
	queue *hook.Queue
	sent  chan Progress // this server's progress, to publish to the others
	pipe  *pipeline.Pipeline

	deploys deploys // rollouts and soaks of environments (promote.go)

	mu      sync.Mutex
	active  map[int64]context.CancelCauseFunc // bakes worked on in this process
	subs    map[*subscription]struct{}
	seen    map[string]groupSeen                  // environment watches' last looks (environments_watch.go)
	testHop func(bakeID int64, step string) error // tests: after each step; an error stops the bake there
}

// NewService makes the service over st, baking through hubs. log may be nil.
// It builds the River worker client but starts nothing; Run does.
func NewService(st *store.Store, hubs *awsapi.Hubs, log *slog.Logger, o Options) (*Service, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	o.fill()
	s := &Service{
		Projects: NewProjects(st),
		store:    st, hubs: hubs, log: log, o: o,
		active: map[int64]context.CancelCauseFunc{},
		subs:   map[*subscription]struct{}{},
		sent:   make(chan Progress, 256),
	}
	s.pipe = pipeline.NewPipeline(hubs, log, o.Pipeline)
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, &worker{s: s}); err != nil {
		return nil, fmt.Errorf("new bake service: %w", err)
	}
	if o.Notifier != nil {
		if err := o.Notifier.Register(workers); err != nil {
			return nil, fmt.Errorf("new bake service: %w", err)
		}
	}
	rc, err := st.NewRiverClient(workers, &river.Config{
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: o.Workers}},
		FetchPollInterval: o.FetchPollInterval,
		// The bake lease (Lease) is what hands a dead server's bake to
		// another; River's own rescue of a job that a dead server had
		// fetched, an hour by default, is cut to riverRescue so that a
		// queued bake whose job it held is not stuck for long either.
		RescueStuckJobsAfter: riverRescue,
		Logger:               slog.New(quietInfo{log.Handler()}).With("component", "river"),
	})
	if err != nil {
		return nil, fmt.Errorf("new bake service: %w", err)
	}
	s.river = rc
	s.queue = hook.NewQueue(st, rc)
	return s, nil
}

// Queue is the webhook handler's backend (hook.NewHandler(s.Queue(), log)),
// inserting jobs with the service's River client.
func (s *Service) Queue() *hook.Queue { return s.queue }

// River is the service's River client (for job inspection; jobs are
// inserted through Queue or Trigger).
func (s *Service) River() *store.Jobs { return s.river }

// ServerID is this server's name among the servers of the bakery.
func (s *Service) ServerID() string { return s.o.ServerID }

// Run starts River's workers, re-queues bakes that a dead process left
// running, and runs the sweeper (once at start, then every SweepInterval),
// until ctx is done. Then it stops taking jobs, cancels the running bakes'
// contexts (their steps stop at once; a restart resumes them, every step
// finding its earlier work again), waits for the workers and returns nil.
// An error means River could not start.
func (s *Service) Run(ctx context.Context) error {
	return s.run(ctx)
}

// Trigger queues a bake of project at commit and ref (both may be empty: a
// manual bake of the project as stored), coalescing like a webhook push:
// when the project already has a queued bake, that bake is returned with
// New false. It does no AWS work and returns at once. An unknown project
// gives an error wrapping store.ErrNotFound.
func (s *Service) Trigger(ctx context.Context, project, commit, ref string) (store.PushResult, error) {
	return s.queue.Create(ctx, project, commit, ref)
}

// Cancel cancels bake id. A queued bake is cancelled at once. A running one
// is flagged, and its worker (interrupted at once when it runs in this
// process) terminates the builder, deregisters a partial image and
// finishes the bake as cancelled; Cancel does not wait for that. It returns
// the bake as it is after the request. Errors wrap store.ErrNotFound (no
// such bake) or store.ErrBakeFinished (already over).
func (s *Service) Cancel(ctx context.Context, id int64, reason string) (*store.Bake, error) {
	if reason == "" {
		reason = "cancelled"
	}
	b, err := s.store.RequestCancel(ctx, id, reason)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	stop := s.active[id]
	s.mu.Unlock()
	if stop != nil {
		stop(errCancelRequested)
	}
	s.notify(Progress{BakeID: id, Project: b.Project, BakeState: b.State, Detail: "cancel requested", Time: time.Now(), cancel: true})
	return b, nil
}

// errCancelRequested is the cause of a bake context cancelled by Cancel.
var errCancelRequested = errors.New("cancel requested")

// Progress is one change of a bake: a step started or finished, or the bake
// reached a new state. The store holds the full record; Progress only says
// "look again" with the gist.
type Progress struct {
	BakeID    int64
	Project   string
	Step      string          // "" for a change of the bake itself
	StepState store.StepState // when Step is set
	BakeState store.BakeState // the bake's state after the change ("" if unknown)
	Detail    string
	Time      time.Time
	// Remote: another server of the bakery made the change (and counts it
	// in its metrics); this one only relays it to its subscribers.
	Remote bool

	cancel bool // a cancel request: the server running the bake stops it at once
}

type subscription struct {
	bakeID int64
	ch     chan Progress
}

// Subscribe returns a channel of Progress for bake id (0: every bake) and a
// cancel func that must be called. Delivery never blocks a bake: when the
// channel's buffer is full, updates are dropped; readers that must not miss
// anything re-read store.Bake and store.Steps on each receive.
func (s *Service) Subscribe(id int64) (<-chan Progress, func()) {
	sub := &subscription{bakeID: id, ch: make(chan Progress, 64)}
	s.mu.Lock()
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
	return sub.ch, func() {
		s.mu.Lock()
		delete(s.subs, sub)
		s.mu.Unlock()
	}
}

// notify tells this server's subscribers of p and queues it for the other
// servers of the bakery (publish); neither ever blocks.
func (s *Service) notify(p Progress) {
	select {
	case s.sent <- p:
	default: // the publisher is behind: the other servers' pages re-read on the next change
	}
	s.deliver(p)
}

// deliver tells this server's subscribers of p.
func (s *Service) deliver(p Progress) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sub := range s.subs {
		if sub.bakeID != 0 && sub.bakeID != p.BakeID {
			continue
		}
		select {
		case sub.ch <- p:
		default:
		}
	}
}
