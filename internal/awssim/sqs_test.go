package awssim_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"kiln/internal/awssim"
	"kiln/internal/testsupport"
)

func newSQS(t *testing.T, opts awssim.Options) (*awssim.Sim, *sqs.Client, *eventbridge.Client, *ec2.Client) {
	t.Helper()
	sim := awssim.New(opts)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	cfg := awssim.ClientConfig(srv.URL)
	return sim, sqs.NewFromConfig(cfg), eventbridge.NewFromConfig(cfg), ec2.NewFromConfig(cfg)
}

func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestSQSQueueLifecycle(t *testing.T) {
	sim, c, _, _ := newSQS(t, awssim.Options{ManualClock: true})
	ctx := context.Background()

	cq, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("jobs"), Attributes: map[string]string{"VisibilityTimeout": "10"}})
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("jobs")})
	if err != nil || *again.QueueUrl != *cq.QueueUrl {
		t.Fatalf("CreateQueue again = %v, %v; want the same URL %s", again, err, *cq.QueueUrl)
	}
	_, err = c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("jobs"), Attributes: map[string]string{"VisibilityTimeout": "20"}})
	var exists *types.QueueNameExists
	if !errors.As(err, &exists) || code(err) != "QueueAlreadyExists" {
		t.Fatalf("CreateQueue with other attributes: %v (code %q), want QueueAlreadyExists", err, code(err))
	}
	u, err := c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("jobs")})
	if err != nil || *u.QueueUrl != *cq.QueueUrl {
		t.Fatalf("GetQueueUrl = %v, %v", u, err)
	}
	_, err = c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("nope")})
	var missing *types.QueueDoesNotExist
	if !errors.As(err, &missing) || code(err) != "AWS.SimpleQueueService.NonExistentQueue" {
		t.Fatalf("GetQueueUrl of a missing queue: %v (code %q)", err, code(err))
	}

	for _, body := range []string{"one", "two", "three"} {
		out, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: cq.QueueUrl, MessageBody: aws.String(body)})
		if err != nil || out.MessageId == nil {
			t.Fatalf("SendMessage: %v, %v", out, err) // the SDK checks MD5OfMessageBody
		}
	}
	got, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: cq.QueueUrl, MaxNumberOfMessages: 2,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll}})
	if err != nil || len(got.Messages) != 2 || *got.Messages[0].Body != "one" {
		t.Fatalf("ReceiveMessage = %+v, %v", got, err)
	}
	if got.Messages[0].Attributes["ApproximateReceiveCount"] != "1" || got.Messages[0].Attributes["SentTimestamp"] == "" {
		t.Errorf("attributes = %v", got.Messages[0].Attributes)
	}
	attrs := func() map[string]string {
		t.Helper()
		a, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: cq.QueueUrl,
			AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameAll}})
		if err != nil {
			t.Fatal(err)
		}
		return a.Attributes
	}
	if a := attrs(); a["ApproximateNumberOfMessages"] != "1" || a["ApproximateNumberOfMessagesNotVisible"] != "2" ||
		a["QueueArn"] != "arn:aws:sqs:us-east-1:123456789012:jobs" || a["VisibilityTimeout"] != "10" {
		t.Fatalf("attributes = %v", a)
	}

	// Delete one in a batch with a bad handle; the other comes back after
	// its visibility timeout.
	del, err := c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: cq.QueueUrl, Entries: []types.DeleteMessageBatchRequestEntry{
		{Id: aws.String("a"), ReceiptHandle: got.Messages[0].ReceiptHandle},
		{Id: aws.String("b"), ReceiptHandle: aws.String("garbage")},
	}})
	if err != nil || len(del.Successful) != 1 || len(del.Failed) != 1 || *del.Failed[0].Code != "ReceiptHandleIsInvalid" {
		t.Fatalf("DeleteMessageBatch = %+v, %v", del, err)
	}
	_, err = c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: cq.QueueUrl, Entries: []types.DeleteMessageBatchRequestEntry{
		{Id: aws.String("a"), ReceiptHandle: got.Messages[1].ReceiptHandle}, {Id: aws.String("a"), ReceiptHandle: got.Messages[1].ReceiptHandle},
	}})
	if code(err) != "AWS.SimpleQueueService.BatchEntryIdsNotDistinct" {
		t.Errorf("repeated ids: %v", err)
	}
	sim.Advance(11 * time.Second)
	if a := attrs(); a["ApproximateNumberOfMessages"] != "2" || a["ApproximateNumberOfMessagesNotVisible"] != "0" {
		t.Fatalf("after the visibility timeout: %v", a)
	}
	again2, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: cq.QueueUrl, MaxNumberOfMessages: 10,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount}})
	if err != nil || len(again2.Messages) != 2 || *again2.Messages[0].Body != "two" || again2.Messages[0].Attributes["ApproximateReceiveCount"] != "2" {
		t.Fatalf("second receive = %+v, %v", again2, err)
	}
	if _, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: cq.QueueUrl, ReceiptHandle: again2.Messages[0].ReceiptHandle}); err != nil {
		t.Fatal(err)
	}

	if _, err := c.PurgeQueue(ctx, &sqs.PurgeQueueInput{QueueUrl: cq.QueueUrl}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PurgeQueue(ctx, &sqs.PurgeQueueInput{QueueUrl: cq.QueueUrl}); code(err) != "AWS.SimpleQueueService.PurgeQueueInProgress" {
		t.Errorf("second purge: %v", err)
	}
	if a := attrs(); a["ApproximateNumberOfMessages"] != "0" || a["ApproximateNumberOfMessagesNotVisible"] != "0" {
		t.Fatalf("after purge: %v", a)
	}
	_, err = c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: cq.QueueUrl, MaxNumberOfMessages: 11})
	if code(err) != "InvalidParameterValue" {
		t.Errorf("MaxNumberOfMessages 11: %v", err)
	}
	_, err = c.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: cq.QueueUrl, Attributes: map[string]string{"VisibilityTimeout": "-1"}})
	if code(err) != "InvalidAttributeValue" {
		t.Errorf("VisibilityTimeout -1: %v", err)
	}
	_, err = c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String("http://elsewhere/123456789012/gone"), MessageBody: aws.String("x")})
	if code(err) != "AWS.SimpleQueueService.NonExistentQueue" {
		t.Errorf("send to a missing queue: %v", err)
	}
}

