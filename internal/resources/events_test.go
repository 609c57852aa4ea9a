package resources

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"kiln/internal/engine"
	"kiln/internal/testsupport"
)

// events records what a Watch reports. Channels of capacity 1 coalesce the
// way the engine does.
type events struct {
	running, changed chan struct{}
}

func newEvents() *events {
	return &events{running: make(chan struct{}, 1), changed: make(chan struct{}, 1)}
}

func (e *events) Running() { signal(e.running) }
func (e *events) Changed() { signal(e.changed) }

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// watch runs r.Watch until the test ends and waits for Running.
func watch(t *testing.T, r engine.Resource) *events {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	ev := newEvents()
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	wg.Go(func() { errc <- r.Watch(ctx, ev) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if err := <-errc; err != nil {
			t.Errorf("Watch() = %v; want nil", err)
		}
	})
	select {
	case <-ev.running:
	case err := <-errc:
		t.Fatalf("Watch() returned %v before Running", err)
	}
	return ev
}

// waitChanged waits for Changed. The bound only turns a lost event into a
// failure that names the step instead of the package's timeout.
func (e *events) waitChanged(t *testing.T, after string) {
	t.Helper()
	select {
	case <-e.changed:
	case <-time.After(30 * time.Second):
		t.Fatalf("no Changed after %s", after)
	}
}

// drain empties the changed channel.
func (e *events) drain() {
	select {
	case <-e.changed:
	default:
	}
}

func testEnv(id string, w *testsupport.Buffer) engine.Env {
	return engine.Env{ID: id, Log: slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))}
}
