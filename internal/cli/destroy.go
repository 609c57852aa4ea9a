package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"kiln/internal/engine"
)

func newDestroyCmd(a *app) *cobra.Command {
	var autoApprove bool
	var v graphVars
	cmd := &cobra.Command{
		Use:   "destroy FILE",
		Short: "Destroy everything the graph owns in AWS",
		Long: `Destroy destroys everything that carries the graph's owner tag
(kiln:owner = the graph's name): what FILE lists and what it no longer lists.
FILE is a YAML graph, or an HCL graph (a .hcl file or a directory, with
--var and --var-file as for run).
It goes in a fixed order per kind, dependents first (instances before
security groups and key pairs). Nothing else is touched: another graph's
resources and untagged ones are not looked at. Local kinds (file, exec, ...)
are not destroyed.

A resource with meta: {protect: true} in FILE refuses the whole destroy,
naming it: remove protect first.

On a terminal, destroy prints what it would destroy and asks for the graph's
name to be typed. Without a terminal it needs --auto-approve. kiln plan
--destroy prints the same list and changes nothing. A destroy that is
interrupted finishes when run again: what is gone is not found any more.

Exit codes:
  0    destroyed (or the graph owns nothing)
  1    error: bad usage (no terminal and no --auto-approve), a bad graph file,
       a protected resource, not confirmed, or a destroy that failed
  130  interrupted (SIGINT or SIGTERM): run it again to finish`,
		Example: `  kiln plan --destroy graph.yaml
  kiln destroy graph.yaml
  kiln destroy --auto-approve graph.yaml    # in CI`,
		Args: fileArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.destroyCmd(cmd.Context(), cmd.InOrStdin(), args[0], v, autoApprove)
		},
	}
	cmd.Flags().BoolVar(&autoApprove, "auto-approve", false, "destroy without asking (required without a terminal)")
	v.register(cmd.Flags())
	a.registerRetryTimeout(cmd.Flags())
	return cmd
}

// destroyPlan lists everything g owns and what blocks its destroy.
func (a *app) destroyPlan(ctx context.Context, g *engine.Graph) (planDoc, []engine.Owned, error) {
	owned, _, err := a.estateOf(ctx, g)
	if err != nil {
		return planDoc{}, nil, err
	}
	doc := planDoc{Graph: g.Name, Resources: []planResource{}}
	for _, id := range orphanIDs(owned) {
		kind, name, _ := strings.Cut(id, "/")
		r := planResource{ID: id, Kind: kind, Name: name, Status: "delete"}
		for _, o := range owned {
			if o.ID == id {
				r.Changes = append(r.Changes, engine.Change{Action: engine.ActionDelete, Summary: destroySummary(o)})
			}
		}
		doc.Resources = append(doc.Resources, r)
		doc.Summary.Destroy++
	}
	if prot := engine.Protected(g, owned); len(prot) > 0 {
		doc.Refused = fmt.Sprintf("%s: meta protect is set (in the graph, or by the kiln:protect tag of a resource the graph no longer lists); remove it to destroy %s", strings.Join(prot, ", "), plural(len(prot), "it", "them"))
	}
	return doc, owned, nil
}

// loadForEstate reads the graph (YAML or HCL, as every command does) and
// makes sure there are AWS credentials to list what it owns.
func (a *app) loadForEstate(ctx context.Context, file string, v graphVars) (*engine.Graph, error) {
	g, err := a.loadGraph(ctx, file, v)
	if err != nil {
		return nil, err
	}
	if err := a.awsHubs().CheckCredentials(ctx); err != nil {
		return nil, err
	}
	return g, nil
}

// planDestroy is kiln plan --destroy: exit 2 when something would be
// destroyed, 0 when the graph owns nothing.
func (a *app) planDestroy(ctx context.Context, file string, v graphVars, asJSON bool) error {
	g, err := a.loadForEstate(ctx, file, v)
	if err != nil {
		return err
	}
	doc, _, err := a.destroyPlan(ctx, g)
	if err != nil {
		return &exitError{code: ExitError, err: fmt.Errorf("plan --destroy: %w", err)}
	}
	return a.writePlanDoc(doc, asJSON, nil)
}

func (a *app) destroyCmd(ctx context.Context, stdin io.Reader, file string, v graphVars, autoApprove bool) error {
	if _, err := a.graphSource(file, v, a.kinds()); err != nil {
		return err // bad usage: --var on a YAML graph
	}
	group, gctx := errgroup.WithContext(ctx)
	runCtx, stop := context.WithCancel(gctx)
	a.runAWS(runCtx, group, nil)
	var destroyErr error
	group.Go(func() error {
		defer stop()
		// Loaded once the hubs run: an HCL graph's AWS data sources are
		// read while it is evaluated.
		g, err := a.loadGraph(runCtx, file, v)
		if err != nil {
			destroyErr = err
			return nil
		}
		destroyErr = a.destroy(runCtx, stdin, file, g, autoApprove)
		return nil
	})
	if err := group.Wait(); err != nil {
		return err
	}
	return destroyErr
}

func (a *app) destroy(ctx context.Context, stdin io.Reader, file string, g *engine.Graph, autoApprove bool) error {
	if err := a.awsHubs().CheckCredentials(ctx); err != nil {
		return err
	}
	doc, owned, err := a.destroyPlan(ctx, g)
	if err != nil {
		return fmt.Errorf("destroy: %w", err)
	}
	if doc.Refused != "" {
		writePlan(a.stdout, doc)
		return fmt.Errorf("destroy graph %q refused: %w: %s", g.Name, errProtected, doc.Refused)
	}
	if len(owned) == 0 {
		fmt.Fprintf(a.stdout, "graph %q owns nothing: nothing to destroy\n", g.Name)
		return nil
	}
	if !autoApprove {
		if !readsTerminal(stdin) {
			return &usageError{cmd: "kiln destroy", err: errors.New("no terminal to confirm on: pass --auto-approve to destroy without asking")}
		}
		writePlan(a.stdout, doc)
		fmt.Fprintf(a.stdout, "Type the graph's name (%s) to destroy all of this: ", g.Name)
		line, _ := bufio.NewReader(stdin).ReadString('\n')
		if strings.TrimSpace(line) != g.Name {
			return &exitError{code: ExitError, err: errors.New("destroy: not confirmed; nothing destroyed")}
		}
	}
	if err := a.destroyOwned(ctx, owned); err != nil {
		return fmt.Errorf("destroy graph %q: %w", g.Name, err)
	}
	fmt.Fprintf(a.stdout, "destroyed %d %s of graph %q\n", doc.Summary.Destroy, plural(doc.Summary.Destroy, "resource", "resources"), g.Name)
	return nil
}

// readsTerminal reports whether r is a terminal (not /dev/null, which is a
// character device too).
func readsTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}
