// Package lock is kiln run's lock per graph in PostgreSQL: a lease row with a
// fencing token, held over one dedicated connection.
//
// A lease is a row of kiln_run_locks (name, token, holder, expires). Taking
// it is one statement that succeeds only when the row is absent or its
// expiry (the database's clock) has passed, and it increments the token, so
// every holder of a name has a token greater than every earlier one. The
// holder renews it every TTL/4 with an UPDATE conditional on its token; a
// renewal that fails, or a dedicated connection that drops (a killed
// backend, a network error), loses the lease at once.
//
// Fencing. The holder trusts its lease only until Deadline: the moment it
// sent its last successful renewal plus TTL minus Margin, on its own
// monotonic clock. The database sets the expiry from its clock when it
// executes that renewal, which is later, so the database expires the lease
// at least Margin after the holder has stopped trusting it. No other
// process can take a name before that expiry. Lease.Check is the fence: a
// caller asks it right before every write it sends, and Lease.Context is
// cancelled at the loss, so work in flight stops too. Two holders never
// overlap as long as the clocks' rates differ by less than Margin/TTL and a
// write that passed the fence reaches its target within Margin.
package lock

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultTTL is a lease's lifetime without renewal: a killed holder is
// replaced within it.
const DefaultTTL = 4 * time.Second

// channel is the LISTEN/NOTIFY channel a released lease is announced on, so
// standbys take over at once instead of at the expiry.
const channel = "kiln_run_lock"

// ErrLost is the cause of a lease's end when it was not released.
var ErrLost = errors.New("lock lost")

// Options tune a Locker.
type Options struct {
	// TTL of a lease (default DefaultTTL). Renewals are every TTL/4 and
	// Margin is TTL/4.
	TTL time.Duration
	// OnStandby, when set, is called while waiting for the lease, whenever
	// the holder seen changes (the zero Holder: nobody).
	OnStandby func(Holder)
	Log       *slog.Logger
}

// Holder is who holds a name.
type Holder struct {
	Host  string
	PID   int
	Since time.Time // when this holder took the lease (database clock)
	Token int64
}

// String is "host pid N since RFC3339", or "nobody".
func (h Holder) String() string {
	if h.Token == 0 {
		return "nobody"
	}
	return fmt.Sprintf("%s pid %d since %s", h.Host, h.PID, h.Since.UTC().Format(time.RFC3339))
}

// Locker takes and holds the lease of one name. It owns one connection at
// a time: Acquire's while waiting, then the Lease's until it ends.
type Locker struct {
	cfg  *pgx.ConnConfig
	name string
	o    Options
	host string
	pid  int
	log  *slog.Logger

	conn *pgx.Conn // nil after a lost connection; Acquire dials again
	cur  *Lease    // the last lease; it owns conn until it is done
	seen Holder
}

// Open connects to dsn, creates the lock table when it is missing, and
// returns a Locker for name. An unparsable DSN, an unreachable server, a
// refused login or a missing database is an error naming the host and the
// database.
func Open(ctx context.Context, dsn, name string, o Options) (*Locker, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("lock: bad PostgreSQL DSN: %w", err)
	}
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	host, _ := os.Hostname()
	l := &Locker{cfg: cfg, name: name, o: o, host: host, pid: os.Getpid(), log: o.Log}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = AppName(name, l.pid)
	}
	if err := l.dial(ctx); err != nil {
		return nil, err
	}
	if err := l.migrate(ctx); err != nil {
		l.Close()
		return nil, l.where(err)
	}
	return l, nil
}

// AppName is the application_name of the lock's connection, unless the DSN
// sets one: an operator finds it in pg_stat_activity.
func AppName(name string, pid int) string { return fmt.Sprintf("kiln run lock %s pid %d", name, pid) }

// Where names the server and database, for messages.
func (l *Locker) Where() string {
	return fmt.Sprintf("PostgreSQL at %s:%d, database %q", l.cfg.Host, l.cfg.Port, l.cfg.Database)
}

func (l *Locker) where(err error) error { return fmt.Errorf("lock: %s: %w", l.Where(), err) }

// TTL is the lease's lifetime.
func (l *Locker) TTL() time.Duration { return l.o.TTL }

// Close releases the lease, if one is held, and closes the connection.
func (l *Locker) Close() {
	if l.cur != nil {
		l.cur.Release()
		l.cur = nil
	}
	if l.conn != nil {
		_ = l.conn.Close(context.Background())
		l.conn = nil
	}
}

