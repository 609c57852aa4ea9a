package awssim

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

func TestNamedProfile(t *testing.T) {
	for _, tc := range []struct {
		names string
		want  []string
		err   string
	}{
		{names: "eventual", want: []string{"eventual"}},
		{names: "eventual, flaky", want: []string{"eventual", "flaky"}},
		{names: "chaos", want: []string{"eventual", "throttle", "flaky", "capacity", "events"}},
		{names: "capacity,events,throttle", want: []string{"throttle", "capacity", "events"}},
		{names: "flakey", err: `unknown fault profile "flakey"`},
		{names: "", err: `unknown fault profile ""`},
	} {
		t.Run(tc.names, func(t *testing.T) {
			p, err := NamedProfile(tc.names)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("NamedProfile(%q) = %v; want error %q", tc.names, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("NamedProfile(%q) = %v", tc.names, err)
			}
			if got := p.Names(); !slices.Equal(got, tc.want) {
				t.Fatalf("NamedProfile(%q).Names() = %v; want %v", tc.names, got, tc.want)
			}
		})
	}
	p, _ := NamedProfile("chaos")
	if p.Flaky.Errors != 0.01 || p.Flaky.Resets != 0.005 || p.Flaky.Delays != 0.01 || p.Flaky.Delay != 2*time.Second {
		t.Errorf("flaky defaults = %+v", *p.Flaky)
	}
	if p.Eventual.NotFound != 2*time.Second || p.Eventual.TagsLate != time.Second {
		t.Errorf("eventual defaults = %+v", *p.Eventual)
	}
	if p.Events.Drop != 0.05 || p.Events.Duplicate != 0.05 || p.Events.Delay != 5*time.Second {
		t.Errorf("events defaults = %+v", *p.Events)
	}
}

func TestParseProfile(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		check     func(t *testing.T, p *Profile)
		err       string
	}{
		{name: "mix", doc: "seed: 42\nflaky: {errors: 0.1}\nevents:\n  drop: 0.5\n  delay: 1s\n",
			check: func(t *testing.T, p *Profile) {
				if p.Seed != 42 || p.Flaky.Errors != 0.1 || p.Flaky.Resets != 0 || p.Flaky.Delay != 2*time.Second {
					t.Errorf("flaky = %+v seed %d", *p.Flaky, p.Seed)
				}
				if p.Events.Drop != 0.5 || p.Events.Duplicate != 0 || p.Events.Delay != time.Second {
					t.Errorf("events = %+v", *p.Events)
				}
				if got := p.Names(); !slices.Equal(got, []string{"flaky", "events"}) {
					t.Errorf("Names() = %v", got)
				}
			}},
		{name: "empty section", doc: "eventual:\ncapacity: {}\n",
			check: func(t *testing.T, p *Profile) {
				if p.Eventual == nil || p.Eventual.NotFound != 2*time.Second || p.Capacity == nil || p.Capacity.Rate != 0.05 {
					t.Errorf("profile = %+v", p)
				}
			}},
		{name: "unknown field", doc: "flaky:\n  errrors: 0.1\n", err: "mix.yaml: yaml: unmarshal errors:\n  line 2: field errrors not found"},
		{name: "unknown section", doc: "seed: 1\nchaos: {}\n", err: "line 2: field chaos not found"},
		{name: "bad rate", doc: "seed: 1\nflaky:\n  errors: 1.5\n", err: "mix.yaml:3: flaky.errors: 1.5 is not a rate between 0 and 1"},
		{name: "negative duration", doc: "events: {delay: -1s}\n", err: "mix.yaml:1: events.delay: -1s must not be negative"},
		{name: "rates over 1", doc: "flaky: {errors: 0.5, resets: 0.6}\n", err: "mix.yaml:1: flaky: errors, resets and delays add up to more than 1"},
		{name: "bad duration", doc: "eventual: {not_found: soon}\n", err: "mix.yaml: yaml: unmarshal errors"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseProfile("mix.yaml", []byte(tc.doc))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseProfile() = %v; want error %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseProfile() = %v", err)
			}
			tc.check(t, p)
		})
	}
}

// faultSim is a simulator with a manual clock and the profile p behind a
// real HTTP server, and an EC2 client that retries as the SDK does by
// default (attempts: 0) or as told.
func faultSim(t *testing.T, p *Profile, attempts int) (*Sim, *ec2.Client, string) {
	t.Helper()
	s := New(Options{ManualClock: true, TimeScale: 1, Faults: p})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c := ec2.NewFromConfig(ClientConfig(srv.URL), func(o *ec2.Options) {
		if attempts > 0 {
			o.RetryMaxAttempts = attempts
		}
	})
	return s, c, srv.URL
}

