package awssim

import (
	"context"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"golang.org/x/sync/errgroup"
)

// FuzzDecodeRequest feeds arbitrary form bodies through the decoder and
// the whole dispatcher: the answer must be well-formed XML and never a
// 500 (a panic in an action is recovered as a 500 and fails the fuzz).
func FuzzDecodeRequest(f *testing.F) {
	s := New(Options{ManualClock: true, InstanceLimit: 50})
	f.Fuzz(func(t *testing.T, form string) {
		if _, err := decodeForm(form, ""); err != nil {
			var ae *APIError
			if !errorsAs(err, &ae) {
				t.Fatalf("decodeForm(%q) = %v; want an *APIError", form, err)
			}
		}
		status, body := post(t, s, form)
		if status >= 500 {
			t.Fatalf("POST %q = %d %s", form, status, body)
		}
		d := xml.NewDecoder(strings.NewReader(body))
		for {
			_, err := d.Token()
			if err != nil {
				if err.Error() != "EOF" {
					t.Fatalf("POST %q: answer is not XML: %v\n%s", form, err, body)
				}
				break
			}
		}
	})
}

func errorsAs(err error, target **APIError) bool {
	ae, ok := err.(*APIError)
	if ok {
		*target = ae
	}
	return ok
}

func TestThrottling(t *testing.T) {
	s, c := newTestSim(t, Options{Throttle: true})
	ctx := t.Context()
	ami := baseImage(t, c)
	in := &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}
	for i := range 5 {
		if _, err := c.RunInstances(ctx, in); err != nil {
			t.Fatalf("RunInstances #%d = %v; want the burst of 5 to pass", i+1, err)
		}
	}
	_, err := c.RunInstances(ctx, in)
	if errCode(err) != "RequestLimitExceeded" {
		t.Fatalf("RunInstances #6 = %v; want RequestLimitExceeded", err)
	}
	var re interface{ HTTPStatusCode() int }
	if !errorAsStatus(err, &re) || re.HTTPStatusCode() != http.StatusServiceUnavailable {
		t.Fatalf("throttled status = %v; want 503", err)
	}
	s.Advance(time.Second) // refill 2 per second
	for i := range 2 {
		if _, err := c.RunInstances(ctx, in); err != nil {
			t.Fatalf("RunInstances after refill #%d = %v", i+1, err)
		}
	}
	if _, err := c.RunInstances(ctx, in); errCode(err) != "RequestLimitExceeded" {
		t.Fatalf("RunInstances beyond refill = %v; want RequestLimitExceeded", err)
	}
	// Unfiltered describes share the small bucket (50); filtered ones the
	// big one (100), so a filtered call still passes.
	for range 50 {
		if _, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{}); err != nil {
			t.Fatalf("DescribeInstances() = %v", err)
		}
	}
	if _, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{}); errCode(err) != "RequestLimitExceeded" {
		t.Fatalf("DescribeInstances #51 unfiltered = %v; want RequestLimitExceeded", err)
	}
	f := []types.Filter{{Name: aws.String("instance-state-name"), Values: []string{"pending"}}}
	if _, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: f}); err != nil {
		t.Fatalf("DescribeInstances(filtered) = %v; want its own bucket", err)
	}
	if got := s.Throttled("RunInstances"); got != 2 {
		t.Fatalf("Throttled(RunInstances) = %d; want 2", got)
	}
	if got := s.Throttled("DescribeInstances"); got != 1 {
		t.Fatalf("Throttled(DescribeInstances) = %d; want 1", got)
	}
	if got := s.Calls("RunInstances"); got != 9 {
		t.Fatalf("Calls(RunInstances) = %d; want 9 (throttled calls count)", got)
	}
	// Instances launched have a bucket of their own: 1000, refill 2/s.
	s.Advance(10 * time.Second)
	if _, err = c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1000)}); err != nil {
		t.Fatalf("RunInstances(1000) = %v; want the instance burst to pass", err)
	}
	s.Advance(time.Second) // the request bucket has tokens; the instance bucket 2
	if _, err = c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(3), MaxCount: aws.Int32(3)}); errCode(err) != "RequestLimitExceeded" {
		t.Fatalf("RunInstances(3) right after 1000 = %v; want RequestLimitExceeded", err)
	}
	s.SetThrottle(false)
}

