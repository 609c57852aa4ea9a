package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// AuditEntry is one row of the audit log: who did what, when, from where,
// and how it ended. Rows are appended and never changed (the schema's
// triggers refuse an UPDATE or DELETE on both drivers).
type AuditEntry struct {
	ID      int64
	At      time.Time
	Actor   string // "user alice@example.com", "token ci", "admin-token", "webhook DELIVERY"
	Action  string // project.apply, bake.trigger, promotion.start, token.create, signin, ...
	Project string
	Target  string // what was acted on besides the project: a bake, an environment, a token
	Detail  string
	Remote  string // the request's address
	Outcome string // "ok", or why it was refused or failed
}

// AppendAudit appends e (its ID is assigned) and returns its id.
func (s *Store) AppendAudit(ctx context.Context, e AuditEntry) (int64, error) {
	if e.At.IsZero() {
		e.At = s.now()
	}
	var id int64
	err := s.db.QueryRowContext(ctx, `INSERT INTO audit (at, actor, action, project, target, detail, remote, outcome)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
		ms(e.At), e.Actor, e.Action, e.Project, e.Target, e.Detail, e.Remote, e.Outcome).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("append audit %s: %w", e.Action, err)
	}
	return id, nil
}

// AuditQuery selects a page of the audit log, newest first. Zero fields
// select everything.
type AuditQuery struct {
	Project string
	// Actor matches the actor exactly or its name ("alice@example.com"
	// finds "user alice@example.com").
	Actor string
	// Action matches exactly, or a prefix ending in "." ("bake." finds
	// bake.trigger and bake.cancel).
	Action   string
	Since    time.Time
	BeforeID int64
	Limit    int // default 50
}

// Audit returns the rows q selects, newest first.
func (s *Store) Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if q.Project != "" {
		where = append(where, "project = "+arg(q.Project))
	}
	if q.Actor != "" {
		a := arg(q.Actor)
		where = append(where, "(actor = "+a+" OR actor LIKE '% ' || "+a+")")
	}
	if q.Action != "" {
		if strings.HasSuffix(q.Action, ".") {
			where = append(where, "action LIKE "+arg(escapeLike(q.Action)+"%")+" ESCAPE '\\'")
		} else {
			where = append(where, "action = "+arg(q.Action))
		}
	}
	if !q.Since.IsZero() {
		where = append(where, "at >= "+arg(ms(q.Since)))
	}
	if q.BeforeID > 0 {
		where = append(where, "id < "+arg(q.BeforeID))
	}
	if q.Limit <= 0 {
		q.Limit = 50
	}
	query := `SELECT id, at, actor, action, project, target, detail, remote, outcome FROM audit`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY id DESC LIMIT " + arg(q.Limit)
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read audit: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Action, &e.Project, &e.Target, &e.Detail, &e.Remote, &e.Outcome); err != nil {
			return nil, fmt.Errorf("read audit: %w", err)
		}
		e.At = fromMS(at)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit: %w", err)
	}
	return out, nil
}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
