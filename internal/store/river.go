package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
)

// DefaultMaxWorkers is how many jobs a worker client runs at once when the
// given config names no queues. Bakes spend their time waiting on EC2, not on
// the CPU, so this can be generous.
const DefaultMaxWorkers = 100

// DefaultFetchPollInterval is how often a worker client looks for new jobs.
// SQLite has no LISTEN/NOTIFY, so this bounds how long a new job can sit
// before it starts; on PostgreSQL River hears of new jobs at once and
// polls only as a fallback.
const DefaultFetchPollInterval = 200 * time.Millisecond

// Jobs is a River client on the store's database, whichever its driver:
// riversqlite on SQLite, riverpgxv5 on PostgreSQL. It has the methods of
// river.Client that kiln uses; InsertTx takes the store's own transaction.
type Jobs struct {
	lite *river.Client[*sql.Tx]
	pg   *river.Client[pgx.Tx]
}

// NewRiverClient returns a River client on the store's database; it does not
// start it. With workers == nil it is an insert-only client (for the webhook
// handler and the API); otherwise it works the default queue with
// DefaultMaxWorkers unless cfg sets Queues. cfg may be nil; it is copied, and
// its Workers field is replaced by workers. The caller owns the client: Start
// it with a context, Stop it before closing the Store.
func (s *Store) NewRiverClient(workers *river.Workers, cfg *river.Config) (*Jobs, error) {
	var c river.Config
	if cfg != nil {
		c = *cfg
	}
	c.Workers = workers
	if workers != nil && len(c.Queues) == 0 {
		c.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: DefaultMaxWorkers}}
	}
	if workers == nil {
		c.Queues = nil
	}
	if c.FetchPollInterval == 0 {
		c.FetchPollInterval = DefaultFetchPollInterval
	}
	if c.FetchCooldown == 0 {
		c.FetchCooldown = min(c.FetchPollInterval, 100*time.Millisecond)
	}
	var (
		j   Jobs
		err error
	)
	if s.pg != nil {
		j.pg, err = river.NewClient(riverpgxv5.New(s.pg), &c)
	} else {
		j.lite, err = river.NewClient(riversqlite.New(s.db), &c)
	}
	if err != nil {
		return nil, fmt.Errorf("new river client: %w", err)
	}
	return &j, nil
}

// Start starts the client's workers and maintenance services (see
// river.Client.Start).
func (j *Jobs) Start(ctx context.Context) error {
	if j.pg != nil {
		return j.pg.Start(ctx)
	}
	return j.lite.Start(ctx)
}

// Stop waits for the running jobs to finish, then stops.
func (j *Jobs) Stop(ctx context.Context) error {
	if j.pg != nil {
		return j.pg.Stop(ctx)
	}
	return j.lite.Stop(ctx)
}

// StopAndCancel cancels the running jobs' contexts and waits for them.
func (j *Jobs) StopAndCancel(ctx context.Context) error {
	if j.pg != nil {
		return j.pg.StopAndCancel(ctx)
	}
	return j.lite.StopAndCancel(ctx)
}

// Insert inserts a job in a transaction of its own.
func (j *Jobs) Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error) {
	if j.pg != nil {
		return j.pg.Insert(ctx, args, opts)
	}
	return j.lite.Insert(ctx, args, opts)
}

// InsertTx inserts a job inside tx: it commits or rolls back with it.
func (j *Jobs) InsertTx(ctx context.Context, tx *Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error) {
	if j.pg == nil {
		return j.lite.InsertTx(ctx, tx.sql, args, opts)
	}
	var res *rivertype.JobInsertResult
	err := tx.conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("insert job: connection is a %T, not pgx's", dc)
		}
		var err error
		res, err = j.pg.InsertTx(ctx, &connTx{c: c.Conn()}, args, opts)
		return err
	})
	return res, err
}

// JobList lists jobs (see river.Client.JobList); tests and tools use it.
func (j *Jobs) JobList(ctx context.Context, params *river.JobListParams) ([]*rivertype.JobRow, error) {
	var (
		res *river.JobListResult
		err error
	)
	if j.pg != nil {
		res, err = j.pg.JobList(ctx, params)
	} else {
		res, err = j.lite.JobList(ctx, params)
	}
	if err != nil {
		return nil, err
	}
	return res.Jobs, nil
}

// migrateRiver brings River's own tables up to the version this binary's
// River expects.
func (s *Store) migrateRiver(ctx context.Context) error {
	var err error
	if s.pg != nil {
		var m *rivermigrate.Migrator[pgx.Tx]
		if m, err = rivermigrate.New(riverpgxv5.New(s.pg), nil); err == nil {
			_, err = m.Migrate(ctx, rivermigrate.DirectionUp, nil)
		}
	} else {
		var m *rivermigrate.Migrator[*sql.Tx]
		if m, err = rivermigrate.New(riversqlite.New(s.db), nil); err == nil {
			_, err = m.Migrate(ctx, rivermigrate.DirectionUp, nil)
		}
	}
	if err != nil {
		return fmt.Errorf("migrate river: %w", err)
	}
	return nil
}
