package bakery

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"kiln/internal/awsapi"
	"kiln/internal/awssim"
	"kiln/internal/notify"
	"kiln/internal/pipeline"
	"kiln/internal/store"
	"kiln/internal/testsupport"
)

// testersOf are the simulator's test instances of bake id.
func (w *world) testersOf(id int64) []awssim.InstanceInfo {
	var out []awssim.InstanceInfo
	for _, in := range w.sim.Instances() {
		if in.Tags[awsapi.TagBake] == strconv.FormatInt(id, 10) && in.Tags[pipeline.TagRole] == "tester" {
			out = append(out, in)
		}
	}
	return out
}

// TestImageTestCrashResume stops the server while the test instance runs
// its script (the "test image" step in flight) and starts a fresh one on
// the same database: the bake finishes with the one test instance,
// terminated, and the step recorded as succeeded.
func TestImageTestCrashResume(t *testing.T) {
	w := newWorld(t, awssim.Options{})
	st1 := w.open(t)
	putProject(t, st1, "web", "#!/bin/sh\necho hello\n", nil)
	if err := st1.PutTests(t.Context(), "web", &store.ImageTests{Script: "#!/bin/sh\nsleep 3000\necho smoke ok\n", Timeout: 20 * time.Second}); err != nil {
		t.Fatal(err)
	}
	s1 := w.serve(t, st1, nil)
	id := trigger(t, s1, "web")
	testsupport.Eventually(t, "the test instance to launch", func() bool { return len(w.testersOf(id)) == 1 })
	s1.stop()
	if got := stepOf(t, st1, id, pipeline.StepTestImage); got.State != store.StepRunning {
		t.Fatalf("step %q = %s; want running when the server stopped", pipeline.StepTestImage, got.State)
	}
	st1.Close()

	b := w.resumeSucceeds(t, id)
	ts := w.testersOf(id)
	if len(ts) != 1 {
		t.Fatalf("%d test instances of bake %d; want 1 across the restart", len(ts), id)
	}
	if !gone(ts[0]) {
		t.Errorf("test instance %s is %s; want terminated", ts[0].ID, ts[0].State)
	}
	if ts[0].ImageID != b.ImageID {
		t.Errorf("test instance ran %s; want the bake's image %s", ts[0].ImageID, b.ImageID)
	}
	w.checkOneBuilderGone(t, id)
}

// recNotifier records the events it is handed.
type recNotifier struct {
	mu     sync.Mutex
	events []notify.Event
}

func (n *recNotifier) Emit(_ context.Context, e notify.Event) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.events = append(n.events, e)
	return nil
}

// Prepare records e when the transaction that ends the bake or promotion
// runs it, as the real notifier queues its job there.
func (n *recNotifier) Prepare(_ context.Context, e notify.Event) (store.TxFunc, error) {
	return func(ctx context.Context, _ *store.Tx) error { return n.Emit(ctx, e) }, nil
}

func (n *recNotifier) Register(*river.Workers) error { return nil }

func (n *recNotifier) of(name string) []notify.Event {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []notify.Event
	for _, e := range n.events {
		if e.Event == name {
			out = append(out, e)
		}
	}
	return out
}

// TestRevokeNotifies: a revocation emits image.revoked with the image and
// the reason, saying which environments have nothing to go back to.
func TestRevokeNotifies(t *testing.T) {
	w := newWorld(t, awssim.Options{})
	st := w.open(t)
	putProject(t, st, "web", "#!/bin/sh\necho hello\n", nil)
	rec := &recNotifier{}
	s := w.serve(t, st, func(s *Service) { s.o.Notifier = rec })
	b := waitFinal(t, st, trigger(t, s, "web"))
	if b.State != store.Succeeded {
		t.Fatalf("bake = %s (%s)", b.State, b.Reason)
	}
	if _, err := s.Revoke(t.Context(), "web", b.ImageID, "bad build", "user alice"); err != nil {
		t.Fatal(err)
	}
	evs := rec.of(notify.ImageRevoked)
	if len(evs) != 1 || evs[0].Image != b.ImageID || evs[0].Project != "web" || evs[0].Reason != "bad build" {
		t.Errorf("image.revoked events = %+v; want one with the image and the reason", evs)
	}
}
