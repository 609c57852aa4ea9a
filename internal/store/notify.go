package store

import (
	"context"
	"fmt"
	"time"
)

// notifyChannel is the PostgreSQL channel of Publish and Listen.
const notifyChannel = "kiln_bakes"

// maxPayload is PostgreSQL's limit on a notification's payload, less a
// margin.
const maxPayload = 7900

// Publish sends payload to every server listening on the database (Listen),
// this one included, once the call returns. On PostgreSQL it is a NOTIFY;
// SQLite has no such thing and Publish does nothing (one server per file,
// whose subscribers hear of its changes in process). Payloads are at most
// about 7,900 bytes.
func (s *Store) Publish(ctx context.Context, payload string) error {
	if s.pg == nil {
		return nil
	}
	if len(payload) > maxPayload {
		return fmt.Errorf("publish: payload of %d bytes, want at most %d", len(payload), maxPayload)
	}
	if _, err := s.pg.Exec(ctx, `SELECT pg_notify($1, $2)`, notifyChannel, payload); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	return nil
}

// listenRetry is how long Listen waits before it connects again after
// losing its connection.
const listenRetry = time.Second

// Listen calls fn with every payload Published on the database (by any
// server, this one too), in order, until ctx is done; then it returns nil.
// It holds one connection of its own and connects again when it loses it
// (what was published meanwhile is lost: subscribers re-read the store on
// the next change). fn runs on Listen's goroutine and must not block for
// long. On SQLite it only waits for ctx.
func (s *Store) Listen(ctx context.Context, fn func(payload string)) error {
	if s.pg == nil {
		<-ctx.Done()
		return nil
	}
	for {
		err := s.listenOnce(ctx, fn)
		if ctx.Err() != nil {
			return nil
		}
		_ = err // connection lost: connect again
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(listenRetry):
		}
	}
}

func (s *Store) listenOnce(ctx context.Context, fn func(payload string)) error {
	conn, err := s.pg.Acquire(ctx)
	if err != nil {
		return err
	}
	// The connection was LISTENing: it goes back closed, not to the pool.
	defer func() {
		_ = conn.Conn().Close(context.Background())
		conn.Release()
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			return err
		}
		fn(n.Payload)
	}
}
