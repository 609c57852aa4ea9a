package awsapi

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"

	"kiln/internal/awssim"
	"kiln/internal/engine"
	"kiln/internal/testsupport"
)

func newDNSFixture(t *testing.T) (*awssim.Sim, *DNS, string) {
	t.Helper()
	sim := awssim.New(awssim.Options{TimeScale: 0.001})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	c := route53.NewFromConfig(awssim.ClientConfig(srv.URL))
	out, err := c.CreateHostedZone(t.Context(), &route53.CreateHostedZoneInput{Name: aws.String("example.com"), CallerReference: aws.String("t")})
	if err != nil {
		t.Fatal(err)
	}
	d := NewDNS(c, Options{
		// A wide batch window: the test's goroutines must all arrive within
		// it even on a loaded machine.
		Batch: BatchOptions{Idle: 200 * time.Millisecond, Max: 2 * time.Second}, Poll: 50 * time.Millisecond,
		Wait: Backoff{Min: 5 * time.Millisecond, Max: 20 * time.Millisecond}, Retries: Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond},
	})
	runDNS(t, d)
	return sim, d, aws.ToString(out.HostedZone.Id)
}

// runDNS runs d until the test ends and checks that Run returned then.
func runDNS(t *testing.T, d *DNS) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run() = %v; want context.Canceled", err)
		}
	})
}

func upsertA(name, ip string) types.Change {
	return types.Change{Action: types.ChangeActionUpsert, ResourceRecordSet: &types.ResourceRecordSet{
		Name: aws.String(name), Type: types.RRTypeA, TTL: aws.Int64(60),
		ResourceRecords: []types.ResourceRecord{{Value: aws.String(ip)}},
	}}
}

// changeAll submits changes at once and returns each one's change id and error.
func changeAll(t *testing.T, d *DNS, zone string, changes []types.Change) ([]string, []error) {
	ids, errs := make([]string, len(changes)), make([]error, len(changes))
	var wg sync.WaitGroup
	for i, ch := range changes {
		wg.Go(func() { ids[i], errs[i] = d.Change(t.Context(), zone, ch) })
	}
	wg.Wait()
	return ids, errs
}

func TestDNSBatchesChangesPerZone(t *testing.T) {
	sim, d, zone := newDNSFixture(t)
	var changes []types.Change
	for i := range 600 {
		changes = append(changes, upsertA(fmt.Sprintf("h%d.example.com", i), "10.0.0.1"))
	}
	sim.ResetCalls()
	ids, errs := changeAll(t, d, zone, changes)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
	}
	// 600 UPSERTs of one value are 1,200 ResourceRecord elements: two batches.
	if n := sim.Calls("ChangeResourceRecordSets"); n != 2 {
		t.Errorf("ChangeResourceRecordSets calls for 600 changes = %d; want 2", n)
	}
	// Every record waits for INSYNC; they share the GetChange loops.
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			if err := d.AwaitInsync(t.Context(), id); err != nil {
				t.Errorf("AwaitInsync(%s) = %v", id, err)
			}
		})
	}
	wg.Wait()
	if n := sim.Calls("GetChange"); n > 20 {
		t.Errorf("GetChange calls for 600 waiters on 2 changes = %d; want a shared loop (≤ 20)", n)
	}
	l, err := d.Records(t.Context(), zone, 0)
	if err != nil || len(l.Sets) != 602 {
		t.Fatalf("Records() = %d sets, %v; want 602", len(l.Sets), err)
	}
}

func TestDNSRefusedChangeFailsAlone(t *testing.T) {
	sim, d, zone := newDNSFixture(t)
	changes := []types.Change{upsertA("a.example.com", "10.0.0.1"), upsertA("b.example.com", "not-an-ip"), upsertA("c.example.com", "10.0.0.3")}
	sim.ResetCalls()
	_, errs := changeAll(t, d, zone, changes)
	if errs[0] != nil || errs[2] != nil {
		t.Errorf("good changes: %v, %v; want them applied", errs[0], errs[2])
	}
	if !engine.IsPermanent(errs[1]) || Code(errs[1]) != "InvalidChangeBatch" {
		t.Errorf("bad change: %v; want a permanent InvalidChangeBatch", errs[1])
	}
	// The three goroutines arrive in any order. The refused batch is
	// bisected: with the bad change first its halves are [b] and [a c]
	// (3 calls); otherwise one half holds it with a good one and is split
	// again (5 calls). Never one call per change plus a retry of each.
	if n := sim.Calls("ChangeResourceRecordSets"); n != 3 && n != 5 {
		t.Errorf("calls = %d; want 3 or 5 (the batch, its halves, and the half holding the bad change split again)", n)
	}

	// 200 changes, one bad: bisected in about 2·log2(200) calls.
	changes = nil
	for i := range 200 {
		changes = append(changes, upsertA(fmt.Sprintf("m%d.example.com", i), "10.0.2.1"))
	}
	changes[137] = upsertA("bad.example.com", "10.0.2")
	sim.ResetCalls()
	_, errs = changeAll(t, d, zone, changes)
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
		}
	}
	if n := sim.Calls("ChangeResourceRecordSets"); failed != 1 || errs[137] == nil || n > 2*8+1 {
		t.Errorf("200 changes, one bad: %d failed (the bad one: %v), %d calls; want only it, ≤ 17 calls", failed, errs[137], n)
	}
}

