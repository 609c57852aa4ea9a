package awsapi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/aws/smithy-go/middleware"
	"golang.org/x/time/rate"

	"kiln/internal/engine"
)

// Route 53 is global: one client and one DNS hub per Hubs, whatever the
// regions of the graph. (Hubs has no field for it; this keeps the
// addition in a file of its own, as autoscaling.go does.)
var dnsHubs sync.Map // *Hubs → *DNS

// route53API is what the DNS hub calls, in the SDK's shape.
type route53API interface {
	GetHostedZone(context.Context, *route53.GetHostedZoneInput, ...func(*route53.Options)) (*route53.GetHostedZoneOutput, error)
	ListHostedZonesByName(context.Context, *route53.ListHostedZonesByNameInput, ...func(*route53.Options)) (*route53.ListHostedZonesByNameOutput, error)
	ListResourceRecordSets(context.Context, *route53.ListResourceRecordSetsInput, ...func(*route53.Options)) (*route53.ListResourceRecordSetsOutput, error)
	ChangeResourceRecordSets(context.Context, *route53.ChangeResourceRecordSetsInput, ...func(*route53.Options)) (*route53.ChangeResourceRecordSetsOutput, error)
	GetChange(context.Context, *route53.GetChangeInput, ...func(*route53.Options)) (*route53.GetChangeOutput, error)
}

// route53Rate is Route 53's request limit: five requests a second per
// account, all actions together. The DNS hub's client waits for it (at
// paceMargin) instead of being refused with Throttling.
const route53Rate = 5

// DNS returns the process's DNS hub and its Route 53 client, built from
// the hubs' configuration, credentials and retryer (AWS_ENDPOINT_URL, or
// AWS_ENDPOINT_URL_ROUTE_53, points it elsewhere) and signed for
// us-east-1, where Route 53's control plane lives.
func (hs *Hubs) DNS(ctx context.Context) (*DNS, error) {
	if d, ok := dnsHubs.Load(hs); ok {
		return d.(*DNS), nil
	}
	cfg, err := hs.config(ctx)
	if err != nil {
		return nil, err
	}
	var apiOptions []func(*middleware.Stack) error
	if hs.o.RateLimit.Scale > 0 {
		b := rate.NewLimiter(rate.Limit(route53Rate*hs.o.RateLimit.Scale*paceMargin), route53Rate)
		apiOptions = append(apiOptions, func(s *middleware.Stack) error {
			return addPacer(s, func(ctx context.Context, _ string, _ any) error { return take(ctx, b, 1) })
		})
	}
	c := route53.NewFromConfig(cfg, func(o *route53.Options) {
		o.Region = "us-east-1"
		o.APIOptions = append(o.APIOptions, apiOptions...)
	})
	d := NewDNS(c, hs.o)
	d.sdk = c
	got, _ := dnsHubs.LoadOrStore(hs, d)
	select {
	case hs.wake <- struct{}{}: // Run runs it
	default:
	}
	return got.(*DNS), nil
}

// Route53 returns the Route 53 client the DNS hub uses, for the calls it
// does not share (a zone's own).
func (hs *Hubs) Route53(ctx context.Context) (*route53.Client, error) {
	d, err := hs.DNS(ctx)
	if err != nil {
		return nil, err
	}
	return d.sdk, nil
}

