package bakery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awsapi"
	"kiln/internal/awssim"
	"kiln/internal/pipeline"
	"kiln/internal/store"
	"kiln/internal/testsupport"
)

var testLog = slog.New(slog.DiscardHandler)

func init() {
	if os.Getenv("KILN_TEST_LOG") != "" {
		testLog = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
}

// world is a simulator served over HTTP, the hubs pointed at it (running)
// and a database file for services.
type world struct {
	sim    *awssim.Sim
	hubs   *awsapi.Hubs
	client *ec2.Client
	db     string
}

func newWorld(t *testing.T, o awssim.Options) *world {
	t.Helper()
	if o.TimeScale == 0 {
		o.TimeScale = 0.001 // a boot takes 15 ms, an image 180 ms
	}
	if o.Durations.TerminatedVisible == 0 {
		o.Durations.TerminatedVisible = 1000 * time.Hour // tests count builders at the end
	}
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
	h, err := hubs.Hub(t.Context(), "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	return &world{sim: sim, hubs: hubs, client: h.EC2(), db: filepath.Join(t.TempDir(), "kiln.db")}
}

// open opens the world's database; closed at the end of the test.
func (w *world) open(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), w.db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// running is a Service whose Run runs until stop.
type running struct {
	*Service
	st   *store.Store
	stop func()
}

func testOptions() Options {
	return Options{
		FetchPollInterval: 20 * time.Millisecond,
		BusySnooze:        50 * time.Millisecond,
		SweepInterval:     time.Hour,
		Pipeline:          pipeline.PipelineOptions{ConsoleWait: 2 * time.Second},
	}
}

// serve starts a Service on st; mod may change it before Run.
func (w *world) serve(t *testing.T, st *store.Store, mod func(*Service)) *running {
	t.Helper()
	s, err := NewService(st, w.hubs, testLog, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if mod != nil {
		mod(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var once sync.Once
	wg.Go(func() {
		if err := s.Run(ctx); err != nil {
			t.Errorf("Run() = %v", err)
		}
	})
	r := &running{Service: s, st: st, stop: func() { once.Do(func() { cancel(); wg.Wait() }) }}
	t.Cleanup(r.stop)
	return r
}

const alName = "al2023-ami-2023.*-x86_64"

// putProject stores a project named name with script.
func putProject(t *testing.T, st *store.Store, name, script string, mod func(*store.Project)) {
	t.Helper()
	p := store.Project{
		Name: name, Region: "us-east-1", BaseOwner: "amazon", BaseName: alName, BaseMostRecent: true,
		Type: "t3.small", Script: script, Keep: 5, ScriptTimeout: 20 * time.Second, ImageTimeout: 20 * time.Second,
		Tags: map[string]string{"team": "shop"},
	}
	if mod != nil {
		mod(&p)
	}
	if _, err := st.PutProject(t.Context(), p, "0123456789abcdef0123"); err != nil {
		t.Fatal(err)
	}
}

// waitFinal waits until bake id is over and returns it.
func waitFinal(t *testing.T, st *store.Store, id int64) *store.Bake {
	t.Helper()
	var b *store.Bake
	testsupport.Eventually(t, fmt.Sprintf("bake %d to finish", id), func() bool {
		var err error
		b, err = st.Bake(t.Context(), id)
		return err == nil && b.State.Final()
	})
	return b
}

func trigger(t *testing.T, s *running, project string) int64 {
	t.Helper()
	res, err := s.Trigger(t.Context(), project, "c0ffee", "refs/heads/main")
	if err != nil {
		t.Fatalf("Trigger() error = %v", err)
	}
	return res.BakeID
}

// builders are the simulator's instances tagged as builders of bake id.
func (w *world) builders(id int64) []awssim.InstanceInfo {
	var out []awssim.InstanceInfo
	for _, in := range w.sim.Instances() {
		if in.Tags[awsapi.TagBake] == strconv.FormatInt(id, 10) && in.Tags[pipeline.TagRole] == "builder" {
			out = append(out, in)
		}
	}
	return out
}

func gone(in awssim.InstanceInfo) bool {
	return in.State == "terminated" || in.State == "shutting-down"
}

// images are the account's images named name.
func (w *world) images(t *testing.T, name string) []types.Image {
	t.Helper()
	out, err := w.client.DescribeImages(t.Context(), &ec2.DescribeImagesInput{
		Owners: []string{"self"}, Filters: []types.Filter{{Name: aws.String("name"), Values: []string{name}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Images
}

func tagMap(tags []types.Tag) map[string]string {
	m := map[string]string{}
	for _, tg := range tags {
		m[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	return m
}

// resumeSucceeds opens the database again and serves it, as the next
// process after a crash does, and checks that bake id then succeeds.
func (w *world) resumeSucceeds(t *testing.T, id int64) *store.Bake {
	t.Helper()
	st := w.open(t)
	w.serve(t, st, nil)
	b := waitFinal(t, st, id)
	if b.State != store.Succeeded {
		t.Fatalf("bake = %s (%s); want succeeded", b.State, b.Reason)
	}
	return b
}

// checkOneBuilderGone asserts bake id launched exactly one builder and it
// is gone (or going).
func (w *world) checkOneBuilderGone(t *testing.T, id int64) awssim.InstanceInfo {
	t.Helper()
	bs := w.builders(id)
	if len(bs) != 1 {
		t.Fatalf("%d builders of bake %d; want 1", len(bs), id)
	}
	if !gone(bs[0]) {
		t.Errorf("builder %s is %s; want terminated", bs[0].ID, bs[0].State)
	}
	return bs[0]
}

func TestBakeSucceeds(t *testing.T) {
	w := newWorld(t, awssim.Options{})
	st := w.open(t)
	putProject(t, st, "web", "#!/bin/sh\necho installing nginx\ndnf install -y nginx\n", nil)
	s := w.serve(t, st, nil)
	progress, cancel := s.Subscribe(0)
	defer cancel()

	id := trigger(t, s, "web")
	b := waitFinal(t, st, id)
	if b.State != store.Succeeded {
		t.Fatalf("bake state = %s (%s); want succeeded", b.State, b.Reason)
	}
	imgs := w.images(t, "web-"+strconv.FormatInt(id, 10))
	if len(imgs) != 1 {
		t.Fatalf("%d images named web-%d; want 1", len(imgs), id)
	}
	img := imgs[0]
	if img.State != types.ImageStateAvailable || aws.ToString(img.ImageId) != b.ImageID {
		t.Errorf("image %s is %s; bake says %s", aws.ToString(img.ImageId), img.State, b.ImageID)
	}
	tags := tagMap(img.Tags)
	builder := w.checkOneBuilderGone(t, id)
	want := map[string]string{pipeline.TagProject: "web", awsapi.TagBake: strconv.FormatInt(id, 10), pipeline.TagCommit: "c0ffee",
		pipeline.TagSourceImage: builder.ImageID, "team": "shop"}
	for k, v := range want {
		if tags[k] != v {
			t.Errorf("image tag %s = %q; want %q", k, tags[k], v)
		}
	}
	snaps := snapshotsOf(img)
	if len(snaps) == 0 {
		t.Fatal("image has no snapshots")
	}
	out, err := w.client.DescribeSnapshots(t.Context(), &ec2.DescribeSnapshotsInput{SnapshotIds: snaps})
	if err != nil {
		t.Fatal(err)
	}
	for _, sn := range out.Snapshots {
		if tm := tagMap(sn.Tags); tm[pipeline.TagProject] != "web" || tm[pipeline.TagCommit] != "c0ffee" || tm[pipeline.TagSourceImage] != builder.ImageID {
			t.Errorf("snapshot %s tags = %v", aws.ToString(sn.SnapshotId), tm)
		}
	}
	if b.BuilderID != builder.ID {
		t.Errorf("bake builder = %q; want %q", b.BuilderID, builder.ID)
	}
	if builder.ShutdownBehavior != "stop" {
		t.Errorf("builder shutdown behaviour = %q; want stop", builder.ShutdownBehavior)
	}
	if !strings.Contains(builder.Console, "kiln-bake "+strconv.FormatInt(id, 10)+" ok") {
		t.Errorf("console lacks the marker:\n%s", builder.Console)
	}
	if n := w.sim.Calls("RunInstances"); n != 1 {
		t.Errorf("RunInstances calls = %d; want 1", n)
	}
	if n := w.sim.Calls("CreateImage"); n != 1 {
		t.Errorf("CreateImage calls = %d; want 1", n)
	}

	steps, err := st.Steps(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range steps {
		names = append(names, s.Name)
		if s.State != store.StepSucceeded || s.Started.IsZero() || s.Finished.IsZero() {
			t.Errorf("step %q = %s, %v..%v; want succeeded with times", s.Name, s.State, s.Started, s.Finished)
		}
	}
	wantSteps := []string{pipeline.StepResolve, pipeline.StepLaunch, pipeline.StepWaitStopped, pipeline.StepResult, pipeline.StepCreateImage, pipeline.StepWaitImage,
		pipeline.StepTagImage, pipeline.StepTerminate, pipeline.StepRetention, pipeline.StepRecord}
	if !slices.Equal(names, wantSteps) {
		t.Errorf("steps = %q; want %q", names, wantSteps)
	}
	recorded, err := st.Images(t.Context(), "web")
	if err != nil || len(recorded) != 1 || recorded[0].ImageID != b.ImageID || recorded[0].BakeID != id {
		t.Errorf("store images = %+v, %v; want %s of bake %d", recorded, err, b.ImageID, id)
	}

	var sawStep, sawFinal bool
	for len(progress) > 0 {
		p := <-progress
		sawStep = sawStep || p.Step == pipeline.StepLaunch
		sawFinal = sawFinal || p.BakeState == store.Succeeded
	}
	if !sawStep || !sawFinal {
		t.Errorf("progress saw launch %v, success %v; want both", sawStep, sawFinal)
	}
}

func TestBakeFails(t *testing.T) {
	tests := []struct {
		name, script string
		timeout      time.Duration
		reason, tail string
	}{
		{"script fails", "#!/bin/sh\necho about to fail\nexit 3\n", 0, "exit 3", "failed: exit 3"},
		{"set -e", "set -e\necho one\nfalse\necho never\n", 0, "exit 1", "one"},
		// The shell cannot parse it: the reason names the line and column.
		{"parse error", "#!/bin/sh\necho one\nif true; then\necho 'unclosed\n", 0, "exit 2 (script:4:", "script:4:"},
		{"script times out", "#!/bin/sh\necho working\nsleep 3600\n", 300 * time.Millisecond, "timed out", "working"},
		{"no marker", "#!/bin/sh\necho bye\npoweroff\n", 0, "no result", "bye"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, awssim.Options{})
			st := w.open(t)
			putProject(t, st, "web", tt.script, func(p *store.Project) {
				if tt.timeout > 0 {
					p.ScriptTimeout = tt.timeout
				}
			})
			s := w.serve(t, st, func(s *Service) {
				s.pipe = pipeline.NewPipeline(w.hubs, testLog, pipeline.PipelineOptions{ConsoleWait: 200 * time.Millisecond})
			})
			id := trigger(t, s, "web")
			b := waitFinal(t, st, id)
			if b.State != store.Failed {
				t.Fatalf("bake state = %s; want failed", b.State)
			}
			if !strings.Contains(b.Reason, tt.reason) {
				t.Errorf("reason = %q; want it to contain %q", b.Reason, tt.reason)
			}
			if !strings.Contains(b.ConsoleTail, tt.tail) {
				t.Errorf("console tail = %q; want it to contain %q", b.ConsoleTail, tt.tail)
			}
			w.checkOneBuilderGone(t, id)
			if n := w.sim.Calls("CreateImage"); n != 0 {
				t.Errorf("CreateImage calls = %d; want 0", n)
			}
			if imgs := w.images(t, "web-*"); len(imgs) != 0 {
				t.Errorf("%d images; want none", len(imgs))
			}
		})
	}
}

func TestImageFails(t *testing.T) {
	w := newWorld(t, awssim.Options{})
	st := w.open(t)
	putProject(t, st, "web", "#!/bin/sh\ntrue\n", nil)
	w.sim.FailNextImages(1)
	s := w.serve(t, st, nil)
	id := trigger(t, s, "web")
	b := waitFinal(t, st, id)
	if b.State != store.Failed || !strings.Contains(b.Reason, "failed") {
		t.Fatalf("bake = %s (%q); want failed with the image's reason", b.State, b.Reason)
	}
	w.checkOneBuilderGone(t, id)
	if imgs := w.images(t, "web-*"); len(imgs) != 0 {
		t.Errorf("%d images left; want the failed one deregistered", len(imgs))
	}
}

// TestCrashResume stops the bake right after each step (nothing after it
// happens in the first process, which is then shut down) and starts a
// fresh service on the same database: the bake finishes with one builder
// and one image.
func TestCrashResume(t *testing.T) {
	steps := []string{pipeline.StepResolve, pipeline.StepLaunch, pipeline.StepWaitStopped, pipeline.StepResult, pipeline.StepCreateImage, pipeline.StepWaitImage,
		pipeline.StepTagImage, pipeline.StepTerminate, pipeline.StepRetention, pipeline.StepRecord}
	for _, step := range steps {
		t.Run(step, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, awssim.Options{})
			st1 := w.open(t)
			putProject(t, st1, "web", "#!/bin/sh\necho hello\n", nil)
			crashed := make(chan struct{})
			var once sync.Once
			var s1 *running
			s1 = w.serve(t, st1, func(s *Service) {
				s.testHop = func(_ int64, name string) error {
					if name != step {
						return nil
					}
					crash := false
					once.Do(func() { close(crashed); crash = true })
					if crash {
						// Nothing after this step happens in this process.
						return errors.New("crash")
					}
					return nil
				}
			})
			id := trigger(t, s1, "web")
			select {
			case <-crashed:
			case <-time.After(20 * time.Second):
				t.Fatal("the step never finished")
			}
			s1.stop()
			st1.Close()

			b := w.resumeSucceeds(t, id)
			if n := w.sim.Calls("RunInstances"); n != 1 {
				t.Errorf("RunInstances calls = %d; want 1", n)
			}
			w.checkOneBuilderGone(t, id)
			imgs := w.images(t, "web-*")
			if len(imgs) != 1 || aws.ToString(imgs[0].ImageId) != b.ImageID || imgs[0].State != types.ImageStateAvailable {
				t.Errorf("images = %d (bake says %s); want exactly one, available", len(imgs), b.ImageID)
			}
		})
	}
}

// TestCrashStuckJob is a kill -9: the dead process's River job stays
// running; the next start gives the bake a fresh job.
func TestCrashStuckJob(t *testing.T) {
	w := newWorld(t, awssim.Options{})
	st1 := w.open(t)
	id := w.crashAfterLaunch(t, st1)
	// What a killed process leaves behind: its job still "running".
	if _, err := st1.DB().ExecContext(t.Context(), `UPDATE river_job SET state = 'running', finalized_at = NULL`); err != nil {
		t.Fatal(err)
	}
	st1.Close()
	w.resumeSucceeds(t, id)
	if n := w.sim.Calls("RunInstances"); n != 1 {
		t.Errorf("RunInstances calls = %d; want 1", n)
	}
	w.checkOneBuilderGone(t, id)
}

// crashAfterLaunch bakes project web on st until its builder has
// launched, then stops that server as a crash would: nothing after the
// launch happens in it. It returns the bake's id.
func (w *world) crashAfterLaunch(t *testing.T, st *store.Store) int64 {
	t.Helper()
	putProject(t, st, "web", "#!/bin/sh\necho hello\n", nil)
	crashed := make(chan struct{})
	var once sync.Once
	s1 := w.serve(t, st, func(s *Service) {
		s.testHop = func(_ int64, name string) error {
			crash := false
			if name == pipeline.StepLaunch {
				once.Do(func() { close(crashed); crash = true })
			}
			if crash {
				return errors.New("crash")
			}
			return nil
		}
	})
	id := trigger(t, s1, "web")
	<-crashed
	s1.stop()
	return id
}

// TestCrashQueuedBake: a process killed right after it queued a bake (its
// job already fetched, so "running" in River, or never saved) leaves the
// bake queued with no job anyone works; the next start gives it one.
func TestCrashQueuedBake(t *testing.T) {
	w := newWorld(t, awssim.Options{})
	st1 := w.open(t)
	putProject(t, st1, "web", "#!/bin/sh\necho hello\n", nil)
	res, err := st1.CreateBake(t.Context(), "web", "", "", nil) // queued, no workable job
	if err != nil {
		t.Fatal(err)
	}
	st1.Close()
	w.resumeSucceeds(t, res.BakeID)
	w.checkOneBuilderGone(t, res.BakeID)
}

func TestCancel(t *testing.T) {
	t.Run("while the script runs", func(t *testing.T) {
		w := newWorld(t, awssim.Options{})
		st := w.open(t)
		putProject(t, st, "web", "#!/bin/sh\nsleep 3600\n", nil)
		s := w.serve(t, st, nil)
		id := trigger(t, s, "web")
		testsupport.Eventually(t, "the wait for the script", func() bool {
			steps, err := st.Steps(t.Context(), id)
			return err == nil && slices.ContainsFunc(steps, func(s store.Step) bool { return s.Name == pipeline.StepWaitStopped })
		})
		if _, err := s.Cancel(t.Context(), id, "not wanted"); err != nil {
			t.Fatalf("Cancel() error = %v", err)
		}
		b := waitFinal(t, st, id)
		if b.State != store.Cancelled || b.Reason != "not wanted" {
			t.Errorf("bake = %s (%q); want cancelled (not wanted)", b.State, b.Reason)
		}
		w.checkOneBuilderGone(t, id)
		steps, err := st.Steps(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		states := map[string]store.StepState{}
		for _, s := range steps {
			states[s.Name] = s.State
		}
		if states[pipeline.StepWaitStopped] != store.StepCancelled || states[pipeline.StepCleanup] != store.StepSucceeded {
			t.Errorf("steps = %v; want the wait cancelled and the clean-up done", states)
		}
		if _, err := s.Cancel(t.Context(), id, ""); !errors.Is(err, store.ErrBakeFinished) {
			t.Errorf("Cancel() again error = %v; want ErrBakeFinished", err)
		}
	})
	t.Run("while the image is pending", func(t *testing.T) {
		w := newWorld(t, awssim.Options{Durations: awssim.Durations{Image: time.Hour}})
		st := w.open(t)
		putProject(t, st, "web", "#!/bin/sh\ntrue\n", nil)
		s := w.serve(t, st, nil)
		id := trigger(t, s, "web")
		testsupport.Eventually(t, "the image", func() bool {
			b, err := st.Bake(t.Context(), id)
			return err == nil && b.ImageID != ""
		})
		b, _ := st.Bake(t.Context(), id)
		img := w.images(t, "web-*")
		if _, err := s.Cancel(t.Context(), id, ""); err != nil {
			t.Fatalf("Cancel() error = %v", err)
		}
		b = waitFinal(t, st, id)
		if b.State != store.Cancelled {
			t.Errorf("bake = %s; want cancelled", b.State)
		}
		w.checkOneBuilderGone(t, id)
		if left := w.images(t, "web-*"); len(left) != 0 {
			t.Errorf("%d images left; want the partial one deregistered", len(left))
		}
		if len(img) == 1 {
			for _, sn := range snapshotsOf(img[0]) {
				if _, err := w.client.DescribeSnapshots(t.Context(), &ec2.DescribeSnapshotsInput{SnapshotIds: []string{sn}}); !awsapi.IsNotFound(err) {
					t.Errorf("snapshot %s: DescribeSnapshots error = %v; want NotFound (deleted)", sn, err)
				}
			}
		}
	})
	t.Run("queued", func(t *testing.T) {
		w := newWorld(t, awssim.Options{})
		st := w.open(t)
		putProject(t, st, "web", "#!/bin/sh\ntrue\n", nil)
		s, err := NewService(st, w.hubs, testLog, testOptions()) // not running
		if err != nil {
			t.Fatal(err)
		}
		res, err := s.Trigger(t.Context(), "web", "", "")
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.Cancel(t.Context(), res.BakeID, "")
		if err != nil || b.State != store.Cancelled {
			t.Errorf("Cancel() = %v, %v; want cancelled at once", b, err)
		}
		if _, err := s.Cancel(t.Context(), 999, ""); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Cancel(999) error = %v; want ErrNotFound", err)
		}
	})
}

// TestFreshDatabase: a new database in the same account counts bakes from
// 1 again; its bake neither takes the old "web-1" image for its own nor
// meets the old builder's client token.
func TestFreshDatabase(t *testing.T) {
	w := newWorld(t, awssim.Options{})
	st1 := w.open(t)
	putProject(t, st1, "web", "#!/bin/sh\ntrue\n", nil)
	s1 := w.serve(t, st1, nil)
	old := waitFinal(t, st1, trigger(t, s1, "web"))
	s1.stop()

	w.db = filepath.Join(t.TempDir(), "fresh.db")
	st2 := w.open(t)
	putProject(t, st2, "web", "#!/bin/sh\ntrue\n", nil)
	s2 := w.serve(t, st2, nil)
	id := trigger(t, s2, "web")
	if id != old.ID {
		t.Fatalf("fresh bake id = %d; want %d again", id, old.ID)
	}
	b := waitFinal(t, st2, id)
	if b.State != store.Succeeded || b.ImageID == old.ImageID {
		t.Fatalf("bake = %s (%s), image %s; want succeeded with a new image (old %s)", b.State, b.Reason, b.ImageID, old.ImageID)
	}
	if n := w.sim.Calls("RunInstances"); n != 2 {
		t.Errorf("RunInstances calls = %d; want 2", n)
	}
	if imgs := w.images(t, "web-1*"); len(imgs) != 2 {
		t.Errorf("%d images; want the old and the new", len(imgs))
	}
}

// nopRecorder records nothing.
type nopRecorder struct{}

func (nopRecorder) StartStep(context.Context, string, string) error                      { return nil }
func (nopRecorder) FinishStep(context.Context, string, pipeline.StepState, string) error { return nil }
func (nopRecorder) Builder(context.Context, string) error                                { return nil }
func (nopRecorder) Image(context.Context, string) error                                  { return nil }

// snapshotsOf lists the snapshots of an image's block devices.
func snapshotsOf(img types.Image) []string {
	var out []string
	for _, m := range img.BlockDeviceMappings {
		if m.Ebs != nil && aws.ToString(m.Ebs.SnapshotId) != "" {
			out = append(out, aws.ToString(m.Ebs.SnapshotId))
		}
	}
	return out
}

// pastClock says every step first started two hours ago.
type pastClock struct{ nopRecorder }

func (pastClock) FirstStarted(context.Context, string) (time.Time, bool) {
	return time.Now().Add(-2 * time.Hour), true
}

// TestResumedWaitKeepsDeadline: a wait resumed after a restart counts its
// timeout from the step's first start, not afresh.
func TestResumedWaitKeepsDeadline(t *testing.T) {
	w := newWorld(t, awssim.Options{})
	p := pipeline.NewPipeline(w.hubs, testLog, pipeline.PipelineOptions{ConsoleWait: 100 * time.Millisecond})
	spec := pipeline.Spec{
		ID: "t1", ImageName: "t-1",
		Builder: pipeline.Builder{Region: "us-east-1", Type: "t3.small", Script: "sleep 3600\n",
			Base:     pipeline.Base{Owner: "amazon", Name: alName, MostRecent: true},
			Timeouts: pipeline.Timeouts{Script: time.Hour}},
		Match: map[string]string{pipeline.TagProject: "t"},
	}
	_, err := p.Bake(t.Context(), spec, pastClock{})
	var fe *pipeline.FailedError
	if !errors.As(err, &fe) || !strings.Contains(fe.Reason, "timed out") {
		t.Fatalf("Bake() error = %v; want a script timeout", err)
	}
	if bs := w.sim.Instances(); len(bs) != 1 || !gone(bs[0]) {
		t.Errorf("instances = %+v; want the builder terminated", bs)
	}
}

// TestBakeEventualConsistency: new instance and image ids answer NotFound
// for a while ("not yet"), and AWS's throttling buckets are on.
func TestBakeEventualConsistency(t *testing.T) {
	w := newWorld(t, awssim.Options{Consistency: time.Minute, Throttle: true})
	st := w.open(t)
	putProject(t, st, "web", "#!/bin/sh\ntrue\n", nil)
	s := w.serve(t, st, nil)
	id := trigger(t, s, "web")
	b := waitFinal(t, st, id)
	if b.State != store.Succeeded {
		t.Fatalf("bake = %s (%s); want succeeded", b.State, b.Reason)
	}
	w.checkOneBuilderGone(t, id)
	if imgs := w.images(t, "web-*"); len(imgs) != 1 {
		t.Errorf("%d images; want 1", len(imgs))
	}
	if n := w.sim.Calls("CreateImage"); n != 1 {
		t.Errorf("CreateImage calls = %d; want 1", n)
	}
}

// TestConsoleWaitBoundedByScriptTimeout: a script that powers off by
// itself leaves no marker; the wait for one ends with the script timeout
// even when the console wait is longer.
func TestConsoleWaitBoundedByScriptTimeout(t *testing.T) {
	w := newWorld(t, awssim.Options{})
	p := pipeline.NewPipeline(w.hubs, testLog, pipeline.PipelineOptions{ConsoleWait: time.Hour})
	spec := pipeline.Spec{
		ID: "t1", ImageName: "t-1",
		Builder: pipeline.Builder{Region: "us-east-1", Type: "t3.small", Script: "poweroff\n",
			Base:     pipeline.Base{Owner: "amazon", Name: alName, MostRecent: true},
			Timeouts: pipeline.Timeouts{Script: 2 * time.Second}},
		Match: map[string]string{pipeline.TagProject: "t"},
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // far below the hour
	defer cancel()
	_, err := p.Bake(ctx, spec, nil)
	var fe *pipeline.FailedError
	if !errors.As(err, &fe) || !strings.Contains(fe.Reason, "no result on the builder's console") {
		t.Fatalf("Bake() error = %v; want a failure for the missing marker", err)
	}
}
