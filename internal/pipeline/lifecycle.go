package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awsapi"
)

// An image's later life: a deprecation time set when the bake tags the
// image (Builder.DeprecateAfter), and retention's disabling of an old image
// a while before it is deregistered (Retain with a DisableFor), so that a
// mistake can still be undone with EnableImage.

// TagDisabledAt marks an image retention disabled, with the time (RFC 3339)
// it did: the image is deregistered DisableFor after that.
const TagDisabledAt = "kiln:disabled-at"

// LifecycleIAMActions are the calls of deprecate_after (deprecate) and of
// retention's disable_for (disable), beyond IAMActions.
func LifecycleIAMActions(deprecate, disable bool) []string {
	var out []string
	if deprecate {
		out = append(out, "ec2:EnableImageDeprecation")
	}
	if disable {
		out = append(out, "ec2:DisableImage")
	}
	return out
}

// deprecate sets img's deprecation time to its creation time plus
// DeprecateAfter, so that a bake resumed after a crash sets the same time.
// A time already past (a resumed bake long after) is set to the next minute.
func (r *run) deprecate(ctx context.Context, img types.Image) error {
	if r.spec.DeprecateAfter <= 0 {
		return nil
	}
	created, err := time.Parse(time.RFC3339, aws.ToString(img.CreationDate))
	if err != nil {
		return fmt.Errorf("deprecate image %s: creation date %q: %w", aws.ToString(img.ImageId), aws.ToString(img.CreationDate), err)
	}
	at := created.Add(r.spec.DeprecateAfter)
	if now := r.p.o.Now(); at.Before(now) {
		at = now.Add(time.Minute)
	}
	err = r.hub.Retry(ctx, func(ctx context.Context) error {
		_, err := r.api.EnableImageDeprecation(ctx, &ec2.EnableImageDeprecationInput{ImageId: img.ImageId, DeprecateAt: aws.Time(at)})
		if awsapi.IsNotFound(err) {
			return awsapi.NotYet(err)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("deprecate image %s at %s: %w", aws.ToString(img.ImageId), at.UTC().Format(time.RFC3339), err)
	}
	return nil
}

// disableFirst is retention's step before deregistering img: an available
// image is disabled and tagged with the time; a disabled one is due (gone
// true) once disableFor has passed since that tag. A disabled image without
// the tag (disabled by hand) is tagged now and waits its full time.
func (p *Pipeline) disableFirst(ctx context.Context, h *awsapi.Hub, api ec2API, img types.Image, disableFor time.Duration) (gone bool, err error) {
	id := aws.ToString(img.ImageId)
	now := p.o.Now().UTC()
	if img.State == types.ImageStateDisabled {
		at, err := time.Parse(time.RFC3339, awsapi.TagValue(img.Tags, TagDisabledAt))
		if err == nil {
			return !now.Before(at.Add(disableFor)), nil
		}
	} else {
		err := h.Retry(ctx, func(ctx context.Context) error {
			_, err := api.DisableImage(ctx, &ec2.DisableImageInput{ImageId: img.ImageId})
			return err
		})
		if err != nil {
			return false, fmt.Errorf("disable image %s: %w", id, err)
		}
		p.log.Info("image disabled by retention", "image", id, "name", aws.ToString(img.Name), "deregister_after", disableFor)
	}
	err = h.Retry(ctx, func(ctx context.Context) error {
		_, err := api.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id},
			Tags: []types.Tag{{Key: aws.String(TagDisabledAt), Value: aws.String(now.Format(time.RFC3339))}}})
		return err
	})
	if err != nil {
		return false, fmt.Errorf("tag image %s disabled: %w", id, err)
	}
	return false, nil
}