// DNS shares Route 53's calls among every record of the process:
//
//   - a zone's records are listed once per poll for all its watchers (one
//     paginated ListResourceRecordSets, 300 record sets a page), and a
//     check reads the latest listing when it is fresh enough, joining a
//     listing in flight;
//   - the changes of one zone that arrive within a batch window (the
//     batcher's Idle and Max) go into one ChangeResourceRecordSets, at most
//     maxBatchRecords ResourceRecord elements each;
//   - the INSYNC wait for one change is one GetChange loop with backoff,
//     however many records the change carried.
//
// Zone names resolve once (ListHostedZonesByName). All methods are safe for
// concurrent use; they need Run to be running (Hubs.Run runs the hubs'
// DNS hub): every goroutine of the hub is Run's.
type DNS struct {
	c   route53API
	sdk *route53.Client // c, when the hubs made it
	o   Options

	mu      sync.Mutex
	run     context.Context         // Run's; nil before Run
	stopped bool                    // Run returned (or is returning)
	pending []func(context.Context) // work asked for before Run: Run starts it
	wg      sync.WaitGroup          // Run's goroutines
	zones   map[string]*dnsZone     // by zone id
	names   map[string]Zone         // resolved zone names
	waits   map[string]*insyncWait
	resolve map[string]*call[Zone]
}

// NewDNS makes a DNS hub for client c (tests, tools).
func NewDNS(c route53API, o Options) *DNS {
	o.fill()
	return &DNS{c: c, o: o, zones: map[string]*dnsZone{}, names: map[string]Zone{}, waits: map[string]*insyncWait{}, resolve: map[string]*call[Zone]{}}
}

// Options returns the hub's options.
func (d *DNS) Options() Options { return d.o }

// errDNSStopped answers what is asked of a DNS hub whose Run has returned.
var errDNSStopped = errors.New("dns hub stopped")

// Run runs the hub's goroutines (zone polls, shared listings and lookups,
// change batches, INSYNC waits) until ctx is done, then waits for them and
// returns ctx.Err(). Work asked for before Run starts waits for it. Run may
// be called once.
func (d *DNS) Run(ctx context.Context) error {
	d.mu.Lock()
	if d.run != nil {
		d.mu.Unlock()
		return errors.New("dns hub: Run called twice")
	}
	d.run = ctx
	for _, f := range d.pending {
		d.wg.Go(func() { f(ctx) })
	}
	d.pending = nil
	d.mu.Unlock()
	<-ctx.Done()
	d.mu.Lock()
	d.stopped = true
	d.mu.Unlock()
	d.wg.Wait()
	return ctx.Err()
}

// goLocked runs f on a goroutine of Run's, with Run's context; asked
// before Run, f waits for it. It reports false, starting nothing, once Run
// has returned. d.mu is held.
func (d *DNS) goLocked(f func(ctx context.Context)) bool {
	switch {
	case d.stopped:
		return false
	case d.run == nil:
		d.pending = append(d.pending, f)
	default:
		ctx := d.run
		d.wg.Go(func() { f(ctx) })
	}
	return true
}

// Zone is a hosted zone as records need it.
type Zone struct {
	ID      string // without the /hostedzone/ prefix
	Name    string // with the trailing dot
	Private bool
}

// RecordKey names a record set in its zone.
type RecordKey struct {
	Name, Type, SetID string
}

// KeyOf is the key of a record set (its name as Route 53 returns it).
func KeyOf(rs types.ResourceRecordSet) RecordKey {
	return RecordKey{Name: CanonicalName(aws.ToString(rs.Name)), Type: string(rs.Type), SetID: aws.ToString(rs.SetIdentifier)}
}

// CanonicalName is a DNS name as Route 53 returns it: lower case, with
// the trailing dot; a "*" label as Route 53 escapes it (\052).
func CanonicalName(n string) string {
	n = strings.ToLower(strings.TrimSpace(n))
	if !strings.HasSuffix(n, ".") {
		n += "."
	}
	return strings.ReplaceAll(n, `\052`, "*")
}

// Listing is one zone's record sets as one listing saw them.
type Listing struct {
	Sets map[RecordKey]types.ResourceRecordSet
	At   time.Time // when the listing started
}

// call is one request in flight that others may join.
type call[T any] struct {
	done chan struct{}
	v    T
	err  error
}

