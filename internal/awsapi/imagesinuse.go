package awsapi

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// ImagesInUse returns the AMI ids that launch-template versions in use by
// the Auto Scaling groups of region reference: each group's own version,
// the versions its live instances were launched from, and the latest
// version of each of those templates (the target of a rollout in
// progress). Bake retention must keep these images. Versions no group
// uses do not count, so a template with a version per baked image does
// not pin every image forever. Cost: one paginated
// DescribeAutoScalingGroups plus one DescribeLaunchTemplateVersions per
// template in use.
func (hs *Hubs) ImagesInUse(ctx context.Context, region string) (map[string]bool, error) {
	hub, err := hs.Hub(ctx, region)
	if err != nil {
		return nil, err
	}
	as, err := hs.AutoScaling(ctx, hub.Region())
	if err != nil {
		return nil, err
	}
	byID := map[string][]string{}   // template id → versions
	byName := map[string][]string{} // template name → versions (specs by name only)
	add := func(lt *astypes.LaunchTemplateSpecification) {
		if lt == nil {
			return
		}
		v := aws.ToString(lt.Version)
		if v == "" {
			v = "$Default"
		}
		m, key := byID, aws.ToString(lt.LaunchTemplateId)
		if key == "" {
			m, key = byName, aws.ToString(lt.LaunchTemplateName)
		}
		if key == "" {
			return
		}
		if len(m[key]) == 0 {
			m[key] = []string{"$Latest"}
		}
		if !slices.Contains(m[key], v) {
			m[key] = append(m[key], v)
		}
	}
	err = hub.Retry(ctx, func(ctx context.Context) error {
		clear(byID)
		clear(byName)
		p := autoscaling.NewDescribeAutoScalingGroupsPaginator(as, &autoscaling.DescribeAutoScalingGroupsInput{})
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				return err
			}
			for _, g := range out.AutoScalingGroups {
				add(g.LaunchTemplate)
				if m := g.MixedInstancesPolicy; m != nil && m.LaunchTemplate != nil {
					add(m.LaunchTemplate.LaunchTemplateSpecification)
				}
				for _, in := range g.Instances {
					if liveMember(in) {
						add(in.LaunchTemplate)
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list images in use: %w", err)
	}
	images := map[string]bool{}
	look := func(in *ec2.DescribeLaunchTemplateVersionsInput) error {
		return hub.Retry(ctx, func(ctx context.Context) error {
			out, err := hub.EC2().DescribeLaunchTemplateVersions(ctx, in)
			if IsNotFound(err) || strings.HasSuffix(Code(err), "NotFoundException") {
				return nil // deleted since: nothing in use
			}
			if err != nil {
				return err
			}
			for _, v := range out.LaunchTemplateVersions {
				if d := v.LaunchTemplateData; d != nil && aws.ToString(d.ImageId) != "" {
					images[aws.ToString(d.ImageId)] = true
				}
			}
			return nil
		})
	}
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		if err := look(&ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: aws.String(id), Versions: byID[id]}); err != nil {
			return nil, fmt.Errorf("list images in use: %w", err)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		if err := look(&ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateName: aws.String(name), Versions: byName[name]}); err != nil {
			return nil, fmt.Errorf("list images in use: %w", err)
		}
	}
	return images, nil
}

// liveMember reports a group instance that is not on its way out.
func liveMember(in astypes.Instance) bool {
	s := string(in.LifecycleState)
	return !strings.HasPrefix(s, "Terminating") && s != "Terminated" && !strings.HasPrefix(s, "Detach")
}
