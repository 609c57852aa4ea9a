package bakery_test

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/store"
	"kiln/internal/testsupport"
)

// TestBakeRollsOutACopy: a project baked in us-east-1, copied to
// us-west-2 and rolled out to a group there: the group's instances run the
// copy in us-west-2.
func TestBakeRollsOutACopy(t *testing.T) {
	w := newRolloutWorld(t)
	ctx := t.Context()
	h, err := w.hubs.Hub(ctx, "us-west-2")
	if err != nil {
		t.Fatal(err)
	}
	west := h.EC2()
	imgs, err := west.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"},
		Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"al2023-ami-2023.*-x86_64"}}}})
	if err != nil || len(imgs.Images) == 0 {
		t.Fatalf("DescribeImages(us-west-2) = %v, %v", imgs, err)
	}
	if _, err := west.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("web"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: imgs.Images[0].ImageId, InstanceType: types.InstanceTypeT3Micro}}); err != nil {
		t.Fatal(err)
	}
	as, err := w.hubs.AutoScaling(ctx, "us-west-2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := as.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("web"),
		LaunchTemplate: &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String("web"), Version: aws.String("1")},
		MinSize:        aws.Int32(2), MaxSize: aws.Int32(2), AvailabilityZones: []string{"us-west-2a"}}); err != nil {
		t.Fatal(err)
	}
	westSim, _ := w.sim.Region("us-west-2")
	testsupport.Eventually(t, "the group to be warmed up", func() bool {
		gi, ok := westSim.AutoScalingGroup("web")
		return ok && gi.Healthy() == 2
	})
	p := store.Project{
		Name: "web", Region: "us-east-1", BaseOwner: "amazon", BaseName: "al2023-ami-2023.*-x86_64", BaseMostRecent: true,
		Type: "t3.small", Script: "#!/bin/sh\ntrue\n", Keep: 5, ScriptTimeout: 20 * time.Second, ImageTimeout: 20 * time.Second,
		Rollout: &store.Rollout{Group: "web", Region: "us-west-2", Warmup: 60 * time.Second},
	}
	if _, err := w.st.PutProject(ctx, p, "0123456789abcdef0123"); err != nil {
		t.Fatal(err)
	}
	if err := w.st.PutDistribution(ctx, "web", store.Distribution{CopyTo: []string{"us-west-2"}}); err != nil {
		t.Fatal(err)
	}
	res, err := w.svc.Trigger(ctx, "web", "c0ffee", "refs/heads/main")
	if err != nil {
		t.Fatal(err)
	}
	b := w.waitFinal(t, res.BakeID)
	if b.State != store.Succeeded {
		t.Fatalf("bake = %s (%s); want succeeded", b.State, b.Reason)
	}
	regions, _ := w.st.BakeImages(ctx, b.ID)
	var copyID string
	for _, ri := range regions {
		if ri.Region == "us-west-2" {
			copyID = ri.ImageID
		}
	}
	gi, _ := westSim.AutoScalingGroup("web")
	running := map[string]string{}
	for _, in := range westSim.Instances() {
		running[in.ID] = in.ImageID
	}
	for _, in := range gi.Instances {
		if copyID == "" || running[in.ID] != copyID {
			t.Errorf("instance %s runs %s; want the copy %q", in.ID, running[in.ID], copyID)
		}
	}
}
