package testsupport_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"kiln/internal/testsupport"
)

func TestBufferConcurrentWriters(t *testing.T) {
	var b testsupport.Buffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() { fmt.Fprintf(&b, "w%d\n", i) })
	}
	wg.Wait()
	if got := len(b.String()); got != 8*3 {
		t.Errorf("len(String()) = %d; want %d", got, 8*3)
	}
}

func TestEventuallyReturnsOnceTheConditionHolds(t *testing.T) {
	var n atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for n.Load() < 3 {
			n.Add(1)
		}
	}()
	testsupport.Eventually(t, "n reaches 3", func() bool { return n.Load() >= 3 })
	<-done
}

func TestWithinGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if testsupport.Within(time.Second, func() bool { return false }) {
			t.Fatal("Within(never) = true; want false")
		}
		if got := time.Since(start); got < time.Second {
			t.Errorf("Within gave up after %v; want at least 1s", got)
		}
	})
}

func TestPauseHonoursCancellation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		if err := testsupport.Pause(t.Context(), time.Minute); err != nil {
			t.Errorf("Pause(1m) = %v; want nil", err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := testsupport.Pause(ctx, time.Hour); !errors.Is(err, context.Canceled) {
			t.Errorf("Pause(cancelled) = %v; want context.Canceled", err)
		}
	})
}

func TestAdvanceFiresTimersAndWaitsForIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var fired atomic.Bool
		time.AfterFunc(30*time.Second, func() { fired.Store(true) })
		testsupport.Advance(29 * time.Second)
		if fired.Load() {
			t.Fatal("timer fired before it was due")
		}
		testsupport.Advance(time.Second)
		if !fired.Load() {
			t.Error("timer did not fire once due")
		}
	})
}
