package eventqueue_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"kiln/internal/awssim"
	"kiln/internal/eventqueue"
)

func TestSetupIsIdempotentAndDelivers(t *testing.T) {
	sim, q, eb := setup(t)
	ctx := context.Background()
	plan := eventqueue.Plan{Region: "us-east-1", Queue: "kiln-events"}

	// Someone else's statement in an existing queue's policy is kept.
	made, _ := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("kiln-events")})
	other := `{"Version":"2012-10-17","Statement":{"Sid":"ops","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sqs:*","Resource":"*"}}`
	if _, err := q.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: made.QueueUrl, Attributes: map[string]string{"Policy": other}}); err != nil {
		t.Fatal(err)
	}
	res, err := eventqueue.Setup(ctx, q, eb, plan)
	if err != nil {
		t.Fatal(err)
	}
	if res.QueueCreated || !res.PolicyChanged || res.QueueURL != *made.QueueUrl ||
		res.QueueARN != "arn:aws:sqs:us-east-1:123456789012:kiln-events" || res.RuleARN != "arn:aws:events:us-east-1:123456789012:rule/kiln-events-kiln-events" {
		t.Fatalf("first setup = %+v", res)
	}
	again, err := eventqueue.Setup(ctx, q, eb, plan)
	if err != nil || again.PolicyChanged || again.QueueCreated {
		t.Fatalf("second setup = %+v, %v; want nothing changed", again, err)
	}
	a, _ := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: made.QueueUrl, AttributeNames: []types.QueueAttributeName{"Policy"}})
	if p := a.Attributes["Policy"]; !strings.Contains(p, `"Sid":"ops"`) || strings.Count(p, "kiln-eventbridge-") != 1 {
		t.Errorf("policy = %s", p)
	}

	// The rule now puts an instance's state changes into the queue.
	c := ec2.NewFromConfig(awssim.ClientConfig(strings.TrimSuffix(res.QueueURL, "/123456789012/kiln-events")))
	imgs, _ := c.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"}})
	if _, err := c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: imgs.Images[0].ImageId, InstanceType: ec2types.InstanceTypeT3Micro,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	s := newSink()
	cons, err := eventqueue.Open(ctx, q, res.QueueURL, s, eventqueue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_ = cons
	select {
	case <-s.got:
	case <-time.After(5 * time.Second):
		t.Fatalf("no event through the rule; rules %+v, queues %+v", sim.Rules(), sim.Queues())
	}
	if ev := s.events()[0]; ev.Source != "aws.ec2" || ev.State != "pending" {
		t.Errorf("event = %+v", ev)
	}

	// A new queue is created.
	res, err = eventqueue.Setup(ctx, q, eb, eventqueue.Plan{Queue: "fresh", Rule: "my.rule"})
	if err != nil || !res.QueueCreated || !strings.HasSuffix(res.RuleARN, ":rule/my.rule") {
		t.Fatalf("setup of a new queue = %+v, %v", res, err)
	}
	if _, err := eventqueue.Setup(ctx, q, eb, eventqueue.Plan{Queue: "bad name"}); err == nil || !strings.Contains(err.Error(), "--queue") {
		t.Errorf("bad queue name: %v", err)
	}
}

func TestTemplate(t *testing.T) {
	b, err := eventqueue.Template(eventqueue.Plan{Queue: "kiln-events"})
	if err != nil {
		t.Fatal(err)
	}
	var tpl struct {
		Resources map[string]struct {
			Type       string
			Properties map[string]any
		}
	}
	if err := json.Unmarshal(b, &tpl); err != nil {
		t.Fatal(err)
	}
	types := map[string]string{}
	for k, r := range tpl.Resources {
		types[k] = r.Type
	}
	if types["Queue"] != "AWS::SQS::Queue" || types["QueuePolicy"] != "AWS::SQS::QueuePolicy" || types["Rule"] != "AWS::Events::Rule" {
		t.Errorf("resources = %v", types)
	}
	if !strings.Contains(string(b), `"EC2 Instance State-change Notification"`) || !strings.Contains(string(b), `"events.amazonaws.com"`) {
		t.Errorf("template:\n%s", b)
	}
}