// dnsZone is the shared state of one zone; DNS.mu guards it.
type dnsZone struct {
	id      string
	last    *Listing
	wrote   time.Time // when kiln's last accepted change was applied to last
	listing *call[*Listing]
	subs    map[*dnsSub]struct{}
	polling bool          // a poll loop runs (it ends when subs is empty)
	wake    chan struct{} // the poll loop: subscriptions changed
	queue   []*dnsChange  // changes waiting for the batch
	timer   *time.Timer
	first   time.Time // when the oldest queued change arrived
}

type dnsSub struct {
	poll time.Duration
	fn   func(*Listing)
}

type dnsChange struct {
	// chs go in one batch, together: a record and its ownership record.
	chs  []types.Change
	done chan struct{}
	id   string // the ChangeInfo id, without /change/
	err  error
}

func (d *DNS) zone(id string) *dnsZone {
	z := d.zones[id]
	if z == nil {
		z = &dnsZone{id: id, subs: map[*dnsSub]struct{}{}, wake: make(chan struct{}, 1)}
		d.zones[id] = z
	}
	return z
}

// ResolveZone finds a zone by id ("Z...", or "/hostedzone/Z...": no dot)
// or by name ("example.com": a dot; see IsZoneID). A name that no zone has, or that several have (a
// public and a private one, say), is a permanent error; so is an unknown
// id. Names resolve once per process; a failure is not remembered.
func (d *DNS) ResolveZone(ctx context.Context, ref string) (Zone, error) {
	key := strings.TrimPrefix(ref, "/hostedzone/")
	if !IsZoneID(key) {
		key = CanonicalName(key)
	}
	d.mu.Lock()
	if z, ok := d.names[key]; ok {
		d.mu.Unlock()
		return z, nil
	}
	c := d.resolve[key]
	if c == nil {
		c = &call[Zone]{done: make(chan struct{})}
		d.resolve[key] = c
		started := d.goLocked(func(ctx context.Context) {
			// Run's ctx, not the first caller's: others may be waiting.
			ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			defer cancel()
			c.v, c.err = d.lookupZone(ctx, key)
			d.mu.Lock()
			if c.err == nil {
				d.names[key] = c.v
			}
			delete(d.resolve, key)
			d.mu.Unlock()
			close(c.done)
		})
		if !started {
			delete(d.resolve, key)
			c.err = errDNSStopped
			close(c.done)
		}
	}
	d.mu.Unlock()
	select {
	case <-ctx.Done():
		return Zone{}, ctx.Err()
	case <-c.done:
		return c.v, c.err
	}
}

// ErrNoZone marks ResolveZone's answer for a name no zone has.
var ErrNoZone = errors.New("no such hosted zone")

// IsNoZone reports a zone that does not exist: a name no zone has, or an
// id Route 53 does not know (NoSuchHostedZone).
func IsNoZone(err error) bool { return errors.Is(err, ErrNoZone) || Code(err) == "NoSuchHostedZone" }

// IsZoneID tells a hosted zone id from a zone name by shape: "/hostedzone/ID"
// and a bare id have no dot, a name ("example.com", "example.com.") has
// one. Route 53's ids start with Z, but other endpoints' need not, so the
// first letter decides nothing.
func IsZoneID(s string) bool {
	if strings.HasPrefix(s, "/hostedzone/") {
		return true
	}
	return s != "" && !strings.Contains(s, ".")
}

func (d *DNS) lookupZone(ctx context.Context, key string) (Zone, error) {
	if IsZoneID(key) {
		var out *route53.GetHostedZoneOutput
		err := Retry(ctx, d.o.RetryPolicy(), func(ctx context.Context) (err error) {
			out, err = d.c.GetHostedZone(ctx, &route53.GetHostedZoneInput{Id: aws.String(key)})
			return err
		})
		if err != nil {
			return Zone{}, Classify(err, "NoSuchHostedZone", "InvalidInput")
		}
		return zoneOf(*out.HostedZone), nil
	}
	found, err := ZonesNamed(ctx, d.c, key, d.o.RetryPolicy())
	if err != nil {
		return Zone{}, err
	}
	switch len(found) {
	case 0:
		return Zone{}, engine.Permanent(fmt.Errorf("no hosted zone named %s: %w", key, ErrNoZone))
	case 1:
		return zoneOf(found[0]), nil
	}
	ids := make([]string, len(found))
	for i, z := range found {
		ids[i] = zoneOf(z).ID
		if zoneOf(z).Private {
			ids[i] += " (private)"
		}
	}
	return Zone{}, engine.Permanent(fmt.Errorf("%d hosted zones are named %s (%s): give the zone's id", len(found), key, strings.Join(ids, ", ")))
}

