package bakery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awsapi"
	"kiln/internal/notify"
	"kiln/internal/pipeline"
	"kiln/internal/store"
)

// Revocation: an image found bad after it shipped is revoked. It is tagged
// (kiln:revoked = the reason) and recorded, every later promotion of it is
// refused, and every environment running it is promoted, in pipeline
// order, to the newest good image baked before it (not revoked; images
// that failed their tests are never among a project's images).

// TagRevoked marks a revoked image; its value is the reason.
const TagRevoked = "kiln:revoked"

// CauseRevokedPrefix starts the cause of a promotion that takes an
// environment off a revoked image.
const CauseRevokedPrefix = "revoked "

// maxRevokeReason fits an EC2 tag value.
const maxRevokeReason = 256

// RevokeError is a revocation refused before anything changed (no
// reason, an image that is not the project's, revoked already). The API
// answers it 400 (409 for revoked already).
type RevokeError struct {
	Msg     string
	Already bool
}

func (e *RevokeError) Error() string { return e.Msg }

// Replacement is what a revocation does to one environment running the
// image: promote To (a promotion started, in pipeline order) or, when
// there is no good image before the revoked one, nothing (To "").
type Replacement struct {
	Env string `json:"env"`
	To  string `json:"to,omitempty"`
}

// Revoked is the outcome of Revoke.
type Revoked struct {
	Project string        `json:"project"`
	ImageID string        `json:"image"`
	Reason  string        `json:"reason"`
	Replace []Replacement `json:"replace"`
	// Stranded are the environments that run the image and have no good
	// image to go back to: they keep running it until a fixed image is
	// baked and promoted.
	Stranded []string `json:"stranded,omitempty"`
}

// Revoke revokes image of project for reason, as actor: recorded in the
// store, tagged on EC2, an image.revoked event, and the environments
// running it promoted back (in the background, one after the other in
// pipeline order; each waits for the one before). It returns once the
// revocation is recorded and the replacements are planned. Errors:
// *RevokeError, store.ErrNotFound (no such project), AWS errors tagging
// the image (the revocation is recorded then and refused promotions
// already; revoking again tags it).
func (s *Service) Revoke(ctx context.Context, projectName, image, reason, actor string) (*Revoked, error) {
	reason = strings.TrimSpace(reason)
	switch {
	case reason == "":
		return nil, &RevokeError{Msg: "a revocation needs a reason (--reason)"}
	case len(reason) > maxRevokeReason:
		return nil, &RevokeError{Msg: fmt.Sprintf("reason: at most %d characters (it is the image's %s tag)", maxRevokeReason, TagRevoked)}
	case !pipeline.IsImageID(image):
		return nil, &RevokeError{Msg: fmt.Sprintf("%q is not an image id (ami-...)", image)}
	}
	rp, err := s.store.Project(ctx, projectName)
	if err != nil {
		return nil, err
	}
	imgs, err := s.store.Images(ctx, projectName)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(imgs, func(im store.Image) bool { return im.ImageID == image })
	if i < 0 {
		return nil, &RevokeError{Msg: fmt.Sprintf("%s is not an image of project %q (or retention removed it)", image, projectName)}
	}
	err = s.store.AddRevocation(ctx, store.Revocation{Project: projectName, ImageID: image, Reason: reason, Actor: actor})
	again := errors.Is(err, store.ErrRevoked)
	if err != nil && !again {
		return nil, err
	}
	if err := s.tagRevoked(ctx, rp.Region, image, reason); err != nil {
		return nil, err
	}
	if again {
		return nil, &RevokeError{Msg: fmt.Sprintf("image %s of %q is revoked already", image, projectName), Already: true}
	}
	out, err := s.planReplacements(ctx, projectName, image, imgs)
	if err != nil {
		return nil, err
	}
	out.Reason = reason
	s.log.Warn("image revoked", "project", projectName, "image", image, "reason", reason, "by", actor,
		"replace", len(out.Replace), "stranded", out.Stranded)
	detail := reason
	if len(out.Stranded) > 0 {
		detail += fmt.Sprintf("; no earlier good image for %s: it keeps running the revoked image", strings.Join(out.Stranded, ", "))
	}
	s.emit(ctx, notify.Event{Event: notify.ImageRevoked, Project: projectName, Image: image, Reason: detail})
	s.notify(Progress{Project: projectName, Detail: "image " + image + " revoked", Time: time.Now()})
	if len(out.Replace) > 0 {
		s.deploys.start(func(ctx context.Context) { s.followUp(ctx, projectName) }) // replaceRevoked, in order
	}
	return out, nil
}

