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
		if err := l.wait(ctx, wait); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			l.log.Warn("lock: wait", "err", l.where(err))
			l.drop()
		}
	}
}

// wait blocks for d, or until this name's release is announced. Releases
// of other names (one channel serves every graph) do not end it.
func (l *Locker) wait(ctx context.Context, d time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		n, err := l.conn.WaitForNotification(wctx)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil && (pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded)):
			return nil
		case err != nil:
			return err
		case n.Payload == l.name:
			return nil
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