func errorAsStatus(err error, target *interface{ HTTPStatusCode() int }) bool {
	for e := err; e != nil; {
		if h, ok := e.(interface{ HTTPStatusCode() int }); ok {
			*target = h
			return true
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		e = u.Unwrap()
	}
	return false
}

func TestInjectedFaults(t *testing.T) {
	s, c := newTestSim(t, Options{})
	ctx := t.Context()
	s.InjectFault(Fault{Action: "DescribeImages", Code: "InternalError", Count: 2})
	for i := range 2 {
		_, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"}})
		if errCode(err) != "InternalError" {
			t.Fatalf("DescribeImages #%d = %v; want InternalError", i+1, err)
		}
	}
	if _, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"}}); err != nil {
		t.Fatalf("DescribeImages after the count = %v", err)
	}
	s.InjectFault(Fault{Action: "RunInstances", Code: "InsufficientInstanceCapacity", Status: 500, Rate: 1})
	_, err := c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String("ami-12345678"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	if errCode(err) != "InsufficientInstanceCapacity" {
		t.Fatalf("RunInstances = %v; want InsufficientInstanceCapacity", err)
	}
	s.ClearFaults()
	// With the SDK's own retryer a transient fault is invisible.
	retrying := ec2.NewFromConfig(ClientConfig(*c.Options().BaseEndpoint), func(o *ec2.Options) {
		o.Retryer = retry.NewStandard(func(o *retry.StandardOptions) {
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
		})
	})
	s.InjectFault(Fault{Action: "DescribeImages", Code: "InternalError", Count: 1})
	if _, err := retrying.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"}}); err != nil {
		t.Fatalf("DescribeImages with retries = %v", err)
	}
	s.SetLatency("DescribeImages", time.Millisecond)
	if _, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"}}); err != nil {
		t.Fatalf("DescribeImages with latency = %v", err)
	}
}

func TestEventsPushed(t *testing.T) {
	type delivery struct {
		key string
		ev  map[string]any
	}
	got := make(chan delivery, 100)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev map[string]any
		if err := decodeJSON(r, &ev); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		got <- delivery{r.Header.Get("x-api-key"), ev}
	}))
	defer recv.Close()
	s, c := newTestSim(t, Options{Events: []EventTarget{{URL: recv.URL, APIKey: "secret"}}})
	ctx := t.Context()
	ami := baseImage(t, c)
	id := *run(t, c, &ec2.RunInstancesInput{ImageId: aws.String(ami)})[0].InstanceId
	s.Advance(15 * time.Second)
	for _, want := range []string{"pending", "running"} {
		d := <-got
		detail, _ := d.ev["detail"].(map[string]any)
		if d.key != "secret" || d.ev["detail-type"] != DetailInstanceState || d.ev["source"] != "aws.ec2" ||
			detail["instance-id"] != id || detail["state"] != want || d.ev["account"] != "123456789012" || d.ev["region"] != "us-east-1" {
			t.Fatalf("event = %v key %q; want %s of %s", d.ev, d.key, want, id)
		}
		res, _ := d.ev["resources"].([]any)
		if len(res) != 1 || res[0] != "arn:aws:ec2:us-east-1:123456789012:instance/"+id {
			t.Fatalf("event resources = %v", res)
		}
	}
	img, err := c.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(id), Name: aws.String("evt"), NoReboot: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	s.Advance(3 * time.Minute)
	d := <-got
	detail, _ := d.ev["detail"].(map[string]any)
	if d.ev["detail-type"] != DetailAMIState || detail["ImageId"] != *img.ImageId || detail["State"] != "available" {
		t.Fatalf("AMI event = %v", d.ev)
	}
	s.PublishEvent("aws.autoscaling", DetailRefreshSucceeded, []string{"arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:x:autoScalingGroupName/web"}, map[string]string{"InstanceRefreshId": "r-1"}, s.Now())
	s.Advance(0)
	if d := <-got; d.ev["detail-type"] != DetailRefreshSucceeded || d.ev["source"] != "aws.autoscaling" {
		t.Fatalf("refresh event = %v", d.ev)
	}
	if dl, failed, dropped := s.EventStats(); dl != 4 || failed != 0 || dropped != 0 {
		t.Fatalf("EventStats() = %d, %d, %d; want 4 delivered", dl, failed, dropped)
	}
}

