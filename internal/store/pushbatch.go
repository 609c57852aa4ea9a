package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"slices"
	"strings"
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
}

// errClosed is the error of a push after Close.
var errClosed = errors.New("store is closed")

// pushBatcher group-commits concurrent pushes: callers queue their push and
// wait; committer goroutines, started with the first push, each commit the
// pending pushes (up to maxPushBatch) in one transaction, complete them,
// and go on while more are pending. No caller serves the others, and no
// batch waits for a caller it was handed to to be scheduled (behind every
// caller just completed, in a burst). SQLite has one committer (one
// connection); PostgreSQL several (pgCommitters), whose batches run side
// by side on their own connections, so that a batch's round trips to the
// server do not hold up the next.
type pushBatcher struct {
	committers int // set before the first push; 0 means 1

	mu      sync.Mutex
	pending []*pushReq
	running bool          // the committer goroutines exist
	closed  bool          // Close was called: no more pushes
	wake    chan struct{} // capacity 1: pending is not empty
	wg      sync.WaitGroup
}

// pgCommitters is how many batches of pushes run at once on PostgreSQL.
const pgCommitters = 2

func (b *pushBatcher) do(ctx context.Context, s *Store, r *pushReq) (PushResult, error) {
	r.done = make(chan struct{})
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return PushResult{}, errClosed
	}
	b.pending = append(b.pending, r)
	if !b.running {
		b.running = true
		wake := make(chan struct{}, 1)
		b.wake = wake
		for range max(b.committers, 1) {
			b.wg.Go(func() { b.commit(s, wake) })
		}
	}
	select { // under mu, so that close cannot close wake meanwhile
	case b.wake <- struct{}{}:
	default: // already signalled
	}
	b.mu.Unlock()

	select {
	case <-r.done:
		return r.res, r.err
	case <-ctx.Done():
		if b.withdraw(r) {
			return PushResult{}, ctx.Err()
		}
		<-r.done // already in a batch: its result stands
		return r.res, r.err
	}
}

// commit is a committer goroutine: it runs batches until none is pending,
// sleeps until the next push, and exits after close. Taking a batch that
// leaves pushes pending wakes another committer for them.
func (b *pushBatcher) commit(s *Store, wake chan struct{}) {
	for range wake {
		for {
			b.mu.Lock()
			n := min(len(b.pending), maxPushBatch)
			batch := slices.Clone(b.pending[:n])
			b.pending = slices.Delete(b.pending, 0, n)
			if len(b.pending) > 0 && !b.closed {
				select {
				case wake <- struct{}{}:
				default:
				}
			}
			b.mu.Unlock()
			if n == 0 {
				break
			}
			s.commitPushes(batch)
		}
	}
}

// close refuses further pushes, lets the committer finish what is pending,
// and waits for it to exit.
func (b *pushBatcher) close() {
	b.mu.Lock()
	b.closed = true
	running := b.running && b.wake != nil
	if running {
		close(b.wake) // the committer drains pending, then exits
		b.wake = nil
	}
	b.mu.Unlock()
	if running {
		b.wg.Wait()
	}
}

// withdraw removes r from the pending list unless the committer took it; it
// reports whether it did.
func (b *pushBatcher) withdraw(r *pushReq) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	i := slices.Index(b.pending, r)
	if i < 0 {
		return false
	}
	b.pending = slices.Delete(b.pending, i, i+1)
	return true
}

// commitPushes runs a batch in one transaction and completes every request.
//
// It first runs the pushes back to back. A push that fails having written
// nothing (an unknown project) fails alone; any other failure may have left
// part of that push in the transaction, so the transaction is rolled back and
// the batch run again with each push in a savepoint, so that a failing push
// is rolled back alone. Failures are rare: the common batch pays for no
// savepoints.
func (s *Store) commitPushes(batch []*pushReq) {
	err := s.tryPushes(batch, false)
	if errors.Is(err, errRetryWithSavepoints) {
		err = s.tryPushes(batch, true)
	}
	for _, r := range batch {
		if err != nil && r.err == nil {
			r.res, r.err = PushResult{}, err
		}
		close(r.done)
	}
}

