package awssim

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// newTestSim starts a simulator with a manual clock behind httptest and
// returns an SDK client that does not retry (so error codes are seen as
// sent).
func newTestSim(t testing.TB, o Options) (*Sim, *ec2.Client) {
	t.Helper()
	o.ManualClock = true
	if o.TimeScale == 0 {
		o.TimeScale = 1
	}
	s := New(o)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c := ec2.NewFromConfig(ClientConfig(srv.URL), func(o *ec2.Options) { o.RetryMaxAttempts = 1 })
	return s, c
}

// errCode is the AWS error code of err, "" for nil.
func errCode(err error) string {
	if err == nil {
		return ""
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return "not an API error: " + err.Error()
}

// baseImage returns the newest stock al2023 x86_64 image id.
func baseImage(t testing.TB, c *ec2.Client) string {
	t.Helper()
	out, err := c.DescribeImages(context.Background(), &ec2.DescribeImagesInput{
		Owners:  []string{"amazon"},
		Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"al2023-ami-2023.*-x86_64"}}},
	})
	if err != nil {
		t.Fatalf("DescribeImages() = %v", err)
	}
	var best types.Image
	for _, im := range out.Images {
		if best.CreationDate == nil || *im.CreationDate > *best.CreationDate {
			best = im
		}
	}
	if best.ImageId == nil {
		t.Fatal("no stock al2023 image")
	}
	return *best.ImageId
}

func run(t testing.TB, c *ec2.Client, in *ec2.RunInstancesInput) []types.Instance {
	t.Helper()
	if in.MinCount == nil {
		in.MinCount, in.MaxCount = aws.Int32(1), aws.Int32(1)
	}
	out, err := c.RunInstances(context.Background(), in)
	if err != nil {
		t.Fatalf("RunInstances() = %v", err)
	}
	return out.Instances
}

func state(t testing.TB, c *ec2.Client, id string) types.InstanceStateName {
	t.Helper()
	out, err := c.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatalf("DescribeInstances(%s) = %v", id, err)
	}
	if len(out.Reservations) != 1 || len(out.Reservations[0].Instances) != 1 {
		t.Fatalf("DescribeInstances(%s): %d reservations", id, len(out.Reservations))
	}
	return out.Reservations[0].Instances[0].State.Name
}

func TestInstanceLifecycle(t *testing.T) {
	s, c := newTestSim(t, Options{})
	ctx := t.Context()
	ami := baseImage(t, c)
	ins := run(t, c, &ec2.RunInstancesInput{
		ImageId: aws.String(ami), InstanceType: types.InstanceTypeT3Micro,
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("web-1")}}}},
	})
	in := ins[0]
	if in.State.Name != types.InstanceStateNamePending || *in.State.Code != 0 {
		t.Fatalf("state after run = %v; want pending/0", in.State.Name)
	}
	if aws.ToString(in.PrivateIpAddress) == "" || aws.ToString(in.InstanceId) == "" || in.LaunchTime == nil {
		t.Fatalf("instance lacks id, ip or launch time: %+v", in)
	}
	id := *in.InstanceId
	s.Advance(15 * time.Second)
	if got := state(t, c, id); got != types.InstanceStateNameRunning {
		t.Fatalf("state after boot = %s; want running", got)
	}
	out, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatalf("StopInstances() = %v", err)
	}
	if ch := out.StoppingInstances[0]; ch.CurrentState.Name != types.InstanceStateNameStopping || ch.PreviousState.Name != types.InstanceStateNameRunning {
		t.Fatalf("StopInstances() change = %v→%v; want running→stopping", ch.PreviousState.Name, ch.CurrentState.Name)
	}
	s.Advance(30 * time.Second)
	if got := state(t, c, id); got != types.InstanceStateNameStopped {
		t.Fatalf("state after stop = %s; want stopped", got)
	}
	if _, err := c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatalf("StartInstances() = %v", err)
	}
	s.Advance(15 * time.Second)
	if got := state(t, c, id); got != types.InstanceStateNameRunning {
		t.Fatalf("state after start = %s; want running", got)
	}
	if _, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatalf("TerminateInstances() = %v", err)
	}
	s.Advance(30 * time.Second)
	if got := state(t, c, id); got != types.InstanceStateNameTerminated {
		t.Fatalf("state after terminate = %s; want terminated", got)
	}
	s.Advance(time.Hour)
	_, err = c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if got := errCode(err); got != "InvalidInstanceID.NotFound" {
		t.Fatalf("DescribeInstances(gone) = %q; want InvalidInstanceID.NotFound", got)
	}
	if s.Calls("RunInstances") != 1 {
		t.Fatalf("Calls(RunInstances) = %d; want 1", s.Calls("RunInstances"))
	}
}

// TestIDsPerStart: two simulators hand out different instance ids unless
// they are given the same Seed, and both keep the standing world's ids
// (the stock images), as AWS's public images keep theirs.
func TestIDsPerStart(t *testing.T) {
	launch := func(o Options) (image, instance string) {
		_, c := newTestSim(t, o)
		image = baseImage(t, c)
		return image, *run(t, c, &ec2.RunInstancesInput{ImageId: aws.String(image), InstanceType: types.InstanceTypeT3Micro})[0].InstanceId
	}
	im1, in1 := launch(Options{})
	im2, in2 := launch(Options{})
	if in1 == in2 {
		t.Errorf("two fresh simulators both launched %s; want ids random per start", in1)
	}
	im3, in3 := launch(Options{Seed: 7})
	im4, in4 := launch(Options{Seed: 7})
	if in3 != in4 {
		t.Errorf("with Seed 7: %s then %s; want the same id", in3, in4)
	}
	if im1 != im2 || im2 != im3 || im3 != im4 {
		t.Errorf("stock image ids %s %s %s %s; want one id at every start", im1, im2, im3, im4)
	}
}