func TestEventualProfile(t *testing.T) {
	s, c, _ := faultSim(t, &Profile{Seed: 7, Eventual: &EventualFaults{NotFound: 2 * time.Second, TagsLate: time.Second}}, 1)
	ctx := t.Context()
	id := *run(t, c, &ec2.RunInstancesInput{ImageId: aws.String(baseImage(t, c)), InstanceType: types.InstanceTypeT3Micro})[0].InstanceId
	_, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if errCode(err) != "InvalidInstanceID.NotFound" {
		t.Fatalf("DescribeInstances right after RunInstances = %v; want InvalidInstanceID.NotFound", err)
	}
	s.Advance(2 * time.Second) // the window is at most 2 s
	if st := state(t, c, id); st == "" {
		t.Fatalf("state after the window = %q", st)
	}
	if _, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id}, Tags: []types.Tag{{Key: aws.String("late"), Value: aws.String("yes")}}}); err != nil {
		t.Fatalf("CreateTags() = %v", err)
	}
	tagged := func() bool {
		out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []types.Filter{{Name: aws.String("tag:late"), Values: []string{"yes"}}}})
		if err != nil {
			t.Fatalf("DescribeInstances() = %v", err)
		}
		return len(out.Reservations) == 1
	}
	if tagged() {
		t.Fatal("tag filter matches right after CreateTags; want the tag late")
	}
	s.Advance(time.Second)
	if !tagged() {
		t.Fatal("tag filter does not match 1 s after CreateTags")
	}
	if st := s.FaultStats(); st.NotYet != 1 || st.TagsLate != 1 || st.Seed != 7 {
		t.Errorf("FaultStats() = %+v; want 1 window, 1 late tag, seed 7", st)
	}
}

func TestFlakyProfileErrors(t *testing.T) {
	s, c, _ := faultSim(t, &Profile{Flaky: &FlakyFaults{Errors: 1}}, 3)
	_, err := c.DescribeInstances(t.Context(), &ec2.DescribeInstancesInput{})
	if code := errCode(err); code != "InternalError" && code != "ServiceUnavailable" {
		t.Fatalf("DescribeInstances() = %v; want InternalError or ServiceUnavailable", err)
	}
	if n := s.Calls("DescribeInstances"); n != 3 {
		t.Errorf("Calls(DescribeInstances) = %d; want 3 (the SDK retries 5xx)", n)
	}
	if st := s.FaultStats(); st.Errors != 3 {
		t.Errorf("FaultStats().Errors = %d; want 3", st.Errors)
	}
}

func TestFlakyProfileResets(t *testing.T) {
	s, c, url := faultSim(t, &Profile{Flaky: &FlakyFaults{Resets: 1}}, 2)
	_, err := c.DescribeInstances(t.Context(), &ec2.DescribeInstancesInput{})
	var rse *smithyhttp.RequestSendError
	if !errors.As(err, &rse) {
		t.Fatalf("DescribeInstances() = %v; want a RequestSendError (connection reset)", err)
	}
	if n := s.Calls("DescribeInstances"); n != 2 {
		t.Errorf("Calls(DescribeInstances) = %d; want 2 (the SDK retries a reset)", n)
	}
	// At the default rates every call gets through the SDK's retries.
	s.SetFaultProfile(&Profile{Seed: 3, Flaky: &FlakyFaults{Errors: 0.1, Resets: 0.1}})
	c3 := ec2.NewFromConfig(ClientConfig(url), func(o *ec2.Options) { o.RetryMaxAttempts = 5 })
	for i := range 40 {
		if _, err := c3.DescribeImages(t.Context(), &ec2.DescribeImagesInput{Owners: []string{"amazon"}}); err != nil {
			t.Fatalf("DescribeImages #%d = %v", i, err)
		}
	}
	if st := s.FaultStats(); st.Errors == 0 || st.Resets == 0 {
		t.Errorf("FaultStats() = %+v; want errors and resets injected", st)
	}
}

func TestFlakyProfileSeedRepeats(t *testing.T) {
	seq := func() []int {
		s := New(Options{ManualClock: true, TimeScale: 1, Faults: &Profile{Seed: 99, Flaky: &FlakyFaults{Errors: 0.3}}})
		var out []int
		for range 50 {
			err, _ := s.flaky()
			if err != nil {
				out = append(out, 1)
			} else {
				out = append(out, 0)
			}
		}
		return out
	}
	a, b := seq(), seq()
	if !slices.Equal(a, b) || !slices.Contains(a, 1) || !slices.Contains(a, 0) {
		t.Fatalf("two runs with seed 99: %v and %v; want the same mix of faults", a, b)
	}
}

