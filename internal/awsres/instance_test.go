package awsres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/sync/errgroup"

	"kiln/internal/awsapi"
	"kiln/internal/awssim"
	"kiln/internal/config"
	"kiln/internal/engine"
	"kiln/internal/events"
	"kiln/internal/testsupport"
)

const (
	graph  = "shop"
	apiKey = "test-key"
)

// world is a simulator served over HTTP, the hubs pointed at it (running),
// and optionally the events receiver the simulator pushes to.
type world struct {
	sim    *awssim.Sim
	hubs   *awsapi.Hubs
	client *ec2.Client
	image  string // an Amazon Linux image
	image2 string // another one
	// endpoint is the simulator's URL, for a second client (the aws CLI).
	endpoint string
}

type worldOpts struct {
	sim    awssim.Options
	events bool // push state-change events to kiln's receiver
	poll   time.Duration
}

// fastRetry keeps the SDK's retries of throttling quick in tests.
var fastRetry = awsapi.RetryOptions{MaxAttempts: 3, Backoff: retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) {
	return time.Millisecond, nil
})}

func newWorld(t *testing.T, o worldOpts) *world {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var g errgroup.Group
	t.Cleanup(func() {
		cancel()
		_ = g.Wait()
	})
	var hubs *awsapi.Hubs
	if o.events {
		recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			events.New(hubsSink{&hubs}, events.Options{APIKey: apiKey}).ServeHTTP(w, r)
		}))
		t.Cleanup(recv.Close)
		o.sim.Events = []awssim.EventTarget{{URL: recv.URL + events.Path, APIKey: apiKey}}
	}
	if !o.sim.ManualClock && o.sim.TimeScale == 0 {
		o.sim.TimeScale = 0.001 // a boot takes 15 ms; terminated instances stay 3.6 s
	}
	sim := awssim.New(o.sim)
	t.Cleanup(func() {
		d, f, dr := sim.EventStats()
		t.Logf("events delivered %d, failed %d, dropped %d", d, f, dr)
	})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	cfg := awssim.ClientConfig(srv.URL)
	hubs = awsapi.NewHubs(awsapi.Options{
		Config:  &cfg,
		Retry:   fastRetry,
		Batch:   awsapi.BatchOptions{Idle: 2 * time.Millisecond, Max: 20 * time.Millisecond},
		Poll:    o.poll,
		Wait:    awsapi.Backoff{Min: 2 * time.Millisecond, Max: 20 * time.Millisecond},
		Retries: awsapi.Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond},
		Log:     testLog,
	})
	g.Go(func() error { return sim.Run(ctx) })
	g.Go(func() error { return hubs.Run(ctx) })
	w := &world{sim: sim, hubs: hubs, endpoint: srv.URL}
	h, err := hubs.Hub(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	w.client = h.EC2()
	out, err := w.client.DescribeImages(t.Context(), &ec2.DescribeImagesInput{
		Owners:  []string{"amazon"},
		Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"al2023-ami-2023.*-kernel-6.1-x86_64"}}},
	})
	if err != nil || len(out.Images) < 2 {
		t.Fatalf("DescribeImages = %v, %v; want two images", out, err)
	}
	// The newest first: examples/ec2.yaml names it.
	slices.SortFunc(out.Images, func(a, b types.Image) int {
		return strings.Compare(aws.ToString(b.CreationDate), aws.ToString(a.CreationDate))
	})
	w.image, w.image2 = aws.ToString(out.Images[0].ImageId), aws.ToString(out.Images[1].ImageId)
	return w
}

// hubsSink lets the receiver be built before the hubs exist.
type hubsSink struct{ h **awsapi.Hubs }

func (s hubsSink) Deliver(ev awsapi.Event) { (*s.h).Deliver(ev) }

// instance returns an initialised aws:ec2 resource.
func (w *world) instance(name string, mod func(*Instance)) *Instance {
	r := NewInstance(w.hubs)
	r.Image, r.Type = w.image, "t3.micro"
	if mod != nil {
		mod(r)
	}
	_ = r.Init(engine.Env{Graph: graph, ID: "aws:ec2/" + name, Kind: "aws:ec2", Name: name, Log: testLog})
	return r
}

// owned lists the simulator's instances tagged as resource name.
func (w *world) owned(name string) []awssim.InstanceInfo { return w.ownedIn(graph, name) }

func (w *world) ownedIn(graph, name string) []awssim.InstanceInfo {
	var out []awssim.InstanceInfo
	for _, in := range w.sim.Instances() {
		if in.Tags[awsapi.TagOwner] == graph && in.Tags[awsapi.TagResource] == "aws:ec2/"+name {
			out = append(out, in)
		}
	}
	return out
}

func (w *world) live(name string) []awssim.InstanceInfo { return w.liveIn(graph, name) }

func (w *world) liveIn(graph, name string) []awssim.InstanceInfo {
	return slices.DeleteFunc(w.ownedIn(graph, name), func(in awssim.InstanceInfo) bool {
		return in.State == "terminated" || in.State == "shutting-down"
	})
}

// quiet waits until keepCounting's loop has returned from more than after
// checks and stayed idle for a moment (no check running, none due), and
// returns the count.
func quiet(t *testing.T, what string, checked *atomic.Int64, after int64) int64 {
	t.Helper()
	for {
		var n int64
		testsupport.Eventually(t, what+" returned", func() bool { n = checked.Load(); return n > after })
		// A sleep: idle means no event is on its way to the watch, and an
		// event in flight inside the hub has nothing to wait on.
		time.Sleep(30 * time.Millisecond)
		if checked.Load() == n {
			return n
		}
	}
}

func checkApply(t *testing.T, r *Instance) bool {
	t.Helper()
	ok, err := r.CheckApply(t.Context(), true)
	if err != nil {
		t.Fatalf("CheckApply() error = %v", err)
	}
	return ok
}

