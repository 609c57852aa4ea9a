package engine

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"kiln/internal/testsupport"
)

func TestNewGraph(t *testing.T) {
	build := func(Lookup) (Resource, string, error) { return &fake{}, "", nil }
	s := func(name string, deps ...string) *Spec {
		return &Spec{Kind: "k", Name: name, DependsOn: deps, Build: build}
	}
	tests := []struct {
		name  string
		specs []*Spec
		want  string // substring of the error; "" means valid
	}{
		{"ok", []*Spec{s("a"), s("b", "k/a")}, ""},
		{"duplicate", []*Spec{s("a"), s("a")}, `duplicate resource "k/a"`},
		{"unknown", []*Spec{s("a", "k/x")}, `unknown resource "k/x"`},
		{"self", []*Spec{s("a", "k/a")}, "itself"},
		{"cycle", []*Spec{s("a", "k/c"), s("b", "k/a"), s("c", "k/b")}, "dependency cycle"},
		{"ref cycle", []*Spec{{Kind: "k", Name: "a", Refs: []string{"k/b"}, Build: build}, s("b", "k/a")}, "dependency cycle"},
		{"no build", []*Spec{{Kind: "k", Name: "a"}}, "no Build"},
		{"nil", []*Spec{nil}, "nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewGraph("g", tt.specs)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("NewGraph() = %v; want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("NewGraph() = %v; want error containing %q", err, tt.want)
			}
		})
	}
}

func TestDependencyOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var order []string
		rec := func(name string) *fake {
			return &fake{check: func(ctx context.Context, _ bool, _ int) (bool, error) {
				if err := testsupport.Pause(ctx, time.Second); err != nil { // give a wrong order the chance to show
					return false, err
				}
				mu.Lock()
				order = append(order, name)
				mu.Unlock()
				return true, nil
			}}
		}
		// c -> b -> a, d -> a, e alone.
		g := mustGraph(t,
			spec("c", rec("c"), id("b")),
			spec("b", rec("b"), id("a")),
			spec("a", rec("a")),
			spec("d", rec("d"), id("a")),
			spec("e", rec("e")),
		)
		if err := New(g, Options{Once: true}).Run(t.Context()); err != nil {
			t.Fatalf("Run() = %v", err)
		}
		pos := func(n string) int { return slices.Index(order, n) }
		for _, edge := range [][2]string{{"a", "b"}, {"b", "c"}, {"a", "d"}} {
			if pos(edge[0]) > pos(edge[1]) {
				t.Errorf("order %v: %s checked before its dependency %s", order, edge[1], edge[0])
			}
		}
		if len(order) != 5 {
			t.Errorf("checks = %v; want each vertex once", order)
		}
	})
}

func TestWorkersBound(t *testing.T) {
	for _, workers := range []int{1, 3, 8} {
		t.Run("", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var mu sync.Mutex
				var cur, peak int
				var specs []*Spec
				for i := range 20 {
					f := &fake{check: func(ctx context.Context, _ bool, _ int) (bool, error) {
						mu.Lock()
						cur++
						peak = max(peak, cur)
						mu.Unlock()
						err := testsupport.Pause(ctx, time.Second)
						mu.Lock()
						cur--
						mu.Unlock()
						return err == nil, err
					}}
					specs = append(specs, spec(string(rune('a'+i)), f))
				}
				start := time.Now()
				if err := New(mustGraph(t, specs...), Options{Once: true, Workers: workers}).Run(t.Context()); err != nil {
					t.Fatalf("Run() = %v", err)
				}
				if peak != workers {
					t.Errorf("peak concurrent CheckApply = %d; want %d", peak, workers)
				}
				want := time.Duration((20+workers-1)/workers) * time.Second
				if got := time.Since(start); got != want {
					t.Errorf("virtual run time = %v; want %v", got, want)
				}
			})
		})
	}
}

