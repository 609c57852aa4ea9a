package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrSecretRequired is returned by PutProject for a new project given no
// webhook secret: the caller generates one and tries again.
var ErrSecretRequired = errors.New("a new project needs a webhook secret")

// Project is a stored project: every field of the project file except the
// webhook secret, which only ProjectSecret returns. The store does not
// validate fields; the bake package's project parser does.
type Project struct {
	Name           string
	Region         string
	BaseID         string // base image id; or BaseOwner + BaseName
	BaseOwner      string
	BaseName       string // image name pattern
	BaseMostRecent bool
	Type           string // instance type
	Script         string
	SecurityGroups []string
	Subnet         string
	IAMProfile     string
	Tags           map[string]string
	Keep           int    // images to keep
	Branch         string // empty: the repository's default branch
	ScriptTimeout  time.Duration
	ImageTimeout   time.Duration
	// DeprecateAfter and DisableFor: the images' deprecation time after
	// creation, retention's disabling before deregistering (0: none).
	DeprecateAfter time.Duration
	DisableFor     time.Duration
	// Rollout is where a successful bake's image goes; nil: nowhere.
	Rollout *Rollout
	Created time.Time // set by the store
	Updated time.Time // set by the store
}

// Rollout is a project's rollout target: the Auto Scaling group a new
// image is rolled out to, and the instance refresh's preferences (nil and
// zero: the defaults). Stored as JSON.
type Rollout struct {
	Group             string        `json:"group"`
	Region            string        `json:"region,omitempty"` // "" = the project's
	MinHealthyPercent *int          `json:"min_healthy_percent,omitempty"`
	Warmup            time.Duration `json:"warmup,omitempty"`
	Checkpoints       []int         `json:"checkpoints,omitempty"`
	CheckpointDelay   time.Duration `json:"checkpoint_delay,omitempty"`
	SkipMatching      *bool         `json:"skip_matching,omitempty"`
	AutoRollback      *bool         `json:"auto_rollback,omitempty"`
	Alarms            []string      `json:"alarms,omitempty"`
}

const projectColumns = `name, region, base_id, base_owner, base_name, base_most_recent,
	instance_type, script, security_groups, subnet, iam_profile, tags, keep, branch,
	script_timeout_ms, image_timeout_ms, rollout, deprecate_after_ms, disable_for_ms, created_at, updated_at`

// PutProject creates the project or replaces every field of an existing one
// with p's (Created is kept). A non-empty secret sets the webhook secret; an
// empty one keeps the stored secret, and for a new project fails with
// ErrSecretRequired. It reports whether the project was created.
func (s *Store) PutProject(ctx context.Context, p Project, secret string) (created bool, err error) {
	groups, err := json.Marshal(nonNil(p.SecurityGroups))
	if err != nil {
		return false, fmt.Errorf("put project %q: %w", p.Name, err)
	}
	tags := p.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	tagJSON, err := json.Marshal(tags)
	if err != nil {
		return false, fmt.Errorf("put project %q: %w", p.Name, err)
	}
	rollout := ""
	if p.Rollout != nil {
		b, err := json.Marshal(p.Rollout)
		if err != nil {
			return false, fmt.Errorf("put project %q: %w", p.Name, err)
		}
		rollout = string(b)
	}
	now := ms(s.now())
	plain := secret
	if secret, err = s.seal(secret); err != nil {
		return false, fmt.Errorf("put project %q: %w", p.Name, err)
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var exists int
		err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM projects WHERE name = $1`, p.Name).Scan(&exists)
		if err != nil {
			return err
		}
		created = exists == 0
		if created && plain == "" {
			return ErrSecretRequired
		}
		args := []any{p.Region, p.BaseID, p.BaseOwner, p.BaseName, flag(p.BaseMostRecent),
			p.Type, p.Script, string(groups), p.Subnet, p.IAMProfile, string(tagJSON), p.Keep, p.Branch,
			p.ScriptTimeout.Milliseconds(), p.ImageTimeout.Milliseconds(), rollout,
			p.DeprecateAfter.Milliseconds(), p.DisableFor.Milliseconds()}
		if created {
			_, err = tx.ExecContext(ctx, `INSERT INTO projects (region, base_id, base_owner, base_name,
				base_most_recent, instance_type, script, security_groups, subnet, iam_profile, tags, keep,
				branch, script_timeout_ms, image_timeout_ms, rollout, deprecate_after_ms, disable_for_ms,
				name, webhook_secret, created_at, updated_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)`,
				append(args, p.Name, secret, now, now)...)
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE projects SET region = $1, base_id = $2, base_owner = $3,
			base_name = $4, base_most_recent = $5, instance_type = $6, script = $7, security_groups = $8,
			subnet = $9, iam_profile = $10, tags = $11, keep = $12, branch = $13, script_timeout_ms = $14,
			image_timeout_ms = $15, rollout = $16, deprecate_after_ms = $17, disable_for_ms = $18, updated_at = $19,
			webhook_secret = CASE WHEN $20 = '' THEN webhook_secret ELSE $21 END
			WHERE name = $22`,
			append(args, now, secret, secret, p.Name)...)
		return err
	})
	s.hooks.invalidate(p.Name) // also after a failed write: it may have committed
	if err != nil {
		return false, fmt.Errorf("put project %q: %w", p.Name, err)
	}
	return created, nil
}