// TestRunRealClock drives transitions and event delivery with Run on the
// real clock at a tiny time scale.
func TestRunRealClock(t *testing.T) {
	got := make(chan string, 100)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct {
			Detail map[string]string `json:"detail"`
		}
		_ = decodeJSON(r, &ev)
		got <- ev.Detail["state"]
	}))
	defer recv.Close()
	s := New(Options{TimeScale: 0.0005, Events: []EventTarget{{URL: recv.URL}}})
	srv := httptest.NewServer(s)
	defer srv.Close()
	c := ec2.NewFromConfig(ClientConfig(srv.URL))
	ctx, cancel := context.WithCancel(t.Context())
	var g errgroup.Group
	g.Go(func() error { return s.Run(ctx) })
	ami := baseImage(t, c)
	run(t, c, &ec2.RunInstancesInput{ImageId: aws.String(ami)})
	// No request is made: Run alone must fire "running" and deliver it.
	for _, want := range []string{"pending", "running"} {
		select {
		case st := <-got:
			if st != want {
				t.Fatalf("event state = %s; want %s", st, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no %s event from Run", want)
		}
	}
	cancel()
	if err := g.Wait(); err != context.Canceled {
		t.Fatalf("Run() = %v; want context.Canceled", err)
	}
}

func TestWaiters(t *testing.T) {
	s := New(Options{TimeScale: 0.0005, Consistency: 20 * time.Second})
	srv := httptest.NewServer(s)
	defer srv.Close()
	c := ec2.NewFromConfig(ClientConfig(srv.URL))
	ctx := t.Context()
	ami := baseImage(t, c)
	id := *run(t, c, &ec2.RunInstancesInput{ImageId: aws.String(ami)})[0].InstanceId
	ids := []string{id}
	const max = 30 * time.Second
	// The instance is NotFound for 10 ms: InstanceRunning retries on that.
	if err := ec2.NewInstanceRunningWaiter(c, func(o *ec2.InstanceRunningWaiterOptions) {
		o.MinDelay, o.MaxDelay = 2*time.Millisecond, 10*time.Millisecond
	}).
		Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids}, max); err != nil {
		t.Fatalf("InstanceRunning waiter = %v", err)
	}
	img, err := c.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(id), Name: aws.String("waited")})
	if err != nil {
		t.Fatal(err)
	}
	// ImageAvailable treats NotFound as fatal: wait for existence first.
	if err := ec2.NewImageExistsWaiter(c, func(o *ec2.ImageExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 2*time.Millisecond, 10*time.Millisecond
	}).
		Wait(ctx, &ec2.DescribeImagesInput{ImageIds: []string{*img.ImageId}}, max); err != nil {
		t.Fatalf("ImageExists waiter = %v", err)
	}
	if err := ec2.NewImageAvailableWaiter(c, func(o *ec2.ImageAvailableWaiterOptions) {
		o.MinDelay, o.MaxDelay = 2*time.Millisecond, 10*time.Millisecond
	}).
		Wait(ctx, &ec2.DescribeImagesInput{ImageIds: []string{*img.ImageId}}, max); err != nil {
		t.Fatalf("ImageAvailable waiter = %v", err)
	}
	if _, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: ids}); err != nil {
		t.Fatal(err)
	}
	if err := ec2.NewInstanceStoppedWaiter(c, func(o *ec2.InstanceStoppedWaiterOptions) {
		o.MinDelay, o.MaxDelay = 2*time.Millisecond, 10*time.Millisecond
	}).
		Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids}, max); err != nil {
		t.Fatalf("InstanceStopped waiter = %v", err)
	}
	if _, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids}); err != nil {
		t.Fatal(err)
	}
	if err := ec2.NewInstanceTerminatedWaiter(c, func(o *ec2.InstanceTerminatedWaiterOptions) {
		o.MinDelay, o.MaxDelay = 2*time.Millisecond, 10*time.Millisecond
	}).
		Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids}, max); err != nil {
		t.Fatalf("InstanceTerminated waiter = %v", err)
	}
	// A failed image fails the ImageAvailable waiter.
	id2 := *run(t, c, &ec2.RunInstancesInput{ImageId: aws.String(ami)})[0].InstanceId
	_ = ec2.NewInstanceRunningWaiter(c, func(o *ec2.InstanceRunningWaiterOptions) {
		o.MinDelay, o.MaxDelay = 2*time.Millisecond, 10*time.Millisecond
	}).
		Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id2}}, max)
	s.FailNextImages(1)
	img2, err := c.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(id2), Name: aws.String("fails")})
	if err != nil {
		t.Fatal(err)
	}
	_ = ec2.NewImageExistsWaiter(c, func(o *ec2.ImageExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 2*time.Millisecond, 10*time.Millisecond
	}).
		Wait(ctx, &ec2.DescribeImagesInput{ImageIds: []string{*img2.ImageId}}, max)
	err = ec2.NewImageAvailableWaiter(c, func(o *ec2.ImageAvailableWaiterOptions) {
		o.MinDelay, o.MaxDelay = 2*time.Millisecond, 10*time.Millisecond
	}).
		Wait(ctx, &ec2.DescribeImagesInput{ImageIds: []string{*img2.ImageId}}, max)
	if err == nil || !strings.Contains(err.Error(), "Failure") {
		t.Fatalf("ImageAvailable waiter on a failed image = %v; want a failure-state error", err)
	}
}