// Race 2: events during CheckApply cause exactly one more pass.
func TestEventDuringCheckApply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fake{}
		f.check = func(ctx context.Context, _ bool, n int) (bool, error) {
			if n == 1 {
				ev := f.events()
				ev.Changed()
				ev.Changed()
				if err := testsupport.Pause(ctx, time.Second); err != nil {
					return false, err
				}
				ev.Changed()
			}
			return true, nil
		}
		e := New(mustGraph(t, spec("a", f)), Options{})
		stop := start(t, e)
		synctest.Wait()
		testsupport.Advance(time.Minute)
		if got := f.stat(&f.checks); got != 2 {
			t.Errorf("checks = %d; want 2", got)
		}
		// Events after convergence are never lost either.
		f.events().Changed()
		synctest.Wait()
		if got := f.stat(&f.checks); got != 3 {
			t.Errorf("checks after one more event = %d; want 3", got)
		}
		if err := stop(); !errors.Is(err, context.Canceled) {
			t.Errorf("Run() = %v; want context.Canceled", err)
		}
	})
}

// Race 1: no CheckApply before Watch called Running.
func TestNoCheckBeforeRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		f := &fake{watch: func(ctx context.Context, ev Events) error {
			ev.Changed() // an event before Running must not start a check
			select {
			case <-release:
			case <-ctx.Done():
				return nil
			}
			ev.Running()
			ev.Running() // only the first counts
			<-ctx.Done()
			return nil
		}}
		e := New(mustGraph(t, spec("a", f)), Options{})
		stop := start(t, e)
		synctest.Wait()
		if got := f.stat(&f.checks); got != 0 {
			t.Fatalf("checks before Running = %d; want 0", got)
		}
		if s := stateOf(t, e, id("a")); s.State != StateWaiting {
			t.Errorf("state before Running = %s; want %s", s.State, StateWaiting)
		}
		close(release)
		synctest.Wait()
		if got := f.stat(&f.checks); got != 1 {
			t.Errorf("checks after Running = %d; want 1", got)
		}
		if s := stateOf(t, e, id("a")); s.State != StateConverged {
			t.Errorf("state = %s; want %s", s.State, StateConverged)
		}
		_ = stop()
	})
}

func TestRetry(t *testing.T) {
	tests := []struct {
		name      string
		meta      Meta
		err       error
		wantCheck int
		wantGaps  []time.Duration // minimum gap before each retry
	}{
		{"none", Meta{Retry: 0}, errBoom, 1, nil},
		{"two", Meta{Retry: 2, Delay: time.Second}, errBoom, 3, []time.Duration{time.Second, 2 * time.Second}},
		{"backoff", Meta{Retry: 4, Delay: time.Second}, errBoom, 5, []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}},
		{"default delay", Meta{Retry: 1}, errBoom, 2, []time.Duration{defaultDelay}},
		{"permanent", Meta{Retry: 5, Delay: time.Second}, Permanent(errBoom), 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fake{check: func(context.Context, bool, int) (bool, error) { return false, tt.err }}
				s := spec("a", f)
				s.Meta = tt.meta
				e := New(mustGraph(t, s), Options{Once: true})
				err := e.Run(t.Context())
				var nc *NotConvergedError
				if !errors.As(err, &nc) {
					t.Fatalf("Run() = %v; want *NotConvergedError", err)
				}
				if got := f.stat(&f.checks); got != tt.wantCheck {
					t.Errorf("checks = %d; want %d", got, tt.wantCheck)
				}
				ts := f.times()
				for i, min := range tt.wantGaps {
					gap := ts[i+1].Sub(ts[i])
					if gap < min || gap > min*5/4+time.Nanosecond {
						t.Errorf("gap before retry %d = %v; want in [%v, %v]", i+1, gap, min, min*5/4)
					}
				}
				if st := stateOf(t, e, id("a")); st.State != StateFailed || st.LastError != "boom" {
					t.Errorf("status = %s %q; want failed \"boom\"", st.State, st.LastError)
				}
			})
		})
	}
}

func TestRetryForeverThenSucceed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fake{check: func(_ context.Context, _ bool, n int) (bool, error) {
			if n < 10 {
				return false, errBoom
			}
			return true, nil
		}}
		s := spec("a", f)
		s.Meta = Meta{Retry: -1, Delay: time.Millisecond}
		if err := New(mustGraph(t, s), Options{Once: true}).Run(t.Context()); err != nil {
			t.Fatalf("Run() = %v", err)
		}
		if got := f.stat(&f.checks); got != 10 {
			t.Errorf("checks = %d; want 10", got)
		}
	})
}

