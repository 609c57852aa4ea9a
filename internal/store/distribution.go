package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Distribution is where a project's images go besides its region: the
// regions they are copied to, the copies' encryption, and who they are
// shared with (migration 009).
type Distribution struct {
	CopyTo        []string `json:"copy_to,omitempty"`
	Encrypt       bool     `json:"encrypt,omitempty"`
	KMSKeyID      string   `json:"kms_key_id,omitempty"`
	ShareWith     []string `json:"share_with,omitempty"`
	ShareWithOrgs []string `json:"share_with_orgs,omitempty"`
	ShareWithOUs  []string `json:"share_with_ous,omitempty"`
}

func (d Distribution) empty() bool {
	return len(d.CopyTo) == 0 && !d.Encrypt && d.KMSKeyID == "" && len(d.ShareWith)+len(d.ShareWithOrgs)+len(d.ShareWithOUs) == 0
}

// PutDistribution sets a project's distribution; an empty one removes it.
// The project must exist (ErrNotFound).
func (s *Store) PutDistribution(ctx context.Context, project string, d Distribution) error {
	if d.empty() {
		if _, err := s.db.ExecContext(ctx, `DELETE FROM project_distribution WHERE project = $1`, project); err != nil {
			return fmt.Errorf("put distribution of %q: %w", project, err)
		}
		return nil
	}
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("put distribution of %q: %w", project, err)
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO project_distribution (project, settings)
		SELECT name, $1 FROM projects WHERE name = $2
		ON CONFLICT (project) DO UPDATE SET settings = excluded.settings`, string(b), project)
	if err == nil {
		err = wantOne(res)
	}
	if err != nil {
		return fmt.Errorf("put distribution of %q: %w", project, err)
	}
	return nil
}

// Distribution returns a project's distribution; zero when it has none.
func (s *Store) Distribution(ctx context.Context, project string) (Distribution, error) {
	var d Distribution
	var settings string
	err := s.db.QueryRowContext(ctx, `SELECT settings FROM project_distribution WHERE project = $1`, project).Scan(&settings)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return d, nil
	case err != nil:
		return d, fmt.Errorf("distribution of %q: %w", project, err)
	}
	if err := json.Unmarshal([]byte(settings), &d); err != nil {
		return d, fmt.Errorf("distribution of %q: %w", project, err)
	}
	return d, nil
}

// BakeImage is a bake's image in one region: the bake's own region's, or
// a copy, with its state (pending, available, failed).
type BakeImage struct {
	BakeID  int64
	Region  string
	ImageID string
	State   string
	Updated time.Time
}

// SetBakeImage records (or updates) bake id's image in region.
func (s *Store) SetBakeImage(ctx context.Context, id int64, region, imageID, state string) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO bake_images (bake_id, region, image_id, state, updated_at)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (bake_id, region) DO UPDATE SET image_id = excluded.image_id, state = excluded.state,
			updated_at = excluded.updated_at`, id, region, imageID, state, ms(s.now()))
	if err != nil {
		return fmt.Errorf("set image of bake %d in %s: %w", id, region, err)
	}
	return nil
}

// BakeImages returns bake id's image in every region, by region name.
func (s *Store) BakeImages(ctx context.Context, id int64) ([]BakeImage, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT bake_id, region, image_id, state, updated_at
		FROM bake_images WHERE bake_id = $1 ORDER BY region`, id)
	if err != nil {
		return nil, fmt.Errorf("images of bake %d: %w", id, err)
	}
	defer rows.Close()
	var out []BakeImage
	for rows.Next() {
		var im BakeImage
		var updated int64
		if err := rows.Scan(&im.BakeID, &im.Region, &im.ImageID, &im.State, &updated); err != nil {
			return nil, fmt.Errorf("images of bake %d: %w", id, err)
		}
		im.Updated = fromMS(updated)
		out = append(out, im)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("images of bake %d: %w", id, err)
	}
	return out, nil
}
