package awsapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go/middleware"
)

// Options configure Hubs. The zero value loads the standard AWS
// configuration and uses production timings.
type Options struct {
	// Config, when set, is used instead of LoadConfig (the --sim path passes
	// awssim.ClientConfig here). Without a Retryer it gets NewRetryer's.
	Config *aws.Config
	Retry  RetryOptions // for LoadConfig
	Batch  BatchOptions
	// Poll is the poller's interval for subscribers that ask for none.
	// Default 60 s: events are the fast path, the poll is the fallback.
	Poll time.Duration
	// Wait paces re-checks while awaiting a state (events cut it short).
	// Default 1 s .. 15 s: a boot takes ~15 s, a stop ~30 s.
	Wait Backoff
	// Retries paces Retry of throttled and "not yet" calls. Default 250 ms .. 30 s.
	Retries Backoff
	// RetryTimeout is how long Retry retries one call before it gives up
	// with the last error (--aws-retry-timeout). Default 5 min.
	RetryTimeout time.Duration
	// RateLimit paces EC2 calls to AWS's token buckets; on by default
	// against AWS, off by default with a given Config.
	RateLimit RateLimit
	// Fence, when set, guards every call that may change something, in
	// every client of these hubs (EC2 and Auto Scaling).
	Fence Fence
	Log   *slog.Logger
}