func TestSQSLongPoll(t *testing.T) {
	sim, c, _, _ := newSQS(t, awssim.Options{})
	ctx := context.Background()
	cq, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("wait")})
	if err != nil {
		t.Fatal(err)
	}
	// The message is sent once the receive has reached the queue empty:
	// only a long poll can return it.
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		testsupport.Eventually(t, "the long poll to arrive", func() bool { return sim.Calls("ReceiveMessage") == 1 })
		_, _ = c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: cq.QueueUrl, MessageBody: aws.String("late")})
	}()
	start := time.Now()
	got, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: cq.QueueUrl, WaitTimeSeconds: 5})
	<-sent
	if err != nil || len(got.Messages) != 1 || aws.ToString(got.Messages[0].Body) != "late" {
		t.Fatalf("long poll = %+v, %v", got, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("long poll returned after %v; want it woken by the send, not by its 5 s wait", d)
	}
	// An empty queue answers after the wait, with no messages.
	start = time.Now()
	got, err = c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: cq.QueueUrl, WaitTimeSeconds: 1})
	if err != nil || len(got.Messages) != 0 || time.Since(start) < 900*time.Millisecond {
		t.Fatalf("empty long poll = %+v, %v after %v", got, err, time.Since(start))
	}
}

const ec2Pattern = `{"source":["aws.ec2"],"detail-type":["EC2 Instance State-change Notification"],"detail":{"state":["stopping","stopped"]}}`

