package awsapi

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"golang.org/x/sync/errgroup"

	"kiln/internal/awssim"
	"kiln/internal/engine"
	"kiln/internal/testsupport"
)

// simHub is a hub over a simulator served over HTTP, with its loops running.
func simHub(t *testing.T) (*Hub, *awssim.Sim) {
	t.Helper()
	sim := awssim.New(awssim.Options{TimeScale: 0.001})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	hs := NewHubs(Options{Config: new(awssim.ClientConfig(srv.URL)),
		Batch: BatchOptions{Idle: 20 * time.Millisecond, Max: 200 * time.Millisecond}})
	ctx, cancel := context.WithCancel(context.Background())
	var g errgroup.Group
	g.Go(func() error { return hs.Run(ctx) })
	t.Cleanup(func() { cancel(); _ = g.Wait() })
	h, err := hs.Hub(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	return h, sim
}

func launch(t *testing.T, h *Hub, n int, tags ...types.Tag) []string {
	t.Helper()
	img, err := h.EC2().DescribeImages(t.Context(), &ec2.DescribeImagesInput{Owners: []string{"amazon"}})
	if err != nil || len(img.Images) == 0 {
		t.Fatalf("DescribeImages = %v", err)
	}
	in := &ec2.RunInstancesInput{ImageId: img.Images[0].ImageId, InstanceType: types.InstanceTypeT3Micro,
		MinCount: aws.Int32(int32(n)), MaxCount: aws.Int32(int32(n))}
	if len(tags) > 0 {
		in.TagSpecifications = []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: tags}}
	}
	out, err := h.EC2().RunInstances(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, i := range out.Instances {
		ids = append(ids, aws.ToString(i.InstanceId))
	}
	return ids
}

