package awsapi

import (
	"context"
	"errors"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"kiln/internal/awssim"
	"kiln/internal/engine"
)

// A closed fence refuses every write of every client before it is sent,
// without a retry, and lets reads through.
func TestFence(t *testing.T) {
	sim := awssim.New(awssim.Options{TimeScale: 0})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	lost := errors.New("lock lost")
	var closed atomic.Bool
	hs := NewHubs(Options{Config: new(awssim.ClientConfig(srv.URL)), Fence: func() error {
		if closed.Load() {
			return lost
		}
		return nil
	}})
	ctx := context.Background()
	h, err := hs.Hub(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	ids := launch(t, h, 1) // open: the write goes through
	closed.Store(true)

	_, err = h.EC2().StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: ids})
	var fe *FencedError
	if !errors.As(err, &fe) || fe.Action != "StopInstances" || !errors.Is(err, lost) || !engine.IsPermanent(err) {
		t.Fatalf("StopInstances with the fence closed: %v, want a permanent FencedError wrapping the cause", err)
	}
	as, err := hs.AutoScaling(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := as.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{AutoScalingGroupName: aws.String("g")}); !errors.As(err, &fe) {
		t.Fatalf("Auto Scaling write with the fence closed: %v", err)
	}
	if _, err := h.EC2().DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids}); err != nil {
		t.Fatalf("a read with the fence closed: %v", err)
	}
	if n := sim.Calls("StopInstances") + sim.Calls("UpdateAutoScalingGroup"); n != 0 {
		t.Errorf("the simulator received %d fenced writes", n)
	}
}
