package bakery

import (
	"context"
	"fmt"

	"kiln/internal/project"
	"kiln/internal/store"
)

// API is what the HTTP API and the pages may do to the bakery: start and
// stop bakes, and change projects by the Projects rules. *Service
// satisfies it; they read records from the store.
type API interface {
	// Trigger queues a bake of project at commit and ref (empty: the
	// project as stored), coalescing with an already-queued one
	// (PushResult.New false). An unknown project wraps store.ErrNotFound.
	Trigger(ctx context.Context, project, commit, ref string) (store.PushResult, error)
	// Cancel cancels a bake: a queued one at once, a running one at its
	// next safe point. It returns the bake afterwards; a bake that is over
	// wraps store.ErrBakeFinished, an unknown one store.ErrNotFound.
	Cancel(ctx context.Context, id int64, reason string) (*store.Bake, error)
	ApplyProject(ctx context.Context, p *project.Project) (project.Applied, error)
	// DeleteProject refuses with a *BakeRunningError while a bake runs.
	DeleteProject(ctx context.Context, name string) error
	RotateSecret(ctx context.Context, name string) (string, error)
	// Promote rolls image ("" = the previous environment's) out to
	// environment env of project; see Service.Promote.
	Promote(ctx context.Context, project, env, image string) (*Promotion, error)
}

var _ API = (*Service)(nil)

// Projects holds the rules for changing projects, over the store: apply a
// project file (generating a webhook secret when it has none), delete a
// project (refused while one of its bakes runs), rotate its webhook
// secret. The Service embeds one, so the API and the pages reach these
// rules only through the service, never the store's writes directly.
type Projects struct{ st *store.Store }

// NewProjects is the project rules over st.
func NewProjects(st *store.Store) Projects { return Projects{st: st} }

// ApplyProject stores p (see project.Apply) and its
// environments (never a secret's value: the service puts those into SSM
// first and keeps only their versions).
func (ps Projects) ApplyProject(ctx context.Context, p *project.Project) (project.Applied, error) {
	a, err := project.Apply(ctx, ps.st, p)
	if err != nil {
		return a, err
	}
	if err := ps.st.PutEnvironments(ctx, p.Name, p.Environments); err != nil {
		return project.Applied{}, fmt.Errorf("apply project %q: %w", p.Name, err)
	}
	return a, nil
}

// BakeRunningError is DeleteProject's refusal: a bake of the project is
// running.
type BakeRunningError struct {
	Project string
	BakeID  int64
}

func (e *BakeRunningError) Error() string {
	return fmt.Sprintf("project %q has a running bake (%d); cancel it first", e.Project, e.BakeID)
}

// DeleteProject deletes project name with its bakes' records. A running
// bake must be cancelled first, or its builder would be left to the
// sweeper: while one runs it returns a *BakeRunningError and deletes
// nothing. An unknown project wraps store.ErrNotFound.
func (ps Projects) DeleteProject(ctx context.Context, name string) error {
	running, err := ps.st.Bakes(ctx, store.BakeQuery{
		Project: name, States: []store.BakeState{store.Running}, Limit: 1,
	})
	if err != nil {
		return fmt.Errorf("delete project %q: %w", name, err)
	}
	if len(running) > 0 {
		return &BakeRunningError{Project: name, BakeID: running[0].ID}
	}
	return ps.st.DeleteProject(ctx, name)
}

// RotateSecret replaces project name's webhook secret with a generated one
// and returns it: the caller shows it once, and deliveries signed with the
// old secret are refused from now on. An unknown project wraps
// store.ErrNotFound.
func (ps Projects) RotateSecret(ctx context.Context, name string) (string, error) {
	secret := project.GenerateSecret()
	if err := ps.st.SetProjectSecret(ctx, name, secret); err != nil {
		return "", err
	}
	return secret, nil
}
