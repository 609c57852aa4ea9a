package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Image is an image a project's bake produced and retention keeps track of.
type Image struct {
	Project string
	ImageID string
	Name    string
	BakeID  int64 // 0 when the bake record is gone
	Commit  string
	Created time.Time
}

// AddImage records (or re-records, idempotently) an image of a project.
// A zero Created means now.
func (s *Store) AddImage(ctx context.Context, im Image) error {
	created := im.Created
	if created.IsZero() {
		created = s.now()
	}
	bake := sql.NullInt64{Int64: im.BakeID, Valid: im.BakeID != 0}
	_, err := s.db.ExecContext(ctx, `INSERT INTO images (project, image_id, name, bake_id, commit_sha, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (project, image_id) DO UPDATE SET name = excluded.name, bake_id = excluded.bake_id,
			commit_sha = excluded.commit_sha`,
		im.Project, im.ImageID, im.Name, bake, im.Commit, ms(created))
	if err != nil {
		return fmt.Errorf("add image %s of %q: %w", im.ImageID, im.Project, err)
	}
	return nil
}

// Images returns a project's recorded images, newest first: retention keeps
// the first Keep and removes the rest.
func (s *Store) Images(ctx context.Context, project string) ([]Image, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT project, image_id, name, bake_id, commit_sha, created_at
		FROM images WHERE project = $1 ORDER BY created_at DESC, image_id DESC`, project)
	if err != nil {
		return nil, fmt.Errorf("list images of %q: %w", project, err)
	}
	defer rows.Close()
	var out []Image
	for rows.Next() {
		var (
			im      Image
			bake    sql.NullInt64
			created int64
		)
		if err := rows.Scan(&im.Project, &im.ImageID, &im.Name, &bake, &im.Commit, &created); err != nil {
			return nil, fmt.Errorf("list images of %q: %w", project, err)
		}
		im.BakeID, im.Created = bake.Int64, fromMS(created)
		out = append(out, im)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list images of %q: %w", project, err)
	}
	return out, nil
}

// RemoveImage forgets an image (after it was deregistered). Removing one
// that is not recorded is not an error.
func (s *Store) RemoveImage(ctx context.Context, project, imageID string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM images WHERE project = $1 AND image_id = $2`, project, imageID)
	if err != nil {
		return fmt.Errorf("remove image %s of %q: %w", imageID, project, err)
	}
	return nil
}