func (l *Locker) dial(ctx context.Context) error {
	c, err := pgx.ConnectConfig(ctx, l.cfg.Copy())
	if err != nil {
		return l.where(err)
	}
	if _, err := c.Exec(ctx, "LISTEN "+channel); err != nil {
		_ = c.Close(ctx)
		return l.where(err)
	}
	l.conn = c
	return nil
}

// migrate creates the table. Concurrent first starts serialize on a
// transaction-level advisory lock, since CREATE TABLE IF NOT EXISTS alone
// may race.
func (l *Locker) migrate(ctx context.Context) error {
	return pgx.BeginFunc(ctx, l.conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext('kiln_run_locks'))"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS kiln_run_locks (
	name    text PRIMARY KEY,
	token   bigint NOT NULL,
	host    text NOT NULL,
	pid     integer NOT NULL,
	since   timestamptz NOT NULL,
	expires timestamptz NOT NULL
)`)
		return err
	})
}

// take is the one statement that acquires: it succeeds when the row is
// absent or expired, and increments the token.
const take = `INSERT INTO kiln_run_locks AS l (name, token, host, pid, since, expires)
VALUES ($1, 1, $2, $3, now(), now() + $4 * interval '1 millisecond')
ON CONFLICT (name) DO UPDATE
	SET token = l.token + 1, host = EXCLUDED.host, pid = EXCLUDED.pid, since = now(), expires = EXCLUDED.expires
	WHERE l.expires <= now()
RETURNING token, since`

// holder reads the current holder and how long its lease still runs by the
// database's clock (no clock skew between here and there matters).
const holder = `SELECT token, host, pid, since, GREATEST(0, EXTRACT(EPOCH FROM expires - now()) * 1000)::bigint
FROM kiln_run_locks WHERE name = $1`

// retryDial paces reconnection attempts while standing by.
const retryDial = time.Second

// Acquire waits until this process holds the lease, and returns it. A
// Locker holds one lease at a time: Acquire first waits for the previous
// one to end (lost or released). While it waits for the lease, it tries again at the current lease's expiry (read from the
// database) or as soon as a release is announced. It returns only ctx's
// error; a lost connection is dialled again.
func (l *Locker) Acquire(ctx context.Context) (*Lease, error) {
	if l.cur != nil {
		<-l.cur.done
		l.cur = nil
	}
	for {
		if l.conn == nil {
			if err := l.dial(ctx); err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				l.log.Warn("lock: connect", "err", err)
				if err := sleep(ctx, retryDial); err != nil {
					return nil, err
				}
				continue
			}
		}
		ls, wait, err := l.try(ctx)
		if err == nil && ls != nil {
			l.cur = ls
			return ls, nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			l.log.Warn("lock: try", "err", l.where(err))
			l.drop()
			if err := sleep(ctx, retryDial); err != nil {
				return nil, err
			}
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		_, werr := l.conn.WaitForNotification(wctx)
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if werr != nil && !pgconn.Timeout(werr) && !errors.Is(werr, context.DeadlineExceeded) {
			l.log.Warn("lock: wait", "err", l.where(werr))
			l.drop()
		}
	}
}

func (l *Locker) drop() {
	if l.conn != nil {
		_ = l.conn.Close(context.Background())
	}
	l.conn = nil
}

// try takes the lease if it is free; otherwise it reports the holder and
// how long to wait before trying again.
func (l *Locker) try(ctx context.Context) (*Lease, time.Duration, error) {
	sent := time.Now()
	var h Holder
	err := l.conn.QueryRow(ctx, take, l.name, l.host, l.pid, l.o.TTL.Milliseconds()).Scan(&h.Token, &h.Since)
	if err == nil {
		h.Host, h.PID = l.host, l.pid
		l.seen = Holder{}
		return l.hold(h, sent), 0, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, err
	}
	var left int64
	if err := l.conn.QueryRow(ctx, holder, l.name).Scan(&h.Token, &h.Host, &h.PID, &h.Since, &left); err != nil {
		if errors.Is(err, pgx.ErrNoRows) { // deleted by hand meanwhile: try again now
			return nil, 0, nil
		}
		return nil, 0, err
	}
	if left == 0 {
		h = Holder{}
	}
	if h != l.seen {
		l.seen = h
		if l.o.OnStandby != nil {
			l.o.OnStandby(h)
		}
	}
	// At the expiry, a little after (the statement's now() is its start).
	return nil, time.Duration(left)*time.Millisecond + 5*time.Millisecond, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

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