// After the retries are exhausted the vertex stays failed until its next event,
// which earns a fresh set of retries.
func TestFailedUntilNextEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var healthy bool
		var mu sync.Mutex
		f := &fake{check: func(context.Context, bool, int) (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			if healthy {
				return true, nil
			}
			return false, errBoom
		}}
		s := spec("a", f)
		s.Meta = Meta{Retry: 1, Delay: time.Second}
		e := New(mustGraph(t, s), Options{})
		stop := start(t, e)
		testsupport.Advance(time.Hour)
		if got := f.stat(&f.checks); got != 2 {
			t.Fatalf("checks = %d; want 2", got)
		}
		mu.Lock()
		healthy = true
		mu.Unlock()
		f.events().Changed()
		synctest.Wait()
		if st := stateOf(t, e, id("a")); st.State != StateConverged || st.LastError != "" {
			t.Errorf("after event: %s %q; want converged", st.State, st.LastError)
		}
		_ = stop()
	})
}

func TestLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fake{}
		f.watch = func(ctx context.Context, ev Events) error {
			ev.Running()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-tick.C:
					ev.Changed()
				}
			}
		}
		s := spec("a", f)
		s.Meta = Meta{Limit: 1, Burst: 1}
		stop := start(t, New(mustGraph(t, s), Options{}))
		testsupport.Advance(5*time.Second + time.Millisecond)
		_ = stop()
		ts := f.times()
		if len(ts) < 5 || len(ts) > 6 {
			t.Errorf("checks in 5s at 1/s = %d; want 5 or 6", len(ts))
		}
		for i := 1; i < len(ts); i++ {
			if gap := ts[i].Sub(ts[i-1]); gap < time.Second-time.Millisecond {
				t.Errorf("gap %d = %v; want >= 1s", i, gap)
			}
		}
	})
}

func TestTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fake{check: func(ctx context.Context, _ bool, _ int) (bool, error) {
			<-ctx.Done()
			return false, ctx.Err()
		}}
		s := spec("a", f)
		s.Meta = Meta{Timeout: 2 * time.Second}
		e := New(mustGraph(t, s), Options{Once: true})
		t0 := time.Now()
		err := e.Run(t.Context())
		if err == nil {
			t.Fatal("Run() = nil; want an error")
		}
		if got := time.Since(t0); got != 2*time.Second {
			t.Errorf("virtual time = %v; want 2s", got)
		}
		if st := stateOf(t, e, id("a")); !strings.Contains(st.LastError, "timed out after 2s") {
			t.Errorf("LastError = %q; want a timeout", st.LastError)
		}
	})
}

func TestErrorIsolation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bad := &fake{check: func(context.Context, bool, int) (bool, error) { return false, errBoom }}
		b, c, d := &fake{}, &fake{}, &fake{}
		g := mustGraph(t,
			spec("a", bad),
			spec("b", b, id("a")),
			spec("c", c),
			spec("d", d, id("b")),
		)
		e := New(g, Options{Once: true})
		err := e.Run(t.Context())
		var nc *NotConvergedError
		if !errors.As(err, &nc) {
			t.Fatalf("Run() = %v; want *NotConvergedError", err)
		}
		want := "3 of 4 resources not converged: test/a failed: boom; test/b blocked by test/a; test/d blocked by test/b"
		if err.Error() != want {
			t.Errorf("Error() = %q\nwant %q", err, want)
		}
		if got := c.stat(&c.checks); got != 1 {
			t.Errorf("unrelated vertex checks = %d; want 1", got)
		}
		if b.stat(&b.checks)+d.stat(&d.checks) != 0 {
			t.Errorf("blocked vertices were checked")
		}
		if st := stateOf(t, e, id("c")); st.State != StateConverged {
			t.Errorf("c = %s; want converged", st.State)
		}
	})
}

