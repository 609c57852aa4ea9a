package eventqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// DetailTypes are the events kiln routes, and so what the rule forwards.
var DetailTypes = []string{
	"EC2 Instance State-change Notification",
	"EC2 AMI State Change",
	"EC2 Auto Scaling Instance Refresh Started",
	"EC2 Auto Scaling Instance Refresh Succeeded",
	"EC2 Auto Scaling Instance Refresh Failed",
	"EC2 Auto Scaling Instance Refresh Cancelled",
	"EC2 Auto Scaling Instance Refresh Checkpoint Reached",
}

// Pattern is the rule's event pattern: kiln's detail types from EC2 and
// Auto Scaling (each detail type belongs to one of the two sources).
func Pattern() string {
	b, _ := json.Marshal(map[string][]string{"source": {"aws.ec2", "aws.autoscaling"}, "detail-type": DetailTypes})
	return string(b)
}

// Plan names what Setup makes.
type Plan struct {
	Region string // the queue's and the rule's region
	Queue  string // the queue's name
	Rule   string // the rule's name; default "kiln-events-" + Queue
}

func (p Plan) rule() string {
	if p.Rule != "" {
		return p.Rule
	}
	return "kiln-events-" + p.Queue
}

// targetID is the rule's target for the queue.
const targetID = "kiln-events-queue"

// sid marks kiln's statement in the queue policy; other statements are
// kept as they are.
func (p Plan) sid() string { return "kiln-eventbridge-" + p.rule() }

// Check validates the plan's names as SQS and EventBridge would.
func (p Plan) Check() error {
	var errs []error
	if !validName(p.Queue, 80, "-_") {
		errs = append(errs, fmt.Errorf("--queue %q: want 1 to 80 letters, digits, '-' or '_'", p.Queue))
	}
	if !validName(p.rule(), 64, "-_.") {
		errs = append(errs, fmt.Errorf("--rule %q: want 1 to 64 letters, digits, '.', '-' or '_'", p.rule()))
	}
	return errors.Join(errs...)
}

func validName(s string, n int, extra string) bool {
	if s == "" || len(s) > n {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(extra, c)) {
			return false
		}
	}
	return true
}

// QueueAdmin and RuleAdmin are the calls Setup makes, in the SDK's shape.
type QueueAdmin interface {
	GetQueueUrl(context.Context, *sqs.GetQueueUrlInput, ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error)
	CreateQueue(context.Context, *sqs.CreateQueueInput, ...func(*sqs.Options)) (*sqs.CreateQueueOutput, error)
	GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
	SetQueueAttributes(context.Context, *sqs.SetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.SetQueueAttributesOutput, error)
}

type RuleAdmin interface {
	PutRule(context.Context, *eventbridge.PutRuleInput, ...func(*eventbridge.Options)) (*eventbridge.PutRuleOutput, error)
	PutTargets(context.Context, *eventbridge.PutTargetsInput, ...func(*eventbridge.Options)) (*eventbridge.PutTargetsOutput, error)
}

// Result is what Setup found or made.
type Result struct {
	QueueURL, QueueARN, RuleARN string
	QueueCreated                bool // false: it existed
	PolicyChanged               bool // false: kiln's statement was already there
}

// Setup makes the queue (unless it exists), puts kiln's statement in its
// policy (letting the rule send to it), and puts the rule and its target.
// Every step is idempotent: running it again changes nothing.
func Setup(ctx context.Context, q QueueAdmin, r RuleAdmin, p Plan) (*Result, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	res := &Result{}
	got, err := q.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(p.Queue)})
	var missing *types.QueueDoesNotExist
	switch {
	case errors.As(err, &missing):
		made, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(p.Queue)})
		if err != nil {
			return nil, fmt.Errorf("create queue %s: %w", p.Queue, err)
		}
		res.QueueURL, res.QueueCreated = aws.ToString(made.QueueUrl), true
	case err != nil:
		return nil, fmt.Errorf("look up queue %s: %w", p.Queue, err)
	default:
		res.QueueURL = aws.ToString(got.QueueUrl)
	}
	attrs, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(res.QueueURL),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn, types.QueueAttributeNamePolicy}})
	if err != nil {
		return nil, fmt.Errorf("read queue %s: %w", p.Queue, err)
	}
	res.QueueARN = attrs.Attributes[string(types.QueueAttributeNameQueueArn)]

	rule, err := r.PutRule(ctx, &eventbridge.PutRuleInput{
		Name: aws.String(p.rule()), EventPattern: aws.String(Pattern()), State: ebtypes.RuleStateEnabled,
		Description: aws.String("kiln: EC2 and Auto Scaling state changes into the SQS queue " + p.Queue),
	})
	if err != nil {
		return nil, fmt.Errorf("put rule %s: %w", p.rule(), err)
	}
	res.RuleARN = aws.ToString(rule.RuleArn)

	old := attrs.Attributes[string(types.QueueAttributeNamePolicy)]
	policy, err := mergePolicy(old, p.sid(), statement(p.sid(), res.QueueARN, res.RuleARN))
	if err != nil {
		return nil, fmt.Errorf("queue %s: %w", p.Queue, err)
	}
	if policy != old {
		if _, err := q.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(res.QueueURL),
			Attributes: map[string]string{string(types.QueueAttributeNamePolicy): policy}}); err != nil {
			return nil, fmt.Errorf("set the policy of queue %s: %w", p.Queue, err)
		}
		res.PolicyChanged = true
	}

	pt, err := r.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String(p.rule()),
		Targets: []ebtypes.Target{{Id: aws.String(targetID), Arn: aws.String(res.QueueARN)}}})
	if err != nil {
		return nil, fmt.Errorf("put the target of rule %s: %w", p.rule(), err)
	}
	if pt.FailedEntryCount > 0 && len(pt.FailedEntries) > 0 {
		f := pt.FailedEntries[0]
		return nil, fmt.Errorf("put the target of rule %s: %s: %s", p.rule(), aws.ToString(f.ErrorCode), aws.ToString(f.ErrorMessage))
	}
	return res, nil
}

