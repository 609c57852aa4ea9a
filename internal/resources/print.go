package resources

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"kiln/internal/config"
	"kiln/internal/engine"
)

// Print writes msg to its writer (kiln's stdout) and the log: once when it
// is first checked in apply mode (and again whenever msg changes, which a
// rebuilt resource with a new resolved reference does), and on every
// Refresh. Printing changes nothing in the world, so a check is always
// converged and plan never lists a print.
type Print struct {
	Msg string `yaml:"msg"`

	Out io.Writer `yaml:"-"` // set by the constructor; nil: log only

	log     *slog.Logger
	mu      sync.Mutex
	printed bool
}

// Validate checks msg is set.
func (r *Print) Validate() error {
	if r.Msg == "" {
		return config.Fieldf("msg", "required")
	}
	return nil
}

// Init keeps the vertex's logger.
func (r *Print) Init(env engine.Env) error {
	r.log = env.Log
	return nil
}

// Watch reports running and waits for ctx: nothing outside can drift.
func (r *Print) Watch(ctx context.Context, ev engine.Events) error {
	ev.Running()
	<-ctx.Done()
	return nil
}

// CheckApply prints the message if it has not been printed yet.
func (r *Print) CheckApply(_ context.Context, apply bool) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.printed || !apply {
		return true, nil
	}
	r.printed = true
	return true, r.print()
}

// Refresh prints the message again (a notify edge fired).
func (r *Print) Refresh(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.printed = true
	return r.print()
}

func (r *Print) print() error {
	if r.log != nil {
		r.log.Info("print", "message", r.Msg)
	}
	if r.Out == nil {
		return nil
	}
	if _, err := fmt.Fprintln(r.Out, r.Msg); err != nil {
		return fmt.Errorf("print message: %w", err)
	}
	return nil
}

var _ engine.Resource = (*Print)(nil)