// TestConcurrentClients: 1,000 SDK clients at once, mixed calls, no 500.
func TestConcurrentClients(t *testing.T) {
	s := New(Options{ManualClock: true})
	var fivexx atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		s.ServeHTTP(rec, r)
		if rec.status >= 500 {
			fivexx.Add(1)
		}
	}))
	defer srv.Close()
	shared := ClientConfig(srv.URL)
	seed := ec2.NewFromConfig(shared)
	ami := baseImage(t, seed)
	base := run(t, seed, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(20), MaxCount: aws.Int32(20)})
	ctx := t.Context()
	g, ctx := errgroup.WithContext(ctx)
	for i := range 1000 {
		c := ec2.NewFromConfig(shared, func(o *ec2.Options) { o.RetryMaxAttempts = 1 })
		target := *base[i%len(base)].InstanceId
		g.Go(func() error {
			var err error
			switch i % 5 {
			case 0:
				_, err = c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
					TagSpecifications: []types.TagSpecification{{ResourceType: "instance", Tags: []types.Tag{{Key: aws.String("client"), Value: aws.String(itoa(i))}}}}})
			case 1:
				_, err = c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []types.Filter{{Name: aws.String("tag:client"), Values: []string{"1*"}}}})
			case 2:
				_, err = c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{target}, Tags: []types.Tag{{Key: aws.String("seen"), Value: aws.String(itoa(i))}}})
			case 3:
				_, err = c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{target}})
				if errCode(err) == "IncorrectInstanceState" {
					err = nil
				}
			case 4:
				s.Advance(time.Second)
				_, err = c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{target}})
			}
			var ae smithy.APIError
			if err != nil && !errorAsAPI(err, &ae) {
				return fmt.Errorf("client %d: %w", i, err)
			}
			if err != nil {
				return fmt.Errorf("client %d: unexpected API error %w", i, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if n := fivexx.Load(); n != 0 {
		t.Fatalf("%d responses were 5xx", n)
	}
	if got := s.Calls(""); got < 1000 {
		t.Fatalf("Calls() = %d; want ≥ 1000", got)
	}
}

func errorAsAPI(err error, target *smithy.APIError) bool {
	for e := err; e != nil; {
		if a, ok := e.(smithy.APIError); ok {
			*target = a
			return true
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		e = u.Unwrap()
	}
	return false
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}
