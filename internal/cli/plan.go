package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"kiln/internal/engine"
)

func newPlanCmd(a *app) *cobra.Command {
	var asJSON, destroy bool
	var v graphVars
	cmd := &cobra.Command{
		Use:   "plan FILE",
		Short: "Show what run would change, changing nothing",
		Long: `Plan checks every resource in FILE once without applying anything and lists
every change run would make, with what it sets:

  + aws:ec2/web                  create
      launch instance
          image = ami-0abc...
          type  = t3.micro
  ~ file/motd                    update in place
      update file motd
          --- motd
          +++ motd (planned)
          -hello
          +hello, world
  ~ aws:ec2/db                   restart
      stop, modify and start instance (type is t3.micro, spec wants t3.small) i-0def (running)
          type: t3.micro → t3.small
          ! run will stop here: changing it needs a stop and start: set allow_restart: true
  -/+ aws:ec2/api                replace
  - aws:ec2/web-2                destroy (removed from the graph)
  ? aws:ec2/web-3                orphaned (removed from the graph; set prune to destroy it)
  ~ exec/reload                  refresh (notified)
  ? aws:route53_record/www       known after apply (waits for aws:route53_zone/shop)
  ! exec/build                   check failed: ...

  plan: 1 to add, 2 to change, 1 to replace, 0 to destroy, 4 unchanged

A dependent of a resource that would change is planned against the values it
would receive; a value only the run can tell (a new instance's private_ip, an
image not baked yet) is "(known after apply)", and the dependent is counted
like any other (an instance to launch is one to add). A kind that cannot be
checked against such a value is listed with "?" and counted as not checked.
A change that run would refuse (a replacement without replace: true, a
restart without allow_restart: true) is still listed, with why; run stops
there, so its dependents are planned against the resource as it is. --json
prints the same as one JSON document.

What the graph owns in AWS (by its kiln:owner tag) but no longer lists is
an orphan: with prune: true in the graph it is listed to destroy and
counted in "to destroy"; without, it is listed as orphaned, counted, and
left alone (it does not make plan exit 2). A prune the mass-prune guard
would refuse is said so. --destroy plans kiln destroy instead: everything
the graph owns, in the order it would go, protected resources marked.

Exit codes: 0 nothing would change, 2 changes are pending, 1 an error
(a bad graph file, a failed check), 130 interrupted.`,
		Example: `  kiln plan examples/local.yaml
  kiln plan --sim examples/ec2.yaml
  kiln plan --json graph.yaml | jq '.summary'
  kiln plan graph.yaml || [ $? -eq 2 ] && echo "changes pending"`,
		Args: fileArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			if destroy {
				return a.planDestroy(cmd.Context(), args[0], v, asJSON)
			}
			return a.plan(cmd.Context(), args[0], v, asJSON)
		},
	}
	v.register(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plan as JSON (resources, their changes and a summary)")
	cmd.Flags().BoolVar(&destroy, "destroy", false, "plan kiln destroy: everything the graph owns, by its tags")
	a.registerRetryTimeout(cmd.Flags())
	return cmd
}

// The plan, as --json prints it and the text is written from.
type (
	planDoc struct {
		Graph     string         `json:"graph"`
		Resources []planResource `json:"resources"`
		Summary   planSummary    `json:"summary"`
		// Refused says why run would not prune (the mass-prune guard).
		Refused string `json:"refused,omitempty"`
	}
	planResource struct {
		ID   string `json:"id"`
		Kind string `json:"kind"`
		Name string `json:"name"`
		// Status is create, update, restart, replace, delete, refresh,
		// unchanged, unknown (not checked), failed or orphaned.
		Status  string          `json:"status"`
		Changes []engine.Change `json:"changes,omitempty"`
		Reason  string          `json:"reason,omitempty"` // unknown: why; failed: the error
	}
	planSummary struct {
		Add       int `json:"add"`
		Change    int `json:"change"`
		Replace   int `json:"replace"`
		Destroy   int `json:"destroy"`
		Unchanged int `json:"unchanged"`
		Unknown   int `json:"unknown"`
		Failed    int `json:"failed"`
		Orphaned  int `json:"orphaned"`
	}
)

