package cli

import (
	"io"
	"log/slog"
	"strings"

	"kiln/internal/awsapi"
	"kiln/internal/awsres"
	"kiln/internal/config"
	"kiln/internal/engine"
	"kiln/internal/resources"
)

// Deps are what resource kinds share, built once per command and handed to
// every constructor that needs them.
type Deps struct {
	Stdout io.Writer    // the print kind writes here
	Log    *slog.Logger // kiln's logger
	// AWS are the per-region hubs (clients, batcher, poller, event router)
	// shared by every AWS resource of the process. They load the AWS
	// configuration on first use, not when built, so parsing a graph with
	// AWS kinds (validate, graph, iam-policy) needs no credentials or
	// network. Their loops run under run's and plan's errgroup.
	AWS *awsapi.Hubs
}

// Kind is one resource kind: its name in a graph file, the one-line summary
// `kiln kinds` prints, and its constructor.
type Kind struct {
	Name    string
	Summary string
	New     func(Deps) engine.Resource
}

// KindTable is the one list of resource kinds, in the order `kiln kinds`
// prints them. Adding a kind is one line here (and its page,
// docs/kinds/NAME.md with ':' written '-', which a test requires).
var KindTable = []Kind{
	{"noop", "does nothing, always converged: a grouping point for edges", func(Deps) engine.Resource { return &resources.Noop{} }},
	{"file", "a local file kept present with its content and mode, or absent", func(Deps) engine.Resource { return &resources.File{} }},
	{"exec", "a shell command run when needed, with guards and notify edges", func(Deps) engine.Resource { return &resources.Exec{} }},
	{"timer", "ticks at an interval, poking and refreshing what depends on it", func(Deps) engine.Resource { return &resources.Timer{} }},
	{"print", "prints a message when first checked, when it changes and on refresh", func(d Deps) engine.Resource { return &resources.Print{Out: d.Stdout} }},
	{"aws:ec2", "one EC2 instance kept in its declared state", func(d Deps) engine.Resource { return awsres.NewInstance(d.AWS) }},
	{"aws:ami", "an image baked from a base image and a script, copied and shared", func(d Deps) engine.Resource { return awsres.NewAMI(d.AWS) }},
	{"aws:asg", "an Auto Scaling group and its launch template, rolled out by instance refresh", func(d Deps) engine.Resource { return awsres.NewASG(d.AWS) }},
	{"aws:security_group", "a VPC security group with exactly the declared rules", func(d Deps) engine.Resource { return awsres.NewSecurityGroup(d.AWS) }},
	{"aws:key_pair", "an EC2 key pair imported from a public key", func(d Deps) engine.Resource { return awsres.NewKeyPair(d.AWS) }},
	{"aws:route53_zone", "a Route 53 hosted zone, public or private", func(d Deps) engine.Resource { return awsres.NewHostedZone(d.AWS) }},
	{"aws:route53_record", "one Route 53 record set, kept with its values or alias, or absent", func(d Deps) engine.Resource { return awsres.NewRecord(d.AWS) }},
}

// Kinds is KindTable as the config package decodes with it: each kind's
// constructor bound to d.
func Kinds(d Deps) config.Kinds {
	ks := make(config.Kinds, len(KindTable))
	for _, k := range KindTable {
		ks[k.Name] = func() engine.Resource { return k.New(d) }
	}
	return ks
}

// DocPage is the kind's page under docs/: docs/kinds/NAME.md, with the
// kind's ':' written '-' (aws:ec2 → docs/kinds/aws-ec2.md).
func (k Kind) DocPage() string {
	return "docs/kinds/" + strings.ReplaceAll(k.Name, ":", "-") + ".md"
}

func (a *app) kinds() config.Kinds {
	return Kinds(Deps{Stdout: a.stdout, Log: a.log, AWS: a.awsHubs()})
}