// ZoneLister is the call ZonesNamed makes: *route53.Client satisfies it.
type ZoneLister interface {
	ListHostedZonesByName(context.Context, *route53.ListHostedZonesByNameInput, ...func(*route53.Options)) (*route53.ListHostedZonesByNameOutput, error)
}

// ZonesNamed returns every hosted zone named name (any case, with or
// without the trailing dot), paging ListHostedZonesByName from the name on
// and retrying with policy p. A malformed name is a permanent error.
func ZonesNamed(ctx context.Context, c ZoneLister, name string, p RetryPolicy) ([]types.HostedZone, error) {
	name = CanonicalName(name)
	var found []types.HostedZone
	in := &route53.ListHostedZonesByNameInput{DNSName: aws.String(name)}
	for {
		var out *route53.ListHostedZonesByNameOutput
		err := Retry(ctx, p, func(ctx context.Context) (err error) {
			out, err = c.ListHostedZonesByName(ctx, in)
			return err
		})
		if err != nil {
			return nil, Classify(err, "InvalidDomainName", "InvalidInput")
		}
		more := out.IsTruncated
		for _, z := range out.HostedZones {
			if CanonicalName(aws.ToString(z.Name)) != name {
				more = false // sorted by name: the rest are other names
				break
			}
			found = append(found, z)
		}
		if !more {
			return found, nil
		}
		in = &route53.ListHostedZonesByNameInput{DNSName: out.NextDNSName, HostedZoneId: out.NextHostedZoneId}
	}
}

func zoneOf(z types.HostedZone) Zone {
	out := Zone{ID: strings.TrimPrefix(aws.ToString(z.Id), "/hostedzone/"), Name: CanonicalName(aws.ToString(z.Name))}
	if z.Config != nil {
		out.Private = z.Config.PrivateZone
	}
	return out
}

// Records returns a listing of zone that started no longer than maxAge
// ago (0: one that starts now or is in flight), listing it when there is
// none. Callers at the same moment share one listing.
func (d *DNS) Records(ctx context.Context, zone string, maxAge time.Duration) (*Listing, error) {
	d.mu.Lock()
	z := d.zone(zone)
	if z.last != nil && maxAge > 0 && time.Since(z.last.At) <= maxAge {
		l := z.last
		d.mu.Unlock()
		return l, nil
	}
	c := d.startListingLocked(z)
	d.mu.Unlock()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		return c.v, c.err
	}
}

// startListingLocked returns the listing of z in flight, starting one
// when there is none (on Run's context: its callers share it); d.mu is
// held.
func (d *DNS) startListingLocked(z *dnsZone) *call[*Listing] {
	if z.listing != nil {
		return z.listing
	}
	c := &call[*Listing]{done: make(chan struct{})}
	z.listing = c
	started := d.goLocked(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		c.v, c.err = d.list(ctx, z.id)
		d.mu.Lock()
		z.listing = nil
		// A listing that started before kiln's own last change does not
		// replace the view that change wrote through (recordChanges).
		if c.err == nil && (z.last == nil || (!c.v.At.Before(z.last.At) && c.v.At.After(z.wrote))) {
			z.last = c.v
		}
		d.mu.Unlock()
		close(c.done)
	})
	if !started {
		z.listing = nil
		c.err = errDNSStopped
		close(c.done)
	}
	return c
}

