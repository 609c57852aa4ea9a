package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Environment is one of a project's environments (staging, production,
// ...): where its image runs, how it is configured, and how an image gets
// there. The store keeps it as JSON and never a secret's value: PutEnvironments
// clears Value of every Secret entry.
type Environment struct {
	Project   string        `json:"-"`
	Name      string        `json:"name"`
	Region    string        `json:"region"`
	Group     EnvGroup      `json:"group"`
	Config    []ConfigValue `json:"config,omitempty"`
	Promotion string        `json:"promotion"` // auto | manual
	Soak      time.Duration `json:"soak,omitempty"`
	Approval  string        `json:"approval,omitempty"` // "manual": an auto promotion waits for kiln approve after the soak
	Account   *EnvAccount   `json:"account,omitempty"`  // nil: the bakery's own account (envaccount.go)
}

// EnvGroup is an environment's kiln-managed Auto Scaling group, with the
// aws:asg settings.
type EnvGroup struct {
	Name           string   `json:"name"`
	Type           string   `json:"type"`
	Min            int      `json:"min"`
	Max            int      `json:"max"`
	Desired        *int     `json:"desired,omitempty"`
	Subnets        []string `json:"subnets,omitempty"`
	SecurityGroups []string `json:"security_groups,omitempty"`
	IAMProfile     string   `json:"iam_profile,omitempty"`
	UserData       string   `json:"user_data,omitempty"`
	Rollout        Rollout  `json:"rollout"` // Group and Region unused
}

// ConfigValue is one configuration key of an environment. A plain value is
// stored; a secret is stored only as the version of its SSM parameter.
type ConfigValue struct {
	Key     string `json:"key"`
	Value   string `json:"value,omitempty"`
	Secret  bool   `json:"secret,omitempty"`
	Version int64  `json:"version,omitempty"` // a secret's parameter version
}

// PutEnvironments replaces project's environments with envs, in order.
func (s *Store) PutEnvironments(ctx context.Context, project string, envs []Environment) error {
	specs := make([]string, len(envs))
	for i, e := range envs {
		e.Config = append([]ConfigValue(nil), e.Config...)
		for j := range e.Config {
			if e.Config[j].Secret {
				e.Config[j].Value = ""
			}
		}
		b, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("put environments of %q: %w", project, err)
		}
		specs[i] = string(b)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM environments WHERE project = $1`, project); err != nil {
			return err
		}
		for i, e := range envs {
			if _, err := tx.ExecContext(ctx, `INSERT INTO environments (project, name, position, spec) VALUES ($1, $2, $3, $4)`,
				project, e.Name, i, specs[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put environments of %q: %w", project, err)
	}
	return nil
}

// Environments returns project's environments in order (none: nil).
func (s *Store) Environments(ctx context.Context, project string) ([]Environment, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT spec FROM environments WHERE project = $1 ORDER BY position`, project)
	if err != nil {
		return nil, fmt.Errorf("list environments of %q: %w", project, err)
	}
	defer rows.Close()
	var out []Environment
	for rows.Next() {
		var spec string
		if err := rows.Scan(&spec); err != nil {
			return nil, fmt.Errorf("list environments of %q: %w", project, err)
		}
		e := Environment{Project: project}
		if err := json.Unmarshal([]byte(spec), &e); err != nil {
			return nil, fmt.Errorf("list environments of %q: %w", project, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list environments of %q: %w", project, err)
	}
	return out, nil
}

// PromotionState is where a promotion is.
type PromotionState string

// A promotion rolls out (Rolling) and then Succeeded or Failed.
const (
	PromotionRolling   PromotionState = "rolling"
	PromotionSucceeded PromotionState = "succeeded"
	PromotionFailed    PromotionState = "failed"
)

// Soak states of a succeeded promotion that an auto promotion follows.
const (
	SoakNone      = ""
	SoakRunning   = "soaking"
	SoakPassed    = "passed"
	SoakFailed    = "failed"
	SoakAbandoned = "abandoned" // a newer promotion of the environment came first
	// SoakAwaiting: soaked, and the next environment's approval gate holds
	// the promotion until someone approves it (ApproveSoak).
	SoakAwaiting = "awaiting approval"
)

// Promotion is one rollout of an image to an environment: a promotion, a
// rollback, or the same image again with a changed configuration.
type Promotion struct {
	ID      int64
	Project string
	Env     string
	ImageID string
	Cause   string // "bake 12", "manual", "auto after staging", "configuration changed", ...
	State   PromotionState
	Reason  string // why it failed, or why its soak did
	Version string // the launch-template version the group runs afterwards
	Digest  string // of the environment settings rolled out
	// Soak is the soak of this promotion before the next environment's auto
	// promotion (SoakNone when none follows), until SoakUntil.
	Soak      string
	SoakUntil time.Time
	Created   time.Time
	Finished  time.Time // zero while rolling
}

// ErrPromotionRunning is AddPromotion's refusal: the environment already
// has a rollout running.
var ErrPromotionRunning = errors.New("a rollout to this environment is running")

const promotionColumns = `id, project, env, image_id, cause, state, reason, version, digest, soak, soak_until, created_at, finished_at`

// AddPromotion records a new promotion in state Rolling and returns it with
// its id. It fails with ErrPromotionRunning while the environment has one
// rolling, and abandons a soak running in it.
func (s *Store) AddPromotion(ctx context.Context, p Promotion) (*Promotion, error) {
	p.State, p.Created = PromotionRolling, s.now()
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM promotions WHERE project = $1 AND env = $2 AND state = $3`,
			p.Project, p.Env, string(PromotionRolling)).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return ErrPromotionRunning
		}
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) + 1 FROM promotions`).Scan(&p.ID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE promotions SET soak = $1 WHERE project = $2 AND env = $3 AND soak IN ($4, $5)`,
			SoakAbandoned, p.Project, p.Env, SoakRunning, SoakAwaiting); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO promotions (`+promotionColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
			p.ID, p.Project, p.Env, p.ImageID, p.Cause, string(p.State), "", "", p.Digest, "", 0, ms(p.Created), 0)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("add promotion of %q to %s: %w", p.Project, p.Env, err)
	}
	return &p, nil
}