func TestCapacityProfile(t *testing.T) {
	s, c, _ := faultSim(t, &Profile{Capacity: &CapacityFaults{Rate: 1, For: 2 * time.Minute}}, 1)
	ctx := t.Context()
	img := baseImage(t, c)
	subnet := s.DefaultSubnets()[0]
	launch := func(it types.InstanceType) error {
		_, err := c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(img), InstanceType: it, SubnetId: aws.String(subnet),
			MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
		return err
	}
	err := launch(types.InstanceTypeT3Micro)
	if errCode(err) != "InsufficientInstanceCapacity" || !strings.Contains(err.Error(), "t3.micro") {
		t.Fatalf("RunInstances() = %v; want InsufficientInstanceCapacity for t3.micro", err)
	}
	s.faults.mu.Lock()
	s.faults.profile.Capacity.Rate = 0 // no new shortage: the one started lasts
	s.faults.mu.Unlock()
	if err := launch(types.InstanceTypeT3Micro); errCode(err) != "InsufficientInstanceCapacity" {
		t.Fatalf("RunInstances() during the shortage = %v; want InsufficientInstanceCapacity", err)
	}
	if err := launch(types.InstanceTypeT3Small); err != nil {
		t.Fatalf("RunInstances(t3.small) = %v; want another type served", err)
	}
	s.Advance(2 * time.Minute)
	if err := launch(types.InstanceTypeT3Micro); err != nil {
		t.Fatalf("RunInstances() after the shortage = %v", err)
	}
	if st := s.FaultStats(); st.Shortages != 1 || st.Insufficient != 2 {
		t.Errorf("FaultStats() = %+v; want 1 shortage, 2 refusals", st)
	}
	if n := len(s.Instances()); n != 2 {
		t.Errorf("instances = %d; want 2 (refused launches make none)", n)
	}
}

func TestThrottleProfile(t *testing.T) {
	s, c, _ := faultSim(t, &Profile{Throttle: &ThrottleFaults{Every: 10 * time.Second, Drain: 1}}, 1)
	ctx := t.Context()
	in := &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5)}
	for range 3 {
		if _, err := c.DescribeInstances(ctx, in); err != nil {
			t.Fatalf("DescribeInstances() = %v", err)
		}
	}
	s.Advance(10 * time.Second)
	_, err := c.DescribeInstances(ctx, in)
	if errCode(err) != "RequestLimitExceeded" {
		t.Fatalf("DescribeInstances() after another tenant's burst = %v; want RequestLimitExceeded", err)
	}
	s.Advance(time.Second) // the bucket refills at 20 a second
	if _, err := c.DescribeInstances(ctx, in); err != nil {
		t.Fatalf("DescribeInstances() a second later = %v", err)
	}
	if st := s.FaultStats(); st.Bursts != 1 {
		t.Errorf("FaultStats().Bursts = %d; want 1", st.Bursts)
	}
}

// eventSink records the events pushed to it.
type eventSink struct {
	mu     sync.Mutex
	states []string // "instance-id state" in arrival order
}

func (k *eventSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var ev struct {
		Detail map[string]string `json:"detail"`
	}
	if json.Unmarshal(b, &ev) == nil && ev.Detail["state"] != "" {
		k.mu.Lock()
		k.states = append(k.states, ev.Detail["state"])
		k.mu.Unlock()
	}
}

func (k *eventSink) got() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.states)
}

func TestEventsProfilePush(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    EventFaults
		want []string
	}{
		{"duplicated", EventFaults{Duplicate: 1}, []string{"pending", "pending", "running", "running"}},
		{"dropped", EventFaults{Drop: 1}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := &eventSink{}
			push := httptest.NewServer(sink)
			t.Cleanup(push.Close)
			p := &Profile{Seed: 5, Events: &tc.p}
			p.Events.Delay = 5 * time.Second
			s := New(Options{ManualClock: true, TimeScale: 1, Faults: p, Events: []EventTarget{{URL: push.URL}}})
			srv := httptest.NewServer(s)
			t.Cleanup(srv.Close)
			c := ec2.NewFromConfig(ClientConfig(srv.URL), func(o *ec2.Options) { o.RetryMaxAttempts = 1 })
			run(t, c, &ec2.RunInstancesInput{ImageId: aws.String(baseImage(t, c)), InstanceType: types.InstanceTypeT3Micro})
			s.Advance(time.Minute) // running; every delay (≤ 5 s) has passed
			got := sink.got()
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("states pushed = %v; want %v", got, tc.want)
			}
		})
	}
}