func (a *app) plan(ctx context.Context, file string, v graphVars, asJSON bool) error {
	g, err := a.loadGraph(ctx, file, v)
	if err != nil {
		return err
	}
	if err := a.checkCredentials(ctx, g); err != nil {
		return err
	}
	eng := engine.New(g, engine.Options{Noop: true, Once: true, Workers: defaultWorkers, Log: a.log})
	runErr := eng.Run(ctx)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	doc := planOf(g.Name, eng.Status())
	if scansEstate(g) {
		owned, orphans, err := a.estateOf(ctx, g)
		if err != nil {
			// The plan of what the graph lists still stands: print it.
			if perr := a.writePlanDoc(doc, asJSON, runErr); perr != nil && !errors.As(perr, new(*exitError)) {
				return perr
			}
			return &exitError{code: ExitError, err: fmt.Errorf("plan: look for orphans: %w", err)}
		}
		addOrphans(&doc, g, owned, orphans)
	}
	return a.writePlanDoc(doc, asJSON, runErr)
}

// writePlanDoc prints doc and returns plan's exit status.
func (a *app) writePlanDoc(doc planDoc, asJSON bool, runErr error) error {
	if asJSON {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(doc); err != nil {
			return fmt.Errorf("write plan: %w", err)
		}
	} else {
		writePlan(a.stdout, doc)
	}
	sum := doc.Summary
	switch {
	case sum.Failed > 0:
		return &exitError{code: ExitError, err: fmt.Errorf("plan: %d %s failed", sum.Failed, plural(sum.Failed, "check", "checks"))}
	case sum.Add+sum.Change+sum.Replace+sum.Destroy+sum.Unknown > 0:
		return &exitError{code: ExitPending}
	case runErr != nil:
		return &exitError{code: ExitError, err: fmt.Errorf("plan: %w", runErr)}
	}
	return nil
}

// addOrphans lists g's orphans in doc: to destroy with prune, else
// orphaned; and the guard's refusal, if any.
func addOrphans(doc *planDoc, g *engine.Graph, owned, orphans []engine.Owned) {
	ids := orphanIDs(orphans)
	for _, id := range ids {
		kind, name, _ := strings.Cut(id, "/")
		r := planResource{ID: id, Kind: kind, Name: name}
		for _, o := range orphans {
			if o.ID == id {
				r.Changes = append(r.Changes, engine.Change{Action: engine.ActionDelete, Summary: destroySummary(o)})
			}
		}
		if g.Prune {
			r.Status, r.Reason = "delete", " (removed from the graph)"
			doc.Summary.Destroy++
		} else {
			r.Status, r.Reason = "orphaned", ""
			doc.Summary.Orphaned++
		}
		doc.Resources = append(doc.Resources, r)
	}
	if g.Prune {
		if err := pruneRefusal(g, owned, orphans, 0); err != nil {
			doc.Refused = err.Error()
		}
	}
}

// planOf reads the plan off a check-only run's status.
func planOf(graph string, status []engine.VertexStatus) planDoc {
	doc := planDoc{Graph: graph, Resources: []planResource{}}
	pending := map[string]bool{}
	for _, s := range status {
		if s.Pending {
			pending[s.ID] = true
		}
	}
	sum := &doc.Summary
	for _, s := range status {
		r := planResource{ID: s.ID, Kind: s.Kind, Name: s.Name}
		switch {
		case s.State == engine.StateFailed && len(pendingDeps(s, pending)) > 0:
			// A dependency would change first, and this resource could not
			// be checked against what it would receive.
			r.Status, r.Reason = "unknown", "known after apply (waits for "+strings.Join(pendingDeps(s, pending), ", ")+")"
			sum.Unknown++
		case s.State == engine.StateFailed:
			r.Status, r.Reason = "failed", s.LastError
			sum.Failed++
		case s.Pending:
			r.Changes = s.Planned
			r.Status = string(strongest(s.Planned))
			switch engine.ChangeAction(r.Status) {
			case engine.ActionCreate:
				sum.Add++
			case engine.ActionReplace:
				sum.Replace++
			case engine.ActionDelete:
				sum.Destroy++
			default:
				sum.Change++
			}
		case s.WouldRefresh:
			r.Status = "refresh"
			sum.Change++
		case s.State == engine.StateConverged:
			r.Status = "unchanged"
			sum.Unchanged++
		default:
			r.Status, r.Reason = "unknown", "not checked ("+string(s.State)+")"
			sum.Unknown++
		}
		doc.Resources = append(doc.Resources, r)
	}
	return doc
}

