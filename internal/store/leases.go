package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Leases make the servers on one database one bakery. A running bake
// belongs to the server that claimed it (ClaimBake) for as long as that
// server renews its lease (RenewBakes); a bake whose lease ran out is
// handed to a new job (ExpiredBakes) and taken over by whichever server
// claims it. A named lease (AcquireLease) elects one server for work that
// must run once per bakery, such as the sweeper.

// RenewBakes extends to now+lease the lease of every running bake that
// owner holds and returns their ids: a bake owner works on that is missing
// from the list is no longer its own (another server took it over after
// the lease ran out) and must stop at once.
func (s *Store) RenewBakes(ctx context.Context, owner string, lease time.Duration) ([]int64, error) {
	until := ms(s.now()) + lease.Milliseconds()
	rows, err := s.db.QueryContext(ctx, `UPDATE bakes SET lease_until = $1
		WHERE owner = $2 AND state = 'running' RETURNING id`, until, owner)
	if err != nil {
		return nil, fmt.Errorf("renew bake leases of %s: %w", owner, err)
	}
	ids, err := scanIDs(rows)
	if err != nil {
		return nil, fmt.Errorf("renew bake leases of %s: %w", owner, err)
	}
	return ids, nil
}

// ReleaseBakes gives up owner's running bakes (a clean shutdown), so that
// the next server to claim one resumes it at once instead of waiting for
// the lease to run out.
func (s *Store) ReleaseBakes(ctx context.Context, owner string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE bakes SET owner = '', lease_until = 0
		WHERE owner = $1 AND state = 'running'`, owner)
	if err != nil {
		return fmt.Errorf("release bakes of %s: %w", owner, err)
	}
	return nil
}

// ExpiredBakes finds the running bakes whose owner's lease ran out (a dead
// server), frees them for any server and gives each a grace of lease
// before it counts as expired again, and returns their ids: the caller
// inserts a job for each.
func (s *Store) ExpiredBakes(ctx context.Context, lease time.Duration) ([]int64, error) {
	now := ms(s.now())
	rows, err := s.db.QueryContext(ctx, `UPDATE bakes SET owner = '', lease_until = $1
		WHERE state = 'running' AND lease_until <= $2 RETURNING id`, now+lease.Milliseconds(), now)
	if err != nil {
		return nil, fmt.Errorf("find expired bakes: %w", err)
	}
	ids, err := scanIDs(rows)
	if err != nil {
		return nil, fmt.Errorf("find expired bakes: %w", err)
	}
	return ids, nil
}

// BakeOwners returns the servers that own a running bake.
func (s *Store) BakeOwners(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT owner FROM bakes WHERE state = 'running' AND owner <> ''`)
	if err != nil {
		return nil, fmt.Errorf("list bake owners: %w", err)
	}
	defer rows.Close()
	var owners []string
	for rows.Next() {
		var o string
		if err := rows.Scan(&o); err != nil {
			return nil, fmt.Errorf("list bake owners: %w", err)
		}
		owners = append(owners, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list bake owners: %w", err)
	}
	return owners, nil
}

// BakeOwner returns the server that holds bake id and until when (zero
// when nobody does).
func (s *Store) BakeOwner(ctx context.Context, id int64) (string, time.Time, error) {
	var owner string
	var until int64
	err := s.db.QueryRowContext(ctx, `SELECT owner, lease_until FROM bakes WHERE id = $1`, id).Scan(&owner, &until)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("get owner of bake %d: %w", id, notFound(err))
	}
	if owner == "" {
		return "", time.Time{}, nil
	}
	return owner, fromMS(until), nil
}

// AcquireLease takes or renews the named lease for holder until now+ttl,
// and reports whether holder has it: true when it was free, expired or
// already holder's. One holder at a time, across every server on the
// database.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	now := ms(s.now())
	rows, err := s.db.QueryContext(ctx, `INSERT INTO leases (name, holder, until) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
		WHERE leases.holder = excluded.holder OR leases.until <= $4
		RETURNING holder`, name, holder, now+ttl.Milliseconds(), now)
	if err != nil {
		return false, fmt.Errorf("acquire lease %q: %w", name, err)
	}
	defer rows.Close()
	got := rows.Next()
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("acquire lease %q: %w", name, err)
	}
	return got, nil
}

// ReleaseLease gives up holder's lease, so another server may take it at
// once.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM leases WHERE name = $1 AND holder = $2`, name, holder); err != nil {
		return fmt.Errorf("release lease %q: %w", name, err)
	}
	return nil
}

// LeaseHolder returns who holds the named lease now ("" when nobody does).
func (s *Store) LeaseHolder(ctx context.Context, name string) (string, error) {
	var holder string
	err := s.db.QueryRowContext(ctx, `SELECT holder FROM leases WHERE name = $1 AND until > $2`, name, ms(s.now())).Scan(&holder)
	if err != nil {
		if err = notFound(err); err == ErrNotFound {
			return "", nil
		}
		return "", fmt.Errorf("get lease %q: %w", name, err)
	}
	return holder, nil
}

// notFound maps sql.ErrNoRows to ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// scanIDs reads a column of ids and closes rows.
func scanIDs(rows *sql.Rows) ([]int64, error) {
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
