package awssim_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awssim"
)

// A rolling instance refresh moves a group to a new launch-template
// version, stepped by the manual clock: with 4 instances and
// MinHealthyPercentage 75 it replaces one at a time, each taking 15 s to
// boot and 60 s to warm up.
func Example_instanceRefresh() {
	ctx := context.Background()
	sim := awssim.New(awssim.Options{ManualClock: true, TimeScale: 1})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	ec := ec2.NewFromConfig(awssim.ClientConfig(srv.URL))
	as := autoscaling.NewFromConfig(awssim.ClientConfig(srv.URL))

	images, _ := ec.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"},
		Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"al2023-ami-2023.*-x86_64"}}}})
	lt, _ := ec.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String("web"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: images.Images[0].ImageId, InstanceType: types.InstanceTypeT3Micro},
	})
	id := lt.LaunchTemplate.LaunchTemplateId
	_, _ = ec.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{
		LaunchTemplateId: id, SourceVersion: aws.String("1"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: images.Images[1].ImageId},
	})
	_, _ = as.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String("web"),
		LaunchTemplate:       &astypes.LaunchTemplateSpecification{LaunchTemplateId: id, Version: aws.String("1")},
		MinSize:              aws.Int32(4), MaxSize: aws.Int32(4),
		AvailabilityZones: []string{"us-east-1a", "us-east-1b"},
	})
	sim.Advance(time.Minute)

	_, err := as.StartInstanceRefresh(ctx, &autoscaling.StartInstanceRefreshInput{
		AutoScalingGroupName: aws.String("web"),
		DesiredConfiguration: &astypes.DesiredConfiguration{LaunchTemplate: &astypes.LaunchTemplateSpecification{LaunchTemplateId: id, Version: aws.String("2")}},
		Preferences:          &astypes.RefreshPreferences{MinHealthyPercentage: aws.Int32(75), InstanceWarmup: aws.Int32(60)},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for range 8 {
		sim.Advance(time.Minute)
		out, _ := as.DescribeInstanceRefreshes(ctx, &autoscaling.DescribeInstanceRefreshesInput{AutoScalingGroupName: aws.String("web")})
		r := out.InstanceRefreshes[0]
		fmt.Printf("%s %d%%\n", r.Status, aws.ToInt32(r.PercentageComplete))
		if r.Status == astypes.InstanceRefreshStatusSuccessful {
			break
		}
	}
	g, _ := as.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"web"}})
	fmt.Println("group on version", aws.ToString(g.AutoScalingGroups[0].LaunchTemplate.Version))
	// Output:
	// InProgress 0%
	// InProgress 25%
	// InProgress 50%
	// InProgress 75%
	// Successful 100%
	// group on version 2
}
