package awssim

import (
	"container/heap"
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// Durations are the simulated times of the state machines, before TimeScale.
// The defaults are close to what EC2 shows for a small Linux instance.
type Durations struct {
	Boot              time.Duration // pending → running
	Stop              time.Duration // stopping → stopped
	Terminate         time.Duration // shutting-down → terminated
	Reboot            time.Duration // a reboot, and the CreateImage reboot
	Image             time.Duration // image pending → available | failed
	StatusChecks      time.Duration // instance status "initializing" → "ok" after running
	TerminatedVisible time.Duration // a terminated instance stays in DescribeInstances this long
	Console           time.Duration // console output is posted this long after boot, stop, terminate
	Command           time.Duration // guest model: time of any command it does not interpret
	IamAssociation    time.Duration // an instance profile association: associating → associated, disassociating → gone
	DNSChange         time.Duration // a Route 53 change: PENDING → INSYNC
	Copy              time.Duration // CopyImage: the copy pending → available | failed
}

// DefaultDurations returns realistic durations.
func DefaultDurations() Durations {
	return Durations{
		Boot:              15 * time.Second,
		Stop:              30 * time.Second,
		Terminate:         30 * time.Second,
		Reboot:            20 * time.Second,
		Image:             3 * time.Minute,
		StatusChecks:      2 * time.Minute,
		TerminatedVisible: time.Hour,
		Console:           5 * time.Second,
		Command:           2 * time.Second,
		IamAssociation:    5 * time.Second,
		DNSChange:         30 * time.Second,
		Copy:              10 * time.Minute,
	}
}

// EventTarget is where state-change events go, like an EventBridge API
// destination: a JSON POST to URL with the API key in a header.
type EventTarget struct {
	URL    string
	Header string // default "x-api-key"
	APIKey string
}

// Options configure a Sim. The zero value is usable: the real clock and
// immediate transitions (TimeScale 0). DefaultOptions is realistic.
type Options struct {
	Region  string // default us-east-1
	Account string // default 123456789012: the starting account, whose are the static credentials
	// Accounts are the other accounts (12-digit ids), each a world of its
	// own reached through STS AssumeRole (accounts.go, sts.go).
	Accounts []string
	// Roles are the roles every account has besides "kiln", each trusting
	// the starting account (sts.go).
	Roles []string
	// ExternalIDs are the external ids roles require (sts:ExternalId in
	// their trust policy), by role ARN.
	ExternalIDs map[string]string
	// TimeScale multiplies every simulated duration: 1 is realistic, 0.01 runs
	// a hundred times faster, 0 makes every transition immediate (due at the
	// next request or Advance).
	TimeScale float64
	// Durations before scaling; zero fields take DefaultDurations.
	Durations Durations
	// ManualClock makes time stand still until Advance moves it. Tests use it
	// so that they never sleep.
	ManualClock bool
	// Start is the manual clock's initial time; default 2026-01-01T00:00:00Z.
	Start time.Time
	// Throttle turns on AWS's request token buckets (RequestLimitExceeded).
	Throttle bool
	// Consistency is the eventual-consistency window: a new instance or image
	// id answers NotFound for this long (simulated, scaled).
	Consistency time.Duration
	// InstanceLimit caps instances that are not terminated (InstanceLimitExceeded).
	// Default 100000.
	InstanceLimit int
	// Events are pushed to these targets.
	Events []EventTarget
	// EventQueue bounds undelivered events; beyond it new events are dropped.
	// Default 10000.
	EventQueue int
	// Seed makes the ids of what clients create reproducible; 0 picks a
	// random seed at every start, so that two simulators (or two runs)
	// never hand out the same instance ids. The standing world (stock
	// images, the default VPC, its subnets and security group) has the same
	// ids at every start whatever the seed, as AWS's public images do.
	Seed uint64
	// ZoneIDPrefix starts the ids of new hosted zones. Default "Z", as
	// Route 53's; another ("hz-") plays an endpoint whose ids look
	// different, which clients must tell from zone names by shape.
	ZoneIDPrefix string
	// Policy, when set, is the caller's one identity policy: every request
	// is authorized against it as IAM would, and denied with
	// UnauthorizedOperation (EC2) or AccessDenied (Auto Scaling); see
	// authz.go. nil allows everything.
	Policy *Policy
	// Faults, when set, is the fault profile in effect from the start
	// (profiles.go; SetFaultProfile changes it).
	Faults *Profile
	Log    *slog.Logger
}

// DefaultOptions is a realistic simulator on the real clock.
func DefaultOptions() Options {
	return Options{TimeScale: 1, Durations: DefaultDurations()}
}

func (o *Options) fill() {
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.Account == "" {
		o.Account = "123456789012"
	}
	d, def := &o.Durations, DefaultDurations()
	for _, p := range []struct{ v, def *time.Duration }{
		{&d.Boot, &def.Boot}, {&d.Stop, &def.Stop}, {&d.Terminate, &def.Terminate},
		{&d.Reboot, &def.Reboot}, {&d.Image, &def.Image}, {&d.StatusChecks, &def.StatusChecks},
		{&d.TerminatedVisible, &def.TerminatedVisible}, {&d.Console, &def.Console},
		{&d.Command, &def.Command}, {&d.IamAssociation, &def.IamAssociation},
		{&d.DNSChange, &def.DNSChange}, {&d.Copy, &def.Copy},
	} {
		if *p.v == 0 {
			*p.v = *p.def
		}
	}
	if o.Start.IsZero() {
		o.Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if o.InstanceLimit == 0 {
		o.InstanceLimit = 100000
	}
	if o.EventQueue == 0 {
		o.EventQueue = 10000
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	for i := range o.Events {
		if o.Events[i].Header == "" {
			o.Events[i].Header = "x-api-key"
		}
	}
}

// Sim is the simulator: an http.Handler for the EC2 and Auto Scaling Query
// APIs, plus a Go API to control it. All methods are safe for concurrent use.
type Sim struct {
	opts Options
	log  *slog.Logger

	// mu guards everything below it. Handlers hold it only to read or change
	// state and to copy their answer; XML is encoded after it is released.
	mu       sync.Mutex
	manualAt time.Time // the manual clock
	timers   timerHeap
	timerSeq uint64
	rng      *rand.Rand
	ids      map[string]struct{} // every id handed out, to keep them unique

	instances map[string]*instance
	instOrder []*instance // creation order, for stable listing and paging
	instSeq   uint64
	live      int                    // instances neither shutting down nor terminated
	tokens    map[string]*tokenEntry // RunInstances ClientToken → reservation
	tags      *tagStore
	images    map[string]*image
	imgOrder  []*image
	snapshots map[string]*snapshot
	snapOrder []*snapshot
	groups    map[string]*secGroup
	keys      map[string]*keyPair // by name; made on first use (ec2_keypairs.go)
	subnets   []subnet
	ipSeq     uint32
	failImgs  int // the next n images fail

	// IAM instance profile associations (ec2_iamprofile.go).
	assocs     map[string]*iamAssoc
	assocOrder []*iamAssoc // creation order, for paging
	assocSeq   uint64

	// asg is the Auto Scaling and launch-template state, guarded by mu
	// (asgState, in autoscaling.go).
	asg asgState

	// ssm is Parameter Store (ssm.go), guarded by mu.
	ssm ssmState
	// kms is the region's KMS keys (kms.go), guarded by mu.
	kms kmsState

	// cw is CloudWatch's alarms (cloudwatch.go), guarded by mu.
	cw cwState

	// r53 is the Route 53 state, guarded by mu (r53State, in route53.go).
	r53 r53State

	faults   faults
	buckets  *throttler
	counters counters
	policy   atomic.Pointer[Policy] // Options.Policy, or SetPolicy's
	authz    authzStats             // what the policy allowed and denied

	ev events

	// SQS queues (sqs.go) and EventBridge rules (eventbridge.go), each
	// guarded by its own mutex.
	sqs    sqsState
	bridge bridgeState
	// regions routes requests to the other regions' worlds and holds the
	// copy tokens and sharing permissions (regions.go).
	regions regionWorlds
	// guestCmds are SetGuestCommand's rules, the home world's for all
	// (ec2_guest_cmds.go); it has its own mutex.
	guestCmds guestCommands
	// acct routes requests to the accounts' worlds and holds the issued
	// credentials and the images shared across accounts (accounts.go); one
	// for the whole simulator.
	acct *accountWorlds

	wake chan struct{} // Run's timer loop: the earliest timer changed
}

// New makes a simulator. It starts no goroutines: call Run to drive timers
// on the real clock and deliver events, or Advance with a manual clock.
func New(opts Options) *Sim {
	s := newSim(opts)
	s.acct = &accountWorlds{}
	s.acct.init(s)
	s.acct.addAccounts()
	return s
}

// newSim makes one world: one account's one region.
func newSim(opts Options) *Sim {
	opts.fill()
	s := &Sim{
		opts:      opts,
		log:       opts.Log,
		manualAt:  opts.Start.UTC(),
		rng:       newRNG(worldSeed(opts.Region)),
		ids:       map[string]struct{}{},
		instances: map[string]*instance{},
		tokens:    map[string]*tokenEntry{},
		tags:      newTagStore(),
		images:    map[string]*image{},
		snapshots: map[string]*snapshot{},
		groups:    map[string]*secGroup{},
		assocs:    map[string]*iamAssoc{},
		wake:      make(chan struct{}, 1),
	}
	s.faults.init()
	s.counters.init()
	s.buckets = newThrottler()
	s.ev.init(opts.EventQueue)
	s.asg.init()
	s.sqs.init()
	s.bridge.init()
	s.r53.init()
	s.regions.init(nil)
	s.seedWorld()
	seed := opts.Seed
	for seed == 0 {
		seed = rand.Uint64()
	}
	s.rng = newRNG(seed)
	s.policy.Store(opts.Policy)
	s.SetFaultProfile(opts.Faults)
	return s
}

// worldSeed generates a region's standing world's ids: the same at every
// start, and other in every region (as AWS's public images have an id per
// region). us-east-1 keeps the seed the examples' image ids come from.
func worldSeed(region string) uint64 {
	const seed = 0x6b696c6e
	if region == "us-east-1" {
		return seed
	}
	h := fnv.New64a()
	h.Write([]byte(region))
	return seed ^ h.Sum64()
}

func newRNG(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// Options returns the options in effect (defaults filled in).
func (s *Sim) Options() Options { return s.opts }

// Now is the simulator's current time.
func (s *Sim) Now() time.Time {
	if !s.opts.ManualClock {
		return time.Now().UTC()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.manualAt
}

// nowLocked is the current time; s.mu is held.
func (s *Sim) nowLocked() time.Time {
	if s.opts.ManualClock {
		return s.manualAt
	}
	return time.Now().UTC()
}

// scaled applies TimeScale to a simulated duration.
func (s *Sim) scaled(d time.Duration) time.Duration {
	if s.opts.TimeScale <= 0 {
		return 0
	}
	return time.Duration(float64(d) * s.opts.TimeScale)
}

// Advance moves the manual clock forward by d and runs, in order and
// synchronously, every transition that falls due; each sees its own due
// time as "now". Then it delivers queued events to the targets (blocking
// until each POST is answered or times out). It panics without ManualClock.
func (s *Sim) Advance(d time.Duration) {
	if !s.opts.ManualClock {
		panic("awssim: Advance needs Options.ManualClock")
	}
	s.mu.Lock()
	target := s.manualAt.Add(d)
	s.runDueLocked(target)
	s.manualAt = target
	s.mu.Unlock()
	s.ev.deliverAll(context.Background(), s.opts.Events, s.log, target)
	if s.regions.home == nil {
		for _, w := range s.others() {
			w.Advance(d)
		}
		if s.acct.top == s {
			for _, w := range s.acct.otherAccounts() {
				w.Advance(d)
			}
		}
	}
}

// lock takes the state mutex and runs whatever fell due; every handler
// starts with it, so transitions happen on time even without Run.
func (s *Sim) lock() time.Time {
	s.mu.Lock()
	now := s.nowLocked()
	s.runDueLocked(now)
	return now
}

// runDueLocked runs timers due at or before t, in time order.
func (s *Sim) runDueLocked(t time.Time) {
	for len(s.timers) > 0 && !s.timers[0].at.After(t) {
		tm := heap.Pop(&s.timers).(*timer)
		if s.opts.ManualClock && tm.at.After(s.manualAt) {
			s.manualAt = tm.at
		}
		tm.fn(tm.at)
	}
}

// after schedules fn to run d (simulated, unscaled) after at; s.mu is held.
// fn runs with s.mu held and gets its due time.
func (s *Sim) after(at time.Time, d time.Duration, fn func(now time.Time)) {
	s.timerSeq++
	due := at.Add(s.scaled(d))
	heap.Push(&s.timers, &timer{at: due, seq: s.timerSeq, fn: fn})
	if s.timers[0].seq == s.timerSeq {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// Run drives the simulator on the real clock until ctx is done: it fires
// transitions when they fall due and delivers events to the targets. With
// a manual clock it only delivers events. It returns ctx.Err().
func (s *Sim) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.ev.run(ctx, s.opts.Events, s.log, s.Now) })
	if !s.opts.ManualClock {
		g.Go(func() error { return s.timerLoop(ctx) })
	}
	if s.regions.home == nil {
		g.Go(func() error { return s.runRegions(ctx) })
		if s.acct.top == s {
			g.Go(func() error { return s.acct.runAccounts(ctx) })
		}
	}
	return g.Wait()
}

func (s *Sim) timerLoop(ctx context.Context) error {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		s.mu.Lock()
		now := s.nowLocked()
		s.runDueLocked(now)
		wait := time.Hour
		if len(s.timers) > 0 {
			wait = s.timers[0].at.Sub(now)
		}
		s.mu.Unlock()
		t.Reset(max(wait, time.Millisecond))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-s.wake:
		}
	}
}

// newID returns a fresh id "prefix-" + 17 hex digits; s.mu is held.
func (s *Sim) newID(prefix string) string {
	for {
		id := fmt.Sprintf("%s-%017x", prefix, s.rng.Uint64()&0xfffffffffffffff)
		if _, dup := s.ids[id]; !dup {
			s.ids[id] = struct{}{}
			return id
		}
	}
}

type timer struct {
	at  time.Time
	seq uint64
	fn  func(now time.Time)
}

type timerHeap []*timer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].seq < h[j].seq
	}
	return h[i].at.Before(h[j].at)
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(*timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return t
}
