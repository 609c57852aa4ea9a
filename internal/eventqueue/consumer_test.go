package eventqueue_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"kiln/internal/awsapi"
	"kiln/internal/awssim"
	"kiln/internal/eventqueue"
	"kiln/internal/testsupport"
)

type sink struct {
	mu  sync.Mutex
	evs []awsapi.Event
	got chan struct{}
}

func newSink() *sink { return &sink{got: make(chan struct{}, 100)} }

func (s *sink) Deliver(ev awsapi.Event) {
	s.mu.Lock()
	s.evs = append(s.evs, ev)
	s.mu.Unlock()
	s.got <- struct{}{}
}

func (s *sink) events() []awsapi.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]awsapi.Event(nil), s.evs...)
}

func setup(t *testing.T) (*awssim.Sim, *sqs.Client, *eventbridge.Client) {
	t.Helper()
	sim := awssim.New(awssim.Options{})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	cfg := awssim.ClientConfig(srv.URL)
	cfg.Retryer = func() aws.Retryer { return awsapi.NewRetryer(awsapi.RetryOptions{MaxAttempts: 1}) }
	return sim, sqs.NewFromConfig(cfg), eventbridge.NewFromConfig(cfg)
}

func event(detailType, detail string) string {
	return `{"version":"0","id":"e-` + strings.ReplaceAll(detailType, " ", "") + `","detail-type":"` + detailType +
		`","source":"aws.ec2","account":"123456789012","time":"2026-01-01T00:00:00Z","region":"us-east-1","resources":[],"detail":` + detail + `}`
}

func TestConsumerRoutesAndDropsPoison(t *testing.T) {
	_, c, _ := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("events")})
	if err != nil {
		t.Fatal(err)
	}
	send := func(body string) {
		t.Helper()
		if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String(body)}); err != nil {
			t.Fatal(err)
		}
	}
	// Queued before kiln starts: the first receive takes them.
	send(event("EC2 Instance State-change Notification", `{"instance-id":"i-1","state":"stopped"}`))
	send("this is not an event")

	reg := prometheus.NewRegistry()
	s := newSink()
	cons, err := eventqueue.Open(ctx, c, "events", s, eventqueue.Options{Wait: time.Second, Metrics: eventqueue.NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	if cons.URL() != *q.QueueUrl {
		t.Errorf("URL = %s, want %s", cons.URL(), *q.QueueUrl)
	}
	done := make(chan error)
	go func() { done <- cons.Run(ctx) }()

	sns, _ := json.Marshal(map[string]string{"Type": "Notification", "MessageId": "m1", "TopicArn": "arn:aws:sns:us-east-1:123456789012:t",
		"Message": event("EC2 AMI State Change", `{"ImageId":"ami-1","State":"available"}`)})
	send(string(sns))
	send(event("EC2 Spot Instance Interruption Warning", `{}`))
	send(`{"source":"aws.ec2","detail-type":"EC2 Instance State-change Notification","region":"us-east-1","detail":{}}`) // no instance id

	for range 2 {
		select {
		case <-s.got:
		case <-time.After(5 * time.Second):
			t.Fatalf("events routed: %+v", s.events())
		}
	}
	testsupport.Eventually(t, "five deletions", func() bool { return value(t, reg, "kiln_events_queue_deleted_total") == 5 })
	evs := s.events()
	if evs[0].Resource != "i-1" || evs[0].State != "stopped" || evs[1].Resource != "ami-1" || evs[1].State != "available" {
		t.Errorf("routed %+v", evs)
	}
	a, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameAll}})
	if err != nil || a.Attributes["ApproximateNumberOfMessages"] != "0" || a.Attributes["ApproximateNumberOfMessagesNotVisible"] != "0" {
		t.Errorf("queue after routing: %v, %v", a.Attributes, err)
	}
	for name, want := range map[string]float64{
		"kiln_events_queue_received_total": 5, "kiln_events_queue_routed_total": 2,
	} {
		if got := value(t, reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "kiln_events_queue_lag_seconds"); err != nil || n != 1 {
		t.Errorf("lag series: %d, %v", n, err)
	}
	if m, i := value(t, reg, "kiln_events_queue_dropped_total", "reason", "malformed"), value(t, reg, "kiln_events_queue_dropped_total", "reason", "ignored"); m != 2 || i != 1 {
		t.Errorf("dropped: %v malformed, %v ignored; want 2 and 1", m, i)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop with its context")
	}
}

