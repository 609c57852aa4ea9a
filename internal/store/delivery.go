package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Safe delivery (migration 013): a project's image tests, revoked images
// and approvals of gated promotions.

// ImageTests is a project's tests: block: an instance launched from each
// new image runs Script; Type, Subnet and SecurityGroups default to the
// builder's.
type ImageTests struct {
	Type           string        `json:"type,omitempty"`
	Subnet         string        `json:"subnet,omitempty"`
	SecurityGroups []string      `json:"security_groups,omitempty"`
	Script         string        `json:"script"`
	Timeout        time.Duration `json:"timeout,omitempty"`
}

// PutTests sets a project's image tests; nil removes them. The project
// must exist (ErrNotFound).
func (s *Store) PutTests(ctx context.Context, project string, t *ImageTests) error {
	if t == nil {
		if _, err := s.db.ExecContext(ctx, `DELETE FROM project_tests WHERE project = $1`, project); err != nil {
			return fmt.Errorf("put tests of %q: %w", project, err)
		}
		return nil
	}
	b, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("put tests of %q: %w", project, err)
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO project_tests (project, spec)
		SELECT name, $1 FROM projects WHERE name = $2
		ON CONFLICT (project) DO UPDATE SET spec = excluded.spec`, string(b), project)
	if err == nil {
		err = wantOne(res)
	}
	if err != nil {
		return fmt.Errorf("put tests of %q: %w", project, err)
	}
	return nil
}

// Tests returns a project's image tests; nil when it has none.
func (s *Store) Tests(ctx context.Context, project string) (*ImageTests, error) {
	var spec string
	err := s.db.QueryRowContext(ctx, `SELECT spec FROM project_tests WHERE project = $1`, project).Scan(&spec)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("tests of %q: %w", project, err)
	}
	var t ImageTests
	if err := json.Unmarshal([]byte(spec), &t); err != nil {
		return nil, fmt.Errorf("tests of %q: %w", project, err)
	}
	return &t, nil
}

// Revocation is a revoked image of a project.
type Revocation struct {
	Project string
	ImageID string
	Reason  string
	Actor   string
	Created time.Time
}

// ErrRevoked is AddRevocation's answer for an image revoked already.
var ErrRevoked = errors.New("image revoked already")

// AddRevocation records r (Created zero: now). An image revoked already is
// ErrRevoked; an unknown project ErrNotFound.
func (s *Store) AddRevocation(ctx context.Context, r Revocation) error {
	if r.Created.IsZero() {
		r.Created = s.now()
	}
	if _, err := s.Project(ctx, r.Project); err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO image_revocations (project, image_id, reason, actor, created_at)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (project, image_id) DO NOTHING`, r.Project, r.ImageID, r.Reason, r.Actor, ms(r.Created))
	if err != nil {
		return fmt.Errorf("revoke image %s of %q: %w", r.ImageID, r.Project, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return ErrRevoked
	}
	return nil
}

// Revocations returns a project's revoked images by image id.
func (s *Store) Revocations(ctx context.Context, project string) (map[string]Revocation, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT image_id, reason, actor, created_at FROM image_revocations WHERE project = $1`, project)
	if err != nil {
		return nil, fmt.Errorf("revocations of %q: %w", project, err)
	}
	defer rows.Close()
	out := map[string]Revocation{}
	for rows.Next() {
		r := Revocation{Project: project}
		var created int64
		if err := rows.Scan(&r.ImageID, &r.Reason, &r.Actor, &created); err != nil {
			return nil, fmt.Errorf("revocations of %q: %w", project, err)
		}
		r.Created = fromMS(created)
		out[r.ImageID] = r
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("revocations of %q: %w", project, err)
	}
	return out, nil
}

// Approval is who let a gated promotion through: the image of the
// previous environment's promotion PromotionID, to Env.
type Approval struct {
	Project     string
	Env         string
	PromotionID int64
	ImageID     string
	Actor       string
	Created     time.Time
}

// ApproveSoak records a (Created zero: now) and turns promotion
// a.PromotionID's soak from SoakAwaiting to SoakPassed, in one
// transaction. false: the promotion was not awaiting approval (approved
// already, or abandoned by a newer promotion); nothing is recorded.
func (s *Store) ApproveSoak(ctx context.Context, a Approval) (bool, error) {
	if a.Created.IsZero() {
		a.Created = s.now()
	}
	ok := false
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE promotions SET soak = $1 WHERE id = $2 AND soak = $3`, SoakPassed, a.PromotionID, SoakAwaiting)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		ok = true
		_, err = tx.ExecContext(ctx, `INSERT INTO approvals (project, env, promotion_id, image_id, actor, created_at)
			VALUES ($1, $2, $3, $4, $5, $6)`, a.Project, a.Env, a.PromotionID, a.ImageID, a.Actor, ms(a.Created))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("approve %s of %q: %w", a.Env, a.Project, err)
	}
	return ok, nil
}

// Approvals returns a project's approvals, newest first.
func (s *Store) Approvals(ctx context.Context, project string) ([]Approval, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT env, promotion_id, image_id, actor, created_at FROM approvals
		WHERE project = $1 ORDER BY created_at DESC, promotion_id DESC`, project)
	if err != nil {
		return nil, fmt.Errorf("approvals of %q: %w", project, err)
	}
	defer rows.Close()
	var out []Approval
	for rows.Next() {
		a := Approval{Project: project}
		var created int64
		if err := rows.Scan(&a.Env, &a.PromotionID, &a.ImageID, &a.Actor, &created); err != nil {
			return nil, fmt.Errorf("approvals of %q: %w", project, err)
		}
		a.Created = fromMS(created)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("approvals of %q: %w", project, err)
	}
	return out, nil
}
