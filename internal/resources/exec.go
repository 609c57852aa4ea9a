package resources

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"kiln/internal/config"
	"kiln/internal/engine"
)

// Exec runs a command when it is needed. Without a guard it runs on every
// check (when the graph starts, and whenever a dependency changed it and
// poked this vertex). The guards make it idempotent: creates (skip when the
// path exists), if (run only when this command succeeds), unless (run only
// when this command fails). refresh_only commands never run on a check,
// only when a notified_by resource changed something.
//
// Output goes to the vertex's log, one line per record; a failure carries
// the output's last lines.
type Exec struct {
	Cmd         string            `yaml:"cmd"`
	Shell       string            `yaml:"shell"` // default "/bin/sh -c"
	If          string            `yaml:"if"`
	Unless      string            `yaml:"unless"`
	Creates     string            `yaml:"creates"`
	RefreshOnly bool              `yaml:"refresh_only"`
	Timeout     time.Duration     `yaml:"timeout"` // per command; 0: none
	Dir         string            `yaml:"dir"`
	Env         map[string]string `yaml:"env"` // added to kiln's environment

	log *slog.Logger
}

const defaultShell = "/bin/sh -c"

// Validate checks the fields.
func (r *Exec) Validate() error {
	var errs []error
	if strings.TrimSpace(r.Cmd) == "" {
		errs = append(errs, config.Fieldf("cmd", "required"))
	}
	if r.Shell != "" && !config.HasRef(r.Shell) && len(strings.Fields(r.Shell)) == 0 {
		errs = append(errs, config.Fieldf("shell", "want a program and its flags, like \"/bin/bash -c\""))
	}
	for k := range r.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			errs = append(errs, config.Fieldf("env", "bad variable name %q", k))
		}
	}
	return errors.Join(errs...)
}

// Init keeps the vertex's logger for the commands' output.
func (r *Exec) Init(env engine.Env) error {
	r.log = env.Log
	return nil
}

// Watch reports running and waits: a command has no state to watch.
func (r *Exec) Watch(ctx context.Context, ev engine.Events) error {
	ev.Running()
	<-ctx.Done()
	return nil
}

// CheckApply reports whether the command needs to run and, with apply,
// runs it. A non-zero exit is an error.
func (r *Exec) CheckApply(ctx context.Context, apply bool) (bool, error) {
	if r.RefreshOnly {
		return true, nil
	}
	need, err := r.needed(ctx)
	if err != nil || !need {
		return !need, err
	}
	if !apply {
		return false, nil
	}
	return false, r.run(ctx, "cmd", r.Cmd, slog.LevelInfo)
}

// Refresh runs a refresh_only command (guards still apply).
func (r *Exec) Refresh(ctx context.Context) error {
	if !r.RefreshOnly {
		return nil
	}
	need, err := r.needed(ctx)
	if err != nil || !need {
		return err
	}
	return r.run(ctx, "cmd", r.Cmd, slog.LevelInfo)
}

// needed evaluates the guards.
func (r *Exec) needed(ctx context.Context) (bool, error) {
	if r.Creates != "" {
		if _, err := os.Stat(r.Creates); err == nil {
			return false, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("stat creates %s: %w", r.Creates, err)
		}
	}
	if r.If != "" {
		ok, err := r.guard(ctx, "if", r.If)
		if err != nil || !ok {
			return false, err
		}
	}
	if r.Unless != "" {
		ok, err := r.guard(ctx, "unless", r.Unless)
		if err != nil || ok {
			return false, err
		}
	}
	return true, nil
}

// guard runs a guard command: true when it exits 0, false on another exit
// code, an error when it cannot run at all.
func (r *Exec) guard(ctx context.Context, which, command string) (bool, error) {
	err := r.run(ctx, which, command, slog.LevelDebug)
	var exit *exec.ExitError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &exit) && ctx.Err() == nil:
		return false, nil
	}
	return false, err
}

// run runs one command through the shell, logging its output.
func (r *Exec) run(ctx context.Context, which, command string, level slog.Level) error {
	if r.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.Timeout)
		defer cancel()
	}
	shell := strings.Fields(r.Shell)
	if len(shell) == 0 {
		shell = strings.Fields(defaultShell)
	}
	cmd := exec.CommandContext(ctx, shell[0], append(slices.Clone(shell[1:]), command)...)
	cmd.Dir = r.Dir
	if len(r.Env) > 0 {
		cmd.Env = os.Environ()
		for k, v := range r.Env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	out := &lineLog{log: r.log, level: level, which: which}
	cmd.Stdout, cmd.Stderr = out, out
	ownGroup(cmd)
	cmd.WaitDelay = time.Second // children holding the pipes open cannot hang a cancelled run
	start := time.Now()
	err := cmd.Run()
	out.flush()
	if r.log != nil {
		attrs := []any{"which", which, "duration", time.Since(start).Round(time.Millisecond)}
		if err != nil {
			attrs = append(attrs, "err", err)
		}
		r.log.Log(ctx, level, "command finished", attrs...)
	}
	if err == nil {
		return nil
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) && which != "cmd" {
		return err // the guard's verdict, read by guard
	}
	if ctx.Err() != nil {
		return fmt.Errorf("run %s %q: %w", which, short(command), ctx.Err())
	}
	if tail := out.tail(); tail != "" {
		return fmt.Errorf("run %s %q: %w: %s", which, short(command), err, tail)
	}
	return fmt.Errorf("run %s %q: %w", which, short(command), err)
}

func short(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " ..."
	}
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

// lineLog turns a command's output into one log record per line and keeps
// the last few lines for error messages.
type lineLog struct {
	log   *slog.Logger
	level slog.Level
	which string

	mu   sync.Mutex // stdout and stderr are written from two goroutines
	buf  []byte
	last []string
}

const tailLines = 5

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.line(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > 64<<10 { // a very long line: log it in pieces
		l.line(string(l.buf))
		l.buf = l.buf[:0]
	}
	return len(p), nil
}

func (l *lineLog) line(s string) {
	if l.log != nil {
		l.log.Log(context.Background(), l.level, "output", "which", l.which, "line", s)
	}
	l.last = append(l.last, s)
	if len(l.last) > tailLines {
		l.last = l.last[1:]
	}
}

func (l *lineLog) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.line(string(l.buf))
		l.buf = nil
	}
}

func (l *lineLog) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.TrimSpace(strings.Join(l.last, "\n"))
}

var _ engine.Resource = (*Exec)(nil)