// planReplacements finds, for each environment running image (in
// pipeline order), the newest good image before it among imgs (newest
// first): what replaceRevoked will promote.
func (s *Service) planReplacements(ctx context.Context, projectName, image string, imgs []store.Image) (*Revoked, error) {
	envs, err := s.store.Environments(ctx, projectName)
	if err != nil {
		return nil, err
	}
	revoked, err := s.store.Revocations(ctx, projectName)
	if err != nil {
		return nil, err
	}
	good := goodBefore(imgs, revoked, image)
	out := &Revoked{Project: projectName, ImageID: image, Replace: []Replacement{}}
	for _, e := range envs {
		cur, err := s.current(ctx, projectName, e.Name)
		if err != nil {
			return nil, err
		}
		rolling, err := s.store.Promotions(ctx, store.PromotionQuery{Project: projectName, Env: e.Name, State: store.PromotionRolling, Limit: 1})
		if err != nil {
			return nil, err
		}
		if cur != image && (len(rolling) == 0 || rolling[0].ImageID != image) {
			continue
		}
		if good == "" {
			out.Stranded = append(out.Stranded, e.Name)
			continue
		}
		out.Replace = append(out.Replace, Replacement{Env: e.Name, To: good})
	}
	return out, nil
}

// replaceRevoked starts the next replacement of a revoked image in
// project, if any: the first environment, in pipeline order, that runs a
// revoked image and has a good image before it, unless a rollout runs in
// it or in an environment before it (each replacement waits for the one
// before). catchUp calls it after every rollout and at every start, so
// the replacements go on, one after the other, across restarts.
func (s *Service) replaceRevoked(ctx context.Context, projectName string) error {
	revoked, err := s.store.Revocations(ctx, projectName)
	if err != nil || len(revoked) == 0 {
		return err
	}
	envs, err := s.store.Environments(ctx, projectName)
	if err != nil {
		return err
	}
	imgs, err := s.store.Images(ctx, projectName)
	if err != nil {
		return err
	}
	for _, e := range envs {
		last, err := s.store.Promotions(ctx, store.PromotionQuery{Project: projectName, Env: e.Name, Limit: 1})
		if err != nil {
			return err
		}
		if len(last) > 0 && last[0].State == store.PromotionRolling {
			return nil // the next turn comes when it ends
		}
		cur, err := s.current(ctx, projectName, e.Name)
		if err != nil {
			return err
		}
		r, bad := revoked[cur]
		if !bad {
			continue
		}
		to := goodBefore(imgs, revoked, cur)
		if to == "" {
			continue // stranded: said when it was revoked
		}
		cause := CauseRevokedPrefix + cur + ": " + r.Reason
		if _, err := s.promoteWith(ctx, projectName, e.Name, to, cause, true); err != nil {
			s.log.Error("replacing a revoked image failed", "project", projectName, "env", e.Name, "image", to, "err", err)
			continue
		}
		return nil
	}
	return nil
}

// goodBefore is the newest image of imgs (newest first) baked before
// image that is not revoked; "" when there is none.
func goodBefore(imgs []store.Image, revoked map[string]store.Revocation, image string) string {
	i := slices.IndexFunc(imgs, func(im store.Image) bool { return im.ImageID == image })
	if i < 0 {
		return ""
	}
	for _, im := range imgs[i+1:] {
		if _, bad := revoked[im.ImageID]; !bad {
			return im.ImageID
		}
	}
	return ""
}

// tagRevoked tags image in region kiln:revoked = reason.
func (s *Service) tagRevoked(ctx context.Context, region, image, reason string) error {
	hub, err := s.hubs.Hub(ctx, region)
	if err != nil {
		return err
	}
	err = hub.Retry(ctx, func(ctx context.Context) error {
		_, err := hub.EC2().CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{image},
			Tags: []types.Tag{{Key: aws.String(TagRevoked), Value: aws.String(reason)}}})
		if awsapi.Code(err) == "InvalidAMIID.NotFound" {
			return nil // deregistered already: nothing to tag
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("tag image %s revoked: %w", image, err)
	}
	return nil
}

// revokedError is the refusal of a promotion of a revoked image; nil when
// image is not revoked.
func (s *Service) revokedError(ctx context.Context, projectName, image string) error {
	revoked, err := s.store.Revocations(ctx, projectName)
	if err != nil {
		return err
	}
	if r, ok := revoked[image]; ok {
		return &PromotionError{Msg: fmt.Sprintf("image %s was revoked: %s", image, r.Reason)}
	}
	return nil
}
