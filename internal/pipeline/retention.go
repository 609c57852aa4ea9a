package pipeline

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awsapi"
)

// Retained is what Retain did.
type Retained struct {
	Region   string
	Kept     []string // the newest keep images
	InUse    []string // older images kept because something uses them
	Disabled []string // older images disabled, waiting out DisableFor (lifecycle.go)
	Removed  []string // deregistered, their snapshots deleted
}

// Keep is a retention policy: the newest N images are kept (at least 1);
// with DisableFor, an older image is first disabled (DisableImage, tagged
// kiln:disabled-at) and deregistered DisableFor later, so that EnableImage
// can still bring it back meanwhile.
type Keep struct {
	N          int
	DisableFor time.Duration
}

// Retain keeps the newest keep available images of the account (owner
// self) carrying every tag of match, and deregisters the older ones,
// deleting their snapshots, unless an image is in use: referenced by an
// instance that is not terminated, or by a launch-template version that an
// Auto Scaling group uses (versions no group uses do not count, so keep-N
// still removes the images of old versions), or named in protect (the
// bakery's: images its environments use or used lately). Images still
// pending are left alone. It blocks until done; an error
// leaves the rest for the next call (it is idempotent).
func (p *Pipeline) Retain(ctx context.Context, region string, match map[string]string, policy Keep, protect ...string) (Retained, error) {
	out := Retained{Region: region}
	if len(match) == 0 {
		return out, fmt.Errorf("retain images: no tags to select them by")
	}
	keep := max(policy.N, 1)
	h, err := p.hubs.Hub(ctx, region)
	if err != nil {
		return out, fmt.Errorf("retain images: %w", err)
	}
	api := ec2API(h.EC2())
	var fs []types.Filter
	for _, k := range slices.Sorted(maps.Keys(match)) {
		fs = append(fs, types.Filter{Name: aws.String("tag:" + k), Values: []string{match[k]}})
	}
	states := []string{string(types.ImageStateAvailable)}
	if policy.DisableFor > 0 {
		states = append(states, string(types.ImageStateDisabled))
	}
	fs = append(fs, types.Filter{Name: aws.String("state"), Values: states})
	var imgs []types.Image
	err = h.Retry(ctx, func(ctx context.Context) error {
		imgs = imgs[:0]
		pg := ec2.NewDescribeImagesPaginator(api, &ec2.DescribeImagesInput{Owners: []string{"self"}, Filters: fs,
			IncludeDisabled: aws.Bool(policy.DisableFor > 0)})
		for pg.HasMorePages() {
			page, err := pg.NextPage(ctx)
			if err != nil {
				return err
			}
			imgs = append(imgs, page.Images...)
		}
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("retain images: list: %w", err)
	}
	// Newest first. Creation dates have millisecond precision at best; the
	// name breaks ties, shorter first so that "web-9" comes before "web-10"
	// (bake ids grow).
	slices.SortFunc(imgs, func(a, b types.Image) int {
		if c := strings.Compare(aws.ToString(b.CreationDate), aws.ToString(a.CreationDate)); c != 0 {
			return c
		}
		na, nb := aws.ToString(a.Name), aws.ToString(b.Name)
		if c := len(nb) - len(na); c != 0 {
			return c
		}
		return strings.Compare(nb, na)
	})
	testsFailedLast(imgs) // imagetest.go: removed first
	for _, im := range imgs[:min(keep, len(imgs))] {
		out.Kept = append(out.Kept, aws.ToString(im.ImageId))
	}
	if len(imgs) <= keep {
		return out, nil
	}
	old := imgs[keep:]
	ids := make([]string, len(old))
	for i, im := range old {
		ids[i] = aws.ToString(im.ImageId)
	}
	used, err := imagesInUse(ctx, p.hubs, h, api, ids)
	if err != nil {
		return out, fmt.Errorf("retain images: %w", err)
	}
	for _, im := range old {
		id := aws.ToString(im.ImageId)
		if used[id] || slices.Contains(protect, id) {
			out.InUse = append(out.InUse, id)
			continue
		}
		if policy.DisableFor > 0 {
			gone, err := p.disableFirst(ctx, h, api, im, policy.DisableFor) // lifecycle.go
			if err != nil {
				return out, fmt.Errorf("retain images: %w", err)
			}
			if !gone {
				out.Disabled = append(out.Disabled, id)
				continue
			}
		}
		if err := removeImage(ctx, h, api, im); err != nil {
			return out, fmt.Errorf("retain images: %w", err)
		}
		p.log.Info("image removed by retention", "image", id, "name", aws.ToString(im.Name))
		out.Removed = append(out.Removed, id)
	}
	return out, nil
}

// imagesInUse returns the images in use among ids: referenced by an
// instance that is not terminated, or by a launch-template version an Auto
// Scaling group uses (awsapi.Hubs.ImagesInUse: the group's version, its
// live instances' versions, the template's latest), whatever ids holds.
func imagesInUse(ctx context.Context, hubs *awsapi.Hubs, h *awsapi.Hub, api ec2API, ids []string) (map[string]bool, error) {
	used := map[string]bool{}
	err := h.Retry(ctx, func(ctx context.Context) error {
		pg := ec2.NewDescribeInstancesPaginator(api, &ec2.DescribeInstancesInput{Filters: []types.Filter{
			{Name: aws.String("image-id"), Values: ids},
			{Name: aws.String("instance-state-name"), Values: []string{"pending", "running", "stopping", "stopped", "shutting-down"}},
		}})
		for pg.HasMorePages() {
			page, err := pg.NextPage(ctx)
			if err != nil {
				return err
			}
			for _, res := range page.Reservations {
				for _, in := range res.Instances {
					used[aws.ToString(in.ImageId)] = true
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find instances using images: %w", err)
	}
	// Launch-template versions in use by Auto Scaling groups: a template
	// with a version per baked image must not pin every image forever.
	lts, err := hubs.ImagesInUse(ctx, h.Region()) // retries by itself
	if err != nil {
		return nil, fmt.Errorf("find launch template versions in use: %w", err)
	}
	for id := range lts {
		used[id] = true
	}
	return used, nil
}
