package bakery

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awsapi"
	"kiln/internal/awsres"
	"kiln/internal/awssim"
	"kiln/internal/engine"
	"kiln/internal/project"
	"kiln/internal/testsupport"
)

// TestBakeRollOut: the bake's rollOut converts the target, turns a
// failed refresh into a *RolloutFailedError (wrapping the
// *awsres.RolloutError) and a missing group into a permanent error.
func TestBakeRollOut(t *testing.T) {
	sim := awssim.New(awssim.Options{TimeScale: 0.001})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	cfg := awssim.ClientConfig(srv.URL)
	hubs := awsapi.NewHubs(awsapi.Options{
		Config:  &cfg,
		Wait:    awsapi.Backoff{Min: 2 * time.Millisecond, Max: 20 * time.Millisecond},
		Retries: awsapi.Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond},
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = sim.Run(ctx) })
	wg.Go(func() { _ = hubs.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	h, err := hubs.Hub(t.Context(), "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := h.EC2().DescribeImages(t.Context(), &ec2.DescribeImagesInput{Owners: []string{"amazon"}})
	if err != nil || len(imgs.Images) < 2 {
		t.Fatalf("DescribeImages() = %v, %v; want two images", imgs, err)
	}
	oldImage, newImage := aws.ToString(imgs.Images[0].ImageId), aws.ToString(imgs.Images[1].ImageId)
	if _, err := h.EC2().CreateLaunchTemplate(t.Context(), &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String("web"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: aws.String(oldImage), InstanceType: types.InstanceTypeT3Micro},
	}); err != nil {
		t.Fatal(err)
	}
	as, err := hubs.AutoScaling(t.Context(), "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := as.CreateAutoScalingGroup(t.Context(), &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String("web"),
		LaunchTemplate:       &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String("web"), Version: aws.String("1")},
		MinSize:              aws.Int32(3), MaxSize: aws.Int32(3), AvailabilityZones: []string{"us-east-1a"},
	}); err != nil {
		t.Fatal(err)
	}
	testsupport.Eventually(t, "the group to warm up", func() bool {
		gi, ok := sim.AutoScalingGroup("web")
		return ok && gi.Healthy() == 3
	})

	roll := func(ctx context.Context, region, group, image string, t project.RolloutTarget, log *slog.Logger) error {
		return rollOut(ctx, hubs, region, group, image, t, log)
	}
	log := slog.New(slog.DiscardHandler)
	pct := 50
	target := project.RolloutTarget{Group: "web", MinHealthyPercent: &pct, Warmup: 60 * time.Second}
	sim.FailNextRefresh(1)
	err = roll(t.Context(), "us-east-1", "web", newImage, target, log)
	var rf *RolloutFailedError
	var re *awsres.RolloutError
	if !errors.As(err, &rf) || !errors.As(err, &re) || rf.Reason == "" {
		t.Fatalf("RollOut(failing refresh) = %v; want a *RolloutFailedError wrapping an *awsres.RolloutError", err)
	}
	if err := roll(t.Context(), "", "nope", newImage, target, log); !engine.IsPermanent(err) {
		t.Errorf("RollOut(no group) = %v; want a permanent error", err)
	}
	if err := roll(t.Context(), "us-east-1", "web", newImage, target, log); err != nil {
		t.Fatalf("RollOut() = %v", err)
	}
	gi, _ := sim.AutoScalingGroup("web")
	for _, in := range gi.Instances {
		if in.LaunchTemplateVersion != "2" {
			t.Errorf("instance %s on version %s; want 2", in.ID, in.LaunchTemplateVersion)
		}
	}
}