func TestBatcherMergesByID(t *testing.T) {
	h, sim := simHub(t)
	ids := launch(t, h, 50)
	sim.ResetCalls()
	var g errgroup.Group
	for _, id := range ids {
		g.Go(func() error {
			out, err := h.Instances().DescribeInstances(t.Context(), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
			if err != nil {
				return err
			}
			if len(out.Reservations) != 1 || len(out.Reservations[0].Instances) != 1 || aws.ToString(out.Reservations[0].Instances[0].InstanceId) != id {
				return errors.New("wrong instances for " + id)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if n := sim.Calls("DescribeInstances"); n > 3 {
		t.Errorf("DescribeInstances calls = %d for 50 concurrent lookups; want them merged", n)
	}
}

func TestBatcherMissingID(t *testing.T) {
	h, _ := simHub(t)
	ids := launch(t, h, 2)
	const missing = "i-0000000000000dead"
	var g errgroup.Group
	errs := make([]error, 3)
	for i, id := range []string{ids[0], missing, ids[1]} {
		g.Go(func() error {
			_, errs[i] = h.Instances().DescribeInstances(t.Context(), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
			return nil
		})
	}
	_ = g.Wait()
	if errs[0] != nil || errs[2] != nil {
		t.Errorf("lookups of existing ids = %v, %v; want nil", errs[0], errs[2])
	}
	if !IsNotFound(errs[1]) || !strings.Contains(errs[1].Error(), missing) {
		t.Errorf("lookup of a missing id = %v; want InvalidInstanceID.NotFound naming it", errs[1])
	}
}

func TestBatcherMergesByTag(t *testing.T) {
	h, sim := simHub(t)
	for _, r := range []string{"a", "b", "c"} {
		launch(t, h, 2, types.Tag{Key: aws.String(TagOwner), Value: aws.String("g")}, types.Tag{Key: aws.String(TagResource), Value: aws.String(r)})
	}
	sim.ResetCalls()
	var g errgroup.Group
	got := make([]int, 4)
	for i, r := range []string{"a", "b", "c", "zzz"} {
		g.Go(func() error {
			out, err := h.Instances().DescribeInstances(t.Context(), &ec2.DescribeInstancesInput{Filters: []types.Filter{
				{Name: aws.String("tag:" + TagOwner), Values: []string{"g"}},
				{Name: aws.String("tag:" + TagResource), Values: []string{r}},
			}})
			for _, res := range out.Reservations {
				for _, in := range res.Instances {
					if TagValue(in.Tags, TagResource) != r {
						t.Errorf("lookup of %s returned an instance of %s", r, TagValue(in.Tags, TagResource))
					}
					got[i]++
				}
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if want := []int{2, 2, 2, 0}; !equal(got, want) {
		t.Errorf("instances per lookup = %v; want %v", got, want)
	}
	if n := sim.Calls("DescribeInstances"); n != 1 {
		t.Errorf("DescribeInstances calls = %d; want 1", n)
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestPollNotifiesOwners(t *testing.T) {
	running, sim := simHub(t)
	// A hub whose loops do not run: only the test polls it.
	h := NewHub(running.Region(), running.EC2(), Options{})
	tag := func(r string) []types.Tag {
		return []types.Tag{{Key: aws.String(TagOwner), Value: aws.String("g")}, {Key: aws.String(TagResource), Value: aws.String(r)}}
	}
	a := launch(t, h, 1, tag("a")...)[0]
	b := launch(t, h, 1, tag("b")...)[0]
	// Let both boot, so the polls below see no change of their own.
	for _, id := range []string{a, b} {
		testsupport.Eventually(t, id+" running", func() bool { in, _ := sim.Instance(id); return in.State == "running" })
	}
	var na, nb int
	ca := h.Subscribe(Owner{"g", "a"}, time.Hour, func() { na++ })
	defer ca()
	cb := h.Subscribe(Owner{"g", "b"}, time.Hour, func() { nb++ })
	defer cb()
	sim.ResetCalls()
	for range 2 {
		if err := h.Poll(t.Context(), "g"); err != nil {
			t.Fatal(err)
		}
	}
	if na != 1 || nb != 1 {
		t.Errorf("notified a %d, b %d times after the first polls; want once each (new subscribers)", na, nb)
	}
	if err := sim.StopInstance(a); err != nil {
		t.Fatal(err)
	}
	if err := h.Poll(t.Context(), "g"); err != nil {
		t.Fatal(err)
	}
	if na != 2 || nb != 1 {
		t.Errorf("after a's stop: notified a %d, b %d times; want 2, 1", na, nb)
	}
	// An event for a's instance reaches a's subscriber too.
	h.Deliver(Event{Region: h.Region(), Resource: a, State: "stopped"})
	if na != 3 {
		t.Errorf("after an event: notified a %d times; want 3", na)
	}
	// An instance profile changed by hand is a change too (aws:ec2 checks it).
	if err := sim.SetInstanceProfile(b, "by-hand"); err != nil {
		t.Fatal(err)
	}
	if err := h.Poll(t.Context(), "g"); err != nil {
		t.Fatal(err)
	}
	if nb != 2 {
		t.Errorf("after b's profile change: notified b %d times; want 2", nb)
	}
	if n := sim.Calls("DescribeInstances"); n != 4 {
		t.Errorf("DescribeInstances calls = %d for 4 polls; want 4", n)
	}
}

func TestErrors(t *testing.T) {
	op := func(op, code string) error {
		return &smithy.OperationError{ServiceID: "EC2", OperationName: op, Err: &smithy.GenericAPIError{Code: code}}
	}
	tests := []struct {
		err                                 error
		notFound, throttle, perm, permanent bool
		action                              string
	}{
		{op("DescribeInstances", "InvalidInstanceID.NotFound"), true, false, false, false, "ec2:DescribeInstances"},
		{op("RunInstances", "RequestLimitExceeded"), false, true, false, false, "ec2:RunInstances"},
		{op("RunInstances", "UnauthorizedOperation"), false, false, true, true, "ec2:RunInstances"},
		{op("RunInstances", "InvalidAMIID.Malformed"), false, false, false, false, "ec2:RunInstances"},
		{errors.New("plain"), false, false, false, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			if IsNotFound(tt.err) != tt.notFound || IsThrottle(tt.err) != tt.throttle || IsPermission(tt.err) != tt.perm {
				t.Errorf("IsNotFound, IsThrottle, IsPermission = %v, %v, %v; want %v, %v, %v",
					IsNotFound(tt.err), IsThrottle(tt.err), IsPermission(tt.err), tt.notFound, tt.throttle, tt.perm)
			}
			if got := Action(tt.err); got != tt.action {
				t.Errorf("Action() = %q; want %q", got, tt.action)
			}
			c := Classify(tt.err)
			if engine.IsPermanent(c) != tt.permanent {
				t.Errorf("Classify() permanent = %v; want %v", !tt.permanent, tt.permanent)
			}
			if tt.perm && !strings.Contains(c.Error(), tt.action) {
				t.Errorf("Classify() = %v; want it to name %s", c, tt.action)
			}
		})
	}
}

func TestRetryWaitsOutThrottling(t *testing.T) {
	throttle := &smithy.GenericAPIError{Code: "RequestLimitExceeded"}
	n := 0
	err := Retry(t.Context(), RetryPolicy{Backoff: Backoff{Min: time.Microsecond, Max: time.Millisecond}}, func(context.Context) error {
		n++
		switch {
		case n < 5:
			return throttle
		case n < 8:
			return NotYet(&smithy.GenericAPIError{Code: "InvalidInstanceID.NotFound"})
		}
		return nil
	})
	if err != nil || n != 8 {
		t.Errorf("Retry() = %v after %d calls; want nil after 8", err, n)
	}
	err = Retry(t.Context(), RetryPolicy{Backoff: Backoff{Min: time.Microsecond}}, func(context.Context) error {
		return &smithy.GenericAPIError{Code: "InvalidParameterValue"}
	})
	if Code(err) != "InvalidParameterValue" {
		t.Errorf("Retry() = %v; want the 4xx returned at once", err)
	}
}