// strongest is what a resource's changes amount to, the most drastic
// first: a replacement, a removal, a creation, a restart, else an update.
func strongest(cs []engine.Change) engine.ChangeAction {
	best := engine.ActionUpdate
	rank := map[engine.ChangeAction]int{engine.ActionUpdate: 0, engine.ActionRestart: 1,
		engine.ActionCreate: 2, engine.ActionDelete: 3, engine.ActionReplace: 4}
	for _, c := range cs {
		if rank[c.Action] > rank[best] {
			best = c.Action
		}
	}
	return best
}

// planMarks are the text plan's symbol and verb per status.
var planMarks = map[string][2]string{
	"create": {"+", "create"}, "update": {"~", "update in place"}, "restart": {"~", "restart"},
	"replace": {"-/+", "replace"}, "delete": {"-", "destroy"}, "refresh": {"~", "refresh (notified)"},
	"unknown": {"?", ""}, "failed": {"!", "check failed: "},
	"orphaned": {"?", "orphaned (removed from the graph; set prune to destroy it)"},
}

func writePlan(w io.Writer, doc planDoc) {
	var b strings.Builder
	for _, r := range doc.Resources {
		mark, ok := planMarks[r.Status]
		if !ok {
			continue // unchanged
		}
		fmt.Fprintf(&b, "%3s %-30s %s%s\n", mark[0], r.ID, mark[1], r.Reason)
		for _, c := range r.Changes {
			fmt.Fprintf(&b, "    %s\n", c.Summary)
			width := 0
			for _, a := range c.Attrs {
				width = max(width, len(a.Name))
			}
			for _, a := range c.Attrs {
				switch {
				case a.Old == "" && a.New == "":
					fmt.Fprintf(&b, "        %-*s   differs\n", width, a.Name)
				case c.Action == engine.ActionCreate || a.Old == "":
					fmt.Fprintf(&b, "        %-*s = %s\n", width, a.Name, a.New)
				default:
					fmt.Fprintf(&b, "        %-*s : %s → %s\n", width, a.Name, a.Old, a.New)
				}
			}
			if c.Diff != "" {
				b.WriteString(indent(strings.TrimSuffix(c.Diff, "\n"), "        "))
				b.WriteByte('\n')
			}
			if c.Refused != "" {
				fmt.Fprintf(&b, "        ! run will stop here: %s\n", c.Refused)
			}
		}
	}
	s := doc.Summary
	fmt.Fprintf(&b, "plan: %d to add, %d to change, %d to replace, %d to destroy, %d unchanged",
		s.Add, s.Change, s.Replace, s.Destroy, s.Unchanged)
	if s.Unknown > 0 {
		fmt.Fprintf(&b, ", %d not checked", s.Unknown)
	}
	if s.Failed > 0 {
		fmt.Fprintf(&b, ", %d failed", s.Failed)
	}
	if s.Orphaned > 0 {
		fmt.Fprintf(&b, ", %d orphaned", s.Orphaned)
	}
	b.WriteByte('\n')
	if doc.Refused != "" {
		fmt.Fprintf(&b, "! run will not prune: %s\n", doc.Refused)
	}
	_, _ = io.WriteString(w, b.String())
}

// pendingDeps are the dependencies of s that would change.
func pendingDeps(s engine.VertexStatus, pending map[string]bool) []string {
	var out []string
	for _, d := range s.DependsOn {
		if pending[d] {
			out = append(out, d)
		}
	}
	return out
}
