package awsres

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"kiln/internal/awsapi"
)

// adoptGroups finds Auto Scaling groups. A group is adoptable when it
// launches from a launch template pinned to a version number: its block
// is that version's data and the group's capacity, and --tag tags the
// group and its launch template (kiln keeps the template's versions).
// Filters are Auto Scaling's (tag:KEY=VALUE, tag-key=KEY); ids are group
// names.
func (e *Estate) adoptGroups(ctx context.Context, h *awsapi.Hub, filters map[string][]string, ids []string) ([]Adoptable, error) {
	as, err := e.hubs.AutoScaling(ctx, h.Region())
	if err != nil {
		return nil, err
	}
	in := &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: ids}
	for k, v := range filters {
		in.Filters = append(in.Filters, astypes.Filter{Name: aws.String(k), Values: v})
	}
	var out []Adoptable
	p := autoscaling.NewDescribeAutoScalingGroupsPaginator(as, in)
	for p.HasMorePages() {
		var page *autoscaling.DescribeAutoScalingGroupsOutput
		if err := h.Retry(ctx, func(ctx context.Context) (err error) { page, err = p.NextPage(ctx); return err }); err != nil {
			return nil, fmt.Errorf("describe Auto Scaling groups: %w", err)
		}
		for _, g := range page.AutoScalingGroups {
			a, err := adoptGroup(ctx, h, as, g)
			if err != nil {
				return nil, err
			}
			out = append(out, a)
		}
	}
	return out, nil
}

func adoptGroup(ctx context.Context, h *awsapi.Hub, as *autoscaling.Client, g astypes.AutoScalingGroup) (Adoptable, error) {
	name := aws.ToString(g.AutoScalingGroupName)
	lt := g.LaunchTemplate
	if lt == nil || aws.ToString(lt.LaunchTemplateId) == "" {
		return Adoptable{}, fmt.Errorf("%w: group %s does not launch from a launch template (kiln's groups do)", ErrAdoptUsage, name)
	}
	ltID, version := aws.ToString(lt.LaunchTemplateId), aws.ToString(lt.Version)
	if _, err := strconv.Atoi(version); err != nil {
		return Adoptable{}, fmt.Errorf("%w: group %s uses version %q of %s: pin it to a version number first (kiln pins its groups)", ErrAdoptUsage, name, version, ltID)
	}
	var vs *ec2.DescribeLaunchTemplateVersionsOutput
	if err := h.Retry(ctx, func(ctx context.Context) (err error) {
		vs, err = h.EC2().DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: aws.String(ltID), Versions: []string{version}})
		return err
	}); err != nil || len(vs.LaunchTemplateVersions) != 1 {
		return Adoptable{}, fmt.Errorf("describe version %s of launch template %s: %w", version, ltID, err)
	}
	d := vs.LaunchTemplateVersions[0].LaunchTemplateData
	fields := []Field{{"image", aws.ToString(d.ImageId)}, {"type", string(d.InstanceType)}}
	if ud := aws.ToString(d.UserData); ud != "" {
		b, err := base64.StdEncoding.DecodeString(ud)
		if err != nil {
			return Adoptable{}, fmt.Errorf("user data of launch template %s version %s: %w", ltID, version, err)
		}
		fields = append(fields, Field{"user_data", string(b)})
	}
	if len(d.SecurityGroupIds) > 0 {
		fields = append(fields, Field{"security_groups", slices.Sorted(slices.Values(d.SecurityGroupIds))})
	}
	if p := profileOf(d, false); p != "" {
		fields = append(fields, Field{"iam_profile", p})
	}
	if s := aws.ToString(g.VPCZoneIdentifier); s != "" {
		fields = append(fields, Field{"subnets", strings.Split(s, ",")})
	}
	fields = append(fields, Field{"min", int64(aws.ToInt32(g.MinSize))}, Field{"max", int64(aws.ToInt32(g.MaxSize))},
		Field{"desired", int64(aws.ToInt32(g.DesiredCapacity))})
	a := Adoptable{Kind: "aws:asg", Name: name, Ref: name, Fields: fields}
	for _, t := range g.Tags {
		switch aws.ToString(t.Key) {
		case awsapi.TagOwner:
			a.Owner = aws.ToString(t.Value)
		case awsapi.TagResource:
			a.Resource = aws.ToString(t.Value)
		}
	}
	a.tag = func(ctx context.Context, graph string) error {
		if err := ec2Tagger(h, ltID, "aws:asg/"+name, nil)(ctx, graph); err != nil {
			return fmt.Errorf("tag launch template %s: %w", ltID, err)
		}
		tag := func(k, v string) astypes.Tag {
			return astypes.Tag{ResourceId: aws.String(name), ResourceType: aws.String("auto-scaling-group"),
				Key: aws.String(k), Value: aws.String(v), PropagateAtLaunch: aws.Bool(true)}
		}
		return h.Retry(ctx, func(ctx context.Context) error {
			_, err := as.CreateOrUpdateTags(ctx, &autoscaling.CreateOrUpdateTagsInput{Tags: []astypes.Tag{
				tag(awsapi.TagOwner, graph), tag(awsapi.TagResource, "aws:asg/"+name)}})
			return awsapi.Classify(err)
		})
	}
	return a, nil
}
