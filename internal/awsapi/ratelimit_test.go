package awsapi

import (
	"context"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/sync/errgroup"

	"kiln/internal/awssim"
)

// The limiter holds calls to AWS's bucket: RunInstances has 5 requests of
// burst and 2 a second (1.8 with the margin), so the 9th of a burst waits
// 4/1.8 s; a Describe with a filter is not held up by them.
func TestLimiterPacesToTheBucket(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(RateLimit{Scale: 1})
		start := time.Now()
		for range 9 {
			if err := l.wait(t.Context(), "RunInstances", &ec2.RunInstancesInput{MaxCount: aws.Int32(1)}); err != nil {
				t.Fatal(err)
			}
		}
		refill := 2 * paceMargin
		if took, want := time.Since(start), time.Duration(float64(4*time.Second)/refill); took.Round(time.Millisecond) != want.Round(time.Millisecond) {
			t.Errorf("9 RunInstances took %v; want %v (5 at once, then 2/s less the margin)", took, want)
		}
		start = time.Now()
		if err := l.wait(t.Context(), "DescribeInstances", &ec2.DescribeInstancesInput{InstanceIds: []string{"i-1"}}); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took != 0 {
			t.Errorf("DescribeInstances waited %v behind RunInstances", took)
		}
		// A cancelled wait gives its tokens back and returns ctx's error.
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		if err := l.wait(ctx, "RunInstances", &ec2.RunInstancesInput{}); err != context.DeadlineExceeded {
			t.Errorf("wait() past the deadline = %v; want DeadlineExceeded", err)
		}
	})
}

// With a share of 1/2 (one of two servers), RunInstances has a burst of 2
// (5/2, rounded down) and 0.9 a second: two such processes together stay
// within AWS's 5 and 2/s.
func TestLimiterShare(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(RateLimit{Scale: 1, Share: 0.5})
		start := time.Now()
		for range 4 {
			if err := l.wait(t.Context(), "RunInstances", &ec2.RunInstancesInput{MaxCount: aws.Int32(1)}); err != nil {
				t.Fatal(err)
			}
		}
		refill := 2 * 0.5 * paceMargin
		if took, want := time.Since(start), time.Duration(float64(2*time.Second)/refill); took.Round(time.Millisecond) != want.Round(time.Millisecond) {
			t.Errorf("4 RunInstances took %v; want %v (2 at once, then 1/s less the margin)", took, want)
		}
	})
}

func TestRequestSize(t *testing.T) {
	for _, tc := range []struct {
		action string
		params any
		want   bucketSize
	}{
		{"DescribeInstances", &ec2.DescribeInstancesInput{}, sizeUnfiltered},
		{"DescribeInstances", &ec2.DescribeInstancesInput{MaxResults: aws.Int32(1000)}, sizeNonMutating},
		{"DescribeImages", &ec2.DescribeImagesInput{Owners: []string{"self"}}, sizeNonMutating},
		{"GetConsoleOutput", &ec2.GetConsoleOutputInput{}, sizeNonMutating},
		{"CreateImage", &ec2.CreateImageInput{}, sizeMutating},
		{"CreateTags", &ec2.CreateTagsInput{}, sizeTags},
		{"RunInstances", &ec2.RunInstancesInput{}, bucketSize{5, 2}},
	} {
		if got := requestSize(tc.action, tc.params); got != tc.want {
			t.Errorf("requestSize(%s, %+v) = %v; want %v", tc.action, tc.params, got, tc.want)
		}
	}
}

// End to end through the SDK: a burst of 9 launches against the simulator
// with AWS's throttling on (its buckets refill in real time). Paced by the
// limiter none is throttled, and the burst takes the 2 s the bucket
// imposes; without it some are, and the SDK's retries absorb them.
func TestRateLimitAvoidsThrottling(t *testing.T) {
	burst := func(limit RateLimit) (throttled int) {
		sim := awssim.New(awssim.Options{TimeScale: 0.001, Throttle: true})
		srv := httptest.NewServer(sim)
		defer srv.Close()
		hs := NewHubs(Options{Config: new(awssim.ClientConfig(srv.URL)), RateLimit: limit})
		h, err := hs.Hub(t.Context(), "")
		if err != nil {
			t.Fatal(err)
		}
		img, err := h.EC2().DescribeImages(t.Context(), &ec2.DescribeImagesInput{Owners: []string{"amazon"}})
		if err != nil || len(img.Images) == 0 {
			t.Fatalf("DescribeImages = %v", err)
		}
		var g errgroup.Group
		for range 9 {
			g.Go(func() error {
				_, err := h.EC2().RunInstances(t.Context(), &ec2.RunInstancesInput{ImageId: img.Images[0].ImageId,
					InstanceType: types.InstanceTypeT3Micro, MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
				return err
			})
		}
		if err := g.Wait(); err != nil {
			t.Fatalf("RunInstances: %v", err)
		}
		_, th := sim.CallCounts()
		return th["RunInstances"]
	}
	if n := burst(RateLimit{Scale: 1}); n != 0 {
		t.Errorf("paced burst: %d RunInstances throttled; want 0", n)
	}
	if n := burst(RateLimit{}); n == 0 {
		t.Error("unpaced burst: no RunInstances throttled; the test no longer shows the limiter's effect")
	}
}
