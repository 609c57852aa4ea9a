package bake

import (
	"context"
	"time"

	"github.com/riverqueue/river"
)

// worker is the River worker of JobArgs.
type worker struct {
	river.WorkerDefaults[JobArgs]
	s *Service
}

// Timeout: a bake bounds its own waits (script and image timeouts).
func (w *worker) Timeout(*river.Job[JobArgs]) time.Duration { return -1 }

// Work runs one bake.
func (w *worker) Work(ctx context.Context, job *river.Job[JobArgs]) error {
	return w.s.work(ctx, job)
}

func (s *Service) run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

func (s *Service) work(ctx context.Context, job *river.Job[JobArgs]) error {
	return nil
}
