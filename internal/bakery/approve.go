package bakery

import (
	"context"
	"fmt"
	"slices"
	"time"

	"kiln/internal/project"
	"kiln/internal/store"
)

// Approval gates: an environment with approval: manual is promoted
// automatically once the previous environment has soaked, but only after
// someone approves it (kiln approve PROJECT ENV). Until then the previous
// environment's promotion waits with its soak in store.SoakAwaiting, and
// the gated environment shows EnvAwaiting.

// EnvAwaiting is the state of a gated environment whose promotion waits
// for an approval.
const EnvAwaiting = "awaiting approval"

// awaitApproval ends promotion p's soak in SoakAwaiting instead of
// promoting to next (a gated environment). It reports whether the gate
// held (false: next has no gate).
func (s *Service) awaitApproval(ctx context.Context, p Promotion, next project.Environment) bool {
	if next.Approval != project.ApprovalManual {
		return false
	}
	ok, err := s.store.SetSoak(ctx, p.ID, store.SoakAwaiting, p.SoakUntil, "")
	if err != nil || !ok {
		return true // abandoned meanwhile, or the store failed: nothing to promote
	}
	s.log.Info("soaked; the promotion waits for an approval", "project", p.Project, "env", next.Name, "image", p.ImageID)
	s.notify(Progress{Project: p.Project, Detail: fmt.Sprintf("%s awaiting approval of %s", next.Name, p.ImageID), Time: time.Now()})
	return true
}

// Approve lets the promotion waiting at env's gate through, as actor: the
// approval is recorded with who gave it, and the previous environment's
// soaked image is promoted to env. Errors: *PromotionError (no such
// environment, nothing awaiting approval, the image refused meanwhile),
// store.ErrPromotionRunning, store.ErrNotFound (no such project).
func (s *Service) Approve(ctx context.Context, projectName, env, actor string) (*Promotion, error) {
	if _, err := s.store.Project(ctx, projectName); err != nil {
		return nil, err
	}
	envs, err := s.store.Environments(ctx, projectName)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(envs, func(e store.Environment) bool { return e.Name == env })
	switch {
	case i < 0:
		return nil, &PromotionError{Msg: fmt.Sprintf("project %q has no environment %q", projectName, env)}
	case i == 0 || envs[i].Approval != project.ApprovalManual:
		return nil, &PromotionError{Msg: fmt.Sprintf("environment %s of %q has no approval gate (approval: manual)", env, projectName)}
	}
	prev := envs[i-1].Name
	waiting, err := s.store.Promotions(ctx, store.PromotionQuery{Project: projectName, Env: prev, Soak: store.SoakAwaiting, Limit: 1})
	if err != nil {
		return nil, err
	}
	if len(waiting) == 0 {
		return nil, &PromotionError{Msg: fmt.Sprintf("nothing awaits approval for %s: no image of %s has soaked since the last one", env, prev)}
	}
	p := waiting[0]
	if s.runs(ctx, projectName, env, p.ImageID) {
		return nil, &PromotionError{Msg: fmt.Sprintf("%s runs %s already: nothing to approve", env, p.ImageID)}
	}
	ok, err := s.store.ApproveSoak(ctx, store.Approval{Project: projectName, Env: env, PromotionID: p.ID, ImageID: p.ImageID, Actor: actor})
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &PromotionError{Msg: fmt.Sprintf("the promotion of %s to %s was approved or abandoned meanwhile", p.ImageID, env)}
	}
	s.log.Info("promotion approved", "project", projectName, "env", env, "image", p.ImageID, "by", actor)
	np, err := s.promote(ctx, projectName, env, p.ImageID, fmt.Sprintf("approved by %s after %s soaked", actor, prev))
	if err != nil {
		_, _ = s.store.SetSoak(ctx, p.ID, store.SoakFailed, p.SoakUntil, "approved promotion refused: "+err.Error())
		return nil, err
	}
	return np, nil
}

// markAwaiting shows EnvAwaiting on each gated environment whose previous
// environment's last promotion waits for its approval.
func markAwaiting(projectName string, out []EnvStatus) {
	for i := 1; i < len(out); i++ {
		prev := out[i-1].Promotions
		if out[i].Approval != project.ApprovalManual || len(prev) == 0 || prev[0].Soak != store.SoakAwaiting {
			continue
		}
		if out[i].State == EnvRolling || out[i].Image == prev[0].ImageID {
			continue // on its way, or there already (a revocation's replacement)
		}
		out[i].State = EnvAwaiting
		out[i].Detail = fmt.Sprintf("%s soaked in %s: kiln approve %s %s", prev[0].ImageID, out[i-1].Name, projectName, out[i].Name)
	}
}
