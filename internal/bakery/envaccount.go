package bakery

import (
	"context"
	"fmt"
	"slices"

	"kiln/internal/awsapi"
	"kiln/internal/project"
	"kiln/internal/store"
)

// Environments in other accounts. An environment with an account
// (project.Environment.Account) is promoted, watched and repaired with
// that account's hubs: the bakery assumes the environment's role there
// (awsapi.Hubs.ForAccount: STS, cached credentials, hubs of its own per
// region), and its launch template, group, instance refresh, health
// checks, alarms and secrets live in that account. The image is the one
// the project baked in its own account and shared with the environment's
// (share_with); a promotion checks both sides first: the account is in
// share_with, and the image is available to the account in EC2.

// envHubs are the hubs of environment e's account: the service's own for
// an environment in the bakery's account.
func (s *Service) envHubs(e project.Environment) *awsapi.Hubs {
	a := project.AccountOf(e)
	if a.Name == "" {
		return s.hubs
	}
	h := s.hubs.ForAccount(a)
	for n := 2; h.AccountDef() != a; n++ {
		// The same role with another external id or session name (another
		// project's): hubs of its own.
		b := a
		b.Name = fmt.Sprintf("%s#%d", a.Name, n)
		h = s.hubs.ForAccount(b)
		if h.AccountDef() == b {
			break
		}
	}
	return h
}

// sharedWith refuses a promotion of image to e when e lives in another
// account that the project does not share its images with: e's account
// must be in share_with (or the project shares with organizations or
// OUs, which EC2's answer below then settles).
func (s *Service) sharedWith(ctx context.Context, projectName string, e project.Environment, image string) error {
	id := project.AccountID(e)
	if id == "" {
		return nil
	}
	d, err := s.store.Distribution(ctx, projectName)
	if err != nil {
		return err
	}
	if slices.Contains(d.ShareWith, id) || len(d.ShareWithOrgs) > 0 || len(d.ShareWithOUs) > 0 {
		return nil
	}
	return &PromotionError{Msg: fmt.Sprintf("environment %s lives in account %s, and project %q does not share its images with it: add %s to share_with (image %s)",
		e.Name, id, projectName, id, image)}
}

// imageIn is image (the id of a project's image in the project's region)
// as it is in region: itself there, else its copy (copy_to), as the bake
// recorded it. An environment in another region runs the copy.
func (s *Service) imageIn(ctx context.Context, projectName, region, image string) (string, error) {
	pr, err := s.store.Project(ctx, projectName)
	if err != nil {
		return "", err
	}
	if region == "" || region == pr.Region {
		return image, nil
	}
	imgs, err := s.store.Images(ctx, projectName)
	if err != nil {
		return "", err
	}
	i := slices.IndexFunc(imgs, func(im store.Image) bool { return im.ImageID == image })
	if i >= 0 && imgs[i].BakeID != 0 {
		copies, err := s.store.BakeImages(ctx, imgs[i].BakeID)
		if err != nil {
			return "", err
		}
		for _, c := range copies {
			if c.Region == region && c.ImageID != "" {
				return c.ImageID, nil
			}
		}
	}
	return "", &PromotionError{Msg: fmt.Sprintf("image %s has no copy in %s (copy_to): it was baked before %s was added, or its copy failed", image, region, region)}
}
