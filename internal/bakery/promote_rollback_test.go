package bakery_test

import (
	"testing"

	"kiln/internal/bakery"
	"kiln/internal/store"
)

// TestPromoteRecordsRollback: promoting an image older than the one the
// environment runs is recorded as a rollback; taking it forward again is
// a manual promotion.
func TestPromoteRecordsRollback(t *testing.T) {
	w := newEnvWorld(t)
	w.apply(t, envProject("manual", "debug"))
	first := w.bakeImage(t)
	w.waitEnv(t, "staging", first)
	second := w.bakeImage(t)
	w.waitEnv(t, "staging", second)

	p, err := w.svc.Promote(t.Context(), "web", "staging", first)
	if err != nil {
		t.Fatalf("Promote(staging, %s) = %v", first, err)
	}
	if p.Cause != bakery.CauseRollback {
		t.Errorf("Promote(staging, older image) cause = %q; want %q", p.Cause, bakery.CauseRollback)
	}
	if got := w.waitEnv(t, "staging", first); got.State != store.PromotionSucceeded || got.Cause != "rollback" {
		t.Errorf("recorded rollback = %+v; want succeeded with cause rollback", got)
	}

	p, err = w.svc.Promote(t.Context(), "web", "staging", second)
	if err != nil {
		t.Fatalf("Promote(staging, %s) = %v", second, err)
	}
	if p.Cause != "manual" {
		t.Errorf("Promote(staging, newer image) cause = %q; want manual", p.Cause)
	}
	w.waitEnv(t, "staging", second)
}
