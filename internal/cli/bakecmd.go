package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"kiln/internal/bakery"
	"kiln/internal/project"
	"kiln/internal/store"
	"kiln/internal/web"
)

func newBakeCmd(a *app) *cobra.Command {
	var (
		o      clientOptions
		follow bool
		local  localOptions
	)
	cmd := &cobra.Command{
		Use:   "bake PROJECT [--follow] | --local PROJECT_FILE",
		Short: "Bake a project now, or list, show and cancel bakes",
		Long: `Bake queues a bake of PROJECT on the kiln server, as a webhook push would
(when the project already has a queued bake, that one is shown). With
--follow it streams the bake's steps until the bake is over and exits 0 when
it succeeded, 1 when it failed or was cancelled.

With --local, PROJECT_FILE is a project file and the bake runs in this
process, no server needed: the file is applied to a database (--db; a
temporary one by default), one bake runs through the same pipeline as the
server's, shown as --follow shows it, and the command exits 0 when it
succeeded, 1 otherwise. With --sim it bakes on an in-process simulator.
SIGINT cancels the bake (its builder is terminated) before exiting.` + clientHelp,
		Example: `  kiln bake web --follow
  kiln bake --local --sim web.yaml
  kiln bake list --project web
  kiln bake show 12
  kiln bake cancel 12`,
		Args: nameArg("PROJECT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if local.on {
				return a.bakeLocal(cmd.Context(), &o, local, args[0])
			}
			if local.db != "" || local.sim.on {
				return &usageError{cmd: cmd.CommandPath(), err: errors.New("--db and --sim go with --local")}
			}
			return a.bakeNow(cmd.Context(), &o, args[0], follow)
		},
	}
	addClientFlags(cmd, &o)
	cmd.Flags().BoolVar(&follow, "follow", false, "stream the bake's progress until it is over")
	cmd.Flags().BoolVar(&local.on, "local", false, "bake PROJECT_FILE in this process, without a server")
	cmd.Flags().StringVar(&local.db, "db", "", "with --local: the database file (default: a temporary one)")
	local.sim.register(cmd.Flags())

	var (
		project string
		limit   int
		before  int64
	)
	list := &cobra.Command{
		Use:   "list [--project P]",
		Short: "List bakes, newest first",
		Example: `  kiln bake list
  kiln bake list --project web --limit 50
  kiln bake list --before 120    # the page after the one that ended at 121`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.bakeList(cmd.Context(), &o, web.BakeQuery{Project: project, Limit: limit, Before: before})
		},
	}
	list.Flags().StringVar(&project, "project", "", "only this project's bakes")
	list.Flags().IntVar(&limit, "limit", 20, "bakes per page (1 to 1000)")
	list.Flags().Int64Var(&before, "before", 0, "the page of bakes older than this id (the next page's hint)")
	var showFollow bool
	show := &cobra.Command{
		Use:   "show ID [--follow]",
		Short: "Show a bake and its steps, or follow it to its end",
		Example: `  kiln bake show 42
  kiln bake show 42 --follow    # exit 0 when it succeeds, 1 otherwise`,
		Args: nameArg("bake ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseBakeID(cmd, args[0])
			if err != nil {
				return err
			}
			if showFollow {
				return a.bakeFollow(cmd.Context(), &o, o.client(), id, "")
			}
			return a.bakeShow(cmd.Context(), &o, id)
		},
	}
	show.Flags().BoolVar(&showFollow, "follow", false, "stream the bake's progress until it is over (exit 1 unless it succeeded)")
	cmd.AddCommand(
		list,
		show,
		&cobra.Command{
			Use:     "cancel ID",
			Short:   "Cancel a bake (its builder is terminated, a partial image removed)",
			Example: `  kiln bake cancel 42`,
			Args:    nameArg("bake ID"),
			RunE: func(cmd *cobra.Command, args []string) error {
				id, err := parseBakeID(cmd, args[0])
				if err != nil {
					return err
				}
				return a.bakeCancel(cmd.Context(), &o, id)
			},
		},
	)
	return cmd
}

func parseBakeID(cmd *cobra.Command, s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, &usageError{cmd: cmd.CommandPath(), err: fmt.Errorf("bake ID %q: want a positive number", s)}
	}
	return id, nil
}

