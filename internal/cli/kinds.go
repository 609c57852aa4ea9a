package cli

import (
	"io"
	"log/slog"

	"kiln/internal/config"
	"kiln/internal/engine"
	"kiln/internal/resources"
)

// Deps are what resource kinds share, built once per command and handed to
// every constructor that needs them.
type Deps struct {
	Stdout io.Writer    // the print kind writes here
	Log    *slog.Logger // kiln's logger
	// Added with the AWS kinds: the per-region awsapi hubs (clients,
	// batcher, poller, event router).
}

// Kinds is the one list of resource kinds. Adding a kind is one line here.
func Kinds(d Deps) config.Kinds {
	return config.Kinds{
		"noop":  func() engine.Resource { return &resources.Noop{} },
		"file":  func() engine.Resource { return &resources.File{} },
		"exec":  func() engine.Resource { return &resources.Exec{} },
		"timer": func() engine.Resource { return &resources.Timer{} },
		"print": func() engine.Resource { return &resources.Print{Out: d.Stdout} },
		// AWS kinds, one line each, e.g.:
		// "aws:ec2": func() engine.Resource { return awsres.NewInstance(d.AWS) },
		// "aws:ami": ..., "aws:asg": ...
	}
}

func (a *app) kinds() config.Kinds {
	return Kinds(Deps{Stdout: a.stdout, Log: a.log})
}
