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
