package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"kiln/internal/awsapi"
	"kiln/internal/eventqueue"
)

func newEventsCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Set up the SQS queue that kiln reads AWS events from",
		Long: `Events sets up the way AWS's state-change events reach a kiln that AWS
cannot reach over HTTP: an EventBridge rule puts them into an SQS queue, and
kiln run --events-queue (or kiln serve --events-queue) long-polls it.`,
		Example: `  kiln events setup --region eu-west-1 --queue kiln-events`,
		Args:    cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return &usageError{cmd: cmd.CommandPath(), err: errors.New("missing command: setup")}
			}
			return &usageError{cmd: cmd.CommandPath(), err: fmt.Errorf("unknown command %q (want setup)", args[0])}
		},
	}
	cmd.AddCommand(newEventsSetupCmd(a))
	return cmd
}

func newEventsSetupCmd(a *app) *cobra.Command {
	var (
		plan  eventqueue.Plan
		print bool
	)
	cmd := &cobra.Command{
		Use:   "setup --queue NAME [--region R] [--rule NAME] [--print]",
		Short: "Create the events queue, its policy, and the EventBridge rule and target",
		Long: `Setup makes, in one region, what kiln run --events-queue reads:

  - the SQS queue NAME (standard; kept as it is when it exists);
  - a statement in its policy that lets EventBridge send to it for this
    rule only (other statements are kept);
  - the EventBridge rule (default kiln-events-NAME) on the default bus,
    matching the EC2 instance state-change, AMI state and Auto Scaling
    instance-refresh events, with the queue as its target.

Every step is idempotent: running setup again changes nothing. It prints
the queue's URL, to give to --events-queue. Readers of one queue share its
messages: give each kiln process a queue of its own.

The region is --region, else the standard configuration's (AWS_REGION,
profile). Setup needs sqs:GetQueueUrl, sqs:CreateQueue,
sqs:GetQueueAttributes, sqs:SetQueueAttributes, events:PutRule and
events:PutTargets; kiln itself then needs only what kiln iam-policy
--events-queue prints.

With --print, setup makes no AWS call and needs no credentials: it prints
the same queue, policy, rule and target as a CloudFormation template, for
aws cloudformation deploy or review.

Exit codes: 0 done (or printed), 1 an error (bad names, AWS refused).`,
		Example: `  kiln events setup --region eu-west-1 --queue kiln-events
  kiln events setup --queue kiln-events --print > kiln-events.json
  aws cloudformation deploy --stack-name kiln-events --template-file kiln-events.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if plan.Queue == "" {
				return &usageError{cmd: cmd.CommandPath(), err: errors.New("missing --queue NAME")}
			}
			if err := plan.Check(); err != nil {
				return &usageError{cmd: cmd.CommandPath(), err: err}
			}
			if print {
				b, err := eventqueue.Template(plan)
				if err != nil {
					return err
				}
				_, err = a.stdout.Write(b)
				return err
			}
			ctx := cmd.Context()
			hubs := a.awsHubs()
			if err := hubs.CheckCredentials(ctx); err != nil {
				return err
			}
			cfg, err := hubs.Config(ctx)
			if err != nil {
				return err
			}
			if plan.Region == "" {
				if plan.Region, err = hubs.DefaultRegion(ctx); err != nil {
					return &usageError{cmd: cmd.CommandPath(), err: errors.New("no region: set --region or AWS_REGION")}
				}
			}
			res, err := eventqueue.Setup(ctx, awsapi.NewSQS(cfg, plan.Region), awsapi.NewEventBridge(cfg, plan.Region), plan)
			if err != nil {
				return awsapi.Classify(err)
			}
			queue := "exists"
			if res.QueueCreated {
				queue = "created"
			}
			policy := "already allows the rule"
			if res.PolicyChanged {
				policy = "now allows the rule to send"
			}
			fmt.Fprintf(a.stdout, "queue   %s: %s (%s)\n", plan.Queue, queue, res.QueueARN)
			fmt.Fprintf(a.stdout, "policy  %s\n", policy)
			fmt.Fprintf(a.stdout, "rule    %s: enabled, target the queue\n\n", res.RuleARN)
			fmt.Fprintf(a.stdout, "Run kiln with:\n\n  kiln run --events-queue %s graph.yaml\n", res.QueueURL)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&plan.Queue, "queue", "", "the SQS queue's name (required)")
	f.StringVar(&plan.Region, "region", "", "the region of the queue and the rule (default: AWS_REGION or the profile's)")
	f.StringVar(&plan.Rule, "rule", "", "the EventBridge rule's name (default kiln-events-QUEUE)")
	f.BoolVar(&print, "print", false, "print a CloudFormation template of the same instead; no AWS call")
	return cmd
}