// errRetryWithSavepoints: a push failed midway in a batch run without
// savepoints; the transaction was rolled back.
var errRetryWithSavepoints = errors.New("push failed midway: retry the batch with savepoints")

// tryPushes runs the batch in one transaction, each push in a savepoint when
// savepoints is set, and commits it. It sets each request's result but
// completes none. Without savepoints it returns errRetryWithSavepoints,
// having rolled back, when a push failed midway.
func (s *Store) tryPushes(batch []*pushReq, savepoints bool) error {
	// The transaction outlives any one caller's ctx: it carries the others'
	// pushes too.
	ctx := context.Background()
	now := ms(s.now())
	jtx, err := s.beginConnTx(ctx)
	if err != nil {
		return err
	}
	defer jtx.conn.Close()
	tx := jtx.sql
	bt := &batchTx{s: s, tx: tx, jtx: jtx}
	// In project order: every server's batches then lock projects in the
	// same order (see lockProject), and so never deadlock each other.
	ordered := slices.Clone(batch)
	slices.SortStableFunc(ordered, func(a, b *pushReq) int { return strings.Compare(a.p.Project, b.p.Project) })
	if err := bt.lockProjects(ctx, ordered); err != nil {
		_ = tx.Rollback()
		return err
	}
	for _, r := range ordered {
		r.res, r.err = PushResult{}, nil
		if err := r.ctx.Err(); err != nil {
			r.err = err
			continue
		}
		if savepoints {
			if _, err := bt.stmt(ctx, `SAVEPOINT push`).ExecContext(ctx); err != nil {
				_ = tx.Rollback()
				return err
			}
		}
		// Not cancellable midway: SQLite rolls back the whole transaction
		// when a statement in it is interrupted, the other pushes with it.
		r.res, r.err = s.pushOne(context.WithoutCancel(r.ctx), bt, r.p, r.enqueue, now)
		if r.err != nil {
			r.res = PushResult{}
		}
		var stmts []string
		switch {
		case savepoints && r.err != nil:
			stmts = []string{`ROLLBACK TO push`, `RELEASE push`}
		case savepoints:
			stmts = []string{`RELEASE push`}
		case r.err != nil && r.err != ErrNotFound:
			// Compared by identity: pushOne returns ErrNotFound itself only
			// when it wrote nothing; a wrapped one (from enqueue) may follow
			// writes.
			_ = tx.Rollback()
			return errRetryWithSavepoints
		}
		for _, stmt := range stmts {
			if _, err := bt.stmt(ctx, stmt).ExecContext(ctx); err != nil {
				_ = tx.Rollback()
				return err
			}
		}
	}
	return tx.Commit()
}

// batchTx is a batch's transaction with the hot statements (see hotQueries)
// bound to it as they are first used, once per batch instead of once per
// push. They close with the transaction.
type batchTx struct {
	s      *Store
	tx     *sql.Tx
	jtx    *Tx // tx with its connection, for EnqueueFunc
	stmts  map[string]*sql.Stmt
	exists map[string]bool // the batch's projects that exist, locked
}

// lockProjects locks the projects of the batch (see Store.lockProject), in
// one statement and in name order, and notes which exist.
func (bt *batchTx) lockProjects(ctx context.Context, batch []*pushReq) error {
	var names []string
	for _, r := range batch {
		if len(names) == 0 || names[len(names)-1] != r.p.Project {
			names = append(names, r.p.Project)
		}
	}
	arg, err := json.Marshal(names)
	if err != nil {
		return err
	}
	rows, err := bt.stmt(ctx, bt.s.dialect.lockProjects).QueryContext(ctx, string(arg))
	if err != nil {
		return err
	}
	defer rows.Close()
	bt.exists = make(map[string]bool, len(names))
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return err
		}
		bt.exists[name] = true
	}
	return rows.Err()
}

// stmt returns the hot statement query bound to the transaction.
func (bt *batchTx) stmt(ctx context.Context, query string) *sql.Stmt {
	st, ok := bt.stmts[query]
	if !ok {
		if bt.stmts == nil {
			bt.stmts = make(map[string]*sql.Stmt, len(hotQueries))
		}
		st = bt.tx.StmtContext(ctx, bt.s.stmts[query])
		bt.stmts[query] = st
	}
	return st
}