func TestOutputsAndReferences(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := &fake{outputs: map[string]string{"ip": "10.0.0.1"}}
		var mu sync.Mutex
		var built []*fake
		var seen []string
		b := &Spec{
			Kind: "test", Name: "b", DependsOn: []string{id("a")}, Refs: []string{id("a")}, Hash: "b",
			Build: func(lookup Lookup) (Resource, string, error) {
				ip, ok := lookup(id("a"), "ip")
				if !ok {
					return nil, "", errors.New("no ip")
				}
				f := &fake{}
				mu.Lock()
				built = append(built, f)
				seen = append(seen, ip)
				mu.Unlock()
				return f, ip, nil
			},
		}
		e := New(mustGraph(t, spec("a", a), b), Options{})
		stop := start(t, e)
		synctest.Wait()
		if !slices.Equal(seen, []string{"10.0.0.1"}) {
			t.Fatalf("Build saw %v; want [10.0.0.1]", seen)
		}
		// An event on a that changes nothing in its outputs: no rebuild.
		a.events().Changed()
		synctest.Wait()
		if len(built) != 1 {
			t.Fatalf("builds = %d; want 1", len(built))
		}
		// a changes and its output with it: b is rebuilt, the old b stopped.
		a.setOutputs(map[string]string{"ip": "10.0.0.2"})
		a.check = func(context.Context, bool, int) (bool, error) { return false, nil }
		a.events().Changed()
		synctest.Wait()
		if !slices.Equal(seen, []string{"10.0.0.1", "10.0.0.2"}) {
			t.Fatalf("Build saw %v; want both ips", seen)
		}
		old, cur := built[0], built[1]
		if old.stat(&old.watching) != 0 || old.stat(&old.closes) != 1 {
			t.Errorf("old b: watching=%d closes=%d; want 0, 1", old.stat(&old.watching), old.stat(&old.closes))
		}
		if cur.stat(&cur.wat) != 1 || cur.stat(&cur.checks) != 1 {
			t.Errorf("new b: watches=%d checks=%d; want 1, 1", cur.stat(&cur.wat), cur.stat(&cur.checks))
		}
		_ = stop()
		if cur.stat(&cur.closes) != 1 {
			t.Errorf("new b not closed at shutdown")
		}
	})
}

func TestNotifyRefresh(t *testing.T) {
	for _, noop := range []bool{false, true} {
		name := map[bool]string{false: "apply", true: "noop"}[noop]
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				a := &fake{check: func(_ context.Context, apply bool, n int) (bool, error) { return n > 1, nil }}
				b, c := &fake{}, &fake{}
				sb := spec("b", b, id("a"))
				sb.NotifiedBy = []string{id("a")}
				g := mustGraph(t, spec("a", a), sb, spec("c", c, id("a")))
				e := New(g, Options{Once: true, Noop: noop})
				if err := e.Run(t.Context()); err != nil {
					t.Fatalf("Run() = %v", err)
				}
				wantRefresh, wantChecks := 1, 1 // c was dirty already: its first check comes after a's change
				if noop {
					wantRefresh = 0
				}
				if got := b.stat(&b.refreshes); got != wantRefresh {
					t.Errorf("refreshes = %d; want %d", got, wantRefresh)
				}
				if got := c.stat(&c.checks); got != wantChecks {
					t.Errorf("dependent checks = %d; want %d", got, wantChecks)
				}
				sa, sbs := stateOf(t, e, id("a")), stateOf(t, e, id("b"))
				if sa.Pending != noop || sbs.WouldRefresh != noop {
					t.Errorf("a.Pending=%v b.WouldRefresh=%v; want %v", sa.Pending, sbs.WouldRefresh, noop)
				}
				if noop && (slices.Contains(a.applyFlags, true) || a.stat(&a.applies) != 0) {
					t.Errorf("noop run applied: %v", a.applyFlags)
				}
				if sa.Applies != map[bool]int{false: 1, true: 0}[noop] {
					t.Errorf("Applies = %d", sa.Applies)
				}
			})
		})
	}
}

func TestChangePokesDependents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		change := false
		a := &fake{check: func(context.Context, bool, int) (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			return !change, nil
		}}
		b := &fake{}
		stop := start(t, New(mustGraph(t, spec("a", a), spec("b", b, id("a"))), Options{}))
		synctest.Wait()
		a.events().Changed() // nothing changes: b is left alone
		synctest.Wait()
		if got := b.stat(&b.checks); got != 1 {
			t.Errorf("b checks after a no-change event = %d; want 1", got)
		}
		mu.Lock()
		change = true
		mu.Unlock()
		a.events().Changed() // a changes something: b is re-checked
		synctest.Wait()
		if got := b.stat(&b.checks); got != 2 {
			t.Errorf("b checks after a changed = %d; want 2", got)
		}
		_ = stop()
	})
}

func TestMetaNoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := &fake{check: func(context.Context, bool, int) (bool, error) { return false, nil }}
		s := spec("a", a)
		s.Meta.Noop = true
		e := New(mustGraph(t, s), Options{Once: true})
		if err := e.Run(t.Context()); err != nil {
			t.Fatalf("Run() = %v", err)
		}
		if !slices.Equal(a.applyFlags, []bool{false}) || !stateOf(t, e, id("a")).Pending {
			t.Errorf("apply flags %v, pending %v; want [false], true", a.applyFlags, stateOf(t, e, id("a")).Pending)
		}
	})
}

func TestSwap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b1, c, b2, d := &fake{}, &fake{}, &fake{}, &fake{}, &fake{}
		g1 := mustGraph(t, spec("a", a), spec("b", b1, id("a")), spec("c", c))
		e := New(g1, Options{})
		stop := start(t, e)
		synctest.Wait()

		sb := spec("b", b2, id("a"))
		sb.Hash = "b v2"
		e.Swap(mustGraph(t, spec("a", a), sb, spec("d", d, id("b"))))
		synctest.Wait()

		tests := []struct {
			name                     string
			f                        *fake
			watches, watching, close int
		}{
			{"unchanged a", a, 1, 1, 0},
			{"old b", b1, 1, 0, 1},
			{"new b", b2, 1, 1, 0},
			{"removed c", c, 1, 0, 1},
			{"new d", d, 1, 1, 0},
		}
		for _, tt := range tests {
			if w, r, cl := tt.f.stat(&tt.f.wat), tt.f.stat(&tt.f.watching), tt.f.stat(&tt.f.closes); w != tt.watches || r != tt.watching || cl != tt.close {
				t.Errorf("%s: watches=%d watching=%d closes=%d; want %d %d %d", tt.name, w, r, cl, tt.watches, tt.watching, tt.close)
			}
		}
		if got := a.stat(&a.checks); got != 1 {
			t.Errorf("unchanged a re-checked: checks = %d", got)
		}
		var ids []string
		for _, s := range e.Status() {
			ids = append(ids, s.ID+"="+string(s.State))
		}
		if want := []string{"test/a=converged", "test/b=converged", "test/d=converged"}; !slices.Equal(ids, want) {
			t.Errorf("Status() = %v; want %v", ids, want)
		}
		_ = stop()
	})
}

// TestSwapKeepsLastChange: a resource whose spec changes is restarted, but
// when kiln last changed it in the world is still known.
func TestSwapKeepsLastChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b1 := &fake{check: func(_ context.Context, _ bool, n int) (bool, error) { return n > 1, nil }}
		e := New(mustGraph(t, spec("b", b1)), Options{})
		stop := start(t, e)
		synctest.Wait()
		changed := stateOf(t, e, id("b")).LastChange
		if changed.IsZero() {
			t.Fatal("LastChange is zero after an apply")
		}
		testsupport.Advance(time.Minute)
		sb := spec("b", &fake{})
		sb.Hash = "b v2"
		e.Swap(mustGraph(t, sb))
		synctest.Wait()
		if st := stateOf(t, e, id("b")); !st.LastChange.Equal(changed) || st.State != StateConverged || st.Checks != 1 {
			t.Errorf("after the swap: LastChange %v, state %s, checks %d; want %v, converged, 1 (a fresh check)", st.LastChange, st.State, st.Checks, changed)
		}
		_ = stop()
	})
}

func TestSwapBeforeRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := &fake{}, &fake{}
		e := New(mustGraph(t, spec("a", a)), Options{Once: true})
		e.Swap(mustGraph(t, spec("b", b)))
		if err := e.Run(t.Context()); err != nil {
			t.Fatalf("Run() = %v", err)
		}
		if a.stat(&a.wat) != 0 || b.stat(&b.checks) != 1 {
			t.Errorf("a watches=%d b checks=%d; want 0, 1", a.stat(&a.wat), b.stat(&b.checks))
		}
	})
}

type panicky struct {
	fake
	where string
}