// FinishPromotion records the end of promotion id.
func (s *Store) FinishPromotion(ctx context.Context, id int64, state PromotionState, reason, version string) error {
	return s.FinishPromotionThen(ctx, id, state, reason, version, nil)
}

// FinishPromotionThen is FinishPromotion that also runs then (if not nil)
// inside the transaction that records the promotion's end: its
// notifications are stored if and only if the end is. An error from then
// rolls the change back and is returned.
func (s *Store) FinishPromotionThen(ctx context.Context, id int64, state PromotionState, reason, version string, then TxFunc) error {
	err := s.inJobTx(ctx, func(tx *Tx) error {
		res, err := tx.sql.ExecContext(ctx, `UPDATE promotions SET state = $1, reason = $2, version = $3, finished_at = $4 WHERE id = $5`,
			string(state), reason, version, ms(s.now()), id)
		if err == nil {
			err = wantOne(res)
		}
		if err != nil || then == nil {
			return err
		}
		return then(ctx, tx)
	})
	if err != nil {
		return fmt.Errorf("finish promotion %d: %w", id, err)
	}
	return nil
}

// SetSoak records promotion id's soak (SoakRunning until until, or how it
// ended, with reason when it failed). Ending a soak that was abandoned
// meanwhile changes nothing and reports false; a passed soak may still
// fail (the promotion it led to was refused).
func (s *Store) SetSoak(ctx context.Context, id int64, soak string, until time.Time, reason string) (bool, error) {
	q := `UPDATE promotions SET soak = $1, soak_until = $2, reason = $3 WHERE id = $4`
	args := []any{soak, ms(until), reason, id}
	if soak != SoakRunning {
		q, args = q+` AND soak IN ($5, $6, $7)`, append(args, SoakRunning, SoakPassed, SoakAwaiting)
	}
	res, err := s.db.ExecContext(ctx, q, args...)
	if err != nil {
		return false, fmt.Errorf("set soak of promotion %d: %w", id, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// PromotionQuery selects promotions, newest first.
type PromotionQuery struct {
	Project string // "" = every project
	Env     string // "" = every environment
	State   PromotionState
	Soak    string // "" = any
	ImageID string // "" = any
	Limit   int    // 0 = 100
}

// Promotions returns the promotions q selects, newest first.
func (s *Store) Promotions(ctx context.Context, q PromotionQuery) ([]Promotion, error) {
	where, args := "1 = 1", []any{}
	for _, c := range []struct{ col, v string }{{"project", q.Project}, {"env", q.Env}, {"state", string(q.State)}, {"soak", q.Soak}, {"image_id", q.ImageID}} {
		if c.v != "" {
			args = append(args, c.v)
			where += " AND " + c.col + " = $" + strconv.Itoa(len(args))
		}
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+promotionColumns+` FROM promotions WHERE `+where+` ORDER BY id DESC LIMIT $`+strconv.Itoa(len(args)+1),
		append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("list promotions: %w", err)
	}
	defer rows.Close()
	var out []Promotion
	for rows.Next() {
		var (
			p                            Promotion
			state                        string
			soakUntil, created, finished int64
		)
		if err := rows.Scan(&p.ID, &p.Project, &p.Env, &p.ImageID, &p.Cause, &state, &p.Reason, &p.Version, &p.Digest,
			&p.Soak, &soakUntil, &created, &finished); err != nil {
			return nil, fmt.Errorf("list promotions: %w", err)
		}
		p.State, p.Created = PromotionState(state), fromMS(created)
		if soakUntil != 0 {
			p.SoakUntil = fromMS(soakUntil)
		}
		if finished != 0 {
			p.Finished = fromMS(finished)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list promotions: %w", err)
	}
	return out, nil
}