// value sums the samples of a counter family (by label, when given).
func value(t *testing.T, reg *prometheus.Registry, name string, label ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(label); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || lp.GetName() == label[i] && lp.GetValue() == label[i+1]
				}
				if !found {
					continue metrics
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func TestOpenErrors(t *testing.T) {
	sim, c, _ := setup(t)
	ctx := context.Background()
	_, err := eventqueue.Open(ctx, c, "missing", newSink(), eventqueue.Options{})
	if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "kiln events setup --queue missing") {
		t.Errorf("missing queue by name: %v", err)
	}
	_, err = eventqueue.Open(ctx, c, "http://127.0.0.1:1/123456789012/missing", newSink(), eventqueue.Options{})
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing queue by URL: %v", err)
	}
	q, _ := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("locked")})
	sim.InjectFault(awssim.Fault{Action: "ReceiveMessage", Code: "AccessDenied", Status: 403, Count: 1})
	_, err = eventqueue.Open(ctx, c, *q.QueueUrl, newSink(), eventqueue.Options{})
	if err == nil || !strings.Contains(err.Error(), "may not read it") || !strings.Contains(err.Error(), "sqs:ReceiveMessage") {
		t.Errorf("access denied: %v", err)
	}
}

func TestQueueURLs(t *testing.T) {
	for _, tc := range []struct{ q, region, name, arn string }{
		{"https://sqs.eu-west-1.amazonaws.com/111122223333/kiln", "eu-west-1", "kiln", "arn:aws:sqs:eu-west-1:111122223333:kiln"},
		{"https://queue.amazonaws.com/111122223333/old", "us-east-1", "old", "arn:aws:sqs:us-east-1:111122223333:old"},
		{"https://ap-south-1.queue.amazonaws.com/111122223333/legacy", "ap-south-1", "legacy", "arn:aws:sqs:ap-south-1:111122223333:legacy"},
		{"http://127.0.0.1:4566/123456789012/sim", "", "sim", "arn:aws:sqs:*:123456789012:sim"},
		{"kiln-events", "", "kiln-events", "arn:aws:sqs:*:*:kiln-events"},
	} {
		if r := eventqueue.Region(tc.q); r != tc.region {
			t.Errorf("Region(%s) = %q, want %q", tc.q, r, tc.region)
		}
		if n := eventqueue.Name(tc.q); n != tc.name {
			t.Errorf("Name(%s) = %q, want %q", tc.q, n, tc.name)
		}
		if a := eventqueue.ARN(tc.q); a != tc.arn {
			t.Errorf("ARN(%s) = %q, want %q", tc.q, a, tc.arn)
		}
	}
	st := eventqueue.Statements([]string{"kiln-events"})
	if len(st) != 1 || strings.Join(st[0].Action, ",") != "sqs:DeleteMessage,sqs:GetQueueUrl,sqs:ReceiveMessage" {
		t.Errorf("statements = %+v", st)
	}
}

// A failing receive is counted and retried after a backoff; the consumer
// goes on routing.
func TestConsumerRetriesAfterErrors(t *testing.T) {
	sim, c, _ := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q, _ := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("flaky")})
	reg := prometheus.NewRegistry()
	s := newSink()
	cons, err := eventqueue.Open(ctx, c, *q.QueueUrl, s, eventqueue.Options{Wait: time.Second, RetryMin: 10 * time.Millisecond, Metrics: eventqueue.NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	sim.InjectFault(awssim.Fault{Action: "ReceiveMessage", Code: "InternalError", Count: 2})
	done := make(chan error)
	go func() { done <- cons.Run(ctx) }()
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q.QueueUrl,
		MessageBody: aws.String(event("EC2 Instance State-change Notification", `{"instance-id":"i-2","state":"running"}`))}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.got:
	case <-time.After(10 * time.Second):
		t.Fatal("no event routed after the errors")
	}
	if e := value(t, reg, "kiln_events_queue_errors_total"); e != 2 {
		t.Errorf("errors = %v, want 2", e)
	}
	cancel()
	<-done
}
