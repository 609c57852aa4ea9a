package bakery

import (
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awsapi"
	"kiln/internal/awssim"
	"kiln/internal/pipeline"
	"kiln/internal/store"
)

// TestRetention bakes five images with keep 2 while the oldest is in use by
// an instance and the second by the launch-template version a group uses;
// the third is only in a version no group uses: the newest two stay, the
// ones in use stay, the third is deregistered and its snapshots deleted.
func TestRetention(t *testing.T) {
	w := newWorld(t, awssim.Options{})
	st := w.open(t)
	putProject(t, st, "web", "#!/bin/sh\ntrue\n", func(p *store.Project) { p.Keep = 2 })
	s := w.serve(t, st, nil)

	var imgs []types.Image
	for i := range 5 {
		id := trigger(t, s, "web")
		b := waitFinal(t, st, id)
		if b.State != store.Succeeded {
			t.Fatalf("bake %d = %s (%s); want succeeded", id, b.State, b.Reason)
		}
		out, err := w.client.DescribeImages(t.Context(), &ec2.DescribeImagesInput{ImageIds: []string{b.ImageID}})
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, out.Images[0])
		if i == 0 {
			// Something runs from the first image: retention must keep it.
			_, err := w.client.RunInstances(t.Context(), &ec2.RunInstancesInput{
				ImageId: out.Images[0].ImageId, InstanceType: types.InstanceTypeT3Micro,
				MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		switch i {
		case 1:
			// A group runs from a launch-template version of the second
			// image: retention must keep it.
			_, err := w.client.CreateLaunchTemplate(t.Context(), &ec2.CreateLaunchTemplateInput{
				LaunchTemplateName: aws.String("web"),
				LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: out.Images[0].ImageId, InstanceType: types.InstanceTypeT3Micro},
			})
			if err != nil {
				t.Fatal(err)
			}
			as, err := w.hubs.AutoScaling(t.Context(), "us-east-1")
			if err != nil {
				t.Fatal(err)
			}
			_, err = as.CreateAutoScalingGroup(t.Context(), &autoscaling.CreateAutoScalingGroupInput{
				AutoScalingGroupName: aws.String("web"),
				LaunchTemplate:       &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String("web"), Version: aws.String("1")},
				MinSize:              aws.Int32(0), MaxSize: aws.Int32(1), DesiredCapacity: aws.Int32(0),
				AvailabilityZones: []string{"us-east-1a"},
			})
			if err != nil {
				t.Fatal(err)
			}
		case 2, 3:
			// Versions 2 and 3 of the template: 2 is used by no group and
			// pins nothing; 3 is the template's latest.
			_, err := w.client.CreateLaunchTemplateVersion(t.Context(), &ec2.CreateLaunchTemplateVersionInput{
				LaunchTemplateName: aws.String("web"), SourceVersion: aws.String("1"),
				LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: out.Images[0].ImageId},
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	id := func(i int) string { return aws.ToString(imgs[i].ImageId) }

	out, err := w.client.DescribeImages(t.Context(), &ec2.DescribeImagesInput{
		Owners: []string{"self"}, Filters: []types.Filter{{Name: aws.String("tag:" + pipeline.TagProject), Values: []string{"web"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, im := range out.Images {
		left = append(left, aws.ToString(im.ImageId))
	}
	slices.Sort(left)
	want := []string{id(0), id(1), id(3), id(4)}
	slices.Sort(want)
	if !slices.Equal(left, want) {
		t.Errorf("images left = %v; want %v (newest two and the two in use)", left, want)
	}
	for _, sn := range snapshotsOf(imgs[2]) {
		if _, err := w.client.DescribeSnapshots(t.Context(), &ec2.DescribeSnapshotsInput{SnapshotIds: []string{sn}}); !awsapi.IsNotFound(err) {
			t.Errorf("snapshot %s of the removed image: error = %v; want NotFound", sn, err)
		}
	}
	for _, i := range []int{0, 1, 3, 4} {
		for _, sn := range snapshotsOf(imgs[i]) {
			if _, err := w.client.DescribeSnapshots(t.Context(), &ec2.DescribeSnapshotsInput{SnapshotIds: []string{sn}}); err != nil {
				t.Errorf("snapshot %s of kept image %s: %v", sn, id(i), err)
			}
		}
	}
	recorded, err := st.Images(t.Context(), "web")
	if err != nil {
		t.Fatal(err)
	}
	var rec []string
	for _, im := range recorded {
		rec = append(rec, im.ImageID)
	}
	slices.Sort(rec)
	if !slices.Equal(rec, want) {
		t.Errorf("store images = %v; want %v", rec, want)
	}
	if n := w.sim.Calls("DeregisterImage"); n != 1 {
		t.Errorf("DeregisterImage calls = %d; want 1", n)
	}
}
