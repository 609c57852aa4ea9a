package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"kiln/internal/awsapi"
)

// app is the state one Main call shares between its commands.
type app struct {
	stdout, stderr io.Writer
	logJSON        bool
	logLevel       string
	log            *slog.Logger

	// The AWS side, shared by the whole command: hubs is made on first use
	// (awsHubs) from aws, which --sim fills in before that.
	aws  awsapi.Options
	hubs *awsapi.Hubs
}

func newRoot(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "kiln",
		Short: "Keep EC2 infrastructure converged, and bake AMIs",
		Long: `kiln converges a graph of resources (EC2 instances, AMIs, Auto Scaling
groups, files, commands) in dependency order and keeps it converged: every
resource watches the real world and is re-checked the moment it drifts
(kiln run). It also bakes machine images from signed webhooks and rolls them
out (kiln serve). --sim runs either against the built-in EC2 simulator.` + exitCodesHelp,
		Example: `  kiln validate examples/local.yaml
  kiln plan examples/local.yaml
  kiln run --once examples/local.yaml
  kiln run --once --sim examples/ec2.yaml    # EC2 on the built-in simulator
  kiln serve --sim                           # the bakery, on the simulator`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.ArbitraryArgs,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(a.stderr, a.logJSON, a.logLevel)
			if err != nil {
				return &usageError{cmd: cmd.CommandPath(), err: err}
			}
			a.log = log
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				// No command is a usage error: the help goes to stderr
				// and the exit code says nothing was done.
				cmd.SetOut(a.stderr)
				_ = cmd.Help()
				return &exitError{code: ExitError}
			}
			msg := fmt.Sprintf("unknown command %q", args[0])
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf(" (did you mean %q?)", s[0])
			}
			return &usageError{cmd: "kiln", err: errors.New(msg)}
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SuggestionsMinimumDistance = 2
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &usageError{cmd: cmd.CommandPath(), err: err}
	})
	pf := root.PersistentFlags()
	pf.BoolVar(&a.logJSON, "log-json", false, "log as JSON lines instead of text")
	pf.StringVar(&a.logLevel, "log-level", "info", "log level: debug, info, warn or error")

	root.AddCommand(
		newRunCmd(a),
		a.withSim(newPlanCmd(a)),
		newDestroyCmd(a),
		newAdoptCmd(a),
		a.withSim(newValidateCmd(a)),
		a.withSim(newGraphCmd(a)),
		a.withSim(newOutputCmd(a)),
		newFmtCmd(a),
		newConvertCmd(a),
		newVersionCmd(a),
		newServeCmd(a),
		newProjectCmd(a),
		newBakeCmd(a),
		newPromoteCmd(a),
		newApproveCmd(a),
		newRevokeCmd(a),
		newImagesCmd(a),
		newSimCmd(a),
		newIAMPolicyCmd(a),
		newEventsCmd(a),
		newKindsCmd(a),
		newDocsCmd(a),
		newTokenCmd(a),
		newAuditCmd(a),
		newSecretsCmd(a),
	)
	return root
}

// The exit-code blocks of the help texts: each command lists the codes it
// can return.
const (
	exitCodesHelp = `

Exit codes:
  0    success (plan: nothing would change)
  1    error: bad usage, a bad graph file, or a graph that did not converge
  2    plan: changes are pending
  130  interrupted (SIGINT or SIGTERM)`

	runExitHelp = `

Exit codes:
  0    converged (--once), or converged and idle for --converged-timeout
  1    error: bad usage, a bad graph file, or a graph that did not converge
  130  interrupted (SIGINT or SIGTERM)`

	serverExitHelp = `

Exit codes:
  1    error: bad usage, or the server could not start
  130  stopped by SIGINT or SIGTERM (the way to stop it)`
)

// fileArg accepts exactly one graph file argument.
func fileArg(cmd *cobra.Command, args []string) error {
	switch len(args) {
	case 1:
		return nil
	case 0:
		return &usageError{cmd: cmd.CommandPath(), err: errors.New("missing graph FILE")}
	}
	return &usageError{cmd: cmd.CommandPath(), err: fmt.Errorf("want one graph FILE, got %d arguments", len(args))}
}

func newLogger(w io.Writer, json bool, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	if json {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}
