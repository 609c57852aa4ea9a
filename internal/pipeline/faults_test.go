package pipeline_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"kiln/internal/awsapi"
	"kiln/internal/awssim"
	"kiln/internal/engine"
	"kiln/internal/pipeline"
)

const (
	alName    = "al2023-ami-2023.*-x86_64"
	copyTo    = "us-west-2"
	shareWith = "111122223333"
)

// world is a simulator behind HTTP and the region hubs that talk to it.
type world struct {
	sim  *awssim.Sim
	hubs *awsapi.Hubs
	url  string
}

func newWorld(t *testing.T, o awssim.Options) *world {
	t.Helper()
	o.TimeScale = 0.001 // a boot takes 15 ms, an image 180 ms
	o.Durations.TerminatedVisible = 1000 * time.Hour
	sim := awssim.New(o)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	cfg := awssim.ClientConfig(srv.URL)
	hubs := awsapi.NewHubs(awsapi.Options{
		Config: &cfg,
		Retry: awsapi.RetryOptions{MaxAttempts: 3, Backoff: retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) {
			return time.Millisecond, nil
		})},
		Batch:   awsapi.BatchOptions{Idle: 2 * time.Millisecond, Max: 20 * time.Millisecond},
		Wait:    awsapi.Backoff{Min: 2 * time.Millisecond, Max: 20 * time.Millisecond},
		Retries: awsapi.Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond},
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = sim.Run(ctx) })
	wg.Go(func() { _ = hubs.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return &world{sim: sim, hubs: hubs, url: srv.URL}
}

// images lists the account's own images in region that are not deregistered.
func (w *world) images(t *testing.T, region string) []string {
	t.Helper()
	c := ec2.NewFromConfig(awssim.ClientConfig(w.url, region))
	out, err := c.DescribeImages(context.Background(), &ec2.DescribeImagesInput{Owners: []string{"self"}})
	if err != nil {
		t.Fatalf("DescribeImages(%s) = %v", region, err)
	}
	var ids []string
	for _, im := range out.Images {
		ids = append(ids, aws.ToString(im.ImageId))
	}
	return ids
}

// recorder keeps every step's states in order, and runs onBuilder when
// the builder's id is known.
type recorder struct {
	mu        sync.Mutex
	states    map[string][]pipeline.StepState
	details   map[string]string
	onBuilder func(id string)
}

func newRecorder() *recorder {
	return &recorder{states: map[string][]pipeline.StepState{}, details: map[string]string{}}
}

func (r *recorder) StartStep(context.Context, string, string) error { return nil }

func (r *recorder) FinishStep(_ context.Context, name string, st pipeline.StepState, detail string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states[name] = append(r.states[name], st)
	r.details[name] = detail
	return nil
}

func (r *recorder) Builder(_ context.Context, id string) error {
	if r.onBuilder != nil {
		r.onBuilder(id)
	}
	return nil
}

func (r *recorder) Image(context.Context, string) error { return nil }

func (r *recorder) stepStates(name string) []pipeline.StepState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.states[name])
}

// errClass names what kind of error Bake returned.
func errClass(err error) string {
	var fe *pipeline.FailedError
	switch {
	case err == nil:
		return "none"
	case errors.As(err, &fe):
		return "failed"
	case engine.IsPermanent(err):
		return "permanent"
	default:
		return "transient"
	}
}

// drive does what the bakery does with a bake: Bake again after a
// transient error, Cleanup after a permanent one. It returns the first
// Bake's error and the bake's final state and reason.
func drive(ctx context.Context, p *pipeline.Pipeline, spec pipeline.Spec, rec *recorder) (first error, state, reason string) {
	for i := range 4 {
		_, err := p.Bake(ctx, spec, rec)
		if i == 0 {
			first = err
		}
		var fe *pipeline.FailedError
		switch {
		case err == nil:
			return first, "succeeded", ""
		case errors.As(err, &fe):
			return first, "failed", fe.Reason
		case engine.IsPermanent(err) || i == 3:
			if cerr := p.Cleanup(context.WithoutCancel(ctx), spec, rec); cerr != nil {
				return first, "failed", "clean up: " + cerr.Error()
			}
			return first, "failed", err.Error()
		}
	}
	panic("unreachable")
}

