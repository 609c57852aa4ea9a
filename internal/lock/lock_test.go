package lock

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"kiln/internal/lock/locktest"
	"kiln/internal/testsupport"
)

const testTTL = time.Second

func newName(t *testing.T) string { return "test-" + t.Name() + "-" + rand.Text()[:8] }

func open(t *testing.T, dsn, name string) *Locker {
	t.Helper()
	l, err := Open(context.Background(), dsn, name, Options{TTL: testTTL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

func acquire(t *testing.T, l *Locker, within time.Duration) *Lease {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	s, err := l.Acquire(ctx)
	if err != nil {
		t.Fatalf("acquire within %v: %v", within, err)
	}
	t.Cleanup(s.Release)
	return s
}

func TestOneHolderAndRelease(t *testing.T) {
	dsn := locktest.DSN(t)
	name := newName(t)
	var seen []Holder
	a := open(t, dsn, name)
	b, err := Open(context.Background(), dsn, name, Options{TTL: testTTL, OnStandby: func(h Holder) { seen = append(seen, h) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)

	sa := acquire(t, a, time.Second)
	if err := sa.Check(); err != nil {
		t.Fatal(err)
	}
	// b stands by through several renewals of a's lease (3 TTLs).
	ctx, cancel := context.WithTimeout(context.Background(), 3*testTTL)
	_, err = b.Acquire(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("b acquired while a holds the lease: %v", err)
	}
	if err := sa.Check(); err != nil {
		t.Fatalf("a's lease after 3 TTLs of renewals: %v", err)
	}
	if len(seen) == 0 || seen[0].Token != sa.Token() || seen[0].PID != sa.Holder().PID {
		t.Fatalf("standby saw %v, want a's lease (token %d)", seen, sa.Token())
	}

	// A release is announced: b takes over at once, not at the expiry.
	start := time.Now()
	sa.Release()
	if sa.Check() == nil {
		t.Fatal("released lease still passes the fence")
	}
	sb := acquire(t, b, time.Second)
	if d := time.Since(start); d > testTTL/2 {
		t.Errorf("takeover after release took %v", d)
	}
	if sb.Token() <= sa.Token() {
		t.Errorf("token %d after %d: fencing tokens must grow", sb.Token(), sa.Token())
	}
}

// A holder whose backend is killed loses the lease at once; the standby
// takes it only after the database's expiry, which is after the old
// holder's deadline.
func TestTerminatedBackend(t *testing.T) {
	dsn := locktest.DSN(t)
	name := newName(t)
	a, b := open(t, dsn, name), open(t, dsn, name)
	sa := acquire(t, a, time.Second)
	first := sa.Deadline()
	testsupport.Eventually(t, "a renewal", func() bool { return sa.Deadline().After(first) })

	deadline := sa.Deadline()
	killed := time.Now()
	if n := locktest.Terminate(t, dsn, AppName(name, sa.Holder().PID)); n < 2 {
		// a's and b's connections carry the same name (one process here).
		t.Fatalf("terminated %d backends, want 2", n)
	}
	select {
	case <-sa.Context().Done():
	case <-time.After(testTTL / 4):
		t.Fatal("holder did not notice its killed backend")
	}
	if d := time.Since(killed); d > 200*time.Millisecond {
		t.Errorf("loss noticed after %v", d)
	}
	if err := sa.Check(); !errors.Is(err, ErrLost) {
		t.Fatalf("fence after loss: %v, want ErrLost", err)
	}
	if !errors.Is(context.Cause(sa.Context()), ErrLost) {
		t.Errorf("cause %v", context.Cause(sa.Context()))
	}
	sb := acquire(t, b, 3*testTTL)
	if got := time.Now(); got.Before(deadline) {
		t.Fatalf("standby took over %v before the old holder's deadline", deadline.Sub(got))
	}
	if sb.Token() != sa.Token()+1 {
		t.Errorf("token %d, want %d", sb.Token(), sa.Token()+1)
	}
	// The old holder may take it again only as a new lease, after b's.
	ctx, cancel := context.WithTimeout(context.Background(), testTTL)
	defer cancel()
	if _, err := a.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("old holder acquired beside b: %v", err)
	}
}

// A holder that dies without releasing (its connection closed, as by
// SIGKILL) is replaced once its lease expires: within the TTL.
func TestDeadHolderExpires(t *testing.T) {
	dsn := locktest.DSN(t)
	name := newName(t)
	a, b := open(t, dsn, name), open(t, dsn, name)
	sa := acquire(t, a, time.Second)
	// Die: stop renewing without the release statement.
	_ = sa.conn.PgConn().Conn().Close()
	start := time.Now()
	<-sa.Done()
	acquire(t, b, 2*testTTL)
	if d := time.Since(start); d > testTTL+200*time.Millisecond {
		t.Errorf("takeover %v after the holder died, TTL %v", d, testTTL)
	}
}

func TestBadDSN(t *testing.T) {
	dsn := locktest.DSN(t)
	ctx := context.Background()
	for _, c := range []struct{ dsn, want string }{
		{"postgres://postgres@127.0.0.1:1/kiln?connect_timeout=2", `127.0.0.1:1, database "kiln"`},
		{strings.Replace(dsn, "/postgres?", "/kiln_no_such_db?", 1), `database "kiln_no_such_db"`},
		{"postgres://%zz", "bad PostgreSQL DSN"},
	} {
		if c.dsn == dsn {
			continue // KILN_TEST_POSTGRES names no database to replace
		}
		_, err := Open(ctx, c.dsn, "x", Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%q) = %v, want an error containing %q", c.dsn, err, c.want)
		}
	}
}