func (o *Options) fill() {
	if o.Poll <= 0 {
		o.Poll = 60 * time.Second
	}
	if o.RateLimit.Scale == 0 {
		o.RateLimit.Scale = 1
		if o.Config != nil {
			o.RateLimit.Scale = -1
		}
	}
	o.Wait = o.Wait.orDefault(time.Second, 15*time.Second)
	o.Retries = o.Retries.orDefault(250*time.Millisecond, 30*time.Second)
	if o.RetryTimeout <= 0 {
		o.RetryTimeout = DefaultRetryTimeout
	}
	o.Batch.fill()
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// RetryPolicy is Retry's policy under these options.
func (o Options) RetryPolicy() RetryPolicy {
	return RetryPolicy{Backoff: o.Retries, Timeout: o.RetryTimeout, Log: o.Log}
}

// fenced returns cfg with the fence on every client's stack.
func (o *Options) fenced(cfg aws.Config) aws.Config {
	if o.Fence == nil {
		return cfg
	}
	c := cfg.Copy()
	c.APIOptions = append(c.APIOptions[:len(c.APIOptions):len(c.APIOptions)], o.Fence.addTo)
	return c
}

// Hubs holds one Hub per region, created on first use and shared by every
// resource of the process.
type Hubs struct {
	o    Options
	wake chan struct{} // a hub was created: Run starts it

	mu      sync.Mutex
	cfg     *aws.Config
	hubs    map[string]*Hub
	started map[*Hub]bool

	// account, when set, makes these the hubs of another account, reached
	// by assuming a role from the parent's credentials (accounts.go).
	account *accountOf
}

// NewHubs makes the hub set. It starts nothing and loads no configuration.
func NewHubs(o Options) *Hubs {
	o.fill()
	if o.Config != nil && o.Config.Retryer == nil {
		c := o.Config.Copy()
		c.Retryer = func() aws.Retryer { return NewRetryer(o.Retry) }
		o.Config = &c
	}
	if o.Config != nil {
		c := markCredentials(o.fenced(*o.Config))
		o.Config = &c
	}
	return &Hubs{o: o, cfg: o.Config, wake: make(chan struct{}, 1), hubs: map[string]*Hub{}, started: map[*Hub]bool{}}
}

// Options returns the options in effect.
func (hs *Hubs) Options() Options { return hs.o }

// config returns the base configuration, loading it once.
func (hs *Hubs) config(ctx context.Context) (aws.Config, error) {
	hs.mu.Lock()
	cfg := hs.cfg
	hs.mu.Unlock()
	if cfg != nil {
		return *cfg, nil
	}
	if hs.account != nil {
		return hs.account.config(ctx) // accounts.go
	}
	c, err := LoadConfig(ctx, hs.o.Retry, hs.o.Log)
	if err != nil {
		return aws.Config{}, &CredentialsError{Profile: profileName(), Err: err}
	}
	c = markCredentials(hs.o.fenced(c))
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.cfg == nil {
		hs.cfg = &c
	}
	return *hs.cfg, nil
}

// Config is the process's AWS configuration, loaded on first use, for the
// clients of other services (SQS, EventBridge).
func (hs *Hubs) Config(ctx context.Context) (aws.Config, error) { return hs.config(ctx) }

// DefaultRegion is the configured region (AWS_REGION, profile), for
// resources that name none.
func (hs *Hubs) DefaultRegion(ctx context.Context) (string, error) {
	cfg, err := hs.config(ctx)
	if err != nil {
		return "", err
	}
	if cfg.Region == "" {
		return "", errors.New("no region: set region: in the graph or AWS_REGION")
	}
	return cfg.Region, nil
}

// Hub returns the hub of region ("" = DefaultRegion), creating it on first
// use. Its loops run once Run is running.
func (hs *Hubs) Hub(ctx context.Context, region string) (*Hub, error) {
	if region == "" {
		r, err := hs.DefaultRegion(ctx)
		if err != nil {
			return nil, err
		}
		region = r
	}
	hs.mu.Lock()
	h := hs.hubs[region]
	hs.mu.Unlock()
	if h != nil {
		return h, nil
	}
	cfg, err := hs.config(ctx)
	if err != nil {
		return nil, err
	}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if h := hs.hubs[region]; h != nil {
		return h, nil
	}
	var apiOptions []func(*middleware.Stack) error
	if hs.o.RateLimit.Scale > 0 {
		apiOptions = append(apiOptions, newLimiter(hs.o.RateLimit).addTo)
	}
	h = newHub(region, NewEC2(cfg, region, apiOptions...), hs.o)
	hs.hubs[region] = h
	select {
	case hs.wake <- struct{}{}:
	default:
	}
	return h, nil
}

// Run runs every hub's batcher and poller, and the DNS hub's loops,
// including hubs created while it runs, until ctx is done; then it waits
// for them and returns ctx.Err().
func (hs *Hubs) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	dnsStarted := false
	accountsStarted := map[*Hubs]bool{}
	for {
		for _, c := range hs.accounts() { // accounts.go
			if !accountsStarted[c] {
				accountsStarted[c] = true
				wg.Go(func() { _ = c.Run(ctx) })
			}
		}
		hs.mu.Lock()
		for _, h := range hs.hubs {
			if !hs.started[h] {
				hs.started[h] = true
				wg.Go(func() { _ = h.Run(ctx) })
			}
		}
		hs.mu.Unlock()
		if d, ok := dnsHubs.Load(hs); ok && !dnsStarted {
			dnsStarted = true
			wg.Go(func() { _ = d.(*DNS).Run(ctx) })
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-hs.wake:
		}
	}
}

// Deliver routes a pushed event to the hub of its region. Events for a
// region no resource uses are dropped. It never blocks on AWS.
func (hs *Hubs) Deliver(ev Event) {
	hs.mu.Lock()
	h := hs.hubs[ev.Region]
	hs.mu.Unlock()
	if h != nil {
		h.Deliver(ev)
	}
	for _, c := range hs.accounts() { // an event names no account: ids are unique across them
		c.Deliver(ev)
	}
}

// Event is a pushed state change (EventBridge, directly or through SNS).
type Event struct {
	ID         string // the event's id
	Region     string
	Source     string // "aws.ec2", "aws.autoscaling"
	DetailType string // "EC2 Instance State-change Notification", ...
	Resource   string // instance id, image id or Auto Scaling group name
	State      string // "stopped", "available", ...
	Time       time.Time
}