var denied = awssim.Fault{Code: "UnauthorizedOperation", Status: 403, Count: 1}

// lost makes the next n calls of an action fail (500) after they are done.
func lost(n int) awssim.Fault { return awssim.Fault{Code: "InternalError", Count: n, After: true} }

// failing makes the next n calls of an action fail (500) before anything is done.
func failing(n int) awssim.Fault { return awssim.Fault{Code: "InternalError", Count: n} }

// TestBakeFaultTable injects one fault per step and error class, and
// checks how the first Bake ends, the step's recorded states, how the
// bake ends once driven as the bakery drives it, and that it leaves no
// builder running and no image or copy behind but the one it made.
func TestBakeFaultTable(t *testing.T) {
	for _, tc := range []struct {
		name   string
		action string       // the action faulted
		fault  awssim.Fault // Action is set from action
		setup  func(w *world, spec *pipeline.Spec, rec *recorder)
		opts   awssim.Options

		step       string               // the step the fault hits
		wantFirst  string               // errClass of the first Bake
		wantStates []pipeline.StepState // the step's recorded states, in order
		wantState  string               // the bake's final state
		wantReason string               // in the final reason
	}{
		{name: "launch permanent", action: "RunInstances", fault: denied, step: pipeline.StepLaunch,
			wantFirst: "permanent", wantStates: states("failed"), wantState: "failed", wantReason: "UnauthorizedOperation"},
		{name: "launch retried", action: "RunInstances", fault: failing(4), step: pipeline.StepLaunch,
			wantFirst: "none", wantStates: states("succeeded"), wantState: "succeeded"},
		{name: "launch already done", action: "RunInstances", fault: lost(3), step: pipeline.StepLaunch,
			wantFirst: "none", wantStates: states("succeeded"), wantState: "succeeded"},
		{name: "launch capacity", action: "RunInstances", fault: awssim.Fault{Code: "InsufficientInstanceCapacity", Status: 500, Count: 4}, step: pipeline.StepLaunch,
			wantFirst: "none", wantStates: states("succeeded"), wantState: "succeeded"},
		{name: "resolve several match", action: "", setup: func(_ *world, spec *pipeline.Spec, _ *recorder) {
			spec.Base = pipeline.Base{Owner: "amazon", Name: "al2023-ami-*"}
		}, step: pipeline.StepResolve, wantFirst: "permanent", wantStates: states("failed"), wantState: "failed", wantReason: "images match"},
		{name: "console retried", action: "GetConsoleOutput", fault: failing(4), step: pipeline.StepResult,
			wantFirst: "none", wantStates: states("succeeded"), wantState: "succeeded"},
		{name: "builder stopped mid-script", action: "", setup: func(w *world, spec *pipeline.Spec, rec *recorder) {
			spec.Script = "#!/bin/sh\nsleep 3600\n"
			rec.onBuilder = func(id string) { _ = w.sim.StopInstance(id) } // someone stops it by hand
		}, step: pipeline.StepResult, wantFirst: "failed", wantStates: states("failed"), wantState: "failed", wantReason: "no result"},
		{name: "create image permanent", action: "CreateImage", fault: denied, step: pipeline.StepCreateImage,
			wantFirst: "permanent", wantStates: states("failed"), wantState: "failed", wantReason: "UnauthorizedOperation"},
		{name: "create image retried", action: "CreateImage", fault: failing(4), step: pipeline.StepCreateImage,
			wantFirst: "none", wantStates: states("succeeded"), wantState: "succeeded"},
		{name: "create image already done", action: "CreateImage", fault: lost(3), step: pipeline.StepCreateImage,
			wantFirst: "none", wantStates: states("succeeded"), wantState: "succeeded"},
		{name: "image failed", action: "", setup: func(w *world, _ *pipeline.Spec, _ *recorder) { w.sim.FailNextImages(1) },
			step: pipeline.StepWaitImage, wantFirst: "failed", wantStates: states("failed"), wantState: "failed", wantReason: "failed"},
		{name: "image never available", action: "", opts: awssim.Options{Durations: awssim.Durations{Image: 1000 * time.Hour}},
			setup: func(_ *world, spec *pipeline.Spec, _ *recorder) { spec.Timeouts.Image = 300 * time.Millisecond },
			step:  pipeline.StepWaitImage, wantFirst: "failed", wantStates: states("failed"), wantState: "failed", wantReason: "not available after"},
		{name: "tag permanent", action: "CreateTags", fault: denied, step: pipeline.StepTagImage,
			wantFirst: "permanent", wantStates: states("failed"), wantState: "failed", wantReason: "UnauthorizedOperation"},
		{name: "tag retried", action: "CreateTags", fault: failing(4), step: pipeline.StepTagImage,
			wantFirst: "none", wantStates: states("succeeded"), wantState: "succeeded"},
		{name: "tag already done", action: "CreateTags", fault: lost(3), step: pipeline.StepTagImage,
			wantFirst: "none", wantStates: states("succeeded"), wantState: "succeeded"},
		{name: "terminate permanent", action: "TerminateInstances", fault: denied, step: pipeline.StepTerminate,
			wantFirst: "permanent", wantStates: states("failed"), wantState: "failed", wantReason: "UnauthorizedOperation"},
		{name: "terminate retried", action: "TerminateInstances", fault: failing(4), step: pipeline.StepTerminate,
			wantFirst: "none", wantStates: states("succeeded"), wantState: "succeeded"},
		{name: "terminate already done", action: "TerminateInstances", fault: lost(3), step: pipeline.StepTerminate,
			wantFirst: "none", wantStates: states("succeeded"), wantState: "succeeded"},
		{name: "test failed", action: "", setup: func(_ *world, spec *pipeline.Spec, _ *recorder) {
			spec.Tests = &pipeline.Tests{Script: "#!/bin/sh\nexit 3\n", Timeout: 10 * time.Second}
		}, step: pipeline.StepTestImage, wantFirst: "failed", wantStates: states("failed"), wantState: "failed", wantReason: "image failed its tests: exit 3"},
		{name: "test retried", action: "", setup: func(w *world, spec *pipeline.Spec, rec *recorder) {
			spec.Tests = &pipeline.Tests{Script: "#!/bin/sh\ntrue\n", Timeout: 10 * time.Second}
			rec.onBuilder = func(string) {
				w.sim.InjectFault(awssim.Fault{Action: "RunInstances", Code: "InternalError", Count: 3, After: true})
			}
		}, step: pipeline.StepTestImage, wantFirst: "none", wantStates: states("succeeded"), wantState: "succeeded"},
		{name: "copy permanent", action: "CopyImage", fault: denied, step: pipeline.StepCopy,
			wantFirst: "permanent", wantStates: states("failed"), wantState: "failed", wantReason: "UnauthorizedOperation"},
		{name: "copy retried", action: "CopyImage", fault: failing(4), step: pipeline.StepCopy,
			wantFirst: "none", wantStates: states("succeeded"), wantState: "succeeded"},
		{name: "copy already done", action: "CopyImage", fault: lost(3), step: pipeline.StepCopy,
			wantFirst: "none", wantStates: states("succeeded"), wantState: "succeeded"},
		{name: "share permanent", action: "ModifyImageAttribute", fault: denied, step: pipeline.StepShare,
			wantFirst: "permanent", wantStates: states("failed"), wantState: "failed", wantReason: "UnauthorizedOperation"},
		{name: "share retried", action: "ModifyImageAttribute", fault: failing(4), step: pipeline.StepShare,
			wantFirst: "none", wantStates: states("succeeded"), wantState: "succeeded"},
		{name: "share already done", action: "ModifyImageAttribute", fault: lost(3), step: pipeline.StepShare,
			wantFirst: "none", wantStates: states("succeeded"), wantState: "succeeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.opts)
			p := pipeline.NewPipeline(w.hubs, slog.New(slog.DiscardHandler), pipeline.PipelineOptions{ConsoleWait: 200 * time.Millisecond})
			spec := pipeline.Spec{
				ID: "b1", ImageName: "web-b1",
				Builder: pipeline.Builder{
					Region: "us-east-1", Type: "t3.small", Script: "#!/bin/sh\ntrue\n",
					Base:         pipeline.Base{Owner: "amazon", Name: alName, MostRecent: true},
					Timeouts:     pipeline.Timeouts{Script: 10 * time.Second, Image: 10 * time.Second},
					Distribution: pipeline.Distribution{CopyTo: []string{copyTo}, ShareWith: []string{shareWith}},
				},
				Match: map[string]string{pipeline.TagProject: "web"},
			}
			rec := newRecorder()
			if tc.setup != nil {
				tc.setup(w, &spec, rec)
			}
			if tc.action != "" {
				f := tc.fault
				f.Action = tc.action
				w.sim.InjectFault(f)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute) // a hang, not a figure
			defer cancel()
			first, state, reason := drive(ctx, p, spec, rec)
			if got := errClass(first); got != tc.wantFirst {
				t.Errorf("first Bake() = %v (%s); want %s", first, got, tc.wantFirst)
			}
			if got := rec.stepStates(tc.step); !slices.Equal(got, tc.wantStates) {
				t.Errorf("step %q states = %v; want %v (detail %q)", tc.step, got, tc.wantStates, rec.details[tc.step])
			}
			if state != tc.wantState || !strings.Contains(reason, tc.wantReason) {
				t.Errorf("bake = %s (%s); want %s (%s)", state, reason, tc.wantState, tc.wantReason)
			}

			// Nothing left behind: every builder terminated (or going), one
			// image and one copy for a bake that succeeded, none for one that failed.
			var builders int
			for _, in := range w.sim.Instances() {
				builders++
				if in.State != awssim.StateTerminated && in.State != awssim.StateShuttingDown {
					t.Errorf("builder %s is %s; want terminated", in.ID, in.State)
				}
			}
			wantBuilders := 1
			if tc.step == pipeline.StepResolve || tc.step == pipeline.StepLaunch && state == "failed" {
				wantBuilders = 0 // none launched
			}
			if spec.Tests != nil {
				wantBuilders++ // and one test instance
			}
			if builders != wantBuilders {
				t.Errorf("%d builders launched; want %d", builders, wantBuilders)
			}
			want := 0
			if state == "succeeded" {
				want = 1
			}
			wantHome := want
			if tc.step == pipeline.StepTestImage {
				wantHome = 1 // an image that failed its tests is kept
			}
			if imgs := w.images(t, "us-east-1"); len(imgs) != wantHome {
				t.Errorf("images = %v; want %d", imgs, want)
			}
			if imgs := w.images(t, copyTo); len(imgs) != want {
				t.Errorf("copies in %s = %v; want %d", copyTo, imgs, want)
			}
		})
	}
}