func (p *panicky) Watch(ctx context.Context, ev Events) error {
	if p.where == "watch" {
		panic("watch exploded")
	}
	return p.fake.Watch(ctx, ev)
}

func (p *panicky) CheckApply(ctx context.Context, apply bool) (bool, error) {
	if p.where == "check" {
		panic("check exploded")
	}
	return p.fake.CheckApply(ctx, apply)
}

func TestPanicIsolation(t *testing.T) {
	for _, where := range []string{"watch", "check", "build"} {
		t.Run(where, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := &panicky{where: where}
				sp := spec("p", p)
				if where == "build" {
					sp.Build = func(Lookup) (Resource, string, error) { panic("build exploded") }
				}
				other := &fake{}
				e := New(mustGraph(t, sp, spec("ok", other)), Options{Once: true})
				err := e.Run(t.Context())
				if err == nil || !strings.Contains(err.Error(), where+" exploded") {
					t.Fatalf("Run() = %v; want the panic message", err)
				}
				if st := stateOf(t, e, id("ok")); st.State != StateConverged {
					t.Errorf("other vertex = %s; want converged", st.State)
				}
			})
		})
	}
}

func TestShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		entered := make(chan struct{})
		var sawCancel bool
		slow := &fake{check: func(ctx context.Context, _ bool, _ int) (bool, error) {
			close(entered)
			<-ctx.Done()
			sawCancel = true
			return false, ctx.Err()
		}}
		var specs []*Spec
		var fakes []*fake
		for i := range 10 {
			f := &fake{}
			fakes = append(fakes, f)
			specs = append(specs, spec(string(rune('a'+i)), f))
		}
		specs = append(specs, spec("slow", slow))
		e := New(mustGraph(t, specs...), Options{})
		stop := start(t, e)
		<-entered
		synctest.Wait()
		if err := stop(); !errors.Is(err, context.Canceled) {
			t.Errorf("Run() = %v; want context.Canceled", err)
		}
		if !sawCancel {
			t.Error("in-flight CheckApply did not see its ctx cancelled")
		}
		for _, f := range fakes {
			if f.stat(&f.watching) != 0 || f.stat(&f.closes) != 1 {
				t.Errorf("watching=%d closes=%d; want 0, 1", f.stat(&f.watching), f.stat(&f.closes))
			}
		}
		// synctest fails the test if any goroutine Run started is still alive.
	})
}

func TestConvergedTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := &fake{check: func(ctx context.Context, _ bool, n int) (bool, error) {
			if err := testsupport.Pause(ctx, time.Second); err != nil {
				return false, err
			}
			return n > 1, nil
		}}
		e := New(mustGraph(t, spec("a", a), spec("b", &fake{}, id("a"))), Options{ConvergedTimeout: 10 * time.Second})
		t0 := time.Now()
		if err := e.Run(t.Context()); err != nil {
			t.Fatalf("Run() = %v", err)
		}
		if got := time.Since(t0); got != 11*time.Second {
			t.Errorf("Run returned after %v; want 11s (1s check + 10s idle)", got)
		}
	})
}

func TestPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		polled := &fake{watch: func(context.Context, Events) error { panic("Watch must not be called") }}
		sp := spec("p", polled)
		sp.Meta.Poll = 10 * time.Second
		self := &selfPoller{}
		ss := spec("s", self)
		ss.Meta.Poll = 5 * time.Second
		e := New(mustGraph(t, sp, ss), Options{})
		stop := start(t, e)
		testsupport.Advance(35 * time.Second)
		_ = stop()
		if got := polled.stat(&polled.checks); got != 4 {
			t.Errorf("polled checks in 35s at 10s = %d; want 4", got)
		}
		if self.pollSet != 5*time.Second || self.stat(&self.wat) != 1 {
			t.Errorf("SetPoll(%v), watches %d; want 5s, 1", self.pollSet, self.stat(&self.wat))
		}
	})
}

