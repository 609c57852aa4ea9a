package awsres

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"kiln/internal/awsapi"
	"kiln/internal/engine"
)

// checkState is what a kind's checks leave for the engine and for kiln
// plan: its outputs and the lines of its last check-only pass. Embedded by
// aws:security_group and aws:key_pair, it gives them Outputs and Changes.
type checkState struct {
	mu      sync.Mutex
	out     map[string]string
	planned []string
	extra   string // a kind's own note of what its last check left (a fingerprint)
}

// Outputs are the values the last converged check left.
func (s *checkState) Outputs() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.out)
}

// Changes lists what the last check-only CheckApply would do, one line
// each; kiln plan prints them.
func (s *checkState) Changes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.planned)
}

func (s *checkState) startCheck() {
	s.mu.Lock()
	s.planned = nil
	s.mu.Unlock()
}

// plan records (and logs) what a check-only pass would do.
func (s *checkState) plan(log *slog.Logger, line string) {
	log.Info("would " + line)
	s.mu.Lock()
	s.planned = append(s.planned, line)
	s.mu.Unlock()
}

func (s *checkState) converged(out map[string]string, extra string) {
	s.mu.Lock()
	s.out, s.extra = out, extra
	s.mu.Unlock()
}

// last returns output key and the extra note of the last converged check.
func (s *checkState) last(key string) (string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out[key], s.extra
}

// envLog is the vertex's logger, or one that discards.
func envLog(env engine.Env) *slog.Logger {
	if env.Log != nil {
		return env.Log
	}
	return slog.New(slog.DiscardHandler)
}

// envID is the resource's id, kind/name when the engine gave none.
func envID(env engine.Env, kind string) string {
	if env.ID != "" {
		return env.ID
	}
	return kind + "/" + env.Name
}

// regionHub is the hub of region for a resource of kind named name.
func regionHub(ctx context.Context, hubs *awsapi.Hubs, region, kind, name string) (*awsapi.Hub, error) {
	if hubs == nil {
		return nil, engine.Permanent(fmt.Errorf("%s: no AWS hubs (constructed without its New function)", kind))
	}
	h, err := hubs.Hub(ctx, region)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", kind, name, err)
	}
	return h, nil
}

// pollWatch is the Watch of a kind that has only its poll to notice drift
// by: Running at once, then tick every poll (def when poll is 0) until ctx
// is done. tick calls ev.Changed when it finds a difference; an error it
// returns ends the watch. Each tick that succeeded is reported with
// engine.Polled.
func pollWatch(ctx context.Context, ev engine.Events, poll, def time.Duration, tick func(ctx context.Context) error) error {
	if poll <= 0 {
		poll = def
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	ev.Running()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if err := tick(ctx); err != nil {
			return err
		}
		engine.Polled(ev) // the page's last check follows the poll
	}
}