func TestConverge(t *testing.T) {
	w := newWorld(t, worldOpts{})
	r := w.instance("web", func(r *Instance) { r.Tags = map[string]string{"team": "shop"} })
	steps := []struct {
		state   string
		want    string // simulator state after the step
		changes bool
	}{
		{StateRunning, "running", true},
		{StateRunning, "running", false},
		{StateStopped, "stopped", true},
		{StateStopped, "stopped", false},
		{StateRunning, "running", true},
		{StateTerminated, "terminated", true},
		{StateTerminated, "terminated", false},
	}
	for i, st := range steps {
		t.Run(fmt.Sprintf("%d_%s", i, st.state), func(t *testing.T) {
			r.State = st.state
			if ok := checkApply(t, r); ok == st.changes {
				t.Errorf("CheckApply() = %v; want %v", ok, !st.changes)
			}
			own := w.owned("web")
			if len(own) != 1 {
				t.Fatalf("%d instances; want 1", len(own))
			}
			if own[0].State != st.want {
				t.Errorf("state = %s; want %s", own[0].State, st.want)
			}
			out := r.Outputs()
			switch st.want {
			case "running":
				if out["instance_id"] != own[0].ID || out["private_ip"] == "" || out["private_ip"] != own[0].PrivateIP {
					t.Errorf("Outputs() = %v; want instance %s with private ip %s", out, own[0].ID, own[0].PrivateIP)
				}
				if own[0].Tags["Name"] != "web" || own[0].Tags["team"] != "shop" {
					t.Errorf("tags = %v", own[0].Tags)
				}
			case "terminated":
				if out["instance_id"] != "" {
					t.Errorf("Outputs() = %v; want empty", out)
				}
			}
		})
	}
	if n := w.sim.Calls("RunInstances"); n != 1 {
		t.Errorf("RunInstances calls = %d; want 1", n)
	}
	// A terminated instance does not block a new one of the same name.
	r.State = StateRunning
	checkApply(t, r)
	if l := w.live("web"); len(l) != 1 {
		t.Errorf("%d live instances after relaunch; want 1", len(l))
	}
}

func TestCheckOnly(t *testing.T) {
	w := newWorld(t, worldOpts{})
	r := w.instance("web", nil)
	ok, err := r.CheckApply(t.Context(), false)
	if ok || err != nil {
		t.Fatalf("CheckApply(apply=false) = %v, %v; want false, nil", ok, err)
	}
	if n := w.sim.Calls("RunInstances"); n != 0 {
		t.Errorf("RunInstances calls = %d in check-only mode; want 0", n)
	}
	if got := r.Changes(); len(got) != 1 || got[0] != "launch instance" {
		t.Errorf("Changes() = %q; want [launch instance]", got)
	}
	checkApply(t, r)
	id := r.Outputs()["instance_id"]
	if err := w.sim.StopInstance(id); err != nil {
		t.Fatal(err)
	}
	testsupport.Eventually(t, "stopped", func() bool { in, _ := w.sim.Instance(id); return in.State == "stopped" })
	if ok, err := r.CheckApply(t.Context(), false); ok || err != nil {
		t.Fatalf("CheckApply(apply=false) = %v, %v; want false, nil", ok, err)
	}
	if got, want := r.Changes(), "start instance "+id+" (stopped)"; len(got) != 1 || got[0] != want {
		t.Errorf("Changes() = %q; want [%s]", got, want)
	}
	if n := w.sim.Calls("StartInstances"); n != 0 {
		t.Errorf("StartInstances calls = %d in check-only mode; want 0", n)
	}
}

func TestDrift(t *testing.T) {
	tests := []struct {
		name      string
		change    func(w *world, r *Instance)
		wantErr   string // substring; "" = converges
		permanent bool
		check     func(t *testing.T, w *world, before awssim.InstanceInfo)
	}{
		{
			name:    "image without replace",
			change:  func(w *world, r *Instance) { r.Image = w.image2 },
			wantErr: "replace: true", permanent: true,
		},
		{
			name:   "image with replace",
			change: func(w *world, r *Instance) { r.Image, r.Replace = w.image2, true },
			check: func(t *testing.T, w *world, before awssim.InstanceInfo) {
				l := w.live("web")
				if len(l) != 1 || l[0].ID == before.ID || l[0].ImageID != w.image2 {
					t.Errorf("live = %+v; want one new instance of %s", l, w.image2)
				}
				if old, _ := w.sim.Instance(before.ID); old.State != "terminated" {
					t.Errorf("old instance %s; want terminated", old.State)
				}
			},
		},
		{
			name:    "type without allow_restart",
			change:  func(w *world, r *Instance) { r.Type = "t3.small" },
			wantErr: "allow_restart: true", permanent: true,
		},
		{
			name: "type and user data with allow_restart",
			change: func(w *world, r *Instance) {
				r.Type, r.UserData, r.AllowRestart = "t3.small", "#!/bin/sh\necho hi\n", true
			},
			check: func(t *testing.T, w *world, before awssim.InstanceInfo) {
				in, _ := w.sim.Instance(before.ID)
				if in.InstanceType != "t3.small" || in.State != "running" {
					t.Errorf("instance = %s %s; want t3.small running", in.InstanceType, in.State)
				}
				if w.sim.Calls("StopInstances") != 1 || w.sim.Calls("StartInstances") != 1 || w.sim.Calls("RunInstances") != 1 {
					t.Errorf("calls = %v; want one stop, one start, one run", callsOf(w.sim))
				}
			},
		},
		{
			name:    "key_name without replace",
			change:  func(w *world, r *Instance) { r.KeyName = "ops" },
			wantErr: "key_name is none, spec wants ops; set replace: true", permanent: true,
		},
		{
			name:   "key_name with replace",
			change: func(w *world, r *Instance) { r.KeyName, r.Replace = "ops", true },
			check: func(t *testing.T, w *world, before awssim.InstanceInfo) {
				l := w.live("web")
				if len(l) != 1 || l[0].ID == before.ID || l[0].KeyName != "ops" {
					t.Errorf("live = %+v; want one new instance with key ops", l)
				}
				if old, _ := w.sim.Instance(before.ID); old.State != "terminated" {
					t.Errorf("old instance %s; want terminated", old.State)
				}
			},
		},
		{
			name: "terminated by hand",
			change: func(w *world, r *Instance) {
				id := r.Outputs()["instance_id"]
				if err := w.sim.TerminateInstance(id); err != nil {
					panic(err)
				}
			},
			check: func(t *testing.T, w *world, before awssim.InstanceInfo) {
				l := w.live("web")
				if len(l) != 1 || l[0].ID == before.ID {
					t.Errorf("live = %+v; want one replacement", l)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, worldOpts{})
			r := w.instance("web", nil)
			checkApply(t, r)
			before := w.live("web")[0]
			tt.change(w, r)
			ok, err := r.CheckApply(t.Context(), true)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("CheckApply() = %v, %v; want error containing %q", ok, err, tt.wantErr)
				}
				if engine.IsPermanent(err) != tt.permanent {
					t.Errorf("IsPermanent = %v; want %v", !tt.permanent, tt.permanent)
				}
				return
			}
			if err != nil || ok {
				t.Fatalf("CheckApply() = %v, %v; want false (changed), nil", ok, err)
			}
			tt.check(t, w, before)
			if ok := checkApply(t, r); !ok {
				t.Errorf("second CheckApply() = false; want converged")
			}
		})
	}
}

