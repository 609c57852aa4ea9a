package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// StepState is the state of one step of a bake.
type StepState string

// The states of a step.
const (
	StepRunning   StepState = "running"
	StepSucceeded StepState = "succeeded"
	StepFailed    StepState = "failed"
	StepSkipped   StepState = "skipped"
	StepCancelled StepState = "cancelled"
)

// Step is one recorded step of a bake ("launch builder", "wait stopped", ...).
type Step struct {
	BakeID   int64
	Name     string
	State    StepState
	Started  time.Time
	Finished time.Time // zero while running
	Detail   string    // e.g. the builder's instance id, the image id, an error
}

// StartStep records that a step began. Starting a step again (after a
// restart) keeps its first start time, sets it running and replaces detail.
func (s *Store) StartStep(ctx context.Context, bakeID int64, name, detail string) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO bake_steps (bake_id, name, state, started_at, detail)
		VALUES ($1, $2, 'running', $3, $4)
		ON CONFLICT (bake_id, name) DO UPDATE SET state = 'running', finished_at = NULL, detail = excluded.detail`,
		bakeID, name, ms(s.now()), detail)
	if err != nil {
		return fmt.Errorf("start step %q of bake %d: %w", name, bakeID, err)
	}
	return nil
}

// FinishStep records how a step ended. A step never started is recorded as
// starting and finishing now (e.g. a skipped step).
func (s *Store) FinishStep(ctx context.Context, bakeID int64, name string, state StepState, detail string) error {
	now := ms(s.now())
	_, err := s.db.ExecContext(ctx, `INSERT INTO bake_steps (bake_id, name, state, started_at, finished_at, detail)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (bake_id, name) DO UPDATE SET state = excluded.state,
			finished_at = excluded.finished_at, detail = excluded.detail`,
		bakeID, name, string(state), now, now, detail)
	if err != nil {
		return fmt.Errorf("finish step %q of bake %d: %w", name, bakeID, err)
	}
	return nil
}

// Steps returns a bake's steps in the order they first started.
func (s *Store) Steps(ctx context.Context, bakeID int64) ([]Step, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT bake_id, name, state, started_at, finished_at, detail
		FROM bake_steps WHERE bake_id = $1 ORDER BY id`, bakeID)
	if err != nil {
		return nil, fmt.Errorf("list steps of bake %d: %w", bakeID, err)
	}
	defer rows.Close()
	var out []Step
	for rows.Next() {
		var (
			st       Step
			state    string
			started  int64
			finished sql.NullInt64
		)
		if err := rows.Scan(&st.BakeID, &st.Name, &state, &started, &finished, &st.Detail); err != nil {
			return nil, fmt.Errorf("list steps of bake %d: %w", bakeID, err)
		}
		st.State, st.Started, st.Finished = StepState(state), fromMS(started), fromNullMS(finished)
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list steps of bake %d: %w", bakeID, err)
	}
	return out, nil
}