func TestEventsProfileDelayPush(t *testing.T) {
	sink := &eventSink{}
	push := httptest.NewServer(sink)
	t.Cleanup(push.Close)
	// Boot takes 1 s, the events up to 5 s: with seed 11 the running event
	// overtakes the pending one at least once in 20 launches.
	p := &Profile{Seed: 11, Events: &EventFaults{Drop: 1e-9, Delay: 5 * time.Second}} // (all zero rates take the defaults)
	s := New(Options{ManualClock: true, TimeScale: 1, Durations: Durations{Boot: time.Second}, Faults: p, Events: []EventTarget{{URL: push.URL}}})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c := ec2.NewFromConfig(ClientConfig(srv.URL), func(o *ec2.Options) { o.RetryMaxAttempts = 1 })
	img := baseImage(t, c)
	reordered := false
	for range 20 {
		before := len(sink.got())
		run(t, c, &ec2.RunInstancesInput{ImageId: aws.String(img), InstanceType: types.InstanceTypeT3Micro})
		s.Advance(10 * time.Second)
		got := sink.got()[before:]
		if len(got) != 2 {
			t.Fatalf("events of one launch = %v; want 2 (none dropped)", got)
		}
		if got[0] == "running" {
			reordered = true
		}
	}
	if !reordered {
		t.Fatal("no running event overtook its pending one in 20 launches")
	}
	if st := s.FaultStats(); st.EventsDelayed == 0 {
		t.Errorf("FaultStats() = %+v; want delayed events", st)
	}
}

func TestEventsProfileQueue(t *testing.T) {
	s := New(Options{ManualClock: true, TimeScale: 1, Faults: &Profile{Seed: 1, Events: &EventFaults{Duplicate: 1, Delay: 5 * time.Second}}})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	cfg := ClientConfig(srv.URL)
	q, eb, c := sqs.NewFromConfig(cfg), eventbridge.NewFromConfig(cfg), ec2.NewFromConfig(cfg)
	ctx := t.Context()
	made, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("events")})
	if err != nil {
		t.Fatalf("CreateQueue() = %v", err)
	}
	const queueARN = "arn:aws:sqs:us-east-1:123456789012:events"
	rule, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("ec2"),
		EventPattern: aws.String(`{"source":["aws.ec2"],"detail-type":["EC2 Instance State-change Notification"]}`)})
	if err != nil {
		t.Fatalf("PutRule() = %v", err)
	}
	if _, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("ec2"),
		Targets: []ebtypes.Target{{Id: aws.String("queue"), Arn: aws.String(queueARN)}}}); err != nil {
		t.Fatalf("PutTargets() = %v", err)
	}
	policy := `{"Statement":[{"Effect":"Allow","Principal":{"Service":"events.amazonaws.com"},"Action":"sqs:SendMessage",` +
		`"Resource":"` + queueARN + `","Condition":{"ArnEquals":{"aws:SourceArn":"` + *rule.RuleArn + `"}}}]}`
	if _, err := q.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: made.QueueUrl, Attributes: map[string]string{"Policy": policy}}); err != nil {
		t.Fatalf("SetQueueAttributes() = %v", err)
	}
	run(t, c, &ec2.RunInstancesInput{ImageId: aws.String(baseImage(t, c)), InstanceType: types.InstanceTypeT3Micro})
	s.Advance(time.Minute)
	var states []string
	for range 4 {
		out, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: made.QueueUrl, MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatalf("ReceiveMessage() = %v", err)
		}
		for _, m := range out.Messages {
			var ev struct {
				Detail map[string]string `json:"detail"`
			}
			if err := json.Unmarshal([]byte(*m.Body), &ev); err != nil {
				t.Fatalf("message body: %v", err)
			}
			states = append(states, ev.Detail["state"])
		}
	}
	slices.Sort(states)
	if want := []string{"pending", "pending", "running", "running"}; !slices.Equal(states, want) {
		t.Fatalf("states through SQS = %v; want %v", states, want)
	}
}

func TestFaultProfileControl(t *testing.T) {
	s, _, url := faultSim(t, nil, 1)
	post := func(body string) (int, string) {
		resp, err := http.Post(url+"/_sim/faults/profile", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatalf("POST /_sim/faults/profile: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post(`{"profile":"eventual,flaky","seed":12}`); code != 200 || !strings.Contains(body, `"seed":12`) {
		t.Fatalf("POST = %d %s", code, body)
	}
	if got := s.FaultProfile().Names(); !slices.Equal(got, []string{"eventual", "flaky"}) {
		t.Fatalf("FaultProfile().Names() = %v", got)
	}
	if code, body := post(`{"profile":"nope"}`); code != 400 || !strings.Contains(body, "unknown fault profile") {
		t.Fatalf("POST unknown = %d %s", code, body)
	}
	if code, _ := post(`{"profile":""}`); code != 200 || s.FaultProfile() != nil {
		t.Fatalf("POST off = %d, profile %v", code, s.FaultProfile())
	}
}