func callsOf(s *awssim.Sim) map[string]int {
	c, _ := s.CallCounts()
	return c
}

func TestDuplicateNames(t *testing.T) {
	w := newWorld(t, worldOpts{})
	r := w.instance("web", nil)
	checkApply(t, r)
	first := r.Outputs()["instance_id"]
	// Someone launches a second instance claiming the same resource.
	out, err := w.client.RunInstances(t.Context(), &ec2.RunInstancesInput{
		ImageId: aws.String(w.image), InstanceType: types.InstanceTypeT3Micro, MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: r.tags()}},
	})
	if err != nil {
		t.Fatal(err)
	}
	second := aws.ToString(out.Instances[0].InstanceId)
	_, err = r.CheckApply(t.Context(), true)
	if err == nil || !strings.Contains(err.Error(), first) || !strings.Contains(err.Error(), second) {
		t.Fatalf("CheckApply() error = %v; want one naming %s and %s", err, first, second)
	}
	if n := w.sim.Calls("TerminateInstances"); n != 0 {
		t.Errorf("TerminateInstances calls = %d; kiln must not pick one", n)
	}
}

func TestThrottlingConverges(t *testing.T) {
	w := newWorld(t, worldOpts{})
	for _, a := range []string{"RunInstances", "DescribeInstances", "StopInstances"} {
		w.sim.InjectFault(awssim.Fault{Action: a, Code: "RequestLimitExceeded", Count: 12})
	}
	r := w.instance("web", func(r *Instance) { r.State = StateStopped })
	if _, err := r.CheckApply(t.Context(), true); err != nil {
		t.Fatalf("CheckApply() error = %v; want throttling waited out", err)
	}
	if l := w.live("web"); len(l) != 1 || l[0].State != "stopped" {
		t.Errorf("live = %+v; want one stopped instance", l)
	}
	if w.sim.Calls("RunInstances") < 12 {
		t.Errorf("RunInstances calls = %d; the fault was not hit", w.sim.Calls("RunInstances"))
	}
}

func TestThrottlingAtAWSBuckets(t *testing.T) {
	// AWS's buckets on a manual clock: RunInstances refills 2 per simulated
	// second, so 20 concurrent launches must wait for the clock. Each has
	// its own user data, so none batch together.
	const n = 20
	w := newWorld(t, worldOpts{sim: awssim.Options{ManualClock: true, TimeScale: 1, Throttle: true}})
	var g errgroup.Group
	for i := range n {
		r := w.instance(fmt.Sprintf("web-%d", i), func(r *Instance) { r.UserData = fmt.Sprintf("#!/bin/sh\necho %d\n", i) })
		g.Go(func() error {
			_, err := r.CheckApply(t.Context(), true)
			return err
		})
	}
	done := make(chan error, 1)
	go func() { done <- g.Wait() }()
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("CheckApply() = %v; want throttling waited out", err)
			}
			running := 0
			for _, in := range w.sim.Instances() {
				if in.State == "running" {
					running++
				}
			}
			if running != n || w.sim.Throttled("RunInstances") == 0 {
				t.Errorf("%d running, %d launches throttled; want %d running after some throttling", running, w.sim.Throttled("RunInstances"), n)
			}
			return
		case <-time.After(2 * time.Millisecond):
			w.sim.Advance(500 * time.Millisecond)
		}
	}
}

func TestPermissionIsPermanent(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.sim.InjectFault(awssim.Fault{Action: "RunInstances", Code: "UnauthorizedOperation", Status: 403,
		Message: "You are not authorized to perform this operation."})
	r := w.instance("web", nil)
	_, err := r.CheckApply(t.Context(), true)
	if err == nil || !engine.IsPermanent(err) || !strings.Contains(err.Error(), "ec2:RunInstances") {
		t.Fatalf("CheckApply() error = %v; want a permanent error naming ec2:RunInstances", err)
	}
	if n := w.sim.Calls("RunInstances"); n != 1 {
		t.Errorf("RunInstances calls = %d; a 4xx other than throttling must not be retried", n)
	}
}