// SetProjectSecret replaces a project's webhook secret (rotation).
func (s *Store) SetProjectSecret(ctx context.Context, name, secret string) error {
	if secret == "" {
		return fmt.Errorf("set secret of project %q: %w", name, ErrSecretRequired)
	}
	secret, err := s.seal(secret)
	if err != nil {
		return fmt.Errorf("set secret of project %q: %w", name, err)
	}
	res, err := s.db.ExecContext(ctx, `UPDATE projects SET webhook_secret = $1, updated_at = $2 WHERE name = $3`,
		secret, ms(s.now()), name)
	s.hooks.invalidate(name)
	if err == nil {
		err = wantOne(res)
	}
	if err != nil {
		return fmt.Errorf("set secret of project %q: %w", name, err)
	}
	return nil
}

// Project returns the named project without its secret, or ErrNotFound.
func (s *Store) Project(ctx context.Context, name string) (*Project, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+projectColumns+` FROM projects WHERE name = $1`, name)
	p, err := scanProject(row)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get project %q: %w", name, err)
	}
	return p, nil
}

// ProjectSecret returns the named project's webhook secret, or ErrNotFound.
// It is the only way to read a secret back; callers must not log it.
func (s *Store) ProjectSecret(ctx context.Context, name string) (string, error) {
	var secret string
	err := s.db.QueryRowContext(ctx, `SELECT webhook_secret FROM projects WHERE name = $1`, name).Scan(&secret)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err == nil {
		secret, err = s.open(secret)
	}
	if err != nil {
		return "", fmt.Errorf("get secret of project %q: %w", name, err)
	}
	return secret, nil
}

// HookTarget is what the webhook handler needs of a project.
type HookTarget struct {
	Branch string
	Secret string
}

// HookTarget returns the branch filter and secret of the named project in one
// query, or ErrNotFound.
func (s *Store) HookTarget(ctx context.Context, name string) (HookTarget, error) {
	now := s.now()
	h, gen, ok := s.hooks.get(name, now)
	if ok {
		return h, nil
	}
	// On the read-only pool (see the package comment), so that a lookup
	// never waits for a group commit.
	err := s.stmts[qHookTarget].QueryRowContext(ctx, name).Scan(&h.Branch, &h.Secret)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err == nil {
		h.Secret, err = s.open(h.Secret)
	}
	if err != nil {
		return HookTarget{}, fmt.Errorf("get project %q: %w", name, err)
	}
	s.hooks.put(name, h, now, gen)
	return h, nil
}

// Projects returns every project, by name, without secrets.
func (s *Store) Projects(ctx context.Context) ([]Project, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+projectColumns+` FROM projects ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list projects: %w", err)
	}
	defer rows.Close()
	var out []Project
	for rows.Next() {
		p, err := scanProject(rows)
		if err != nil {
			return nil, fmt.Errorf("list projects: %w", err)
		}
		out = append(out, *p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list projects: %w", err)
	}
	return out, nil
}

// DeleteProject removes the project with its bakes, steps, deliveries and
// image records (not the images in EC2), or returns ErrNotFound. Cancel its
// running bake first: its worker would find the bake gone.
func (s *Store) DeleteProject(ctx context.Context, name string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM projects WHERE name = $1`, name)
	s.hooks.invalidate(name)
	if err == nil {
		err = wantOne(res)
	}
	if err != nil {
		return fmt.Errorf("delete project %q: %w", name, err)
	}
	return nil
}

type scanner interface{ Scan(dest ...any) error }

func scanProject(r scanner) (*Project, error) {
	var (
		p                  Project
		groups, tags       string
		rollout            string
		scriptMS, imageMS  int64
		deprecMS, disMS    int64
		createdMS, updated int64
	)
	err := r.Scan(&p.Name, &p.Region, &p.BaseID, &p.BaseOwner, &p.BaseName, &p.BaseMostRecent,
		&p.Type, &p.Script, &groups, &p.Subnet, &p.IAMProfile, &tags, &p.Keep, &p.Branch,
		&scriptMS, &imageMS, &rollout, &deprecMS, &disMS, &createdMS, &updated)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(groups), &p.SecurityGroups); err != nil {
		return nil, fmt.Errorf("security_groups of %q: %w", p.Name, err)
	}
	if err := json.Unmarshal([]byte(tags), &p.Tags); err != nil {
		return nil, fmt.Errorf("tags of %q: %w", p.Name, err)
	}
	if rollout != "" {
		p.Rollout = &Rollout{}
		if err := json.Unmarshal([]byte(rollout), p.Rollout); err != nil {
			return nil, fmt.Errorf("rollout of %q: %w", p.Name, err)
		}
	}
	p.ScriptTimeout = time.Duration(scriptMS) * time.Millisecond
	p.ImageTimeout = time.Duration(imageMS) * time.Millisecond
	p.DeprecateAfter = time.Duration(deprecMS) * time.Millisecond
	p.DisableFor = time.Duration(disMS) * time.Millisecond
	p.Created, p.Updated = fromMS(createdMS), fromMS(updated)
	return &p, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// wantOne turns "no row affected" into ErrNotFound.
func wantOne(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// flag is a bool as the 0/1 integer that both dialects store.
func flag(b bool) int {
	if b {
		return 1
	}
	return 0
}