// Owner identifies the resource that owns cloud objects: what kiln tags
// them with.
type Owner struct {
	Graph    string // kiln:owner
	Resource string // kiln:resource, "kind/name"
}

type sub struct {
	owner  Owner
	poll   time.Duration
	fn     func()
	polled func() // nil, or called after each poll of the owner's graph
	fresh  bool   // not yet seen by a poll: notified on its first poll
}

// Hub is one region's shared machinery. All methods are safe for
// concurrent use.
type Hub struct {
	region string
	ec2    *ec2.Client
	o      Options
	batch  *Batcher
	launch *launcher     // batched launches (launchbatch.go)
	states *StateBatcher // batched start, stop, terminate (statebatch.go)
	wake   chan struct{} // poller: subscriptions changed
	arch   archCache     // architectures of types and images (arch.go)

	mu      sync.Mutex
	subs    map[Owner]map[*sub]struct{}
	owners  map[string]Owner                      // cloud id → owner (tracked, or learned from tags)
	waiters map[string]map[chan struct{}]struct{} // cloud id → Changes channels
	graphs  map[string]*graphPoll
}

func newHub(region string, c *ec2.Client, o Options) *Hub {
	h := &Hub{
		region: region, ec2: c, o: o,
		batch:   newBatcher(c, o.Batch),
		wake:    make(chan struct{}, 1),
		subs:    map[Owner]map[*sub]struct{}{},
		owners:  map[string]Owner{},
		waiters: map[string]map[chan struct{}]struct{}{},
		graphs:  map[string]*graphPoll{},
	}
	h.batch.seen = h.observe
	h.launch = newLauncher(h)
	h.states = newStateBatcher(c, o.Batch)
	return h
}

// NewHub makes a lone hub for client c (tests, tools). Run it with Run.
func NewHub(region string, c *ec2.Client, o Options) *Hub {
	o.fill()
	return newHub(region, c, o)
}

// Region is the hub's region.
func (h *Hub) Region() string { return h.region }

// EC2 is the region's shared client.
func (h *Hub) EC2() *ec2.Client { return h.ec2 }

// Instances is the batcher: use its DescribeInstances in place of the
// client's for lookups by id or by one varying tag.
func (h *Hub) Instances() *Batcher { return h.batch }

// States is the batcher of StartInstances, StopInstances and
// TerminateInstances: use it in place of the client's for those calls.
func (h *Hub) States() *StateBatcher { return h.states }

// Options returns the hub's options.
func (h *Hub) Options() Options { return h.o }

// Run runs the batchers (lookups, launches, state changes) and the poller
// until ctx is done and returns ctx.Err().
func (h *Hub) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { _ = h.batch.Run(ctx) })
	wg.Go(func() { _ = h.pollLoop(ctx) })
	wg.Go(func() { _ = h.launch.Run(ctx) })
	wg.Go(func() { _ = h.states.Run(ctx) })
	wg.Wait()
	return ctx.Err()
}

// Subscribe calls fn whenever something owned by owner may have changed: a
// pushed event for one of its objects, or a poll that found a difference.
// poll is the fallback interval it wants (0: the hub's default); the graph
// is polled at the shortest interval any subscriber asks for. The first poll
// after subscribing calls fn once, so a change between the caller's last
// look and the subscription is never missed. fn must not block. cancel
// removes the subscription.
func (h *Hub) Subscribe(owner Owner, poll time.Duration, fn func()) (cancel func()) {
	return h.SubscribePolled(owner, poll, fn, nil)
}