func TestCrashAfterRunInstances(t *testing.T) {
	// A manual clock with an eventual-consistency window: the instance the
	// crashed process launched is invisible to the next process's lookup.
	w := newWorld(t, worldOpts{sim: awssim.Options{ManualClock: true, TimeScale: 1, Consistency: 30 * time.Second}})
	ctx, cancel := context.WithCancel(t.Context())
	r1 := w.instance("web", nil)
	done := make(chan error, 1)
	go func() {
		_, err := r1.CheckApply(ctx, true)
		done <- err
	}()
	testsupport.Eventually(t, "RunInstances", func() bool { return w.sim.Calls("RunInstances") == 1 })
	cancel() // kill -9: r1 is gone
	if err := <-done; err == nil {
		t.Fatal("crashed CheckApply() = nil error")
	}
	if n := len(w.owned("web")); n != 1 {
		t.Fatalf("%d instances after the launch; want 1", n)
	}

	// A fresh process: a new resource that knows nothing of r1.
	r2 := w.instance("web", nil)
	res := make(chan error, 1)
	go func() {
		_, err := r2.CheckApply(t.Context(), true)
		res <- err
	}()
	for {
		select {
		case err := <-res:
			if err != nil {
				t.Fatalf("CheckApply() after crash = %v", err)
			}
			if n := len(w.owned("web")); n != 1 {
				t.Fatalf("%d instances after the crash and a retry; want exactly 1", n)
			}
			if n := w.sim.Calls("RunInstances"); n != 2 {
				t.Errorf("RunInstances calls = %d; want 2 (the second answered by the ClientToken)", n)
			}
			return
		case <-time.After(2 * time.Millisecond):
			w.sim.Advance(time.Second)
		}
	}
}

// changes counts Changed calls; Running closes running.
type changes struct {
	once    sync.Once
	running chan struct{}
	changed chan struct{}
}

func newChanges() *changes {
	return &changes{running: make(chan struct{}), changed: make(chan struct{}, 1)}
}

func (c *changes) Running() { c.once.Do(func() { close(c.running) }) }
func (c *changes) Changed() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// keep is a one-vertex engine: Watch, then CheckApply on every change,
// until ctx is done.
func keep(ctx context.Context, t *testing.T, r *Instance) *errgroup.Group {
	g, _ := keepCounting(ctx, t, r)
	return g
}

// keepCounting is keep, counting the CheckApply calls that have returned;
// the count is negative while a check runs or another is due.
func keepCounting(ctx context.Context, t *testing.T, r *Instance) (*errgroup.Group, *atomic.Int64) {
	var (
		g    errgroup.Group
		done atomic.Int64
		n    int64
	)
	ev := newChanges()
	g.Go(func() error { return r.Watch(ctx, ev) })
	g.Go(func() error {
		select {
		case <-ev.running:
		case <-ctx.Done():
			return nil
		}
		for {
			done.Store(-1)
			if _, err := r.CheckApply(ctx, true); err != nil && ctx.Err() == nil {
				t.Errorf("CheckApply() error = %v", err)
			}
			n++
			select {
			case <-ctx.Done():
				return nil
			case <-ev.changed: // another is due at once
				continue
			default:
			}
			done.Store(n) // idle
			select {
			case <-ctx.Done():
				return nil
			case <-ev.changed:
			}
		}
	})
	return &g, &done
}

func TestOutOfBandStop(t *testing.T) {
	tests := []struct {
		name   string
		events bool
		poll   time.Duration
	}{
		// The poll is an hour: only the pushed event can bring it back.
		{"pushed event", true, time.Hour},
		// No events: the batched poller notices.
		{"poller only", false, 20 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, worldOpts{events: tt.events, sim: awssim.Options{TimeScale: 0.001}})
			r := w.instance("web", func(r *Instance) { r.SetPoll(tt.poll) })
			ctx, cancel := context.WithCancel(t.Context())
			g := keep(ctx, t, r)
			defer func() { cancel(); _ = g.Wait() }()
			testsupport.Eventually(t, "instance running", func() bool {
				l := w.live("web")
				return len(l) == 1 && l[0].State == "running"
			})
			id := w.live("web")[0].ID
			if err := w.sim.StopInstance(id); err != nil {
				t.Fatal(err)
			}
			testsupport.Eventually(t, "instance started again", func() bool { return w.sim.Calls("StartInstances") == 1 })
			testsupport.Eventually(t, "instance running again", func() bool {
				in, _ := w.sim.Instance(id)
				return in.State == "running"
			})
			if n := w.sim.Calls("RunInstances"); n != 1 {
				t.Errorf("RunInstances calls = %d; want 1", n)
			}
		})
	}
}