func TestDNSSharesListings(t *testing.T) {
	sim, d, zone := newDNSFixture(t)
	sim.ResetCalls()
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := d.Records(t.Context(), zone, time.Minute); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := sim.Calls("ListResourceRecordSets"); n != 1 {
		t.Errorf("ListResourceRecordSets for 50 checks at once = %d; want 1", n)
	}

	// 100 watchers of the zone: one listing per poll.
	var got atomic.Int64
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	for range 100 {
		stop := d.Subscribe(zone, 50*time.Millisecond, func(*Listing) { got.Add(1) })
		context.AfterFunc(ctx, stop)
	}
	sim.ResetCalls()
	base := got.Load()
	testsupport.Eventually(t, "five polls' notifications", func() bool { return got.Load()-base >= 5*100 })
	polls := int64(sim.Calls("ListResourceRecordSets"))
	n := got.Load() - base // read after the calls: every listing counted is handed out, but one in flight
	// Each listing notifies all 100 watchers (the last one may be under
	// way), and one listing serves them all: one per poll, not one per
	// watcher (one in flight at the reset).
	if polls < 4 || n < 100*(polls-1) || polls > n/100+2 {
		t.Errorf("%d listings, %d notifications to 100 watchers; want one listing per poll, 100 notifications each", polls, n)
	}
}

func TestDNSResolveZone(t *testing.T) {
	sim, d, zone := newDNSFixture(t)
	sim.ResetCalls()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			z, err := d.ResolveZone(t.Context(), "Example.com")
			if err != nil || z.ID != zone[len("/hostedzone/"):] || z.Name != "example.com." {
				t.Errorf("ResolveZone(Example.com) = %+v, %v", z, err)
			}
		})
	}
	wg.Wait()
	if n := sim.Calls("ListHostedZonesByName"); n != 1 {
		t.Errorf("ListHostedZonesByName for 20 lookups = %d; want 1", n)
	}
	if _, err := d.ResolveZone(t.Context(), "nope.example"); !engine.IsPermanent(err) {
		t.Errorf("ResolveZone(unknown name) = %v; want a permanent error", err)
	}
	if _, err := d.ResolveZone(t.Context(), "ZNOSUCHZONE00000"); !engine.IsPermanent(err) || Code(err) != "NoSuchHostedZone" {
		t.Errorf("ResolveZone(unknown id) = %v; want a permanent NoSuchHostedZone", err)
	}
	if z, err := d.ResolveZone(t.Context(), zone); err != nil || z.Name != "example.com." {
		t.Errorf("ResolveZone(%s) = %+v, %v", zone, z, err)
	}
}

// TestDNSZoneIDsByShape: ids are told from names by shape (a name has a
// dot), so an endpoint whose zone ids do not start with Z works.
func TestDNSZoneIDsByShape(t *testing.T) {
	for _, tt := range []struct {
		ref  string
		want bool
	}{
		{"Z0123456789ABCDEFGHIJ", true},
		{"/hostedzone/Z0123456789ABCDEFGHIJ", true},
		{"hz-7f3a9c", true},
		{"/hostedzone/hz-7f3a9c", true},
		{"0f3a9c21", true},
		{"example.com", false},
		{"example.com.", false},
		{"Zeta.example", false},
		{"", false},
	} {
		if got := IsZoneID(tt.ref); got != tt.want {
			t.Errorf("IsZoneID(%q) = %v; want %v", tt.ref, got, tt.want)
		}
	}

	sim := awssim.New(awssim.Options{TimeScale: 0.001, ZoneIDPrefix: "hz-"})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	c := route53.NewFromConfig(awssim.ClientConfig(srv.URL))
	out, err := c.CreateHostedZone(t.Context(), &route53.CreateHostedZoneInput{Name: aws.String("example.com"), CallerReference: aws.String("t")})
	if err != nil {
		t.Fatal(err)
	}
	d := NewDNS(c, Options{Retries: Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond}})
	runDNS(t, d)
	for _, ref := range []string{aws.ToString(out.HostedZone.Id), strings.TrimPrefix(aws.ToString(out.HostedZone.Id), "/hostedzone/")} {
		if z, err := d.ResolveZone(t.Context(), ref); err != nil || z.Name != "example.com." || z.ID[:3] != "hz-" {
			t.Errorf("ResolveZone(%s) = %+v, %v; want example.com. by its id", ref, z, err)
		}
	}
	if n := sim.Calls("GetHostedZone"); n != 1 {
		t.Errorf("GetHostedZone calls = %d; want 1 (the id looked up as an id, once)", n)
	}
}

// TestDNSRunOwnsItsLoops: a zone's poll loop is one of Run's goroutines:
// Run returns only once it has stopped, and a hub whose Run returned
// answers that it stopped instead of starting anything.
func TestDNSRunOwnsItsLoops(t *testing.T) {
	sim := awssim.New(awssim.Options{TimeScale: 0.001})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	c := route53.NewFromConfig(awssim.ClientConfig(srv.URL))
	out, err := c.CreateHostedZone(t.Context(), &route53.CreateHostedZoneInput{Name: aws.String("example.org"), CallerReference: aws.String("t")})
	if err != nil {
		t.Fatal(err)
	}
	zone := aws.ToString(out.HostedZone.Id)
	d := NewDNS(c, Options{Poll: 10 * time.Millisecond, Retries: Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond}})

	// Asked before Run, the poll waits for it.
	listed := make(chan struct{}, 1)
	stop := d.Subscribe(zone, 10*time.Millisecond, func(*Listing) { poke(listed) })
	defer stop()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	select {
	case <-listed:
	case <-t.Context().Done():
		t.Fatal("no listing from the poll loop")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run() = %v; want context.Canceled", err)
	}
	if _, err := d.Records(t.Context(), zone, 0); !errors.Is(err, errDNSStopped) {
		t.Errorf("Records after Run returned = %v; want %v", err, errDNSStopped)
	}
	if _, err := d.Change(t.Context(), zone, upsertA("a.example.org", "10.0.0.1")); !errors.Is(err, errDNSStopped) {
		t.Errorf("Change after Run returned = %v; want %v", err, errDNSStopped)
	}
}
