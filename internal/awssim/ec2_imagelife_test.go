package awssim

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// TestImageDeprecation: past its deprecation time an image of another
// owner leaves the listings (IncludeDeprecated brings it back, its id
// still finds it); the owner's own deprecated image stays listed and
// launchable. Only the owner may deprecate.
func TestImageDeprecation(t *testing.T) {
	s, c := newTestSim(t, Options{})
	ctx := t.Context()
	own := ownImage(t, s, c, "own")
	stock := baseImage(t, c)
	at := s.Now().Add(time.Hour)
	if _, err := c.EnableImageDeprecation(ctx, &ec2.EnableImageDeprecationInput{ImageId: aws.String(own), DeprecateAt: aws.Time(at)}); err != nil {
		t.Fatalf("EnableImageDeprecation(own) = %v", err)
	}
	_, err := c.EnableImageDeprecation(ctx, &ec2.EnableImageDeprecationInput{ImageId: aws.String(stock), DeprecateAt: aws.Time(at)})
	if errCode(err) != "AuthFailure" {
		t.Fatalf("EnableImageDeprecation(amazon's) = %v; want AuthFailure", err)
	}
	_, err = c.EnableImageDeprecation(ctx, &ec2.EnableImageDeprecationInput{ImageId: aws.String(own), DeprecateAt: aws.Time(s.Now().Add(11 * 365 * 24 * time.Hour))})
	if errCode(err) != "InvalidParameterValue" {
		t.Fatalf("EnableImageDeprecation(11 years ahead) = %v; want InvalidParameterValue", err)
	}
	s.mu.Lock()
	s.images[stock].deprecateAt = at // as amazon would
	s.mu.Unlock()
	s.Advance(2 * time.Hour)

	listed := func(in ec2.DescribeImagesInput) map[string]bool {
		t.Helper()
		out, err := c.DescribeImages(ctx, &in)
		if err != nil {
			t.Fatalf("DescribeImages(%+v) = %v", in, err)
		}
		m := map[string]bool{}
		for _, im := range out.Images {
			m[aws.ToString(im.ImageId)] = true
		}
		return m
	}
	all := ec2.DescribeImagesInput{Owners: []string{"self", "amazon"}}
	if got := listed(all); !got[own] || got[stock] {
		t.Errorf("DescribeImages() lists own %v, amazon's deprecated %v; want true, false", got[own], got[stock])
	}
	all.IncludeDeprecated = aws.Bool(true)
	if got := listed(all); !got[stock] {
		t.Errorf("DescribeImages(IncludeDeprecated) does not list amazon's deprecated image")
	}
	if got := listed(ec2.DescribeImagesInput{ImageIds: []string{stock}}); !got[stock] {
		t.Errorf("DescribeImages(its id) does not find amazon's deprecated image")
	}
	if _, err := c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(own), InstanceType: types.InstanceTypeT3Micro,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}); err != nil {
		t.Errorf("RunInstances(deprecated image) = %v; want a launch", err)
	}
}

// TestDisableImage: a disabled image is private, unlaunchable, listed
// only with IncludeDisabled and by id; EnableImage makes it available
// again; a disabled image may still be deregistered.
func TestDisableImage(t *testing.T) {
	s, c := newTestSim(t, Options{})
	ctx := t.Context()
	id := ownImage(t, s, c, "shared")
	if _, err := c.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(id),
		LaunchPermission: &types.LaunchPermissionModifications{Add: []types.LaunchPermission{{Group: types.PermissionGroupAll}}}}); err != nil {
		t.Fatalf("ModifyImageAttribute(public) = %v", err)
	}
	_, err := c.EnableImage(ctx, &ec2.EnableImageInput{ImageId: aws.String(id)})
	if errCode(err) != "IncorrectState" {
		t.Fatalf("EnableImage(available) = %v; want IncorrectState", err)
	}
	if _, err := c.DisableImage(ctx, &ec2.DisableImageInput{ImageId: aws.String(id)}); err != nil {
		t.Fatalf("DisableImage() = %v", err)
	}
	byID, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}})
	if err != nil || len(byID.Images) != 1 || byID.Images[0].State != types.ImageStateDisabled || aws.ToBool(byID.Images[0].Public) {
		t.Fatalf("DescribeImages(id) = %+v, %v; want it disabled and private", byID, err)
	}
	_, err = c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(id), InstanceType: types.InstanceTypeT3Micro, MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	if errCode(err) != "InvalidAMIID.Unavailable" {
		t.Errorf("RunInstances(disabled) = %v; want InvalidAMIID.Unavailable", err)
	}
	disabled := []types.Filter{{Name: aws.String("state"), Values: []string{"disabled"}}}
	for _, tt := range []struct {
		include bool
		want    int
	}{{false, 0}, {true, 1}} {
		out, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}, Filters: disabled, IncludeDisabled: aws.Bool(tt.include)})
		if err != nil || len(out.Images) != tt.want {
			t.Errorf("DescribeImages(IncludeDisabled=%v) = %d images, %v; want %d", tt.include, len(out.Images), err, tt.want)
		}
	}
	if _, err := c.EnableImage(ctx, &ec2.EnableImageInput{ImageId: aws.String(id)}); err != nil {
		t.Fatalf("EnableImage() = %v", err)
	}
	if _, err := c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(id), InstanceType: types.InstanceTypeT3Micro, MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}); err != nil {
		t.Errorf("RunInstances(enabled again) = %v", err)
	}
	if _, err := c.DisableImage(ctx, &ec2.DisableImageInput{ImageId: aws.String(id)}); err != nil {
		t.Fatalf("DisableImage(again) = %v", err)
	}
	if _, err := c.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(id)}); err != nil {
		t.Errorf("DeregisterImage(disabled) = %v", err)
	}
}