// list reads every record set of zone: one call per 300.
func (d *DNS) list(ctx context.Context, zone string) (*Listing, error) {
	l := &Listing{Sets: map[RecordKey]types.ResourceRecordSet{}, At: time.Now()}
	p := route53.NewListResourceRecordSetsPaginator(d.c, &route53.ListResourceRecordSetsInput{HostedZoneId: aws.String(zone)})
	for p.HasMorePages() {
		var out *route53.ListResourceRecordSetsOutput
		err := Retry(ctx, d.o.RetryPolicy(), func(ctx context.Context) (err error) {
			out, err = p.NextPage(ctx)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("list records of zone %s: %w", zone, Classify(err, "NoSuchHostedZone"))
		}
		for _, rs := range out.ResourceRecordSets {
			l.Sets[KeyOf(rs)] = rs
		}
	}
	return l, nil
}

// Subscribe calls fn with every listing of zone that its poll loop makes,
// every poll (the shortest any subscriber of the zone asks for; 0: the
// hub's default), one listing for all the zone's subscribers. fn must not
// block. cancel removes the subscription; the loop stops with the last.
// The loop is one of Run's goroutines.
func (d *DNS) Subscribe(zone string, poll time.Duration, fn func(*Listing)) (cancel func()) {
	if poll <= 0 {
		poll = d.o.Poll
	}
	s := &dnsSub{poll: poll, fn: fn}
	d.mu.Lock()
	z := d.zone(zone)
	z.subs[s] = struct{}{}
	if !z.polling {
		z.polling = d.goLocked(func(ctx context.Context) { d.pollLoop(ctx, z) })
	}
	d.mu.Unlock()
	poke(z.wake)
	return func() {
		d.mu.Lock()
		delete(z.subs, s)
		d.mu.Unlock()
		poke(z.wake)
	}
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// pollLoop lists z every interval and hands the listing to its
// subscribers, until ctx is done or z has no subscriber left.
func (d *DNS) pollLoop(ctx context.Context, z *dnsZone) {
	next := time.Now()
	for {
		d.mu.Lock()
		if len(z.subs) == 0 {
			z.polling = false
			d.mu.Unlock()
			return
		}
		var iv time.Duration
		for s := range z.subs {
			if iv == 0 || s.poll < iv {
				iv = s.poll
			}
		}
		d.mu.Unlock()
		if iv == 0 {
			iv = d.o.Poll
		}
		t := time.NewTimer(time.Until(next.Add(iv)))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-z.wake:
			t.Stop()
			continue // the interval may have changed
		case <-t.C:
		}
		next = time.Now()
		d.mu.Lock()
		c := d.startListingLocked(z)
		d.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-c.done:
		}
		if c.err != nil {
			d.o.Log.Warn("poll failed", "zone", z.id, "err", c.err)
			continue
		}
		d.mu.Lock()
		var fns []func(*Listing)
		for s := range z.subs {
			fns = append(fns, s.fn)
		}
		d.mu.Unlock()
		for _, fn := range fns {
			fn(c.v)
		}
	}
}

// maxBatchRecords is the most ResourceRecord elements Route 53 takes in
// one ChangeResourceRecordSets (an UPSERT's count twice); maxBatchChanges
// the most changes.
const (
	maxBatchRecords = 1000
	maxBatchChanges = 1000
)

// Change submits ch to zone with the other changes of the zone that
// arrive in the same batch window, and returns the id of the change that
// carried it (without /change/). A batch is atomic: when Route 53 refuses
// a batch of several changes, its halves are sent again (and theirs), so
// the good changes go through and the bad one gets its own answer. Errors that retrying cannot fix are permanent.
func (d *DNS) Change(ctx context.Context, zone string, ch types.Change) (string, error) {
	return d.ChangeTogether(ctx, zone, ch)
}