func (a *app) bakeNow(ctx context.Context, o *clientOptions, project string, follow bool) error {
	c := o.client()
	tr, err := c.Trigger(ctx, project)
	if err != nil {
		return err
	}
	if o.json && !follow {
		return printJSON(a, tr)
	}
	if !o.json {
		if tr.New {
			fmt.Fprintf(a.stdout, "bake %d of %s queued\n", tr.Bake.ID, project)
		} else {
			fmt.Fprintf(a.stdout, "bake %d of %s was already queued\n", tr.Bake.ID, project)
		}
	}
	if !follow {
		return nil
	}
	return a.bakeFollow(ctx, o, c, tr.Bake.ID, store.Queued)
}

// bakeFollow streams bake id until it is over: exit 0 when it succeeded,
// 1 otherwise. known is the bake state already printed ("" for none).
func (a *app) bakeFollow(ctx context.Context, o *clientOptions, c *web.Client, id int64, known store.BakeState) error {
	p := &progress{w: a.stdout, quiet: o.json, live: !o.json && isTerminal(a.stdout), state: known}
	var (
		final *web.Bake
		err   error
	)
	var wg sync.WaitGroup
	tickCtx, stopTicks := context.WithCancel(ctx)
	if p.live {
		wg.Go(func() { p.ticks(tickCtx) })
	}
	final, err = c.Follow(ctx, id, p.update)
	stopTicks()
	wg.Wait()
	p.clear()
	if err != nil {
		return err
	}
	return a.bakeOutcome(o, final)
}

// bakeOutcome prints the final bake (its summary, or JSON) and returns the
// exit: nil when it succeeded, an ExitError otherwise.
func (a *app) bakeOutcome(o *clientOptions, final *web.Bake) error {
	if o.json {
		if err := printJSON(a, final); err != nil {
			return err
		}
	} else {
		(&progress{w: a.stdout}).summary(final)
	}
	if final.State != store.Succeeded {
		msg := fmt.Sprintf("bake %d %s", final.ID, final.State)
		if final.Reason != "" {
			msg += ": " + final.Reason
		}
		return &exitError{code: ExitError, err: errors.New(msg)}
	}
	return nil
}

// localOptions are bake's --local flags.
type localOptions struct {
	on  bool
	db  string
	sim simFlags
}