func TestWatchCostAtScale(t *testing.T) {
	const n = 1000
	w := newWorld(t, worldOpts{poll: time.Hour})
	t0 := time.Now()
	// A fleet launched beforehand, tagged as n resources of one graph.
	out, err := w.client.RunInstances(t.Context(), &ec2.RunInstancesInput{
		ImageId: aws.String(w.image), InstanceType: types.InstanceTypeT3Micro, MinCount: aws.Int32(n), MaxCount: aws.Int32(n),
	})
	if err != nil {
		t.Fatal(err)
	}
	rs := make([]*Instance, n)
	for i, in := range out.Instances {
		rs[i] = w.instance(fmt.Sprintf("web-%d", i), nil)
		tags := map[string]string{}
		for _, tg := range rs[i].tags() {
			tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
		}
		if err := w.sim.SetTags(aws.ToString(in.InstanceId), tags); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("tagged: %v", time.Since(t0))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var g errgroup.Group
	defer func() { cancel(); _ = g.Wait() }()
	evs := make([]*changes, n)
	for i, r := range rs {
		evs[i] = newChanges()
		g.Go(func() error { return r.Watch(ctx, evs[i]) })
	}
	for _, ev := range evs {
		<-ev.running
	}

	t.Logf("watching: %v", time.Since(t0))
	// First checks: all n resources at once go through the batcher.
	w.sim.ResetCalls()
	var cg errgroup.Group
	for _, r := range rs {
		cg.Go(func() error {
			ok, err := r.CheckApply(t.Context(), true)
			if err == nil && !ok {
				err = errors.New("changed something")
			}
			return err
		})
	}
	if err := cg.Wait(); err != nil {
		t.Fatalf("CheckApply() = %v; want converged", err)
	}
	calls := callsOf(w.sim)
	t.Logf("first check of %d instances: %v (%v)", n, calls, time.Since(t0))
	// 200 filter values per call: 5 when every check joins one window; a
	// slow (race-instrumented) run may split a window or two.
	if calls["DescribeInstances"] > n/50 || len(calls) != 1 {
		t.Errorf("calls = %v; want only DescribeInstances, batched (≤ %d)", calls, n/50)
	}

	// Steady state: one poll of the graph is one call per 1,000 instances.
	h, _ := w.hubs.Hub(t.Context(), "")
	if err := h.Poll(t.Context(), graph); err != nil {
		t.Fatal(err)
	}
	w.sim.ResetCalls()
	for range 3 {
		if err := h.Poll(t.Context(), graph); err != nil {
			t.Fatal(err)
		}
	}
	calls = callsOf(w.sim)
	t.Logf("3 polls of %d instances: %v", n, calls)
	if calls["DescribeInstances"] != 3 || len(calls) != 1 {
		t.Errorf("calls = %v; want 3 DescribeInstances (one per poll of %d instances) and nothing else", calls, n)
	}

	// A change seen by a poll notifies exactly its owner.
	for _, ev := range evs {
		select {
		case <-ev.changed:
		default:
		}
	}
	if err := w.sim.StopInstance(aws.ToString(out.Instances[7].InstanceId)); err != nil {
		t.Fatal(err)
	}
	if err := h.Poll(t.Context(), graph); err != nil {
		t.Fatal(err)
	}
	for i, ev := range evs {
		select {
		case <-ev.changed:
			if i != 7 {
				t.Errorf("resource %d notified; only 7 changed", i)
			}
		default:
			if i == 7 {
				t.Error("resource 7 not notified of its stop")
			}
		}
	}
}

// testLog: switch to a text handler on os.Stderr when debugging.
var testLog = slog.New(slog.DiscardHandler)

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		r      *Instance
		fields []string // fields with an error
	}{
		{"ok", &Instance{Image: "ami-1", Type: "t3.micro"}, nil},
		{"terminated needs nothing", &Instance{State: StateTerminated}, nil},
		{"reference skipped", &Instance{Image: "${aws:ami/web.image_id}", Type: "t3.micro"}, nil},
		{"missing", &Instance{}, []string{"image", "type"}},
		{"bad values", &Instance{State: "paused", Image: "img-1", Type: "big", Subnet: "net-1", SecurityGroups: []string{"sg-1", "web"}},
			[]string{"state", "image", "type", "subnet", "security_groups[1]"}},
		{"reserved tags", &Instance{Image: "ami-1", Type: "t3.micro", Tags: map[string]string{"Name": "x", "kiln:owner": "y", "ok": "z"}},
			[]string{"tags.Name", "tags.kiln:owner"}},
		{"profiles", &Instance{Image: "ami-1", Type: "t3.micro", IAMProfile: "arn:aws:iam::123456789012:instance-profile/team/web"}, nil},
		{"bad profile name", &Instance{Image: "ami-1", Type: "t3.micro", IAMProfile: "web role"}, []string{"iam_profile"}},
		{"role ARN for a profile", &Instance{Image: "ami-1", Type: "t3.micro", IAMProfile: "arn:aws:iam::123456789012:role/web"}, []string{"iam_profile"}},
		{"user data too big", &Instance{Image: "ami-1", Type: "t3.micro", UserData: strings.Repeat("x", maxUserData+1)}, []string{"user_data"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			if err := tt.r.Validate(); err != nil {
				for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
					var fe *config.FieldError
					if !errors.As(e, &fe) {
						t.Fatalf("Validate() error %v is not a config.FieldError", e)
					}
					got = append(got, fe.Field)
				}
			}
			if !slices.Equal(got, tt.fields) {
				t.Errorf("Validate() fields = %v; want %v", got, tt.fields)
			}
		})
	}
}

func TestIAMActions(t *testing.T) {
	tests := []struct {
		r    *Instance
		want []string
		not  []string
	}{
		{&Instance{}, []string{"ec2:RunInstances", "ec2:DescribeInstances", "ec2:CreateTags", "ec2:StopInstances"}, []string{"iam:PassRole", "ec2:ModifyInstanceAttribute"}},
		{&Instance{IAMProfile: "web", AllowRestart: true}, []string{"iam:PassRole", "ec2:ModifyInstanceAttribute",
			"ec2:DescribeIamInstanceProfileAssociations", "ec2:AssociateIamInstanceProfile",
			"ec2:ReplaceIamInstanceProfileAssociation", "ec2:DisassociateIamInstanceProfile"}, nil},
		{&Instance{}, nil, []string{"ec2:DescribeIamInstanceProfileAssociations", "ec2:AssociateIamInstanceProfile"}},
		{&Instance{State: StateTerminated}, []string{"ec2:DescribeInstances", "ec2:TerminateInstances"}, []string{"ec2:RunInstances"}},
	}
	for _, tt := range tests {
		got := tt.r.IAMActions()
		for _, a := range tt.want {
			if !slices.Contains(got, a) {
				t.Errorf("IAMActions() = %v; want %s", got, a)
			}
		}
		for _, a := range tt.not {
			if slices.Contains(got, a) {
				t.Errorf("IAMActions() = %v; want no %s", got, a)
			}
		}
	}
}

