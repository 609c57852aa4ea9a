package awssim_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"kiln/internal/awssim"
)

// An EventBridge rule puts the instance state changes into an SQS queue,
// which a client then long-polls: the simulator's SQS and EventBridge go
// through the same SDK clients as on AWS.
func Example_eventsQueue() {
	sim := awssim.New(awssim.Options{ManualClock: true, TimeScale: 1})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	cfg := awssim.ClientConfig(srv.URL)
	q, eb, c := sqs.NewFromConfig(cfg), eventbridge.NewFromConfig(cfg), ec2.NewFromConfig(cfg)
	ctx := context.Background()

	made, _ := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("events")})
	const queueARN = "arn:aws:sqs:us-east-1:123456789012:events"
	rule, _ := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("ec2"),
		EventPattern: aws.String(`{"source":["aws.ec2"],"detail-type":["EC2 Instance State-change Notification"]}`)})
	_, _ = eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("ec2"),
		Targets: []ebtypes.Target{{Id: aws.String("queue"), Arn: aws.String(queueARN)}}})
	policy := `{"Statement":[{"Effect":"Allow","Principal":{"Service":"events.amazonaws.com"},"Action":"sqs:SendMessage",` +
		`"Resource":"` + queueARN + `","Condition":{"ArnEquals":{"aws:SourceArn":"` + *rule.RuleArn + `"}}}]}`
	_, _ = q.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: made.QueueUrl, Attributes: map[string]string{"Policy": policy}})

	_, _ = c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String("ami-000f627752e462816"),
		InstanceType: types.InstanceTypeT3Micro, MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	sim.Advance(time.Minute) // pending → running

	out, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: made.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, m := range out.Messages {
		fmt.Println(strings.Contains(*m.Body, `"detail-type":"EC2 Instance State-change Notification"`), strings.Contains(*m.Body, `"state":"running"`))
	}
	// Output:
	// true false
	// true true
}
