// Package testsupport holds the helpers that tests in several packages share,
// so that each exists once: a log buffer safe for concurrent writers, a wait
// on a condition, and a step of a testing/synctest bubble's fake clock.
//
// Nothing here waits a fixed time in the real world: a test waits for what it
// expects to happen (Eventually), or moves a fake clock (Advance, or the
// simulator's manual clock) and waits until everything it woke is idle.
package testsupport

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// Buffer is a bytes.Buffer that a running component writes (a log sink, a
// command's output) while the test reads it. The zero value is ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p; it never fails.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Hung is how long Eventually waits before it calls the test hung. It only
// catches a test that would otherwise block until go test's own timeout;
// nothing asserts on how long anything took.
const Hung = 60 * time.Second

// poll is how often Eventually looks at its condition: small, so a test waits
// little past the moment the condition holds.
const poll = 2 * time.Millisecond

// Eventually blocks until cond holds, checking it every few milliseconds, and
// fails the test (naming what it waited for) if it has not held after Hung.
// It asserts nothing on time. cond runs on the test's goroutine.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if !Within(Hung, cond) {
		t.Fatalf("gave up waiting (%v): %s", Hung, what)
	}
}

// EventuallyWithin is Eventually with a bound that is part of what the test
// asserts (a standby notices a lost lock within half the lease): it fails
// the test, naming what and d, if cond has not held within d.
func EventuallyWithin(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Within(d, cond) {
		t.Fatalf("%s: not within %v", what, d)
	}
}

// Within reports whether cond holds within d, checking it every few
// milliseconds. Tests whose contract is a bound (a takeover within the lease)
// use it; the rest use Eventually.
func Within(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// Pause blocks for d, or until ctx is done, whichever comes first, and
// returns ctx's error in the second case. Fake resources in tests use it to
// take time (inside a synctest bubble, fake time) and still honour
// cancellation as real ones must.
func Pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Advance moves the fake clock of the testing/synctest bubble it is called
// from by d (every timer due by then fires), then waits until every
// goroutine in the bubble is durably blocked again. It must run inside
// synctest.Test; there it takes no real time.
func Advance(d time.Duration) {
	timer := time.NewTimer(d)
	<-timer.C
	synctest.Wait()
}
