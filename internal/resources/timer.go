package resources

import (
	"context"
	"sync/atomic"
	"time"

	"kiln/internal/config"
	"kiln/internal/engine"
)

// Timer ticks every interval. Each tick is a change: the next CheckApply
// (apply mode) reports it, so dependents are poked and notify edges fire.
type Timer struct {
	Interval time.Duration `yaml:"interval"`

	fired atomic.Bool
}

// Validate checks the interval is positive.
func (r *Timer) Validate() error {
	if r.Interval <= 0 {
		return config.Fieldf("interval", "required, a duration above zero like \"30s\"")
	}
	return nil
}

// Watch emits Changed on every tick until ctx is done.
func (r *Timer) Watch(ctx context.Context, ev engine.Events) error {
	t := time.NewTicker(r.Interval)
	defer t.Stop()
	ev.Running()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			r.fired.Store(true)
			ev.Changed()
		}
	}
}

// CheckApply reports a tick not yet seen; apply marks it seen.
func (r *Timer) CheckApply(_ context.Context, apply bool) (bool, error) {
	if !apply {
		return !r.fired.Load(), nil
	}
	return !r.fired.Swap(false), nil
}

var _ engine.Resource = (*Timer)(nil)
