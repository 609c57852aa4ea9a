// Package cli is the kiln command line: one cobra command per file, built
// fresh by every Main call (no global state, no os.Exit), so tests run it
// in-process or as a testscript binary.
//
// Exit codes, for every command:
//
//	0    success (plan: nothing would change)
//	1    error: bad usage, a bad graph file, or a graph that did not converge
//	2    plan only: changes are pending
//	130  interrupted by SIGINT or SIGTERM
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"kiln/internal/config"
)

// Exit codes.
const (
	ExitOK          = 0
	ExitError       = 1
	ExitPending     = 2
	ExitInterrupted = 130
)

// Main runs kiln with args (without the program name) and returns the exit
// code. SIGINT and SIGTERM cancel the command's context: every Watch stops,
// in-flight CheckApply calls are cancelled, and Main returns 130.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args, stdout, stderr)
}

// run is Main under a context the caller controls.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr, log: slog.New(slog.DiscardHandler)}
	root := newRoot(a)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "kiln: interrupted")
		return ExitInterrupted
	}
	return report(stderr, err)
}

// report prints err and returns its exit code.
func report(stderr io.Writer, err error) int {
	if err == nil {
		return ExitOK
	}
	var ex *exitError
	if errors.As(err, &ex) {
		if ex.err != nil {
			fmt.Fprintf(stderr, "kiln: %v\n", ex.err)
		}
		return ex.code
	}
	var cerrs config.Errors
	if errors.As(err, &cerrs) {
		fmt.Fprintln(stderr, cerrs.Error())
		fmt.Fprintf(stderr, "kiln: %d %s in the graph file\n", len(cerrs), plural(len(cerrs), "problem", "problems"))
		return ExitError
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "kiln: %v\nRun '%s --help' for usage.\n", ue.err, ue.cmd)
		return ExitError
	}
	fmt.Fprintf(stderr, "kiln: %v\n", err)
	return ExitError
}

// exitError ends a command with a specific code; err (optional) is printed.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

// usageError is a bad command line.
type usageError struct {
	cmd string // "kiln run"
	err error
}

func (e *usageError) Error() string { return e.err.Error() }

// app is the state one Main call shares between its commands.
type app struct {
	stdout, stderr io.Writer
	logJSON        bool
	logLevel       string
	log            *slog.Logger
}

func newRoot(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "kiln",
		Short: "Keep EC2 infrastructure converged, and bake AMIs",
		Long: `kiln converges a graph of resources (EC2 instances, AMIs, files, commands)
in dependency order and keeps it converged: every resource watches the real
world and is re-checked the moment it drifts.` + exitCodesHelp,
		Example: `  kiln validate examples/local.yaml
  kiln plan examples/local.yaml
  kiln run --once examples/local.yaml`,
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
				return cmd.Help()
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
		newPlanCmd(a),
		newValidateCmd(a),
		newGraphCmd(a),
		newVersionCmd(a),
		// Later, one line each: newSimCmd(a), newServeCmd(a),
		// newProjectCmd(a), newBakeCmd(a), newIAMPolicyCmd(a).
	)
	return root
}

const exitCodesHelp = `

Exit codes:
  0    success (plan: nothing would change)
  1    error: bad usage, a bad graph file, or a graph that did not converge
  2    plan: changes are pending
  130  interrupted (SIGINT or SIGTERM)`

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

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// indent prefixes every line of s.
func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}