func states(s ...string) []pipeline.StepState {
	out := make([]pipeline.StepState, len(s))
	for i, v := range s {
		out[i] = pipeline.StepState(v)
	}
	return out
}

// TestRetainFaultTable injects one fault per call of retention (keep-N)
// and error class: three images made, keep 1. It checks the error class of
// the first Retain, what it removed, and that the next Retain (the next
// bake's) leaves the newest image alone with its snapshot, and nothing
// else but what the table says.
func TestRetainFaultTable(t *testing.T) {
	for _, tc := range []struct {
		name      string
		action    string
		fault     awssim.Fault
		wantFirst string // errClass of the first Retain
		wantGone  int    // images the first Retain removed
		// snapshots left behind for good: a snapshot whose deletion was
		// refused once its image is deregistered has nothing left to find
		// it by.
		wantOrphans int
	}{
		{name: "list permanent", action: "DescribeImages", fault: denied, wantFirst: "permanent", wantGone: 0},
		{name: "list retried", action: "DescribeImages", fault: failing(4), wantFirst: "none", wantGone: 2},
		{name: "in use retried", action: "DescribeInstances", fault: failing(4), wantFirst: "none", wantGone: 2},
		{name: "deregister permanent", action: "DeregisterImage", fault: denied, wantFirst: "permanent", wantGone: 0},
		{name: "deregister retried", action: "DeregisterImage", fault: failing(4), wantFirst: "none", wantGone: 2},
		{name: "deregister already done", action: "DeregisterImage", fault: lost(3), wantFirst: "none", wantGone: 2},
		{name: "snapshot permanent", action: "DeleteSnapshot", fault: denied, wantFirst: "permanent", wantGone: 0, wantOrphans: 1},
		{name: "snapshot retried", action: "DeleteSnapshot", fault: failing(4), wantFirst: "none", wantGone: 2},
		{name: "snapshot already done", action: "DeleteSnapshot", fault: lost(3), wantFirst: "none", wantGone: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, awssim.Options{})
			p := pipeline.NewPipeline(w.hubs, slog.New(slog.DiscardHandler), pipeline.PipelineOptions{ConsoleWait: 200 * time.Millisecond})
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute) // a hang, not a figure
			defer cancel()
			match := map[string]string{pipeline.TagProject: "web"}
			var made []string
			for _, id := range []string{"1", "2", "3"} {
				spec := pipeline.Spec{
					ID: id, ImageName: "web-" + id,
					Builder: pipeline.Builder{
						Region: "us-east-1", Type: "t3.small", Script: "#!/bin/sh\ntrue\n",
						Base:     pipeline.Base{Owner: "amazon", Name: alName, MostRecent: true},
						Timeouts: pipeline.Timeouts{Script: 10 * time.Second, Image: 10 * time.Second},
					},
					Match: map[string]string{pipeline.TagProject: "web", awsapi.TagBake: id},
				}
				res, err := p.Bake(ctx, spec, newRecorder())
				if err != nil {
					t.Fatalf("Bake(%s) = %v", id, err)
				}
				made = append(made, res.ImageID)
			}
			f := tc.fault
			f.Action = tc.action
			w.sim.InjectFault(f)
			r, err := p.Retain(ctx, "us-east-1", match, pipeline.Keep{N: 1})
			if got := errClass(err); got != tc.wantFirst {
				t.Errorf("first Retain() = %v (%s); want %s", err, got, tc.wantFirst)
			}
			if len(r.Removed) != tc.wantGone {
				t.Errorf("first Retain() removed %v; want %d images", r.Removed, tc.wantGone)
			}
			if _, err := p.Retain(ctx, "us-east-1", match, pipeline.Keep{N: 1}); err != nil {
				t.Errorf("next Retain() = %v; want nil", err)
			}
			if imgs := w.images(t, "us-east-1"); !slices.Equal(imgs, made[2:]) {
				t.Errorf("images = %v; want the newest, %v", imgs, made[2:])
			}
			if n := w.snapshots(t, "us-east-1"); n != 1+tc.wantOrphans {
				t.Errorf("%d snapshots; want %d", n, 1+tc.wantOrphans)
			}
		})
	}
}

// snapshots counts the account's own snapshots in region.
func (w *world) snapshots(t *testing.T, region string) int {
	t.Helper()
	c := ec2.NewFromConfig(awssim.ClientConfig(w.url, region))
	out, err := c.DescribeSnapshots(context.Background(), &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}})
	if err != nil {
		t.Fatalf("DescribeSnapshots(%s) = %v", region, err)
	}
	return len(out.Snapshots)
}