// ChangeTogether is Change for changes that must be applied together or
// not at all (a record and the TXT record that says who owns it): they
// always share one batch, and a bisection never splits them.
func (d *DNS) ChangeTogether(ctx context.Context, zone string, chs ...types.Change) (string, error) {
	c := &dnsChange{chs: chs, done: make(chan struct{})}
	d.mu.Lock()
	z := d.zone(zone)
	now := time.Now()
	if len(z.queue) == 0 {
		z.first = now
	}
	z.queue = append(z.queue, c)
	wait := min(d.o.Batch.Idle, d.o.Batch.Max-now.Sub(z.first))
	if z.timer != nil {
		z.timer.Stop()
	}
	z.timer = time.AfterFunc(max(wait, 0), func() { d.startFlush(z) })
	d.mu.Unlock()
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case <-c.done:
		return c.id, c.err
	}
}

// startFlush hands z's queued changes to one of Run's goroutines (the
// batch window's timer calls it); after Run they fail.
func (d *DNS) startFlush(z *dnsZone) {
	d.mu.Lock()
	defer d.mu.Unlock()
	queue := z.queue
	z.queue, z.timer = nil, nil
	if len(queue) == 0 {
		return
	}
	if !d.goLocked(func(ctx context.Context) { d.flush(ctx, z, queue) }) {
		for _, c := range queue {
			c.err = errDNSStopped
			close(c.done)
		}
	}
}

// flush sends queue, z's changes, in batches within Route 53's limits.
// Two changes of one record set never share a batch.
func (d *DNS) flush(ctx context.Context, z *dnsZone, queue []*dnsChange) {
	for len(queue) > 0 {
		var batch, rest []*dnsChange
		seen := map[RecordKey]bool{}
		records := 0
		for _, c := range queue {
			var keys []RecordKey
			n := 0
			for _, ch := range c.chs {
				keys = append(keys, KeyOf(*ch.ResourceRecordSet))
				m := len(ch.ResourceRecordSet.ResourceRecords)
				if ch.Action == types.ChangeActionUpsert {
					m *= 2
				}
				n += m
			}
			if slices.ContainsFunc(keys, func(k RecordKey) bool { return seen[k] }) || len(batch)+len(c.chs) > maxBatchChanges || (len(batch) > 0 && records+n > maxBatchRecords) {
				rest = append(rest, c)
				continue
			}
			for _, k := range keys {
				seen[k] = true
			}
			records += n
			batch = append(batch, c)
		}
		d.send(ctx, z, batch)
		queue = rest
	}
}

// send submits batch as one ChangeResourceRecordSets; a refused batch of
// several changes is sent again in halves.
func (d *DNS) send(ctx context.Context, z *dnsZone, batch []*dnsChange) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	in := &route53.ChangeResourceRecordSetsInput{HostedZoneId: aws.String(z.id), ChangeBatch: &types.ChangeBatch{Comment: aws.String("kiln")}}
	for _, c := range batch {
		in.ChangeBatch.Changes = append(in.ChangeBatch.Changes, c.chs...)
	}
	var out *route53.ChangeResourceRecordSetsOutput
	err := Retry(ctx, d.o.RetryPolicy(), func(ctx context.Context) (err error) {
		out, err = d.c.ChangeResourceRecordSets(ctx, in)
		return err
	})
	if err != nil && len(batch) > 1 && IsRefusedBatch(err) {
		// Bisect: the halves that Route 53 accepts go through, and the
		// change at fault ends up alone with its own error, in about
		// 2·log2(n) calls rather than n.
		half := len(batch) / 2
		d.send(ctx, z, batch[:half])
		d.send(ctx, z, batch[half:])
		return
	}
	var id string
	if err != nil {
		err = Classify(err, "InvalidChangeBatch", "InvalidInput", "NoSuchHostedZone", "NoSuchHealthCheck")
	} else {
		id = strings.TrimPrefix(aws.ToString(out.ChangeInfo.Id), "/change/")
		d.recordChanges(z, batch)
	}
	for _, c := range batch {
		c.id, c.err = id, err
		close(c.done)
	}
}

