package engine

import (
	"context"
	"errors"
	"maps"
	"sync"
	"testing"
	"time"
)

// fake is a scriptable resource. Every field is optional.
type fake struct {
	mu sync.Mutex
	// check, if set, decides CheckApply; default: converged.
	check func(ctx context.Context, apply bool, n int) (bool, error)
	// watch, if set, replaces the default Watch (Running, then wait).
	watch   func(ctx context.Context, ev Events) error
	outputs map[string]string

	ev                                      Events
	checks, applies, refreshes, closes, wat int
	watching                                int // Watch calls not yet returned
	checkTimes                              []time.Time
	applyFlags                              []bool
	pollSet                                 time.Duration
}

func (f *fake) Watch(ctx context.Context, ev Events) error {
	f.mu.Lock()
	f.ev = ev
	f.wat++
	f.watching++
	w := f.watch
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.watching--
		f.mu.Unlock()
	}()
	if w != nil {
		return w(ctx, ev)
	}
	ev.Running()
	<-ctx.Done()
	return nil
}

func (f *fake) CheckApply(ctx context.Context, apply bool) (bool, error) {
	f.mu.Lock()
	f.checks++
	n := f.checks
	f.checkTimes = append(f.checkTimes, time.Now())
	f.applyFlags = append(f.applyFlags, apply)
	c := f.check
	f.mu.Unlock()
	if c == nil {
		return true, nil
	}
	ok, err := c(ctx, apply, n)
	if !ok && apply && err == nil {
		f.mu.Lock()
		f.applies++
		f.mu.Unlock()
	}
	return ok, err
}

func (f *fake) Refresh(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refreshes++
	return nil
}

func (f *fake) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closes++
	return nil
}

func (f *fake) Outputs() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.outputs)
}

func (f *fake) setOutputs(o map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.outputs = o
}

func (f *fake) events() Events {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ev
}

// stat reads a counter under the lock.
func (f *fake) stat(p *int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return *p
}

func (f *fake) times() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.checkTimes...)
}

// spec makes a Spec for id "test/name" that always builds r.
func spec(name string, r Resource, deps ...string) *Spec {
	return &Spec{
		Kind: "test", Name: name, DependsOn: deps, Hash: name,
		Build: func(Lookup) (Resource, string, error) { return r, "", nil },
	}
}

func id(name string) string { return "test/" + name }

func mustGraph(t *testing.T, specs ...*Spec) *Graph {
	t.Helper()
	g, err := NewGraph("test", specs)
	if err != nil {
		t.Fatalf("NewGraph() = %v", err)
	}
	return g
}

// start runs e in the background; the returned func cancels it and returns
// Run's error.
func start(t *testing.T, e *Engine) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- e.Run(ctx) }()
	return func() error {
		cancel()
		return <-errc
	}
}

func stateOf(t *testing.T, e *Engine, id string) VertexStatus {
	t.Helper()
	for _, s := range e.Status() {
		if s.ID == id {
			return s
		}
	}
	t.Fatalf("no vertex %q", id)
	return VertexStatus{}
}

var errBoom = errors.New("boom")
