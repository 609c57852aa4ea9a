package bakery

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"kiln/internal/awssim"
)

// TestStartOwnedOnceAcrossServers: work started under a lease runs on one
// server of those sharing the database at a time: not again here while it
// runs, not on another server while the lease is held, on the other once
// it is released; and a server whose lease another took stops at once.
func TestStartOwnedOnceAcrossServers(t *testing.T) {
	w := newWorld(t, awssim.Options{})
	st := w.open(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	server := func(id string) *Service {
		s := &Service{store: st, log: slog.New(slog.DiscardHandler), o: Options{ServerID: id, Lease: 300 * time.Millisecond}}
		s.deploys.ctx = ctx
		t.Cleanup(s.deploys.wg.Wait)
		return s
	}
	a, b := server("a"), server("b")
	const name = "promotion/1"

	var runs atomic.Int32
	release := make(chan struct{})
	stopped := make(chan struct{})
	a.startOwned(name, func(ctx context.Context) {
		runs.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
			close(stopped)
		}
	})
	a.startOwned(name, func(context.Context) { runs.Add(1) }) // already running here
	b.startOwned(name, func(context.Context) { runs.Add(1) }) // held by a
	// A sleep: the lease is the store's, in wall-clock time; only a wait
	// past it shows that a keeps renewing it.
	time.Sleep(time.Second)
	if n := runs.Load(); n != 1 {
		t.Fatalf("runs = %d; want 1 (a's), the others skipped", n)
	}

	// Another server takes the lease (a was cut off long enough): a stops.
	// (Freed by hand, the lease may go back to a's next renewal first:
	// try again.)
	for taken := false; !taken; {
		if err := st.ReleaseLease(t.Context(), name, "a"); err != nil {
			t.Fatal(err)
		}
		ok, err := st.AcquireLease(t.Context(), name, "b", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		taken = ok
	}
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("a went on after its lease was taken")
	}
	a.deploys.wg.Wait()
	if err := st.ReleaseLease(t.Context(), name, "b"); err != nil {
		t.Fatal(err)
	}

	// Released, the lease goes to whoever starts the work next.
	done := make(chan struct{})
	b.startOwned(name, func(context.Context) { runs.Add(1); close(done) })
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("b did not run the work once the lease was free")
	}
	b.deploys.wg.Wait()
	if holder, err := st.LeaseHolder(t.Context(), name); err != nil || holder != "" {
		t.Errorf("lease holder after the work = %q, %v; want it released", holder, err)
	}
	close(release)
}
