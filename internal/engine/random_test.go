package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"kiln/internal/testsupport"
)

// TestRandomGraphs converges random DAGs with random permanent failures and
// checks every vertex ends as the rules say: failed, blocked exactly when a
// dependency (transitively) failed, converged otherwise and checked after
// its dependencies.
func TestRandomGraphs(t *testing.T) {
	for seed := range uint64(40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, 1))
				n := 5 + rng.IntN(40)
				fails := make([]bool, n)
				deps := make([][]int, n)
				var mu sync.Mutex
				checkedAt := map[int]int{} // vertex -> order of its first check
				var specs []*Spec
				for i := range n {
					fails[i] = rng.IntN(8) == 0
					var names []string
					for j := range i { // edges only to earlier vertices: acyclic
						if rng.IntN(6) == 0 {
							deps[i] = append(deps[i], j)
							names = append(names, id(fmt.Sprint(j)))
						}
					}
					pause := time.Duration(rng.IntN(3)) * time.Millisecond
					f := &fake{check: func(ctx context.Context, _ bool, _ int) (bool, error) {
						if err := testsupport.Pause(ctx, pause); err != nil {
							return false, err
						}
						mu.Lock()
						if _, ok := checkedAt[i]; !ok {
							checkedAt[i] = len(checkedAt)
						}
						mu.Unlock()
						if fails[i] {
							return false, Permanent(errBoom)
						}
						return i%3 != 0, nil // some vertices change something
					}}
					specs = append(specs, spec(fmt.Sprint(i), f, names...))
				}
				// Shuffle the spec order: the engine must not rely on it.
				rng.Shuffle(len(specs), func(a, b int) { specs[a], specs[b] = specs[b], specs[a] })
				e := New(mustGraph(t, specs...), Options{Once: true, Workers: 1 + rng.IntN(4)})
				_ = e.Run(t.Context())

				broken := make([]bool, n) // failed or blocked
				for i := range n {
					for _, j := range deps[i] {
						broken[i] = broken[i] || broken[j]
					}
					blocked := broken[i]
					broken[i] = broken[i] || fails[i]
					st := stateOf(t, e, id(fmt.Sprint(i)))
					want := StateConverged
					switch {
					case blocked:
						want = StateBlocked
					case fails[i]:
						want = StateFailed
					}
					if st.State != want {
						t.Errorf("vertex %d = %s; want %s", i, st.State, want)
					}
					if want == StateConverged {
						for _, j := range deps[i] {
							if checkedAt[j] > checkedAt[i] {
								t.Errorf("vertex %d checked before its dependency %d", i, j)
							}
						}
					}
				}
			})
		})
	}
}

// TestSwapChurn swaps random graphs into a running engine and checks it
// settles on the last one with every replaced resource stopped.
func TestSwapChurn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(7, 7))
		var all []*fake
		graph := func(version int) *Graph {
			var specs []*Spec
			for i := range 10 {
				if rng.IntN(5) == 0 {
					continue // removed in this version
				}
				f := &fake{}
				all = append(all, f)
				s := spec(fmt.Sprint(i), f)
				s.Hash = fmt.Sprint(rng.IntN(2)) // changes half the time
				if i > 0 && rng.IntN(2) == 0 {
					if prev := id(fmt.Sprint(i - 1)); len(specs) > 0 && specs[len(specs)-1].ID() == prev {
						s.DependsOn = []string{prev}
						s.Hash += "+dep"
					}
				}
				specs = append(specs, s)
			}
			return mustGraph(t, specs...)
		}
		e := New(graph(0), Options{})
		stop := start(t, e)
		for v := 1; v < 30; v++ {
			_ = testsupport.Pause(t.Context(), time.Duration(rng.IntN(3))*time.Millisecond)
			e.Swap(graph(v))
		}
		synctest.Wait()
		for _, s := range e.Status() {
			if s.State != StateConverged {
				t.Errorf("%s = %s; want converged", s.ID, s.State)
			}
		}
		running := 0
		for _, f := range all {
			running += f.stat(&f.watching)
		}
		if want := len(e.Status()); running != want {
			t.Errorf("running watches = %d; want %d (one per vertex)", running, want)
		}
		_ = stop()
	})
}