// bakeLocal applies the project file to a database and runs one bake of
// it with an in-process bakery.Service, shown as bakeFollow shows a bake.
func (a *app) bakeLocal(ctx context.Context, o *clientOptions, lo localOptions, file string) error {
	if err := lo.sim.check("kiln bake"); err != nil {
		return err
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read project file: %w", err)
	}
	proj, err := project.Parse(file, data, os.Getenv)
	if perrs, ok := errors.AsType[project.Errors](err); ok {
		for _, p := range perrs {
			fmt.Fprintln(a.stderr, p)
		}
		n := len(perrs)
		return &exitError{code: ExitError, err: fmt.Errorf("%d %s in the project file", n, plural(n, "problem", "problems"))}
	}
	if err != nil {
		return err
	}
	db := lo.db
	if db == "" {
		tmp, err := os.MkdirTemp("", "kiln-bake-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		db = filepath.Join(tmp, "kiln.db")
	}
	st, err := store.Open(ctx, db)
	if err != nil {
		return err
	}
	defer st.Close()
	if _, err := project.Apply(ctx, st, proj); err != nil {
		return err
	}
	sim, err := a.startSim(lo.sim, nil)
	if err != nil {
		return err
	}
	svc, err := bakery.NewService(st, a.awsHubs(), a.log.With("component", "bake"), bakery.Options{})
	if err != nil {
		return err
	}

	// The service outlives ctx: an interrupt cancels the bake, and the
	// service runs on until the builder is terminated.
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRun()
	g, gctx := errgroup.WithContext(runCtx)
	awsCtx, stopAWS := context.WithCancel(context.WithoutCancel(gctx))
	defer stopAWS()
	a.runAWS(awsCtx, g, sim)
	g.Go(func() error {
		defer stopAWS()
		return svc.Run(gctx)
	})

	final, followErr := a.followLocal(ctx, gctx, o, st, svc, proj.Name)
	stopRun()
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	if followErr != nil {
		return followErr
	}
	return a.bakeOutcome(o, final)
}

// followLocal triggers a bake of project on svc and shows its progress
// until it is over. When ctx is done first, it cancels the bake and follows
// it to its end; when run (the service's context) is done, it gives up.
func (a *app) followLocal(ctx, run context.Context, o *clientOptions, st *store.Store, svc *bakery.Service, project string) (*web.Bake, error) {
	ch, unsubscribe := svc.Subscribe(0)
	defer unsubscribe()
	tr, err := svc.Trigger(ctx, project, "", "")
	if err != nil {
		return nil, err
	}
	id := tr.BakeID
	p := &progress{w: a.stdout, quiet: o.json, live: !o.json && isTerminal(a.stdout)}
	var wg sync.WaitGroup
	tickCtx, stopTicks := context.WithCancel(run)
	defer func() {
		stopTicks()
		wg.Wait()
		p.clear()
	}()
	if p.live {
		wg.Go(func() { p.ticks(tickCtx) })
	}
	// Progress only says "look again"; a slow tick covers dropped ones.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	interrupted := ctx.Done()
	for {
		b, err := st.Bake(run, id)
		if err != nil {
			return nil, err
		}
		steps, err := st.Steps(run, id)
		if err != nil {
			return nil, err
		}
		wb := localBake(b, steps)
		p.update(wb)
		if b.State.Final() {
			return wb, nil
		}
		select {
		case <-ch:
		case <-tick.C:
		case <-interrupted:
			interrupted = nil
			if _, err := svc.Cancel(run, id, "interrupted"); err != nil && !errors.Is(err, store.ErrBakeFinished) {
				return nil, err
			}
		case <-run.Done():
			return nil, context.Cause(run)
		}
	}
}

// localBake is b with its steps as the API shows them.
func localBake(b *store.Bake, steps []store.Step) *web.Bake {
	at := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		return &t
	}
	out := &web.Bake{
		ID: b.ID, Project: b.Project, State: b.State,
		Commit: b.Commit, Ref: b.Ref, Message: b.Message, Repo: b.Repo,
		CancelRequested: b.CancelRequested,
		CreatedAt:       b.Created, StartedAt: at(b.Started), FinishedAt: at(b.Finished),
		ImageID: b.ImageID, BuilderID: b.BuilderID, Reason: b.Reason, ConsoleTail: b.ConsoleTail,
	}
	for _, st := range steps {
		out.Steps = append(out.Steps, web.Step{
			Name: st.Name, State: st.State, StartedAt: st.Started, FinishedAt: at(st.Finished), Detail: st.Detail,
		})
	}
	return out
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progress prints a followed bake one line per change, so that it reads
// well in a CI log. On a terminal (live) the running step is one line
// redrawn with its elapsed time instead.
type progress struct {
	w     io.Writer
	quiet bool // --json: print only the final bake
	live  bool

	mu      sync.Mutex // update and ticks both write
	state   store.BakeState
	waiting string // the running bake's reason: why it cannot make progress
	steps   map[string]store.StepState
	running *web.Step // live: the step shown on the redrawn line
	drawn   bool      // live: the redrawn line is on screen
}

// liveTick is how often the running step's elapsed time is redrawn.
const liveTick = 200 * time.Millisecond

func (p *progress) update(b *web.Bake) {
	if p.quiet {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
	if p.steps == nil {
		p.steps = map[string]store.StepState{}
	}
	if b.State != p.state && !b.State.Final() {
		fmt.Fprintf(p.w, "bake %d of %s: %s\n", b.ID, b.Project, b.State)
	}
	p.state = b.State
	if !b.State.Final() && b.Reason != p.waiting {
		p.waiting = b.Reason
		if b.Reason != "" {
			fmt.Fprintf(p.w, "  %s\n", b.Reason)
		}
	}
	p.running = nil
	for _, st := range b.Steps {
		prev, seen := p.steps[st.Name]
		if st.State == store.StepRunning {
			p.running = &st
		}
		if seen && prev == st.State {
			continue
		}
		p.steps[st.Name] = st.State
		// A log shows each step's start line, also for a step that
		// started and ended between two looks, so that it reads the
		// same however fast the bake ran.
		if !p.live && !seen {
			fmt.Fprintf(p.w, "  %s ...\n", st.Name)
		}
		if st.State == store.StepRunning {
			continue
		}
		line := fmt.Sprintf("  %s: %s in %s", st.Name, st.State, round(st.Duration(time.Now())))
		if st.Detail != "" {
			line += " (" + firstLine(st.Detail) + ")"
		}
		fmt.Fprintln(p.w, line)
	}
	p.drawLocked()
}

// ticks redraws the running step until ctx is done.
func (p *progress) ticks(ctx context.Context) {
	t := time.NewTicker(liveTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		p.drawLocked()
		p.mu.Unlock()
	}
}

func (p *progress) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
}

func (p *progress) clearLocked() {
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
}

func (p *progress) drawLocked() {
	if !p.live || p.running == nil {
		return
	}
	fmt.Fprintf(p.w, "\r\033[K  %s ... %s", p.running.Name, max(0, p.running.Duration(time.Now())).Round(100*time.Millisecond))
	p.drawn = true
}

func (p *progress) summary(b *web.Bake) {
	took := ""
	if b.StartedAt != nil && b.FinishedAt != nil {
		took = " in " + round(b.FinishedAt.Sub(*b.StartedAt)).String()
	}
	switch b.State {
	case store.Succeeded:
		fmt.Fprintf(p.w, "bake %d of %s succeeded%s: image %s\n", b.ID, b.Project, took, b.ImageID)
	default:
		reason := ""
		if b.Reason != "" {
			reason = ": " + b.Reason
		}
		fmt.Fprintf(p.w, "bake %d of %s %s%s%s\n", b.ID, b.Project, b.State, took, reason)
		if b.ConsoleTail != "" {
			fmt.Fprintf(p.w, "console tail:\n%s\n", indent(strings.TrimRight(b.ConsoleTail, "\n"), "  "))
		}
	}
}

func (a *app) bakeList(ctx context.Context, o *clientOptions, q web.BakeQuery) error {
	if q.Limit < 1 || q.Limit > 1000 {
		return &usageError{cmd: "kiln bake list", err: errors.New("--limit: want 1 to 1000")}
	}
	page, err := o.client().Bakes(ctx, q)
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(a, page)
	}
	if len(page.Bakes) == 0 {
		fmt.Fprintln(a.stdout, "no bakes")
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPROJECT\tSTATE\tCOMMIT\tCREATED\tTOOK\tIMAGE")
	for _, b := range page.Bakes {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", b.ID, b.Project, b.State, orDash(shortSHA(b.Commit)),
			b.CreatedAt.Local().Format("2006-01-02 15:04:05"), took(&b), orDash(b.ImageID))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if page.NextBefore != 0 {
		fmt.Fprintf(a.stdout, "more: kiln bake list --before %d\n", page.NextBefore)
	}
	return nil
}

func (a *app) bakeShow(ctx context.Context, o *clientOptions, id int64) error {
	b, err := o.client().Bake(ctx, id)
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(a, b)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 1, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("bake", fmt.Sprint(b.ID))
	row("project", b.Project)
	state := string(b.State)
	if b.CancelRequested && !b.State.Final() {
		state += " (cancel requested)"
	}
	row("state", state)
	if b.Commit != "" {
		row("commit", b.Commit+" "+b.Ref)
	}
	if b.Message != "" {
		row("message", firstLine(b.Message))
	}
	row("created", b.CreatedAt.Local().Format("2006-01-02 15:04:05"))
	if t := took(b); t != "-" {
		row("took", t)
	}
	if b.BuilderID != "" {
		row("builder", b.BuilderID)
	}
	if b.ImageID != "" {
		row("image", b.ImageID)
	}
	switch {
	case b.Reason != "" && !b.State.Final():
		row("detail", b.Reason) // why it cannot make progress: "waiting: ..."
	case b.Reason != "":
		row("reason", b.Reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(b.Steps) > 0 {
		fmt.Fprintln(a.stdout, "steps:")
		tw = tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		now := time.Now()
		for _, st := range b.Steps {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", st.Name, st.State, round(st.Duration(now)), firstLine(st.Detail))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(b.Images) > 0 {
		fmt.Fprintln(a.stdout, "images:")
		tw = tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		for _, im := range b.Images {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", im.Region, im.ImageID, im.State)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if b.ConsoleTail != "" {
		fmt.Fprintf(a.stdout, "console tail:\n%s\n", indent(strings.TrimRight(b.ConsoleTail, "\n"), "  "))
	}
	return nil
}

func (a *app) bakeCancel(ctx context.Context, o *clientOptions, id int64) error {
	b, err := o.client().Cancel(ctx, id, "cancelled by kiln bake cancel")
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(a, b)
	}
	if b.State == store.Cancelled {
		fmt.Fprintf(a.stdout, "bake %d cancelled\n", id)
	} else {
		fmt.Fprintf(a.stdout, "bake %d: cancel requested; its builder is being terminated\n", id)
	}
	return nil
}

// took is how long a finished bake ran, or "-".
func took(b *web.Bake) string {
	if b.StartedAt == nil || b.FinishedAt == nil {
		return "-"
	}
	return round(b.FinishedAt.Sub(*b.StartedAt)).String()
}

func round(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