// SubscribePolled is Subscribe that also calls polled (when not nil) after
// each poll of the owner's graph that succeeded, whatever it found: a
// watcher's clock of when the world was last looked at. polled must not
// block.
func (h *Hub) SubscribePolled(owner Owner, poll time.Duration, fn, polled func()) (cancel func()) {
	if poll <= 0 {
		poll = h.o.Poll
	}
	s := &sub{owner: owner, poll: poll, fn: fn, polled: polled, fresh: true}
	h.mu.Lock()
	if h.subs[owner] == nil {
		h.subs[owner] = map[*sub]struct{}{}
	}
	h.subs[owner][s] = struct{}{}
	g := h.graphs[owner.Graph]
	if g == nil {
		g = &graphPoll{}
		h.graphs[owner.Graph] = g
	}
	g.refresh(h.subs, owner.Graph)
	h.mu.Unlock()
	h.poke()
	return func() {
		h.mu.Lock()
		delete(h.subs[owner], s)
		if len(h.subs[owner]) == 0 {
			delete(h.subs, owner)
		}
		if g := h.graphs[owner.Graph]; g != nil && !g.refresh(h.subs, owner.Graph) {
			delete(h.graphs, owner.Graph)
		}
		h.mu.Unlock()
		h.poke()
	}
}

func (h *Hub) poke() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// Track records that owner owns the cloud objects ids, so pushed events
// for them reach its subscribers before a poll has seen their tags.
func (h *Hub) Track(owner Owner, ids ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		if id != "" {
			h.owners[id] = owner
		}
	}
}

// Changes returns a coalescing channel that receives when the cloud object
// id may have changed (pushed event or poll difference), and a cancel func.
func (h *Hub) Changes(id string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if h.waiters[id] == nil {
		h.waiters[id] = map[chan struct{}]struct{}{}
	}
	h.waiters[id][ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.waiters[id], ch)
		if len(h.waiters[id]) == 0 {
			delete(h.waiters, id)
		}
		h.mu.Unlock()
	}
}

// Deliver hands a pushed event to the waiters on its object and to the
// subscribers of the object's owner. It never blocks.
func (h *Hub) Deliver(ev Event) {
	if ev.Resource == "" {
		return
	}
	// The event does not touch the poller's snapshot: events come late and
	// out of order, and the owner's own read, once it checks, is what the
	// next poll must compare with (see observe).
	h.mu.Lock()
	fns := h.notifyLocked([]string{ev.Resource}, nil)
	h.o.Log.Debug("event routed", "id", ev.Resource, "state", ev.State, "subscribers", len(fns))
	h.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// notifyLocked signals the waiters on ids and returns the callbacks of the
// owners of ids plus extra owners, to be called after unlocking.
func (h *Hub) notifyLocked(ids []string, extra []Owner) []func() {
	var fns []func()
	seen := map[Owner]bool{}
	add := func(o Owner) {
		if seen[o] {
			return
		}
		seen[o] = true
		for s := range h.subs[o] {
			fns = append(fns, s.fn)
		}
	}
	for _, id := range ids {
		for ch := range h.waiters[id] {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
		if o, ok := h.owners[id]; ok {
			add(o)
		}
	}
	for _, o := range extra {
		add(o)
	}
	return fns
}

// Await calls check until it reports done, returns an error that retrying
// cannot fix, or ctx is done. Between calls it waits for a change of id
// (pushed event or poll) or a backoff of Options.Wait, whichever is first.
// Throttling and NotYet errors from check are waited out, not returned.
func (h *Hub) Await(ctx context.Context, id string, check func(ctx context.Context) (done bool, err error)) error {
	ch, cancel := h.Changes(id)
	defer cancel()
	for n := 0; ; n++ {
		done, err := check(ctx)
		if err != nil && !isRetryableLocally(err) {
			return Classify(err)
		}
		if err == nil && done {
			return nil
		}
		t := time.NewTimer(h.o.Wait.delay(n))
		select {
		case <-ctx.Done():
			t.Stop()
			if err != nil {
				return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
			}
			return ctx.Err()
		case <-ch:
			n = -1 // an event: look now, then start the backoff again
		case <-t.C:
		}
		t.Stop()
	}
}

// Retry is awsapi.Retry with the hub's backoff.
func (h *Hub) Retry(ctx context.Context, fn func(ctx context.Context) error) error {
	return Retry(ctx, h.o.RetryPolicy(), fn)
}
