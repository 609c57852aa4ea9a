package pipeline

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awsapi"
	"kiln/internal/engine"
)

// groupAPI is the lookup of security groups by name, in the SDK's shape.
type groupAPI interface {
	DescribeSecurityGroups(context.Context, *ec2.DescribeSecurityGroupsInput, ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupsOutput, error)
}

// groupIDs returns the builder's security groups as ids: the spec's ids as
// they are, and its names (a project names an aws:security_group by its
// name) looked up with one DescribeSecurityGroups, only when there are
// names. A name that matches no group, or groups in several VPCs, is a
// permanent error.
func groupIDs(ctx context.Context, h *awsapi.Hub, api groupAPI, groups []string) ([]string, error) {
	var names []string
	for _, g := range groups {
		if !strings.HasPrefix(g, "sg-") {
			names = append(names, g)
		}
	}
	if len(names) == 0 {
		return groups, nil
	}
	var found []types.SecurityGroup
	err := h.Retry(ctx, func(ctx context.Context) error {
		out, err := api.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{
			Filters: []types.Filter{{Name: aws.String("group-name"), Values: names}},
		})
		if err != nil {
			return awsapi.Classify(err)
		}
		found = out.SecurityGroups
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("look up security groups %s: %w", strings.Join(names, ", "), err)
	}
	byName := map[string][]string{}
	for _, g := range found {
		byName[aws.ToString(g.GroupName)] = append(byName[aws.ToString(g.GroupName)], aws.ToString(g.GroupId))
	}
	out := make([]string, 0, len(groups))
	for _, g := range groups {
		if strings.HasPrefix(g, "sg-") {
			out = append(out, g)
			continue
		}
		switch ids := byName[g]; len(ids) {
		case 0:
			return nil, engine.Permanent(fmt.Errorf("security group %q: no group of that name in %s", g, h.Region()))
		case 1:
			if !slices.Contains(out, ids[0]) {
				out = append(out, ids[0])
			}
		default:
			return nil, engine.Permanent(fmt.Errorf("security group %q: groups of that name in several VPCs (%s): give the id", g, strings.Join(ids, ", ")))
		}
	}
	return out, nil
}