func TestSecurityGroupsChangeLive(t *testing.T) {
	w := newWorld(t, worldOpts{})
	r := w.instance("web", nil)
	checkApply(t, r)
	id := r.Outputs()["instance_id"]
	sg, err := w.client.CreateSecurityGroup(t.Context(), &ec2.CreateSecurityGroupInput{
		GroupName: aws.String("web"), Description: aws.String("web servers")})
	if err != nil {
		t.Fatal(err)
	}
	r.SecurityGroups = []string{aws.ToString(sg.GroupId)}
	if ok, err := r.CheckApply(t.Context(), false); ok || err != nil {
		t.Fatalf("CheckApply(apply=false) = %v, %v; want false, nil", ok, err)
	}
	if got := r.Changes(); len(got) != 1 || !strings.Contains(got[0], "set security groups") {
		t.Errorf("Changes() = %q; want a security-group change", got)
	}
	if ok := checkApply(t, r); ok {
		t.Fatal("CheckApply() = true; want a change")
	}
	out, err := w.client.DescribeInstances(t.Context(), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	in := out.Reservations[0].Instances[0]
	if len(in.SecurityGroups) != 1 || aws.ToString(in.SecurityGroups[0].GroupId) != aws.ToString(sg.GroupId) {
		t.Errorf("groups = %+v; want only %s", in.SecurityGroups, aws.ToString(sg.GroupId))
	}
	if w.sim.Calls("StopInstances") != 0 || w.sim.Calls("RunInstances") != 1 {
		t.Errorf("calls = %v; a group change needs no stop and no new instance", callsOf(w.sim))
	}
	if ok := checkApply(t, r); !ok {
		t.Error("second CheckApply() = false; want converged")
	}
	// A group that does not exist is a permanent error, not an endless retry.
	r.SecurityGroups = []string{"sg-0000000000000dead"}
	if _, err := r.CheckApply(t.Context(), true); err == nil || !engine.IsPermanent(err) {
		t.Errorf("CheckApply() with an unknown group = %v; want a permanent error", err)
	}
}

const profileArn = "arn:aws:iam::123456789012:instance-profile/"

func TestProfileMatches(t *testing.T) {
	tests := []struct {
		want, arn string
		ok        bool
	}{
		{"web", profileArn + "web", true},
		{"web", profileArn + "team/web", true},
		{"web", profileArn + "web2", false},
		{"web", profileArn + "web/other", false},
		{"web", "", false},
		{profileArn + "team/web", profileArn + "team/web", true},
		{profileArn + "web", profileArn + "team/web", false},
		{"web", "arn:aws:iam::123456789012:role/web", false},
	}
	for _, tt := range tests {
		if got := profileMatches(tt.want, tt.arn); got != tt.ok {
			t.Errorf("profileMatches(%q, %q) = %v; want %v", tt.want, tt.arn, got, tt.ok)
		}
	}
}

func TestProfileDrift(t *testing.T) {
	tests := []struct {
		name    string
		state   string
		profile string // the graph's
		change  string // set out of band ("" removes)
		calls   []string
	}{
		{"replaced out of band", StateRunning, "web", "intruder", []string{"ReplaceIamInstanceProfileAssociation"}},
		{"removed out of band", StateRunning, "web", "", []string{"AssociateIamInstanceProfile"}},
		{"arn with a path", StateRunning, profileArn + "team/web", "web", []string{"ReplaceIamInstanceProfileAssociation"}},
		// EC2 replaces on a running instance only: a stopped one is
		// disassociated, then associated.
		{"stopped instance", StateStopped, "web", "intruder", []string{"DisassociateIamInstanceProfile", "AssociateIamInstanceProfile"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, worldOpts{})
			r := w.instance("web", func(r *Instance) { r.State, r.IAMProfile = tt.state, tt.profile })
			checkApply(t, r)
			id := r.Outputs()["instance_id"]
			want := tt.profile
			if !strings.HasPrefix(want, "arn:") {
				want = profileArn + want
			}
			if in, _ := w.sim.Instance(id); in.IAMProfile != want {
				t.Fatalf("launched with profile %q; want %q", in.IAMProfile, want)
			}
			if ok := checkApply(t, r); !ok {
				t.Fatal("second CheckApply() = false; want converged")
			}
			if n := w.sim.Calls("DescribeIamInstanceProfileAssociations"); n != 0 {
				t.Errorf("DescribeIamInstanceProfileAssociations calls = %d on a converged instance; want 0 (DescribeInstances tells)", n)
			}

			if err := w.sim.SetInstanceProfile(id, tt.change); err != nil {
				t.Fatal(err)
			}
			ok, err := r.CheckApply(t.Context(), false)
			if ok || err != nil {
				t.Fatalf("CheckApply(apply=false) = %v, %v; want false, nil", ok, err)
			}
			got := r.Changes()
			if len(got) != 1 || !strings.HasPrefix(got[0], "set instance profile (iam_profile is ") ||
				!strings.Contains(got[0], "spec wants "+tt.profile+") on instance "+id) {
				t.Errorf("Changes() = %q; want one instance profile line for %s", got, id)
			}
			if tt.change != "" && !strings.Contains(got[0], profileArn+tt.change) {
				t.Errorf("Changes() = %q; want the current profile %s named", got, tt.change)
			} else if tt.change == "" && !strings.Contains(got[0], "iam_profile is none") {
				t.Errorf("Changes() = %q; want the missing profile named", got)
			}
			for _, a := range tt.calls {
				if n := w.sim.Calls(a); n != 0 {
					t.Errorf("%s calls = %d in check-only mode; want 0", a, n)
				}
			}

			moves := w.sim.Calls("RunInstances") + w.sim.Calls("StopInstances") + w.sim.Calls("StartInstances")
			if ok := checkApply(t, r); ok {
				t.Fatal("CheckApply() = true; want a change")
			}
			if in, _ := w.sim.Instance(id); in.IAMProfile != want || in.State != tt.state {
				t.Errorf("instance profile %q, %s; want %q, %s", in.IAMProfile, in.State, want, tt.state)
			}
			for _, a := range tt.calls {
				// After a disassociation, Associate is refused (IncorrectState)
				// and retried until the old association is gone.
				retried := a == "AssociateIamInstanceProfile" && tt.state == StateStopped
				if n := w.sim.Calls(a); n < 1 || n > 1 && !retried {
					t.Errorf("%s calls = %d; want 1 (all calls: %v)", a, n, callsOf(w.sim))
				}
			}
			if n := w.sim.Calls("RunInstances") + w.sim.Calls("StopInstances") + w.sim.Calls("StartInstances"); n != moves {
				t.Errorf("RunInstances + StopInstances + StartInstances calls = %d, %d before the fix; a profile change needs no new instance, stop or start", n, moves)
			}
			if ok := checkApply(t, r); !ok {
				t.Error("CheckApply() after the fix = false; want converged")
			}
		})
	}
}

