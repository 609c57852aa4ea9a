package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/sync/errgroup"

	"kiln/internal/awsapi"
	"kiln/internal/awsres"
	"kiln/internal/awssim"
	"kiln/internal/engine"
	"kiln/internal/events"
)

// The ec2 scenario: aws:ec2 against the simulator over HTTP.
//
//   - watch: N managed instances at steady state → API calls per poll interval.
//
//   - drift: 100 instances stopped by hand → time from the pushed "stopped"
//     event (or, polling only, from the stop) to the corrective StartInstances.
//
//   - repeat-stop: 100 instances, events off, each stopped by hand, repaired,
//     and stopped again the moment it runs (well within one poll interval)
//     → time from the second stop to its StartInstances; every one must be
//     repaired, p99 ≤ poll + 1 s.
//
//   - cold: N identical instances from nothing with AWS's throttling
//     buckets on (their refill is real time at any time scale), launched
//     in batches → time until every instance runs (the engine's run is
//     done: dependents unblocked) against the bound of the RunInstances
//     buckets plus pending→running, time until every instance is named
//     against the CreateTags bucket's bound, duplicates, calls and
//     throttled calls per action.
//
//   - storm: the cold case's N instances, events on, all stopped by hand
//     at once → time until all run again against the bound of the
//     StartInstances buckets plus stopping→stopped→running.
//
//     KILN_BENCH_EC2_WATCH=1000,10000   sizes of the watch case
//     KILN_BENCH_EC2_COLD=1000          size of the cold and storm cases (0 skips them)
//     KILN_BENCH_EC2_CASES=cold,storm   the cases to run (default: all)
const (
	ec2WatchEnv = "KILN_BENCH_EC2_WATCH"
	ec2ColdEnv  = "KILN_BENCH_EC2_COLD"
	ec2CasesEnv = "KILN_BENCH_EC2_CASES"
)

// ec2Case reports whether KILN_BENCH_EC2_CASES selects case c.
func ec2Case(c string) bool {
	s := os.Getenv(ec2CasesEnv)
	return s == "" || slices.Contains(strings.Split(s, ","), c)
}

func ec2Bench(ctx context.Context, emit func(v any)) error {
	watch, err := sizesFrom(ec2WatchEnv, []int{1000, 10000})
	if err != nil {
		return err
	}
	cold, err := sizesFrom(ec2ColdEnv, []int{1000})
	if err != nil {
		return err
	}
	for _, n := range watch {
		if n <= 0 || !ec2Case("watch") {
			continue
		}
		if err := ec2Watch(ctx, n, emit); err != nil {
			return fmt.Errorf("watch %d: %w", n, err)
		}
	}
	for _, events := range []bool{true, false} {
		if !ec2Case("drift") {
			break
		}
		if err := ec2Drift(ctx, 100, events, emit); err != nil {
			return fmt.Errorf("drift: %w", err)
		}
	}
	if ec2Case("repeat-stop") {
		if err := ec2RepeatStop(ctx, 100, emit); err != nil {
			return fmt.Errorf("repeat-stop: %w", err)
		}
	}
	for _, n := range cold {
		if n > 0 && ec2Case("accounts") { // accounts.go
			if err := ec2Accounts(ctx, n, emit); err != nil {
				return fmt.Errorf("accounts %d: %w", n, err)
			}
		}
	}
	for _, n := range cold {
		if n > 0 && (ec2Case("cold") || ec2Case("storm")) {
			if err := ec2Cold(ctx, n, ec2Case("storm"), emit); err != nil {
				return fmt.Errorf("cold %d: %w", n, err)
			}
		}
	}
	return nil
}

