package bakery

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/store"
)

// ImageStatus is one kept image of a project as kiln images shows it: the
// record, each region's copy with its state in EC2, the environments that
// run it, and its deprecation.
type ImageStatus struct {
	store.Image
	Region       string      // the bake's region
	State        string      // EC2's state there: available, pending, failed, disabled; "gone" when EC2 has none
	Deprecation  time.Time   // when EC2 deprecates it; zero: never
	Copies       []ImageCopy // the other regions', in region order
	Environments []string    // the environments that run it (their last succeeded promotion), in order
	Rolling      []string    // the environments a running promotion takes it to
	Revoked      string      // the revocation's reason; "" when not revoked (revoke.go)
}

// InUse reports whether an environment runs the image or is taking it.
func (s ImageStatus) InUse() bool { return len(s.Environments)+len(s.Rolling) > 0 }

// ImageCopy is an image's copy in another region.
type ImageCopy struct {
	Region  string
	ImageID string
	State   string // EC2's (or the bake's record when EC2 cannot tell: pending, failed)
}

// imagesReadTimeout bounds Images' reads of EC2 (retried through an
// outage otherwise): the API answers with the error instead of waiting.
const imagesReadTimeout = 20 * time.Second

// Images describes project's kept images, newest first: one
// DescribeImages per region for their states and deprecation. Errors:
// store.ErrNotFound (no such project), an AWS error naming the region.
func (s *Service) Images(ctx context.Context, project string) ([]ImageStatus, error) {
	p, err := s.store.Project(ctx, project)
	if err != nil {
		return nil, err
	}
	imgs, err := s.store.Images(ctx, project)
	if err != nil {
		return nil, err
	}
	envs, err := s.store.Environments(ctx, project)
	if err != nil {
		return nil, err
	}
	promos, err := s.store.Promotions(ctx, store.PromotionQuery{Project: project, Limit: 1000})
	if err != nil {
		return nil, err
	}
	running := map[string][]string{}
	rolling := map[string][]string{}
	for _, st := range EnvStatuses(project, envs, promos) {
		if st.Image != "" {
			running[st.Image] = append(running[st.Image], st.Name)
		}
		if len(st.Promotions) > 0 && st.Promotions[0].State == store.PromotionRolling {
			rolling[st.Promotions[0].ImageID] = append(rolling[st.Promotions[0].ImageID], st.Name)
		}
	}
	revoked, err := s.store.Revocations(ctx, project)
	if err != nil {
		return nil, err
	}
	out := make([]ImageStatus, len(imgs))
	byRegion := map[string][]string{} // region → image ids to describe
	for i, im := range imgs {
		st := ImageStatus{Image: im, Region: p.Region, Environments: running[im.ImageID], Rolling: rolling[im.ImageID],
			Revoked: revoked[im.ImageID].Reason}
		if im.BakeID != 0 {
			copies, err := s.store.BakeImages(ctx, im.BakeID)
			if err != nil {
				return nil, err
			}
			for _, c := range copies {
				if c.ImageID == im.ImageID {
					st.Region = c.Region
					continue
				}
				st.Copies = append(st.Copies, ImageCopy{Region: c.Region, ImageID: c.ImageID, State: c.State})
			}
		}
		slices.SortFunc(st.Copies, func(a, b ImageCopy) int { return strings.Compare(a.Region, b.Region) })
		byRegion[st.Region] = append(byRegion[st.Region], im.ImageID)
		for _, c := range st.Copies {
			if c.ImageID != "" {
				byRegion[c.Region] = append(byRegion[c.Region], c.ImageID)
			}
		}
		out[i] = st
	}
	seen := map[string]ec2Image{}
	dctx, cancel := context.WithTimeout(ctx, imagesReadTimeout)
	defer cancel()
	for region, ids := range byRegion {
		got, err := s.describeImages(dctx, region, ids)
		if err != nil {
			return nil, err
		}
		for id, im := range got {
			seen[region+"/"+id] = im
		}
	}
	for i := range out {
		st := &out[i]
		im, ok := seen[st.Region+"/"+st.ImageID]
		st.State, st.Deprecation = "gone", im.deprecation
		if ok {
			st.State = im.state
		}
		for j := range st.Copies {
			c := &st.Copies[j]
			if im, ok := seen[c.Region+"/"+c.ImageID]; ok {
				c.State = im.state
			} else if c.ImageID != "" && c.State == "available" {
				c.State = "gone"
			}
		}
	}
	return out, nil
}

type ec2Image struct {
	state       string
	deprecation time.Time
}

// describeImages reads ids' states and deprecation times in region (those
// EC2 does not know are absent).
func (s *Service) describeImages(ctx context.Context, region string, ids []string) (map[string]ec2Image, error) {
	hub, err := s.hubs.Hub(ctx, region)
	if err != nil {
		return nil, err
	}
	out := map[string]ec2Image{}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	for chunk := range slices.Chunk(ids, 100) {
		err := hub.Retry(ctx, func(ctx context.Context) error {
			// By filter, not ImageIds: a deregistered id is then absent
			// instead of failing the whole call.
			res, err := hub.EC2().DescribeImages(ctx, &ec2.DescribeImagesInput{
				Filters:           []types.Filter{{Name: aws.String("image-id"), Values: chunk}},
				IncludeDeprecated: aws.Bool(true), IncludeDisabled: aws.Bool(true),
			})
			if err != nil {
				return err
			}
			for _, im := range res.Images {
				e := ec2Image{state: string(im.State)}
				if d := aws.ToString(im.DeprecationTime); d != "" {
					e.deprecation, _ = time.Parse(time.RFC3339, d)
				}
				out[aws.ToString(im.ImageId)] = e
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("describe images in %s: %w", region, err)
		}
	}
	return out, nil
}