// statement lets EventBridge, for this rule only, send to the queue.
func statement(sid, queueARN, ruleARN any) map[string]any {
	return map[string]any{
		"Sid":       sid,
		"Effect":    "Allow",
		"Principal": map[string]any{"Service": "events.amazonaws.com"},
		"Action":    "sqs:SendMessage",
		"Resource":  queueARN,
		"Condition": map[string]any{"ArnEquals": map[string]any{"aws:SourceArn": ruleARN}},
	}
}

// mergePolicy puts st in the policy text old in place of the statement
// with the same Sid, keeping every other statement; old may be empty.
// When st is already there, old comes back unchanged.
func mergePolicy(old, sid string, st map[string]any) (string, error) {
	doc := map[string]any{"Version": "2012-10-17"}
	var sts []any
	if old != "" {
		if err := json.Unmarshal([]byte(old), &doc); err != nil {
			return "", fmt.Errorf("the queue's policy is not JSON: %w", err)
		}
		switch v := doc["Statement"].(type) {
		case []any:
			sts = v
		case map[string]any:
			sts = []any{v}
		}
	}
	want, _ := json.Marshal(st)
	kept := make([]any, 0, len(sts)+1)
	for _, s := range sts {
		if m, ok := s.(map[string]any); ok && m["Sid"] == sid {
			if have, _ := json.Marshal(m); string(have) == string(want) {
				return old, nil
			}
			continue
		}
		kept = append(kept, s)
	}
	var norm any
	_ = json.Unmarshal(want, &norm)
	doc["Statement"] = append(kept, norm)
	b, err := json.Marshal(doc)
	return string(b), err
}

// Template is the plan as a CloudFormation template (JSON): the queue,
// its policy, and the rule with the queue as its target. It needs no
// AWS call: `aws cloudformation deploy --template-file ...` makes the same
// as Setup.
func Template(p Plan) ([]byte, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	var pattern any
	_ = json.Unmarshal([]byte(Pattern()), &pattern)
	queueARN := map[string]any{"Fn::GetAtt": []string{"Queue", "Arn"}}
	ruleARN := map[string]any{"Fn::GetAtt": []string{"Rule", "Arn"}}
	t := map[string]any{
		"AWSTemplateFormatVersion": "2010-09-09",
		"Description":              "kiln: EC2 and Auto Scaling state changes into the SQS queue " + p.Queue + " (kiln run --events-queue)",
		"Resources": map[string]any{
			"Queue": map[string]any{"Type": "AWS::SQS::Queue", "Properties": map[string]any{"QueueName": p.Queue}},
			"QueuePolicy": map[string]any{"Type": "AWS::SQS::QueuePolicy", "Properties": map[string]any{
				"Queues":         []any{map[string]any{"Ref": "Queue"}},
				"PolicyDocument": map[string]any{"Version": "2012-10-17", "Statement": []any{statement(p.sid(), queueARN, ruleARN)}},
			}},
			"Rule": map[string]any{"Type": "AWS::Events::Rule", "Properties": map[string]any{
				"Name": p.rule(), "State": "ENABLED", "EventPattern": pattern,
				"Description": "kiln: EC2 and Auto Scaling state changes into the SQS queue " + p.Queue,
				"Targets":     []any{map[string]any{"Id": targetID, "Arn": queueARN}},
			}},
		},
		"Outputs": map[string]any{
			"QueueUrl": map[string]any{"Value": map[string]any{"Ref": "Queue"}},
			"RuleArn":  map[string]any{"Value": ruleARN},
		},
	}
	b, err := json.MarshalIndent(t, "", "  ")
	return append(b, '\n'), err
}
