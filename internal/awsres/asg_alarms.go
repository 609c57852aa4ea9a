package awsres

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"kiln/internal/awsapi"
)

// alarmAPI is what an alarm gate calls on CloudWatch: *cloudwatch.Client
// satisfies it.
type alarmAPI interface {
	DescribeAlarms(context.Context, *cloudwatch.DescribeAlarmsInput, ...func(*cloudwatch.Options)) (*cloudwatch.DescribeAlarmsOutput, error)
}

// AlarmGate is what the CloudWatch alarms of a rollout (Rollout.Alarms)
// say now: the first alarm in ALARM, and the alarms that do not exist.
type AlarmGate struct {
	Firing  string // the name of an alarm in ALARM, "" when none is
	Reason  string // its StateReason
	Missing []string
}

// Error is why the gate is closed: an alarm in ALARM, named.
func (g AlarmGate) Error() string {
	if g.Firing == "" {
		return ""
	}
	msg := fmt.Sprintf("CloudWatch alarm %s is in ALARM", g.Firing)
	if g.Reason != "" {
		msg += ": " + g.Reason
	}
	return msg
}

// Alarms reads the named alarms of region ("" = the default) with one
// DescribeAlarms call (at most 10 names, as Rollout allows), retried by
// the hub's rules, and returns what they say. No names: an open gate and
// no call.
func Alarms(ctx context.Context, hubs *awsapi.Hubs, region string, names []string) (AlarmGate, error) {
	if len(names) == 0 {
		return AlarmGate{}, nil
	}
	hub, err := hubs.Hub(ctx, region)
	if err != nil {
		return AlarmGate{}, err
	}
	cw, err := hubs.CloudWatch(ctx, hub.Region())
	if err != nil {
		return AlarmGate{}, err
	}
	return readAlarms(ctx, hub, cw, names)
}

func readAlarms(ctx context.Context, hub *awsapi.Hub, cw alarmAPI, names []string) (AlarmGate, error) {
	var g AlarmGate
	err := hub.Retry(ctx, func(ctx context.Context) error {
		g = AlarmGate{}
		seen := map[string]bool{}
		in := &cloudwatch.DescribeAlarmsInput{AlarmNames: names, AlarmTypes: []cwtypes.AlarmType{cwtypes.AlarmTypeMetricAlarm}}
		for {
			out, err := cw.DescribeAlarms(ctx, in)
			if err != nil {
				return err
			}
			for _, a := range out.MetricAlarms {
				name := aws.ToString(a.AlarmName)
				seen[name] = true
				if a.StateValue == cwtypes.StateValueAlarm && g.Firing == "" {
					g.Firing, g.Reason = name, aws.ToString(a.StateReason)
				}
			}
			if aws.ToString(out.NextToken) == "" {
				break
			}
			in.NextToken = out.NextToken
		}
		for _, n := range names {
			if !seen[n] && !slices.Contains(g.Missing, n) {
				g.Missing = append(g.Missing, n)
			}
		}
		return nil
	})
	if err != nil {
		return AlarmGate{}, fmt.Errorf("describe alarms %s: %w", strings.Join(names, ", "), err)
	}
	return g, nil
}