func TestEventBridgeRuleToQueue(t *testing.T) {
	sim, q, eb, c := newSQS(t, awssim.Options{ManualClock: true})
	ctx := context.Background()
	cq, _ := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("events")})
	qarn := "arn:aws:sqs:us-east-1:123456789012:events"

	if _, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("bad"), EventPattern: aws.String(`{"source":"aws.ec2"}`)}); code(err) != "InvalidEventPatternException" {
		t.Errorf("pattern with a scalar: %v", err)
	}
	rule, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("stops"), EventPattern: aws.String(ec2Pattern)})
	if err != nil || *rule.RuleArn != "arn:aws:events:us-east-1:123456789012:rule/stops" {
		t.Fatalf("PutRule = %v, %v", rule, err)
	}
	if _, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("nope"), Targets: []ebtypes.Target{{Id: aws.String("q"), Arn: aws.String(qarn)}}}); code(err) != "ResourceNotFoundException" {
		t.Errorf("targets of a missing rule: %v", err)
	}
	pt, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("stops"), Targets: []ebtypes.Target{{Id: aws.String("q"), Arn: aws.String(qarn)}}})
	if err != nil || pt.FailedEntryCount != 0 {
		t.Fatalf("PutTargets = %+v, %v", pt, err)
	}

	run, err := c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(amazonImage(t, c)), InstanceType: ec2types.InstanceTypeT3Micro,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	id := *run.Instances[0].InstanceId
	sim.Advance(time.Minute)

	// No policy yet: EventBridge may not send to the queue.
	if err := sim.StopInstance(id); err != nil {
		t.Fatal(err)
	}
	sim.Advance(time.Minute)
	if qs := sim.Queues(); qs[0].Visible != 0 {
		t.Fatalf("delivered without a queue policy: %+v", qs)
	}
	if r := sim.Rules(); r[0].Failed != 2 {
		t.Errorf("rules = %+v; want 2 failed invocations (stopping, stopped)", r)
	}

	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"events.amazonaws.com"},` +
		`"Action":"sqs:SendMessage","Resource":"` + qarn + `","Condition":{"ArnEquals":{"aws:SourceArn":"` + *rule.RuleArn + `"}}}]}`
	if _, err := q.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: cq.QueueUrl, Attributes: map[string]string{"Policy": policy}}); err != nil {
		t.Fatal(err)
	}
	if err := sim.StartInstance(id); err != nil {
		t.Fatal(err)
	}
	sim.Advance(time.Minute) // pending, running: not in the pattern
	if err := sim.StopInstance(id); err != nil {
		t.Fatal(err)
	}
	sim.Advance(time.Minute)
	got, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: cq.QueueUrl, MaxNumberOfMessages: 10})
	if err != nil || len(got.Messages) != 2 {
		t.Fatalf("ReceiveMessage = %+v, %v; want stopping and stopped", got, err)
	}
	var ev struct {
		DetailType string            `json:"detail-type"`
		Detail     map[string]string `json:"detail"`
	}
	if err := json.Unmarshal([]byte(*got.Messages[1].Body), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.DetailType != awssim.DetailInstanceState || ev.Detail["instance-id"] != id || ev.Detail["state"] != "stopped" {
		t.Errorf("event = %+v", ev)
	}
}

func amazonImage(t *testing.T, c *ec2.Client) string {
	t.Helper()
	out, err := c.DescribeImages(context.Background(), &ec2.DescribeImagesInput{Owners: []string{"amazon"}})
	if err != nil || len(out.Images) == 0 {
		t.Fatalf("DescribeImages: %v", err)
	}
	return *out.Images[0].ImageId
}

func TestJSONUnknownTarget(t *testing.T) {
	_, c, _, _ := newSQS(t, awssim.Options{})
	_, err := c.ListQueues(context.Background(), &sqs.ListQueuesInput{})
	if !strings.Contains(code(err), "UnknownOperation") {
		t.Errorf("an action the simulator does not serve: %v (code %q)", err, code(err))
	}
}

func TestSQSMessageAttributes(t *testing.T) {
	_, c, _, _ := newSQS(t, awssim.Options{ManualClock: true})
	ctx := context.Background()
	cq, _ := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("attrs")})
	sent, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: cq.QueueUrl, MessageBody: aws.String("with attributes"),
		MessageAttributes: map[string]types.MessageAttributeValue{
			"trace.id": {DataType: aws.String("String"), StringValue: aws.String("abc")},
			"count":    {DataType: aws.String("Number.int"), StringValue: aws.String("3")},
			"blob":     {DataType: aws.String("Binary"), BinaryValue: []byte{0, 1, 2}},
		}})
	if err != nil || sent.MD5OfMessageAttributes == nil || len(*sent.MD5OfMessageAttributes) != 32 {
		t.Fatalf("SendMessage = %+v, %v", sent, err)
	}
	got, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: cq.QueueUrl, MessageAttributeNames: []string{"All"}})
	if err != nil || len(got.Messages) != 1 {
		t.Fatalf("ReceiveMessage = %+v, %v", got, err)
	}
	m := got.Messages[0]
	if *m.MD5OfMessageAttributes != *sent.MD5OfMessageAttributes || len(m.MessageAttributes) != 3 ||
		*m.MessageAttributes["count"].StringValue != "3" || string(m.MessageAttributes["blob"].BinaryValue) != "\x00\x01\x02" {
		t.Errorf("received %+v", m)
	}
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: cq.QueueUrl, MessageBody: aws.String("x"),
		MessageAttributes: map[string]types.MessageAttributeValue{"AWS.reserved": {DataType: aws.String("String"), StringValue: aws.String("v")}}}); code(err) != "InvalidParameterValue" {
		t.Errorf("a reserved attribute name: %v", err)
	}
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: cq.QueueUrl, MessageBody: aws.String("x"),
		MessageAttributes: map[string]types.MessageAttributeValue{"n": {DataType: aws.String("Number"), StringValue: aws.String("three")}}}); code(err) != "InvalidParameterValue" {
		t.Errorf("a Number that is not one: %v", err)
	}
}
