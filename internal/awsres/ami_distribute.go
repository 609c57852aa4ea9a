package awsres

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awsapi"
	"kiln/internal/pipeline"
)

// aws:ami's distribution: copy_to, encrypt, kms_key_id, share_with,
// share_with_orgs and share_with_ous are not part of the spec digest, so a
// changed list bakes nothing: the converged image is copied to a region
// added, shared anew. The image in each region is an output:
// image_id_<region> (RegionOutput), the home region's too.

// RegionOutput is the output key of the image in region:
// ${aws:ami/web.image_id_us-west-2}.
func RegionOutput(region string) string { return "image_id_" + region }

func (r *AMI) distribution() pipeline.Distribution {
	return pipeline.Distribution{CopyTo: r.CopyTo, Encrypt: r.Encrypt, KMSKeyID: r.KMSKeyID,
		ShareWith: r.ShareWith, ShareWithOrgs: r.ShareWithOrgs, ShareWithOUs: r.ShareWithOUs}
}

// distributed looks for the copies of img (available in the home region)
// in every copy_to region, and checks that each is shared as the spec
// says. It returns the image id by region, the home one included, and
// what is still to do ("copy image ami-x to us-west-2"); one
// DescribeImages per copy_to region.
func (r *AMI) distributed(ctx context.Context, img types.Image) (map[string]string, []string, error) {
	d := r.distribution()
	id := aws.ToString(img.ImageId)
	regions := map[string]string{r.hub.Region(): id}
	var todo []string
	digest := pipeline.ShareDigest(d)
	if awsapi.TagValue(img.Tags, pipeline.TagShared) != digest {
		todo = append(todo, fmt.Sprintf("share image %s in %s", id, r.hub.Region()))
	}
	m := map[string]string{awsapi.TagOwner: r.env.Graph, awsapi.TagResource: r.id(),
		awsapi.TagBake: awsapi.TagValue(img.Tags, awsapi.TagBake), pipeline.TagCopyOf: id}
	for _, region := range d.CopyTo {
		c, err := r.findCopy(ctx, region, m)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case c == nil || c.State == types.ImageStateFailed:
			todo = append(todo, fmt.Sprintf("copy image %s to %s", id, region))
		case c.State != types.ImageStateAvailable:
			todo = append(todo, fmt.Sprintf("wait for copy %s in %s (%s)", aws.ToString(c.ImageId), region, c.State))
		default:
			regions[region] = aws.ToString(c.ImageId)
			if awsapi.TagValue(c.Tags, pipeline.TagShared) != digest {
				todo = append(todo, fmt.Sprintf("share copy %s in %s", aws.ToString(c.ImageId), region))
			}
		}
	}
	return regions, todo, nil
}

// findCopy is the newest image with tags m in region, nil when none.
func (r *AMI) findCopy(ctx context.Context, region string, m map[string]string) (*types.Image, error) {
	h, err := r.hubs.Hub(ctx, region)
	if err != nil {
		return nil, fmt.Errorf("aws:ami %q: %w", r.env.Name, err)
	}
	var fs []types.Filter
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fs = append(fs, types.Filter{Name: aws.String("tag:" + k), Values: []string{m[k]}})
	}
	var found *types.Image
	err = h.Retry(ctx, func(ctx context.Context) error {
		out, err := h.EC2().DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}, Filters: fs})
		if err != nil {
			return err
		}
		found = nil
		for i, im := range out.Images {
			if found == nil || aws.ToString(im.CreationDate) > aws.ToString(found.CreationDate) {
				found = &out.Images[i]
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("aws:ami %q: find copy in %s: %w", r.env.Name, region, err)
	}
	return found, nil
}

// copyGone reports whether a copy in the outputs is no longer available
// in its region (deregistered by hand, say), so the check copies again. A
// lookup that fails reports nothing: the next poll looks again.
func (r *AMI) copyGone(ctx context.Context) bool {
	out := r.Outputs()
	for _, region := range r.CopyTo {
		id := out[RegionOutput(region)]
		if id == "" {
			continue
		}
		h, err := r.hubs.Hub(ctx, region)
		if err != nil {
			return false
		}
		img, err := h.EC2().DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}})
		if awsapi.IsNotFound(err) {
			return true
		}
		if err != nil {
			return false
		}
		if len(img.Images) != 1 || img.Images[0].State != types.ImageStateAvailable {
			return true
		}
	}
	return false
}
