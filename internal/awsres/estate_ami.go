package awsres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awsapi"
	"kiln/internal/engine"
	"kiln/internal/pipeline"
)

// errImageInUse is wrapped by a prune of an image something still uses.
var errImageInUse = errors.New("image in use")

// listImages lists the images of aws:ami resources graph owns (every
// image a resource baked and retention kept), disabled ones too.
func listImages(ctx context.Context, _ *Estate, h *awsapi.Hub, graph string) ([]engine.Owned, error) {
	p := ec2.NewDescribeImagesPaginator(h.EC2(), &ec2.DescribeImagesInput{
		Owners: []string{"self"}, Filters: ownerFilter(graph), IncludeDisabled: aws.Bool(true),
	})
	return ownedPages(ctx, h, p.HasMorePages, p.NextPage, func(page *ec2.DescribeImagesOutput) (out []engine.Owned) {
		for _, im := range page.Images {
			out = append(out, tagged(im.Tags, aws.ToString(im.ImageId))...)
		}
		return out
	})
}

// deleteImages deregisters each image and deletes its snapshots, never
// one in use: an image a live instance (shutting-down counts) or an Auto
// Scaling group's launch-template version names waits, so the instances
// of the rank before it finish terminating first; one that something
// outside the prune keeps using stays, its error saying so.
func deleteImages(ctx context.Context, e *Estate, h *awsapi.Hub, ids []string) error {
	var imgs []types.Image
	err := h.Retry(ctx, func(ctx context.Context) error {
		out, err := h.EC2().DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: ids, IncludeDisabled: aws.Bool(true)})
		if awsapi.IsNotFound(err) {
			imgs, err = describeEach(ctx, h, ids)
			return err
		}
		if err == nil {
			imgs = out.Images
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("describe images %v: %w", ids, err)
	}
	// Each round removes the images nothing uses any more; those still
	// in use wait for the next round.
	var errs []error
	left := imgs
	err = h.Retry(ctx, func(ctx context.Context) error {
		ids := make([]string, len(left))
		for i, im := range left {
			ids[i] = aws.ToString(im.ImageId)
		}
		used, err := pipeline.ImagesInUse(ctx, e.hubs, h, ids)
		if err != nil {
			return err
		}
		var busy []types.Image
		for _, im := range left {
			id := aws.ToString(im.ImageId)
			if used[id] {
				busy = append(busy, im)
				continue
			}
			if err := pipeline.RemoveImage(ctx, h, im); err != nil {
				errs = append(errs, fmt.Errorf("deregister image %s: %w", id, err))
				continue
			}
			e.log.Info("image deregistered", "image", id, "name", aws.ToString(im.Name))
		}
		left = busy
		if len(busy) == 0 {
			return nil
		}
		var names []string
		for _, im := range busy {
			names = append(names, aws.ToString(im.ImageId))
		}
		return awsapi.NotYet(fmt.Errorf("deregister images %s: %w: an instance or an Auto Scaling group's launch template still uses them", strings.Join(names, ", "), errImageInUse))
	})
	if err != nil && ctx.Err() != nil && len(left) > 0 && !errors.Is(err, errImageInUse) {
		// Cut short in the middle of a round: still name what is left.
		var names []string
		for _, im := range left {
			names = append(names, aws.ToString(im.ImageId))
		}
		err = fmt.Errorf("deregister images %s: not done when the wait ended: %w", strings.Join(names, ", "), err)
	}
	if err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// describeEach describes ids one by one when a batch named one that is
// gone (EC2 refuses the whole call then); those gone are left out.
func describeEach(ctx context.Context, h *awsapi.Hub, ids []string) ([]types.Image, error) {
	var imgs []types.Image
	for _, id := range ids {
		out, err := h.EC2().DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}, IncludeDisabled: aws.Bool(true)})
		if awsapi.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		imgs = append(imgs, out.Images...)
	}
	return imgs, nil
}
