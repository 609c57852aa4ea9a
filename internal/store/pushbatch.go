package store

import (
	"context"
	"slices"
	"sync"
)

// maxPushBatch bounds one group commit, and so the wait of the pushes that
// arrive while it runs.
const maxPushBatch = 256

// pushReq is one EnqueuePush waiting for a batch.
type pushReq struct {
	ctx     context.Context
	p       Push
	enqueue EnqueueFunc
	res     PushResult
	err     error
	done    chan struct{} // closed when res and err are set
	lead    chan struct{} // closed when this waiter is made the next leader
}

// pushBatcher group-commits concurrent pushes without a goroutine of its
// own: the first caller to arrive leads, committing every pending push in
// one transaction; callers arriving meanwhile wait. A leader serves at most
// one batch beyond its own push: when more are pending after its batch, it
// hands the lead to the oldest waiter, so no caller serves others for long.
type pushBatcher struct {
	mu      sync.Mutex
	pending []*pushReq
	leading bool
}

func (b *pushBatcher) do(ctx context.Context, s *Store, r *pushReq) (PushResult, error) {
	r.done, r.lead = make(chan struct{}), make(chan struct{})
	b.mu.Lock()
	b.pending = append(b.pending, r)
	lead := !b.leading
	b.leading = true
	b.mu.Unlock()

	if !lead {
		select {
		case <-r.done:
			return r.res, r.err
		case <-r.lead:
		case <-ctx.Done():
			if b.withdraw(r) {
				return PushResult{}, ctx.Err()
			}
			// Already taken by a leader (wait for its result), or made the
			// leader (then lead: others wait on it).
			select {
			case <-r.done:
				return r.res, r.err
			case <-r.lead:
			}
		}
	}
	for {
		b.mu.Lock()
		n := min(len(b.pending), maxPushBatch)
		batch := slices.Clone(b.pending[:n])
		b.pending = slices.Delete(b.pending, 0, n)
		b.mu.Unlock()

		s.commitPushes(batch)

		b.mu.Lock()
		if len(b.pending) == 0 {
			b.leading = false
			b.mu.Unlock()
			break
		}
		select {
		case <-r.done:
			// Our push is done: hand the lead to the oldest waiter.
			close(b.pending[0].lead)
			b.mu.Unlock()
			return r.res, r.err
		default:
			// Our push did not fit in this batch: run another.
			b.mu.Unlock()
		}
	}
	<-r.done // r was in one of the batches run above
	return r.res, r.err
}

// withdraw removes r from the pending list unless a leader took it or it was
// made the leader; it reports whether it did.
func (b *pushBatcher) withdraw(r *pushReq) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-r.lead:
		return false
	default:
	}
	i := slices.Index(b.pending, r)
	if i < 0 {
		return false
	}
	b.pending = slices.Delete(b.pending, i, i+1)
	return true
}

// commitPushes runs a batch in one transaction, each push in a savepoint so
// that a failing one is rolled back alone, and completes every request.
func (s *Store) commitPushes(batch []*pushReq) {
	// The transaction outlives any one caller's ctx: it carries the others'
	// pushes too.
	ctx := context.Background()
	now := ms(s.now())
	finish := func(err error) {
		for _, r := range batch {
			if err != nil && r.err == nil {
				r.res, r.err = PushResult{}, err
			}
			close(r.done)
		}
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		finish(err)
		return
	}
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err = err
			continue
		}
		if _, err := s.exec(ctx, tx, `SAVEPOINT push`); err != nil {
			_ = tx.Rollback()
			finish(err)
			return
		}
		// Not cancellable midway: SQLite rolls back the whole transaction
		// when a statement in it is interrupted, the other pushes with it.
		r.res, r.err = s.pushOne(context.WithoutCancel(r.ctx), tx, r.p, r.enqueue, now)
		stmts := []string{`RELEASE push`}
		if r.err != nil {
			r.res = PushResult{}
			stmts = []string{`ROLLBACK TO push`, `RELEASE push`}
		}
		for _, stmt := range stmts {
			if _, err := s.exec(ctx, tx, stmt); err != nil {
				_ = tx.Rollback()
				finish(err)
				return
			}
		}
	}
	finish(tx.Commit())
}
