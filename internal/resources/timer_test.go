package resources

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"kiln/internal/testsupport"
)

func TestTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &Timer{Interval: time.Minute}
		ctx, cancel := context.WithCancel(t.Context())
		ev := newEvents()
		var wg sync.WaitGroup
		wg.Go(func() { _ = r.Watch(ctx, ev) })
		<-ev.running
		if ok, _ := r.CheckApply(ctx, true); !ok {
			t.Errorf("CheckApply() before a tick = false; want true")
		}
		testsupport.Advance(time.Minute) // fake time: one tick
		select {
		case <-ev.changed:
		default:
			t.Fatal("no Changed after a tick")
		}
		if ok, _ := r.CheckApply(ctx, false); ok {
			t.Errorf("CheckApply(noop) after a tick = true; want false")
		}
		if ok, _ := r.CheckApply(ctx, true); ok {
			t.Errorf("CheckApply(apply) after a tick = true; want false")
		}
		if ok, _ := r.CheckApply(ctx, true); !ok {
			t.Errorf("CheckApply() after the tick was applied = false; want true")
		}
		cancel()
		wg.Wait()
	})
}

func TestTimerValidate(t *testing.T) {
	if err := (&Timer{}).Validate(); err == nil {
		t.Error("Validate() with no interval = nil; want an error")
	}
	if err := (&Timer{Interval: time.Second}).Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
}