func TestProfileUnsetIsNotChecked(t *testing.T) {
	w := newWorld(t, worldOpts{})
	r := w.instance("web", nil)
	checkApply(t, r)
	id := r.Outputs()["instance_id"]
	if err := w.sim.SetInstanceProfile(id, "someone-elses"); err != nil {
		t.Fatal(err)
	}
	if ok := checkApply(t, r); !ok {
		t.Errorf("CheckApply() = false; an instance profile the graph does not name is not drift")
	}
	if in, _ := w.sim.Instance(id); in.IAMProfile != profileArn+"someone-elses" {
		t.Errorf("profile = %q; kiln must leave it alone", in.IAMProfile)
	}
	for _, a := range []string{"DescribeIamInstanceProfileAssociations", "DisassociateIamInstanceProfile"} {
		if n := w.sim.Calls(a); n != 0 {
			t.Errorf("%s calls = %d; want 0", a, n)
		}
	}
}

func TestKeyNamePlan(t *testing.T) {
	w := newWorld(t, worldOpts{})
	r := w.instance("web", func(r *Instance) { r.KeyName = "ops" })
	checkApply(t, r)
	id := r.Outputs()["instance_id"]
	if in, _ := w.sim.Instance(id); in.KeyName != "ops" {
		t.Fatalf("launched with key %q; want ops", in.KeyName)
	}
	if ok := checkApply(t, r); !ok {
		t.Fatal("second CheckApply() = false; want converged")
	}
	r.KeyName, r.Replace = "deploy", true
	ok, err := r.CheckApply(t.Context(), false)
	if ok || err != nil {
		t.Fatalf("CheckApply(apply=false) = %v, %v; want false, nil", ok, err)
	}
	if got, want := r.Changes(), "replace instance (key_name is ops, spec wants deploy) "+id+" (running)"; len(got) != 1 || got[0] != want {
		t.Errorf("Changes() = %q; want [%s]", got, want)
	}
	if n := w.sim.Calls("TerminateInstances"); n != 0 {
		t.Errorf("TerminateInstances calls = %d in check-only mode; want 0", n)
	}
	// Without replace, a check-only pass still plans the replacement and
	// says that run would refuse it; run's check fails for good, naming the
	// field, both values and the option.
	r.Replace = false
	if ok, err := r.CheckApply(t.Context(), false); ok || err != nil {
		t.Fatalf("CheckApply(apply=false) without replace = %v, %v; want false, nil (plan shows it)", ok, err)
	}
	if got := r.PlannedChanges(); len(got) != 1 || got[0].Action != engine.ActionReplace || !strings.Contains(got[0].Refused, "set replace: true") {
		t.Errorf("PlannedChanges() without replace = %+v; want one refused replacement", got)
	}
	_, err = r.CheckApply(t.Context(), true)
	if err == nil || !engine.IsPermanent(err) || !strings.Contains(err.Error(), "key_name is ops, spec wants deploy; set replace: true") {
		t.Errorf("CheckApply(apply=true) error = %v; want a permanent one naming key_name, ops, deploy and replace: true", err)
	}
	// A spec without a key_name takes whatever key the instance has.
	r.KeyName = ""
	if ok := checkApply(t, r); !ok {
		t.Error("CheckApply() without key_name = false; want converged")
	}
}

// TestRepeatStopPollOnly is the race the mgmt aws:ec2 author warned about:
// with no pushed events, an instance stopped by hand, repaired, and stopped
// by hand again before the next poll must be repaired again. The poll that
// saw the first stop must not become the yardstick of the next one: kiln's
// own repair is part of what the poller compares with.
func TestRepeatStopPollOnly(t *testing.T) {
	tests := []struct {
		name string
		// late delivers pushed events around the repair in an unhelpful
		// order (nil: no events at all).
		late func(h *awsapi.Hub, id string)
	}{
		{"no events", nil},
		{"stale events after the repair", func(h *awsapi.Hub, id string) {
			for _, s := range []string{"running", "pending", "stopping", "stopped"} {
				h.Deliver(awsapi.Event{Region: h.Region(), Source: "aws.ec2", Resource: id, State: s})
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, worldOpts{poll: time.Hour})
			h, err := w.hubs.Hub(t.Context(), "")
			if err != nil {
				t.Fatal(err)
			}
			r := w.instance("web", nil)
			ctx, cancel := context.WithCancel(t.Context())
			g, checked := keepCounting(ctx, t, r)
			defer func() { cancel(); _ = g.Wait() }()
			running := func(id string) func() bool {
				return func() bool { in, _ := w.sim.Instance(id); return in.State == "running" }
			}
			testsupport.Eventually(t, "instance running", func() bool {
				l := w.live("web")
				return len(l) == 1 && l[0].State == "running"
			})
			// A stop by hand must come after kiln's check has seen the
			// instance running and returned: during the check, kiln itself
			// would start it again (someone moved it while it waited).
			quiet(t, "the launch's check", checked, 0)
			id := w.live("web")[0].ID
			if err := h.Poll(t.Context(), graph); err != nil { // the first poll: a baseline
				t.Fatal(err)
			}
			for stop := 1; stop <= 3; stop++ {
				if err := w.sim.StopInstance(id); err != nil {
					t.Fatal(err)
				}
				testsupport.Eventually(t, "instance stopped by hand", func() bool { in, _ := w.sim.Instance(id); return in.State == "stopped" })
				before := quiet(t, "before the poll", checked, 0)
				if err := h.Poll(t.Context(), graph); err != nil {
					t.Fatal(err)
				}
				testsupport.Eventually(t, fmt.Sprintf("start after stop %d", stop), func() bool { return w.sim.Calls("StartInstances") == stop })
				testsupport.Eventually(t, fmt.Sprintf("running after stop %d", stop), running(id))
				repaired := quiet(t, fmt.Sprintf("the repair's check after stop %d", stop), checked, before)
				if tt.late != nil {
					tt.late(h, id)
					// Let the check that the late events started finish:
					// its reads are part of what the next poll compares with.
					quiet(t, fmt.Sprintf("the late events' check after stop %d", stop), checked, repaired)
				}
			}
			if n := w.sim.Calls("RunInstances"); n != 1 {
				t.Errorf("RunInstances calls = %d; want 1", n)
			}
		})
	}
}