// TestLastCheckFollowsPoll: a SelfPoller's polls that find nothing run no
// CheckApply, yet the vertex's last check is the last poll.
func TestLastCheckFollowsPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		self := &selfPoller{}
		self.watch = func(ctx context.Context, ev Events) error {
			ev.Running()
			tick := time.NewTicker(5 * time.Second)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-tick.C:
					Polled(ev)
				}
			}
		}
		sp := spec("s", self)
		sp.Meta.Poll = 5 * time.Second
		e := New(mustGraph(t, sp), Options{})
		t0 := time.Now()
		stop := start(t, e)
		defer stop()
		synctest.Wait()
		first := stateOf(t, e, id("s")).LastCheck
		if !first.Equal(t0) {
			t.Fatalf("LastCheck after the first check = %v; want %v", first, t0)
		}
		testsupport.Advance(12 * time.Second)
		s := stateOf(t, e, id("s"))
		if want := t0.Add(10 * time.Second); !s.LastCheck.Equal(want) {
			t.Errorf("LastCheck after polls at 5s and 10s = +%v; want +10s", s.LastCheck.Sub(t0))
		}
		if s.Checks != 1 {
			t.Errorf("Checks = %d; want 1 (a poll is no CheckApply)", s.Checks)
		}
	})
}

type selfPoller struct{ fake }

func (s *selfPoller) SetPoll(d time.Duration) { s.pollSet = d }

type static struct{ fake }

func (*static) Static() bool { return true }

func TestStatic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &static{}
		e := New(mustGraph(t, spec("s", s)), Options{Once: true})
		if err := e.Run(t.Context()); err != nil {
			t.Fatalf("Run() = %v", err)
		}
		if s.stat(&s.wat) != 0 || s.stat(&s.checks) != 1 || s.stat(&s.closes) != 1 {
			t.Errorf("watches=%d checks=%d closes=%d; want 0 1 1", s.stat(&s.wat), s.stat(&s.checks), s.stat(&s.closes))
		}
	})
}

type initer struct {
	fake
	env Env
}

func (i *initer) Init(env Env) error { i.env = env; return nil }

func TestInitAndWatchFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		in := &initer{}
		w := &fake{watch: func(context.Context, Events) error { return errBoom }}
		sw := spec("w", w)
		sw.Meta = Meta{Retry: 2, Delay: time.Second}
		e := New(mustGraph(t, spec("i", in), sw), Options{Once: true})
		err := e.Run(t.Context())
		if err == nil || !strings.Contains(err.Error(), "watch: boom") {
			t.Fatalf("Run() = %v; want the watch error", err)
		}
		if got := w.stat(&w.wat); got != 3 {
			t.Errorf("watch starts = %d; want 3", got)
		}
		if in.env.ID != id("i") || in.env.Graph != "test" || in.env.Log == nil {
			t.Errorf("Init env = %+v", in.env)
		}
	})
}

func TestSubscribe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fake{}
		e := New(mustGraph(t, spec("a", f)), Options{})
		ch, cancel := e.Subscribe()
		defer cancel()
		stop := start(t, e)
		synctest.Wait()
		select {
		case <-ch:
		default:
			t.Fatal("no status notification after converging")
		}
		f.events().Changed()
		synctest.Wait()
		select {
		case <-ch:
		default:
			t.Fatal("no status notification after a check")
		}
		_ = stop()
	})
}

func TestRunTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := New(mustGraph(t), Options{Once: true})
		if err := e.Run(t.Context()); err != nil {
			t.Fatalf("first Run() = %v", err)
		}
		if err := e.Run(t.Context()); err == nil {
			t.Fatal("second Run() = nil; want an error")
		}
	})
}

// A vertex removed while its CheckApply runs: the check sees its ctx
// cancelled, the resource is closed after the check returned, and the
// result is dropped.
func TestSwapDuringCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		entered := make(chan struct{})
		var closedDuringCheck bool
		var slow *fake
		slow = &fake{check: func(ctx context.Context, _ bool, _ int) (bool, error) {
			close(entered)
			<-ctx.Done()
			closedDuringCheck = slow.stat(&slow.closes) != 0
			return false, ctx.Err()
		}}
		keep := &fake{}
		e := New(mustGraph(t, spec("slow", slow), spec("keep", keep)), Options{})
		stop := start(t, e)
		<-entered
		e.Swap(mustGraph(t, spec("keep", keep)))
		synctest.Wait()
		if closedDuringCheck {
			t.Error("resource closed while its CheckApply was running")
		}
		if slow.stat(&slow.closes) != 1 || slow.stat(&slow.watching) != 0 {
			t.Errorf("removed vertex: closes=%d watching=%d; want 1, 0", slow.stat(&slow.closes), slow.stat(&slow.watching))
		}
		if st := e.Status(); len(st) != 1 || st[0].State != StateConverged {
			t.Errorf("Status() = %+v; want keep converged", st)
		}
		_ = stop()
	})
}

func TestRefreshFailureRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := &fake{check: func(_ context.Context, _ bool, n int) (bool, error) { return n > 1, nil }}
		b := &failingRefresh{fails: 2}
		sb := spec("b", b, id("a"))
		sb.NotifiedBy = []string{id("a")}
		sb.Meta = Meta{Retry: 3, Delay: time.Second}
		if err := New(mustGraph(t, spec("a", a), sb), Options{Once: true}).Run(t.Context()); err != nil {
			t.Fatalf("Run() = %v", err)
		}
		if b.calls != 3 {
			t.Errorf("Refresh calls = %d; want 3 (two failures, then success)", b.calls)
		}
	})
}

type failingRefresh struct {
	fake
	fails, calls int
}

func (f *failingRefresh) Refresh(context.Context) error {
	f.calls++
	if f.calls <= f.fails {
		return errBoom
	}
	return nil
}

// changer is a fake that says what it would do.
type changer struct{ fake }

func (c *changer) Changes() []string { return []string{"start instance i-1 (stopped)"} }

func TestNoopChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		drifted := &changer{fake{check: func(context.Context, bool, int) (bool, error) { return false, nil }}}
		fine := &changer{}
		e := New(mustGraph(t, spec("a", drifted), spec("b", fine)), Options{Once: true, Noop: true})
		if err := e.Run(t.Context()); err != nil {
			t.Fatalf("Run() = %v", err)
		}
		if got := stateOf(t, e, id("a")).Changes; !slices.Equal(got, []string{"start instance i-1 (stopped)"}) {
			t.Errorf("a.Changes = %q; want the changer's line", got)
		}
		if got := stateOf(t, e, id("b")).Changes; got != nil {
			t.Errorf("b.Changes = %q; want none (converged)", got)
		}
	})
}

// planner is a fake that plans one change.
type planner struct {
	fake
	change Change
}

func (p *planner) PlannedChanges() []Change { return []Change{p.change} }

// TestPlanRefusedChange: in a check-only pass, a resource whose every
// change run would refuse changes nothing: a dependent reads the value it
// has now (not KnownAfterApply) and no notified vertex would refresh. A
// change run would make marks both.
func TestPlanRefusedChange(t *testing.T) {
	for _, tt := range []struct {
		name        string
		refused     string
		wantValue   string
		wantRefresh bool
	}{
		{"refused", "set allow_restart: true", "", false},
		{"allowed", "", KnownAfterApply, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				a := &planner{change: Change{Action: ActionRestart, Summary: "stop, modify and start", Refused: tt.refused}}
				a.check = func(context.Context, bool, int) (bool, error) { return false, nil }
				a.outputs = map[string]string{"private_ip": "10.0.0.1", "public_ip": ""}
				var got string
				b := &Spec{Kind: "test", Name: "b", Refs: []string{id("a")}, DependsOn: []string{id("a")}, Hash: "b",
					Build: func(lookup Lookup) (Resource, string, error) {
						got, _ = lookup(id("a"), "public_ip")
						return &fake{}, got, nil
					}}
				c := spec("c", &fake{})
				c.NotifiedBy = []string{id("a")}
				e := New(mustGraph(t, spec("a", a), b, c), Options{Once: true, Noop: true})
				if err := e.Run(t.Context()); err != nil {
					t.Fatalf("Run() = %v", err)
				}
				if got != tt.wantValue {
					t.Errorf("b read a.public_ip = %q; want %q", got, tt.wantValue)
				}
				if r := stateOf(t, e, id("c")).WouldRefresh; r != tt.wantRefresh {
					t.Errorf("c.WouldRefresh = %v; want %v", r, tt.wantRefresh)
				}
				if !stateOf(t, e, id("a")).Pending {
					t.Errorf("a.Pending = false; want true (plan lists the change)")
				}
			})
		})
	}
}
