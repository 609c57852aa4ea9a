package resources

import (
	"context"

	"kiln/internal/engine"
)

// Noop does nothing and is always converged: a grouping point for edges,
// and the resource the engine benchmarks use.
type Noop struct{}

// Watch reports running and waits for ctx.
func (r *Noop) Watch(ctx context.Context, ev engine.Events) error {
	ev.Running()
	<-ctx.Done()
	return nil
}

// Static: a noop has nothing to watch, so the engine spends no goroutine on it.
func (r *Noop) Static() bool { return true }

// CheckApply is always converged.
func (r *Noop) CheckApply(context.Context, bool) (bool, error) { return true, nil }

var (
	_ engine.Resource = (*Noop)(nil)
	_ engine.Static   = (*Noop)(nil)
)
