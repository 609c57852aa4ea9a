package lock

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Lease is a held lock. It ends when released, or lost: a failed renewal,
// a dropped connection, or its Deadline passing without a renewal.
type Lease struct {
	l      *Locker
	conn   *pgx.Conn // the Locker's, owned by keep until done
	holder Holder
	ctx    context.Context
	cancel context.CancelCauseFunc
	stop   chan struct{}
	once   sync.Once
	done   chan struct{}

	mu       sync.Mutex
	deadline time.Time
	timer    *time.Timer
	err      error // why it ended
}

func (l *Locker) hold(h Holder, sent time.Time) *Lease {
	ctx, cancel := context.WithCancelCause(context.Background())
	s := &Lease{l: l, conn: l.conn, holder: h, ctx: ctx, cancel: cancel, stop: make(chan struct{}), done: make(chan struct{})}
	s.mu.Lock()
	s.extend(sent)
	s.mu.Unlock()
	go s.keep()
	return s
}

// Holder is this lease's holder: this process, its token and since.
func (s *Lease) Holder() Holder { return s.holder }

// Token is the fencing token: greater than every earlier holder's.
func (s *Lease) Token() int64 { return s.holder.Token }

// Context is cancelled the moment the lease is lost or released; its cause
// is the reason (wrapping ErrLost when lost).
func (s *Lease) Context() context.Context { return s.ctx }

// Done is closed once the lease has ended and its connection is free.
func (s *Lease) Done() <-chan struct{} { return s.done }

// Check is the fence: nil while the lease is held and its Deadline has not
// passed, else why not. Ask it right before every write.
func (s *Lease) Check() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if !time.Now().Before(s.deadline) {
		return fmt.Errorf("%w: not renewed in time", ErrLost)
	}
	return nil
}

// Deadline is when this process stops trusting the lease unless renewed.
func (s *Lease) Deadline() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deadline
}

// extend moves the deadline after a renewal sent at sent; s.mu is held.
func (s *Lease) extend(sent time.Time) {
	ttl := s.l.o.TTL
	s.deadline = sent.Add(ttl - ttl/4)
	d := time.Until(s.deadline)
	if s.timer == nil {
		s.timer = time.AfterFunc(d, func() { s.end(fmt.Errorf("%w: not renewed in time", ErrLost)) })
		return
	}
	s.timer.Reset(d)
}

// end records why the lease ended (the first reason wins) and cancels its
// context at once.
func (s *Lease) end(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
		s.timer.Stop()
	}
	err = s.err
	s.mu.Unlock()
	s.cancel(err)
}

// renew extends the lease if it is still this token's and unexpired.
const renew = `UPDATE kiln_run_locks SET expires = now() + $3 * interval '1 millisecond'
WHERE name = $1 AND token = $2 AND expires > now()`

// release expires the lease now (the row stays, so tokens keep growing) and
// tells the standbys.
const release = `WITH r AS (UPDATE kiln_run_locks SET expires = now() WHERE name = $1 AND token = $2 RETURNING name)
SELECT pg_notify($3, name) FROM r`

// keep renews the lease every TTL/4 until it is lost or released. Between
// renewals it waits on the connection, so a killed backend or a dropped
// connection is noticed at once, not at the next renewal.
func (s *Lease) keep() {
	defer close(s.done)
	l := s.l
	every := l.o.TTL / 4
	next := time.Now().Add(every)
	for {
		wctx, cancel := context.WithDeadline(context.Background(), next)
		go func() {
			select {
			case <-s.stop:
				cancel()
			case <-wctx.Done():
			}
		}()
		_, err := s.conn.WaitForNotification(wctx)
		cancel()
		select {
		case <-s.stop:
			s.releaseNow()
			return
		default:
		}
		if err != nil && !pgconn.Timeout(err) && !errors.Is(err, context.DeadlineExceeded) {
			s.lose(fmt.Errorf("%w: connection: %v", ErrLost, err))
			return
		}
		if time.Now().Before(next) {
			continue // a notification (another name's release): keep waiting
		}
		sent := time.Now()
		rctx, rcancel := context.WithDeadline(context.Background(), s.Deadline())
		tag, err := s.conn.Exec(rctx, renew, l.name, s.holder.Token, l.o.TTL.Milliseconds())
		rcancel()
		switch {
		case err != nil:
			s.lose(fmt.Errorf("%w: renew: %v", ErrLost, err))
			return
		case tag.RowsAffected() == 0:
			s.lose(fmt.Errorf("%w: taken over or expired", ErrLost))
			return
		}
		s.mu.Lock()
		if s.err == nil {
			s.extend(sent)
		}
		s.mu.Unlock()
		if s.Check() != nil { // the deadline fired meanwhile
			s.lose(s.Check())
			return
		}
		next = sent.Add(every)
	}
}

// lose ends the lease as lost and drops the connection, which may be broken.
func (s *Lease) lose(err error) {
	s.end(err)
	s.l.log.Error("lock lost", "name", s.l.name, "token", s.holder.Token, "err", err)
	s.l.drop()
}

func (s *Lease) releaseNow() {
	s.end(errors.New("lock released"))
	l := s.l
	ctx, cancel := context.WithTimeout(context.Background(), l.o.TTL)
	defer cancel()
	if _, err := s.conn.Exec(ctx, release, l.name, s.holder.Token, channel); err != nil {
		l.log.Warn("lock: release", "err", l.where(err))
		l.drop()
	}
}

// Release gives the lease up: it stops renewing, expires the row and tells
// the standbys, so one takes over at once. It returns when done; the
// Locker may Acquire again.
func (s *Lease) Release() {
	s.once.Do(func() { close(s.stop) })
	<-s.done
}
