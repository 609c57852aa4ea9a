package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"kiln/internal/config"
	"kiln/internal/engine"
)

type runOptions struct {
	once             bool
	noop             bool
	convergedTimeout time.Duration
	listen           string
}

func newRunCmd(a *app) *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run FILE",
		Short: "Converge a graph and keep it converged",
		Long: `Run converges the graph in FILE in dependency order, then keeps it converged:
every resource watches the real world and is re-checked when it drifts.

kiln watches FILE too: when it changes, the new graph is parsed and swapped
in (unchanged resources keep running untouched, changed ones restart, removed
ones stop). A new file with errors is reported and changes nothing.

With --once, run exits after one convergence: 0 when every resource
converged, 1 with a summary of the failed and blocked ones otherwise.` + exitCodesHelp,
		Example: `  kiln run --once examples/local.yaml
  kiln run --converged-timeout 30s graph.yaml
  kiln run --listen 127.0.0.1:9100 graph.yaml    # /metrics and /healthz`,
		Args: fileArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd.Context(), args[0], o)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.once, "once", false, "converge once and exit (0 converged, 1 not)")
	f.BoolVar(&o.noop, "noop", false, "check only: report what differs, change nothing")
	f.DurationVar(&o.convergedTimeout, "converged-timeout", 0, "exit 0 once the whole graph has been converged and idle this long")
	f.StringVar(&o.listen, "listen", "", "serve /metrics and /healthz on this address (host:port)")
	// Later: --sim starts the EC2 simulator in-process and points the AWS kinds at it.
	return cmd
}

func (a *app) run(ctx context.Context, file string, o runOptions) error {
	if o.convergedTimeout < 0 {
		return &usageError{cmd: "kiln run", err: errors.New("--converged-timeout must not be negative")}
	}
	kinds := a.kinds()
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read graph file: %w", err)
	}
	g, err := config.Parse(file, data, kinds)
	if err != nil {
		return err
	}
	m := newMonitoring()
	eng := engine.New(g, engine.Options{
		Noop:             o.noop,
		Once:             o.once,
		ConvergedTimeout: o.convergedTimeout,
		Log:              a.log,
		Metrics:          m.metrics,
	})

	var ln net.Listener
	if o.listen != "" {
		ln, err = net.Listen("tcp", o.listen)
		if err != nil {
			return fmt.Errorf("listen %s: %w", o.listen, err)
		}
		a.log.Info("serving metrics", "addr", ln.Addr().String())
	}

	group, gctx := errgroup.WithContext(ctx)
	runCtx, stop := context.WithCancel(gctx)
	defer stop()
	var runErr error
	group.Go(func() error {
		defer stop() // the engine is done: stop the file watch and the server
		runErr = eng.Run(runCtx)
		return nil
	})
	if ln != nil {
		group.Go(func() error {
			return serveHTTP(runCtx, ln, m.mux(eng), a.log)
		})
	}
	if !o.once {
		group.Go(func() error {
			return a.watchGraph(runCtx, file, data, kinds, eng)
		})
	}
	if err := group.Wait(); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if runErr != nil && !lateEventsOnly(runErr) {
		return a.notConverged(eng, runErr)
	}
	if o.once {
		a.log.Info("converged", "resources", len(eng.Status()))
	}
	return nil
}

// lateEventsOnly reports whether a --once result lists only vertices that
// were re-poked after the engine had already seen the whole graph settle
// (a file's watch seeing kiln's own write, say): none failed or blocked.
// Workaround: the engine computes its Once verdict after releasing its
// lock; once it snapshots the verdict when the graph settles, this is dead.
func lateEventsOnly(err error) bool {
	var nc *engine.NotConvergedError
	if !errors.As(err, &nc) {
		return false
	}
	for _, v := range nc.Vertices {
		if v.State == engine.StateFailed || v.State == engine.StateBlocked || v.LastError != "" {
			return false
		}
	}
	return true
}

// notConverged prints a summary of the failed and blocked vertices.
func (a *app) notConverged(eng *engine.Engine, runErr error) error {
	var failed, blocked []engine.VertexStatus
	for _, s := range eng.Status() {
		switch s.State {
		case engine.StateFailed:
			failed = append(failed, s)
		case engine.StateBlocked:
			blocked = append(blocked, s)
		}
	}
	if len(failed)+len(blocked) == 0 {
		return &exitError{code: ExitError, err: fmt.Errorf("not converged: %w", runErr)}
	}
	fmt.Fprintf(a.stderr, "kiln: not converged: %d failed, %d blocked\n", len(failed), len(blocked))
	for _, s := range failed {
		fmt.Fprintf(a.stderr, "  failed   %s: %s\n", s.ID, s.LastError)
	}
	for _, s := range blocked {
		by := s.BlockedBy
		if len(by) == 0 {
			by = s.DependsOn
		}
		fmt.Fprintf(a.stderr, "  blocked  %s (by %s)\n", s.ID, strings.Join(by, ", "))
	}
	return &exitError{code: ExitError}
}

// settle is how long the graph file must stay quiet after an event before
// it is re-read: editors often write a file in several steps.
const settle = 100 * time.Millisecond

// watchGraph re-reads file when it changes and swaps the new graph in. A
// file with errors is logged and changes nothing. It returns when ctx is
// done.
func (a *app) watchGraph(ctx context.Context, file string, last []byte, kinds config.Kinds, eng *engine.Engine) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch graph file: %w", err)
	}
	defer w.Close()
	// Watch the directory: editors replace files by renaming over them.
	if err := w.Add(filepath.Dir(file)); err != nil {
		return fmt.Errorf("watch graph file %s: %w", file, err)
	}
	want := filepath.Clean(file)
	// One re-read right away: the file may have changed between the first
	// read and the watch being established.
	timer := time.NewTimer(settle)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Events:
			if !ok {
				return nil
			}
			if filepath.Clean(e.Name) == want {
				timer.Reset(settle)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			a.log.Warn("graph file watch", "error", err)
		case <-timer.C:
			data, err := os.ReadFile(file)
			if err != nil {
				a.log.Error("graph file unreadable; keeping the running graph", "file", file, "error", err)
				continue
			}
			if bytes.Equal(data, last) {
				continue
			}
			last = data
			g, err := config.Parse(file, data, kinds)
			if err != nil {
				a.logRejected(file, err)
				continue
			}
			eng.Swap(g)
			a.log.Info("graph reloaded", "file", file, "resources", len(g.Specs))
		}
	}
}

func (a *app) logRejected(file string, err error) {
	var cerrs config.Errors
	if !errors.As(err, &cerrs) {
		a.log.Error("graph file rejected; keeping the running graph", "file", file, "error", err)
		return
	}
	for _, e := range cerrs {
		a.log.Error("graph file rejected; keeping the running graph", "problem", e.Error())
	}
}
