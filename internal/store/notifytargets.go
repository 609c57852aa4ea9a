package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// NotifyTarget is one entry of a project's notify: list (migration 011).
type NotifyTarget struct {
	URL    string
	Secret string   // clear text here; sealed in the database
	Events []string // the event names it is sent; never empty once parsed
}

// PutNotifyTargets replaces a project's notification targets with ts, in
// order (none: it has none). The project must exist (ErrNotFound).
func (s *Store) PutNotifyTargets(ctx context.Context, project string, ts []NotifyTarget) error {
	type row struct{ url, secret, events string }
	rows := make([]row, len(ts))
	for i, t := range ts {
		sealed, err := s.seal(t.Secret)
		if err != nil {
			return fmt.Errorf("put notify targets of %q: %w", project, err)
		}
		ev, err := json.Marshal(nonNil(t.Events))
		if err != nil {
			return fmt.Errorf("put notify targets of %q: %w", project, err)
		}
		rows[i] = row{t.URL, sealed, string(ev)}
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM projects WHERE name = $1`, project).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM notify_targets WHERE project = $1`, project); err != nil {
			return err
		}
		for i, r := range rows {
			if _, err := tx.ExecContext(ctx, `INSERT INTO notify_targets (project, position, url, secret, events)
				VALUES ($1, $2, $3, $4, $5)`, project, i, r.url, r.secret, r.events); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put notify targets of %q: %w", project, err)
	}
	return nil
}

// NotifyTargets returns a project's notification targets in order, their
// secrets opened (callers must not log them). A project with none, or no
// such project, has none.
func (s *Store) NotifyTargets(ctx context.Context, project string) ([]NotifyTarget, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT url, secret, events FROM notify_targets
		WHERE project = $1 ORDER BY position`, project)
	if err != nil {
		return nil, fmt.Errorf("get notify targets of %q: %w", project, err)
	}
	defer rows.Close()
	var out []NotifyTarget
	for rows.Next() {
		var t NotifyTarget
		var events string
		if err := rows.Scan(&t.URL, &t.Secret, &events); err != nil {
			return nil, fmt.Errorf("get notify targets of %q: %w", project, err)
		}
		if t.Secret, err = s.open(t.Secret); err != nil {
			return nil, fmt.Errorf("get notify targets of %q: %w", project, err)
		}
		if err := json.Unmarshal([]byte(events), &t.Events); err != nil {
			return nil, fmt.Errorf("get notify targets of %q: events: %w", project, err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("get notify targets of %q: %w", project, err)
	}
	return out, nil
}

// CommitStatus is a project's commit-status reporter (the file's
// commit_status:): where a pushed bake's state is reported.
type CommitStatus struct {
	Provider string // "github" or "gitlab"
	APIURL   string // the API base, e.g. https://api.github.com
	Token    string // clear text here; sealed in the database
}

// PutCommitStatus sets a project's commit-status reporter; nil removes it.
// The project must exist (ErrNotFound).
func (s *Store) PutCommitStatus(ctx context.Context, project string, c *CommitStatus) error {
	if c == nil {
		if _, err := s.db.ExecContext(ctx, `DELETE FROM commit_status WHERE project = $1`, project); err != nil {
			return fmt.Errorf("put commit status of %q: %w", project, err)
		}
		return nil
	}
	token, err := s.seal(c.Token)
	if err != nil {
		return fmt.Errorf("put commit status of %q: %w", project, err)
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO commit_status (project, provider, api_url, token)
		SELECT name, $1, $2, $3 FROM projects WHERE name = $4
		ON CONFLICT (project) DO UPDATE SET provider = excluded.provider, api_url = excluded.api_url,
			token = excluded.token`, c.Provider, c.APIURL, token, project)
	if err == nil {
		err = wantOne(res)
	}
	if err != nil {
		return fmt.Errorf("put commit status of %q: %w", project, err)
	}
	return nil
}

// CommitStatusOf returns a project's commit-status reporter, token opened;
// nil when it has none.
func (s *Store) CommitStatusOf(ctx context.Context, project string) (*CommitStatus, error) {
	var c CommitStatus
	err := s.db.QueryRowContext(ctx, `SELECT provider, api_url, token FROM commit_status WHERE project = $1`,
		project).Scan(&c.Provider, &c.APIURL, &c.Token)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err == nil {
		c.Token, err = s.open(c.Token)
	}
	if err != nil {
		return nil, fmt.Errorf("get commit status of %q: %w", project, err)
	}
	return &c, nil
}

// Delivery states.
const (
	DeliveryPending   = "pending"   // not sent yet, or being retried
	DeliveryDelivered = "delivered" // the target answered 2xx
	DeliveryFailed    = "failed"    // given up after the last attempt
)

// Delivery is one event's delivery to one target.
type Delivery struct {
	Key       string // unique: the event's id and the target
	Project   string
	Target    string
	Event     string
	State     string
	Attempts  int
	LastError string
	Created   time.Time
	Updated   time.Time
}

// StartDelivery records an attempt of delivery d (its Key, Project, Target
// and Event) and reports whether to send it: false when it was delivered
// already (a job run again after a crash), so it is sent once.
func (s *Store) StartDelivery(ctx context.Context, d Delivery) (send bool, err error) {
	now := ms(s.now())
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO notify_deliveries (key, project, target, event, state,
			attempts, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 0, $6, $7)
			ON CONFLICT (key) DO NOTHING`, d.Key, d.Project, d.Target, d.Event, DeliveryPending, now, now); err != nil {
			return err
		}
		var state string
		if err := tx.QueryRowContext(ctx, `SELECT state FROM notify_deliveries WHERE key = $1`, d.Key).Scan(&state); err != nil {
			return err
		}
		if state == DeliveryDelivered {
			return nil
		}
		send = true
		_, err := tx.ExecContext(ctx, `UPDATE notify_deliveries SET attempts = attempts + 1, updated_at = $1
			WHERE key = $2`, now, d.Key)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("start delivery %q: %w", d.Key, err)
	}
	return send, nil
}

// FinishDelivery records how an attempt of delivery key ended: state is
// DeliveryDelivered, DeliveryPending (to be retried) or DeliveryFailed;
// errMsg says why not delivered.
func (s *Store) FinishDelivery(ctx context.Context, key, state, errMsg string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE notify_deliveries SET state = $1, last_error = $2, updated_at = $3
		WHERE key = $4`, state, errMsg, ms(s.now()), key)
	if err != nil {
		return fmt.Errorf("finish delivery %q: %w", key, err)
	}
	return nil
}

// Deliveries returns a project's latest deliveries, newest first, at most
// limit.
func (s *Store) Deliveries(ctx context.Context, project string, limit int) ([]Delivery, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT key, project, target, event, state, attempts, last_error,
		created_at, updated_at FROM notify_deliveries WHERE project = $1
		ORDER BY updated_at DESC, key LIMIT $2`, project, limit)
	if err != nil {
		return nil, fmt.Errorf("list deliveries of %q: %w", project, err)
	}
	defer rows.Close()
	var out []Delivery
	for rows.Next() {
		var d Delivery
		var c, u int64
		if err := rows.Scan(&d.Key, &d.Project, &d.Target, &d.Event, &d.State, &d.Attempts, &d.LastError, &c, &u); err != nil {
			return nil, fmt.Errorf("list deliveries of %q: %w", project, err)
		}
		d.Created, d.Updated = fromMS(c), fromMS(u)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list deliveries of %q: %w", project, err)
	}
	return out, nil
}
