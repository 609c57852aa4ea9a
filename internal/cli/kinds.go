package cli

import (
	"io"
	"log/slog"

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

// Kinds is the one list of resource kinds. Adding a kind is one line here.
func Kinds(d Deps) config.Kinds {
	return config.Kinds{
		"noop":    func() engine.Resource { return &resources.Noop{} },
		"file":    func() engine.Resource { return &resources.File{} },
		"exec":    func() engine.Resource { return &resources.Exec{} },
		"timer":   func() engine.Resource { return &resources.Timer{} },
		"print":   func() engine.Resource { return &resources.Print{Out: d.Stdout} },
		"aws:ec2": func() engine.Resource { return awsres.NewInstance(d.AWS) },
		"aws:ami": func() engine.Resource { return awsres.NewAMI(d.AWS) },
		"aws:asg": func() engine.Resource { return awsres.NewASG(d.AWS) },

		"aws:route53_zone":   func() engine.Resource { return awsres.NewHostedZone(d.AWS) },
		"aws:route53_record": func() engine.Resource { return awsres.NewRecord(d.AWS) },
	}
}

func (a *app) kinds() config.Kinds {
	return Kinds(Deps{Stdout: a.stdout, Log: a.log, AWS: a.awsHubs()})
}