func sizesFrom(env string, def []int) ([]int, error) {
	s := os.Getenv(env)
	if s == "" {
		return def, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", env, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// ec2World is a simulator behind an HTTP server, hubs pointed at it, and
// optionally kiln's events receiver that the simulator pushes to.
type ec2World struct {
	sim   *awssim.Sim
	hubs  *awsapi.Hubs
	hub   *awsapi.Hub
	image string
	stop  func()

	mu       sync.Mutex
	starts   map[string]time.Time   // instance → first StartInstances
	startLog map[string][]time.Time // instance → every StartInstances
	stopped  map[string]time.Time   // instance → "stopped" event received
}

func newEC2World(ctx context.Context, o awssim.Options, withEvents bool, poll time.Duration) (*ec2World, error) {
	w := &ec2World{starts: map[string]time.Time{}, startLog: map[string][]time.Time{}, stopped: map[string]time.Time{}}
	ctx, cancel := context.WithCancel(ctx)
	var g errgroup.Group
	var servers []*httptest.Server
	w.stop = func() {
		cancel()
		_ = g.Wait()
		for _, s := range servers {
			s.Close()
		}
	}
	var rcv http.Handler
	if withEvents {
		recv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			rcv.ServeHTTP(rw, r)
		}))
		servers = append(servers, recv)
		o.Events = []awssim.EventTarget{{URL: recv.URL + events.Path, APIKey: "bench"}}
	}
	w.sim = awssim.New(o)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		if form, err := url.ParseQuery(string(body)); err == nil && form.Get("Action") == "StartInstances" {
			w.noteStarts(form)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		w.sim.ServeHTTP(rw, r)
	}))
	servers = append(servers, srv)
	cfg := awssim.ClientConfig(srv.URL)
	w.hubs = awsapi.NewHubs(awsapi.Options{Config: &cfg, Poll: poll, RateLimit: simRateLimit(o)})
	if withEvents {
		rcv = events.New(recordStops{w}, events.Options{APIKey: "bench"})
	}
	g.Go(func() error { return w.sim.Run(ctx) })
	g.Go(func() error { return w.hubs.Run(ctx) })
	h, err := w.hubs.Hub(ctx, "")
	if err != nil {
		w.stop()
		return nil, err
	}
	w.hub = h
	out, err := h.EC2().DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"},
		Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"al2023-ami-2023.*-kernel-6.1-x86_64"}}}})
	if err != nil || len(out.Images) == 0 {
		w.stop()
		return nil, fmt.Errorf("describe images: %v", err)
	}
	w.image = aws.ToString(out.Images[0].ImageId)
	return w, nil
}

func (w *ec2World) noteStarts(form url.Values) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := 1; ; i++ {
		id := form.Get(fmt.Sprintf("InstanceId.%d", i))
		if id == "" {
			return
		}
		if _, ok := w.starts[id]; !ok {
			w.starts[id] = now
		}
		w.startLog[id] = append(w.startLog[id], now)
	}
}

// recordStops notes when each "stopped" event arrives, then routes it.
type recordStops struct{ w *ec2World }

func (r recordStops) Deliver(ev awsapi.Event) {
	if ev.State == "stopped" {
		r.w.mu.Lock()
		if _, ok := r.w.stopped[ev.Resource]; !ok {
			r.w.stopped[ev.Resource] = time.Now()
		}
		r.w.mu.Unlock()
	}
	r.w.hubs.Deliver(ev)
}

// graph builds an engine graph of n aws:ec2 instances named name-i.
func (w *ec2World) graph(graph string, n int) (*engine.Graph, error) {
	specs := make([]*engine.Spec, n)
	for i := range n {
		name := fmt.Sprintf("web-%d", i)
		specs[i] = &engine.Spec{Kind: "aws:ec2", Name: name, Hash: name, Meta: engine.Meta{Retry: -1, Delay: time.Second},
			Build: func(engine.Lookup) (engine.Resource, string, error) {
				r := awsres.NewInstance(w.hubs)
				r.Image, r.Type = w.image, "t3.micro"
				return r, name, nil
			}}
	}
	return engine.NewGraph(graph, specs)
}