// polls is changes that also counts engine.Polled.
type polls struct {
	*changes
	n atomic.Int64
}

func (p *polls) Polled() { p.n.Add(1) }

// TestWatchReportsPolls: each poll of the graph is reported to the engine
// (engine.Polled), found difference or not, so the page's last check
// follows the poll.
func TestWatchReportsPolls(t *testing.T) {
	w := newWorld(t, worldOpts{poll: time.Hour})
	r := w.instance("web", nil)
	if _, err := r.CheckApply(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var g errgroup.Group
	defer func() { cancel(); _ = g.Wait() }()
	ev := &polls{changes: newChanges()}
	g.Go(func() error { return r.Watch(ctx, ev) })
	<-ev.running
	h, _ := w.hubs.Hub(t.Context(), "")
	for i := range 3 {
		if err := h.Poll(t.Context(), graph); err != nil {
			t.Fatal(err)
		}
		// The hub's own loop polls too (once at the start).
		if got := ev.n.Load(); got < int64(i+1) {
			t.Fatalf("Polled calls after %d polls = %d; want at least %d", i+1, got, i+1)
		}
	}
}

// TestNameTag: an instance expanded from an HCL block carries its display
// name (web-0) as the Name tag, and its id as kiln:resource.
func TestNameTag(t *testing.T) {
	w := newWorld(t, worldOpts{})
	r := NewInstance(w.hubs)
	r.Image, r.Type = w.image, "t3.micro"
	_ = r.Init(engine.Env{Graph: graph, ID: "aws:ec2/web[0]", Kind: "aws:ec2", Name: "web[0]", Display: "web-0", Log: testLog})
	if checkApply(t, r) {
		t.Fatal("CheckApply() = true on a first converge; want false (it launches)")
	}
	own := w.owned("web[0]")
	if len(own) != 1 || own[0].Tags[awsapi.TagName] != "web-0" {
		t.Fatalf("instances of aws:ec2/web[0] = %+v; want one tagged Name=web-0", own)
	}
	// The block now sets name = "box": the restarted resource re-tags.
	r = NewInstance(w.hubs)
	r.Image, r.Type = w.image, "t3.micro"
	_ = r.Init(engine.Env{Graph: graph, ID: "aws:ec2/web[0]", Kind: "aws:ec2", Name: "web[0]", Display: "box", Log: testLog})
	checkApply(t, r)
	own = w.owned("web[0]")
	if len(own) != 1 || own[0].Tags[awsapi.TagName] != "box" {
		t.Fatalf("instances of aws:ec2/web[0] = %+v; want the same one re-tagged Name=box", own)
	}
}

// Identical instances launch in one batch and are named by the hub in the
// background; CheckApply counts the tags the hub is setting as set, so
// each instance gets exactly one CreateTags, even when the naming is
// slower than the boot (CreateTags throttled), and its Name is the
// resource's Name tag (display name).
func TestBatchedLaunchTagsOnce(t *testing.T) {
	const n, throttled = 12, 30
	w := newWorld(t, worldOpts{})
	w.sim.InjectFault(awssim.Fault{Action: "CreateTags", Code: "RequestLimitExceeded", Count: throttled})
	rs := make([]*Instance, n)
	var g errgroup.Group
	for i := range n {
		name := fmt.Sprintf("web-%d", i)
		r := NewInstance(w.hubs)
		r.Image, r.Type = w.image, "t3.micro"
		_ = r.Init(engine.Env{Graph: graph, ID: "aws:ec2/" + name, Kind: "aws:ec2", Name: name, Display: "Web " + name, Log: testLog})
		rs[i] = r
		g.Go(func() error {
			_, err := r.CheckApply(t.Context(), true)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("CheckApply() = %v", err)
	}
	if c := w.sim.Calls("RunInstances"); c >= n {
		t.Errorf("RunInstances calls = %d for %d identical instances; want them batched", c, n)
	}
	h, _ := w.hubs.Hub(t.Context(), "")
	if err := h.Named(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, r := range rs { // a second pass finds every tag in place
		if ok, err := r.CheckApply(t.Context(), true); !ok || err != nil {
			t.Errorf("second CheckApply() = %v, %v; want converged", ok, err)
		}
	}
	if c := w.sim.Calls("CreateTags"); c != n+throttled {
		t.Errorf("CreateTags calls = %d; want one per instance (%d) plus the %d throttled", c, n, throttled)
	}
	for i := range n {
		name := fmt.Sprintf("web-%d", i)
		if l := w.live(name); len(l) != 1 || l[0].Tags[awsapi.TagName] != "Web "+name {
			t.Errorf("%s: live %+v; want one instance named %q", name, l, "Web "+name)
		}
	}
}
