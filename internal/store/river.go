package store

import (
	"database/sql"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riversqlite"
)

// RiverDriver returns a River driver on the store's pool. Every client and
// migrator made from it shares the store's single connection.
func (s *Store) RiverDriver() *riversqlite.Driver { return riversqlite.New(s.db) }

// DefaultMaxWorkers is how many jobs a worker client runs at once when the
// given config names no queues. Bakes spend their time waiting on EC2, not on
// the CPU, so this can be generous.
const DefaultMaxWorkers = 100

// DefaultFetchPollInterval is how often a worker client looks for new jobs.
// SQLite has no LISTEN/NOTIFY, so this bounds how long a new job can sit
// before it starts.
const DefaultFetchPollInterval = 200 * time.Millisecond

// NewRiverClient returns a River client on the store's database; it does not
// start it. With workers == nil it is an insert-only client (for the webhook
// handler and the API); otherwise it works the default queue with
// DefaultMaxWorkers unless cfg sets Queues. cfg may be nil; it is copied, and
// its Workers field is replaced by workers. The caller owns the client: Start
// it with a context, Stop it before closing the Store.
func (s *Store) NewRiverClient(workers *river.Workers, cfg *river.Config) (*river.Client[*sql.Tx], error) {
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
	client, err := river.NewClient(s.RiverDriver(), &c)
	if err != nil {
		return nil, fmt.Errorf("new river client: %w", err)
	}
	return client, nil
}