type ec2WatchFigures struct {
	Scenario             string         `json:"scenario"`
	Case                 string         `json:"case"`
	Instances            int            `json:"instances"`
	PollsMeasured        int            `json:"polls"`
	DescribePerPoll      float64        `json:"describe_instances_per_poll"`
	OtherCallsPerPoll    float64        `json:"other_calls_per_poll"`
	FirstCheckDescribes  int            `json:"first_check_describe_instances"`
	FirstCheckOtherCalls int            `json:"first_check_other_calls"`
	Calls                map[string]int `json:"calls"`
}

// ec2Watch: n converged instances watched by n resources through one hub.
func ec2Watch(ctx context.Context, n int, emit func(any)) error {
	w, err := newEC2World(ctx, awssim.Options{TimeScale: 0.001}, false, time.Hour)
	if err != nil {
		return err
	}
	defer w.stop()
	const graph = "watch"
	for done := 0; done < n; {
		k := min(1000, n-done)
		out, err := w.hub.EC2().RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(w.image),
			InstanceType: types.InstanceTypeT3Micro, MinCount: aws.Int32(int32(k)), MaxCount: aws.Int32(int32(k))})
		if err != nil {
			return err
		}
		for i, in := range out.Instances {
			name := fmt.Sprintf("web-%d", done+i)
			if err := w.sim.SetTags(aws.ToString(in.InstanceId), map[string]string{
				awsapi.TagOwner: graph, awsapi.TagResource: "aws:ec2/" + name, awsapi.TagName: name,
			}); err != nil {
				return err
			}
		}
		done += k
	}
	g, err := w.graph(graph, n)
	if err != nil {
		return err
	}
	w.sim.ResetCalls()
	runCtx, cancel := context.WithCancel(ctx)
	eng := engine.New(g, engine.Options{Workers: n})
	var eg errgroup.Group
	eg.Go(func() error { return eng.Run(runCtx) })
	defer func() { cancel(); _ = eg.Wait() }()
	// settled waits until every vertex is converged and no check has run
	// for a moment: the steady state the poll figures are about.
	settled := func() error {
		last := -1
		for {
			conv, checks := 0, 0
			for _, s := range eng.Status() {
				checks += s.Checks
				if s.State == engine.StateConverged {
					conv++
				}
			}
			if conv == n && checks == last {
				return nil
			}
			last = checks
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	// Wait for every first check, then for the hub's first poll (which
	// introduces every instance to its subscriber once) to be digested.
	if err := settled(); err != nil {
		return err
	}
	first, _ := w.sim.CallCounts()
	if err := w.hub.Poll(ctx, graph); err != nil {
		return err
	}
	if err := settled(); err != nil {
		return err
	}
	w.sim.ResetCalls()
	const polls = 5
	for range polls {
		if err := w.hub.Poll(ctx, graph); err != nil {
			return err
		}
	}
	calls, _ := w.sim.CallCounts()
	other := 0
	for a, c := range calls {
		if a != "DescribeInstances" {
			other += c
		}
	}
	firstOther := 0
	for a, c := range first {
		if a != "DescribeInstances" {
			firstOther += c
		}
	}
	emit(ec2WatchFigures{Scenario: "ec2", Case: fmt.Sprintf("watch-%d", n), Instances: n, PollsMeasured: polls,
		DescribePerPoll: float64(calls["DescribeInstances"]) / polls, OtherCallsPerPoll: float64(other) / polls,
		FirstCheckDescribes: first["DescribeInstances"], FirstCheckOtherCalls: firstOther, Calls: calls})
	return nil
}

type ec2DriftFigures struct {
	Scenario  string  `json:"scenario"`
	Case      string  `json:"case"`
	Instances int     `json:"instances"`
	PollS     float64 `json:"poll_s"`
	Corrected int     `json:"corrected"`
	From      string  `json:"from"`
	P50MS     float64 `json:"p50_ms"`
	P99MS     float64 `json:"p99_ms"`
	MaxMS     float64 `json:"max_ms"`
}

// ec2Drift: n running instances under the engine; all stopped by hand at
// once; time until each one's StartInstances.
func ec2Drift(ctx context.Context, n int, withEvents bool, emit func(any)) error {
	poll := time.Hour
	if !withEvents {
		poll = 2 * time.Second
	}
	w, err := newEC2World(ctx, awssim.Options{TimeScale: 0.001}, withEvents, poll)
	if err != nil {
		return err
	}
	defer w.stop()
	g, err := w.graph("drift", n)
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	eng := engine.New(g, engine.Options{Workers: n})
	var eg errgroup.Group
	eg.Go(func() error { return eng.Run(runCtx) })
	defer func() { cancel(); _ = eg.Wait() }()
	stoppedAt, err := w.stopAll(ctx, n, 200*time.Millisecond, poll+30*time.Second)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var lat []float64
	from := "stop request"
	if withEvents {
		from = "stopped event received"
	}
	for id, at := range w.starts {
		t0, ok := stoppedAt[id]
		if withEvents {
			t0, ok = w.stopped[id]
		}
		if ok {
			lat = append(lat, float64(at.Sub(t0).Microseconds())/1000)
		}
	}
	slices.Sort(lat)
	f := ec2DriftFigures{Scenario: "ec2", Case: "drift-events", Instances: n, PollS: poll.Seconds(), Corrected: len(lat), From: from}
	if !withEvents {
		f.Case = "drift-poll-only"
	}
	if len(lat) > 0 {
		f.P50MS, f.P99MS, f.MaxMS = pct(lat, 0.50), pct(lat, 0.99), lat[len(lat)-1]
	}
	emit(f)
	return nil
}

// stopAll waits until n instances run, lets the first checks settle for
// settle, forgets the starts, events and calls seen so far, stops every
// instance by hand at once, and waits (at most wait) until kiln has started
// n again. It returns when each was stopped.
func (w *ec2World) stopAll(ctx context.Context, n int, settle, wait time.Duration) (map[string]time.Time, error) {
	var ids []string
	for len(ids) < n {
		ids = ids[:0]
		for _, in := range w.sim.Instances() {
			if in.State == "running" {
				ids = append(ids, in.ID)
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	time.Sleep(settle)
	w.mu.Lock()
	clear(w.starts)
	clear(w.stopped)
	w.mu.Unlock()
	w.sim.ResetCalls()
	stoppedAt := map[string]time.Time{}
	for _, id := range ids {
		stoppedAt[id] = time.Now()
		if err := w.sim.StopInstance(id); err != nil {
			return nil, err
		}
	}
	deadline := time.Now().Add(wait)
	for {
		w.mu.Lock()
		done := len(w.starts)
		w.mu.Unlock()
		if done >= n || time.Now().After(deadline) {
			return stoppedAt, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// ec2RepeatStop: n running instances under the engine, poll only; each is
// stopped by hand, and stopped by hand again as soon as kiln has it running
// again; time from that second stop to kiln's second StartInstances.
func ec2RepeatStop(ctx context.Context, n int, emit func(any)) error {
	const poll = 2 * time.Second
	w, err := newEC2World(ctx, awssim.Options{TimeScale: 0.001}, false, poll)
	if err != nil {
		return err
	}
	defer w.stop()
	g, err := w.graph("repeat", n)
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	eng := engine.New(g, engine.Options{Workers: n})
	var eg errgroup.Group
	eg.Go(func() error { return eng.Run(runCtx) })
	defer func() { cancel(); _ = eg.Wait() }()
	running := func() []string {
		var ids []string
		for _, in := range w.sim.Instances() {
			if in.State == "running" {
				ids = append(ids, in.ID)
			}
		}
		return ids
	}
	for len(running()) < n {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	time.Sleep(200 * time.Millisecond) // let the first poll and checks settle
	w.mu.Lock()
	clear(w.startLog)
	w.mu.Unlock()
	for _, id := range running() {
		if err := w.sim.StopInstance(id); err != nil {
			return err
		}
	}
	second := map[string]time.Time{} // instance → second stop by hand
	deadline := time.Now().Add(3*poll + 30*time.Second)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		repaired := 0
		for _, starts := range w.startLog {
			if len(starts) >= 2 {
				repaired++
			}
		}
		w.mu.Unlock()
		if repaired >= n {
			break
		}
		for _, id := range running() {
			w.mu.Lock()
			once := len(w.startLog[id]) == 1
			w.mu.Unlock()
			if _, done := second[id]; once && !done {
				second[id] = time.Now()
				if err := w.sim.StopInstance(id); err != nil {
					return err
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var lat []float64
	for id, t0 := range second {
		if starts := w.startLog[id]; len(starts) >= 2 {
			lat = append(lat, float64(starts[1].Sub(t0).Microseconds())/1000)
		}
	}
	slices.Sort(lat)
	f := ec2DriftFigures{Scenario: "ec2", Case: "repeat-stop-poll-only", Instances: n, PollS: poll.Seconds(),
		Corrected: len(lat), From: "second stop request"}
	if len(lat) > 0 {
		f.P50MS, f.P99MS, f.MaxMS = pct(lat, 0.50), pct(lat, 0.99), lat[len(lat)-1]
	}
	emit(f)
	return nil
}

func pct(sorted []float64, p float64) float64 {
	i := int(float64(len(sorted)-1) * p)
	return sorted[i]
}

type ec2ColdFigures struct {
	Scenario  string  `json:"scenario"`
	Case      string  `json:"case"`
	Instances int     `json:"instances"`
	BatchSize int     `json:"batch_size"`
	RunningS  float64 `json:"running_s"`
	// RunningBoundS: the RunInstances request bucket (5, 2/s) for one call
	// per batch, or the instance bucket (1,000, 2/s) if slower, plus
	// pending→running.
	RunningBoundS float64 `json:"running_bound_s"`
	RunningRatio  float64 `json:"running_ratio"`
	BootS         float64 `json:"pending_running_s"`
	NamedS        float64 `json:"named_s"`
	// NamedBoundS: one CreateTags per instance in its bucket (100, 10/s).
	NamedBoundS float64        `json:"named_bound_s"`
	NamedRatio  float64        `json:"named_ratio"`
	Duplicates  int            `json:"duplicates"`
	Throttled   int            `json:"throttled"`
	Calls       map[string]int `json:"calls"`
	ThrottledBy map[string]int `json:"throttled_by_action"`
	Errors      int            `json:"errors_surfaced"`
}

type ec2StormFigures struct {
	Scenario  string  `json:"scenario"`
	Case      string  `json:"case"`
	Instances int     `json:"instances"`
	RunningS  float64 `json:"running_again_s"`
	// BoundS: the StartInstances instance bucket (1,000, 2/s) and request
	// bucket (5, 2/s, one call per batch), plus stopping→stopped→running.
	BoundS    float64        `json:"running_again_bound_s"`
	Ratio     float64        `json:"running_again_ratio"`
	Throttled int            `json:"throttled"`
	Calls     map[string]int `json:"calls"`
}

// bucketTime is how long n tokens take from a full bucket.
func bucketTime(n, burst, refill float64) float64 { return max(0, (n-burst)/refill) }

// ec2Cold: n identical instances from nothing with AWS's buckets on; with
// storm, then all stopped by hand at once.
func ec2Cold(ctx context.Context, n int, storm bool, emit func(any)) error {
	// Real time: the buckets refill in real time at any scale, so the
	// state machines run at AWS's pace too, and the bounds are AWS's.
	o := awssim.Options{TimeScale: 1, Throttle: true}
	w, err := newEC2World(ctx, o, storm, time.Hour)
	if err != nil {
		return err
	}
	defer w.stop()
	g, err := w.graph("cold", n)
	if err != nil {
		return err
	}
	w.sim.ResetCalls()
	start := time.Now()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	eng := engine.New(g, engine.Options{Workers: n})
	var eg errgroup.Group
	eg.Go(func() error { return eng.Run(runCtx) })
	defer func() { cancel(); _ = eg.Wait() }()
	running, err := w.until(ctx, 10*time.Minute, func(in awssim.InstanceInfo) bool { return in.State == "running" }, n)
	if err != nil {
		return fmt.Errorf("running: %w", err)
	}
	runningS := time.Since(start).Seconds()
	if _, err := w.until(ctx, 10*time.Minute, func(in awssim.InstanceInfo) bool { return in.Tags[awsapi.TagResource] != "" }, n); err != nil {
		return fmt.Errorf("named: %w", err)
	}
	namedS := time.Since(start).Seconds()
	dup := 0
	for _, in := range w.sim.Instances() {
		if in.Tags[awsapi.TagOwner] == "cold" && in.State != "terminated" {
			dup++
		}
	}
	dup -= n
	calls, throttled := w.sim.CallCounts()
	size := w.hub.Options().Batch.LaunchSize
	d := o.Durations
	boot := (time.Duration(float64(awssim.DefaultDurations().Boot) * o.TimeScale)).Seconds()
	if d.Boot > 0 {
		boot = (time.Duration(float64(d.Boot) * o.TimeScale)).Seconds()
	}
	batches := float64((n + size - 1) / size)
	runBound := max(bucketTime(batches, 5, 2), bucketTime(float64(n), 1000, 2)) + boot
	nameBound := bucketTime(float64(n), 100, 10)
	total := 0
	for _, v := range throttled {
		total += v
	}
	emit(ec2ColdFigures{Scenario: "ec2", Case: fmt.Sprintf("cold-%d", n), Instances: n, BatchSize: size,
		RunningS: runningS, RunningBoundS: runBound, RunningRatio: runningS / max(runBound, 1e-9), BootS: boot,
		NamedS: namedS, NamedBoundS: nameBound, NamedRatio: namedS / max(nameBound, 1e-9),
		Duplicates: max(dup, 0), Throttled: total, Calls: calls, ThrottledBy: throttled})
	if !storm {
		return nil
	}
	w.sim.ResetCalls()
	t0 := time.Now()
	for _, id := range running {
		if err := w.sim.StopInstance(id); err != nil {
			return err
		}
	}
	if _, err := w.until(ctx, 10*time.Minute, func(in awssim.InstanceInfo) bool { return in.State == "stopped" || in.State == "stopping" }, 1); err != nil {
		return err
	}
	// All stopped by hand; now wait until every one runs again.
	if _, err := w.until(ctx, 10*time.Minute, func(in awssim.InstanceInfo) bool {
		st, ok := w.sim.Instance(in.ID)
		return ok && st.State == "running"
	}, n); err != nil {
		return err
	}
	again := time.Since(t0).Seconds()
	calls, throttled = w.sim.CallCounts()
	total = 0
	for _, v := range throttled {
		total += v
	}
	stop := (time.Duration(float64(awssim.DefaultDurations().Stop) * o.TimeScale)).Seconds()
	bound := max(bucketTime(float64(n)/1000, 5, 2), bucketTime(float64(n), 1000, 2)) + stop + boot
	emit(ec2StormFigures{Scenario: "ec2", Case: fmt.Sprintf("storm-%d", n), Instances: n, RunningS: again,
		BoundS: bound, Ratio: again / max(bound, 1e-9), Throttled: total, Calls: calls})
	return nil
}

// until waits (at most limit) until want instances of the world satisfy
// ok, and returns their ids.
func (w *ec2World) until(ctx context.Context, limit time.Duration, ok func(awssim.InstanceInfo) bool, want int) ([]string, error) {
	deadline := time.Now().Add(limit)
	for {
		var ids []string
		for _, in := range w.sim.Instances() {
			if ok(in) {
				ids = append(ids, in.ID)
			}
		}
		if len(ids) >= want {
			return ids, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d instances after %v", len(ids), want, limit)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// simRateLimit paces the calls as against AWS when the simulator throttles
// like AWS: its buckets refill in real time at any time scale.
func simRateLimit(o awssim.Options) awsapi.RateLimit {
	if o.Throttle {
		return awsapi.RateLimit{Scale: 1}
	}
	return awsapi.RateLimit{}
}