// IsRefusedBatch reports Route 53 refusing a change batch for its content.
func IsRefusedBatch(err error) bool {
	switch Code(err) {
	case "InvalidChangeBatch", "InvalidInput":
		return true
	}
	return false
}

// recordChanges applies an accepted batch to the zone's last listing, so
// a check right after its own change reads what it wrote.
func (d *DNS) recordChanges(z *dnsZone, batch []*dnsChange) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if z.last == nil {
		return
	}
	l := &Listing{Sets: make(map[RecordKey]types.ResourceRecordSet, len(z.last.Sets)), At: z.last.At}
	for k, v := range z.last.Sets {
		l.Sets[k] = v
	}
	for _, c := range batch {
		for _, ch := range c.chs {
			rs := *ch.ResourceRecordSet
			rs.Name = aws.String(CanonicalName(aws.ToString(rs.Name)))
			if ch.Action == types.ChangeActionDelete {
				delete(l.Sets, KeyOf(rs))
			} else {
				l.Sets[KeyOf(rs)] = rs
			}
		}
	}
	z.last, z.wrote = l, time.Now()
}

// insyncWait is the one GetChange loop of a change.
type insyncWait struct {
	done    chan struct{}
	err     error
	waiters int
	left    context.Context // done when the last waiter left: the loop stops
	leave   context.CancelFunc
}

// AwaitInsync returns once change (an id with or without /change/) is
// INSYNC, polling GetChange with backoff (insyncBackoff); callers waiting
// on the same change share one loop.
func (d *DNS) AwaitInsync(ctx context.Context, change string) error {
	change = strings.TrimPrefix(change, "/change/")
	d.mu.Lock()
	w := d.waits[change]
	if w == nil {
		w = &insyncWait{done: make(chan struct{})}
		w.left, w.leave = context.WithCancel(context.Background())
		d.waits[change] = w
		started := d.goLocked(func(ctx context.Context) {
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			defer context.AfterFunc(w.left, cancel)()
			w.err = d.pollChange(ctx, change)
			d.mu.Lock()
			if d.waits[change] == w {
				delete(d.waits, change)
			}
			d.mu.Unlock()
			close(w.done)
		})
		if !started {
			delete(d.waits, change)
			w.leave()
			d.mu.Unlock()
			return errDNSStopped
		}
	}
	w.waiters++
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		w.waiters--
		if w.waiters == 0 {
			w.leave()
			if d.waits[change] == w {
				delete(d.waits, change)
			}
		}
		d.mu.Unlock()
	}()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-w.done:
		if w.err != nil && errors.Is(w.err, context.Canceled) && ctx.Err() == nil {
			return d.AwaitInsync(ctx, change) // the loop's last waiter left as we came
		}
		return w.err
	}
}

// insyncBackoff paces GetChange: the hub's Wait backoff capped at a third
// of its Max (5 s against AWS). A change takes tens of seconds to reach
// INSYNC, one GetChange loop serves every record of the change, and the
// lower cap keeps the wait's overshoot small (15 s would add up to half
// of a 30 s propagation).
func (d *DNS) insyncBackoff() Backoff {
	return Backoff{Min: d.o.Wait.Min, Max: max(d.o.Wait.Min, d.o.Wait.Max/3)}
}

func (d *DNS) pollChange(ctx context.Context, change string) error {
	b := d.insyncBackoff()
	for n := 0; ; n++ {
		var out *route53.GetChangeOutput
		err := Retry(ctx, d.o.RetryPolicy(), func(ctx context.Context) (err error) {
			out, err = d.c.GetChange(ctx, &route53.GetChangeInput{Id: aws.String(change)})
			return err
		})
		if err != nil {
			return Classify(err, "NoSuchChange")
		}
		if out.ChangeInfo.Status == types.ChangeStatusInsync {
			return nil
		}
		if err := sleep(ctx, b.delay(n)); err != nil {
			return err
		}
	}
}
