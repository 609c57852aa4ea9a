package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"kiln/internal/config"
	"kiln/internal/engine"
)

func newPlanCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "plan FILE",
		Short: "Show what run would change, changing nothing",
		Long: `Plan checks every resource in FILE once without applying anything and lists
the ones that would change:

  ~ file/motd          would change
  ~ exec/reload        would be refreshed (notified)
  ! exec/build         check failed: ...
  ? print/done         not checked (blocked)

Exit codes: 0 nothing would change, 2 changes are pending, 1 an error
(a bad graph file, a failed check), 130 interrupted.`,
		Example: `  kiln plan examples/local.yaml
  kiln plan graph.yaml || [ $? -eq 2 ] && echo "changes pending"`,
		Args: fileArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.plan(cmd.Context(), args[0])
		},
	}
}

func (a *app) plan(ctx context.Context, file string) error {
	g, err := config.Load(file, a.kinds())
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
	var changes, failed, unknown, ok int
	var out strings.Builder
	status := eng.Status()
	pending := map[string]bool{}
	for _, s := range status {
		if s.Pending {
			pending[s.ID] = true
		}
	}
	for _, s := range status {
		switch {
		case s.State == engine.StateFailed && waitsForPending(s, pending):
			// A dependency would change first: this check ran against a
			// world (or outputs, such as a new instance's private_ip) that
			// does not exist yet, so its failure says nothing.
			unknown++
			fmt.Fprintf(&out, "? %-30s not checked (waits for %s)\n", s.ID, strings.Join(pendingDeps(s, pending), ", "))
		case s.State == engine.StateFailed:
			failed++
			fmt.Fprintf(&out, "! %-30s check failed: %s\n", s.ID, s.LastError)
		case s.Pending:
			changes++
			fmt.Fprintf(&out, "~ %-30s would change\n", s.ID)
			for _, c := range s.Changes {
				fmt.Fprintf(&out, "    %s\n", c)
			}
		case s.WouldRefresh:
			changes++
			fmt.Fprintf(&out, "~ %-30s would be refreshed (notified)\n", s.ID)
		case s.State == engine.StateConverged:
			ok++
		default:
			unknown++
			fmt.Fprintf(&out, "? %-30s not checked (%s)\n", s.ID, s.State)
		}
	}
	fmt.Fprint(a.stdout, out.String())
	fmt.Fprintf(a.stdout, "plan: %d to change, %d unchanged", changes, ok)
	if unknown > 0 {
		fmt.Fprintf(a.stdout, ", %d not checked", unknown)
	}
	if failed > 0 {
		fmt.Fprintf(a.stdout, ", %d failed", failed)
	}
	fmt.Fprintln(a.stdout)
	switch {
	case failed > 0:
		return &exitError{code: ExitError, err: fmt.Errorf("plan: %d %s failed", failed, plural(failed, "check", "checks"))}
	case changes > 0 || unknown > 0:
		return &exitError{code: ExitPending}
	case runErr != nil:
		return &exitError{code: ExitError, err: fmt.Errorf("plan: %w", runErr)}
	}
	return nil
}

// waitsForPending reports whether a dependency of s would change.
func waitsForPending(s engine.VertexStatus, pending map[string]bool) bool {
	return len(pendingDeps(s, pending)) > 0
}

func pendingDeps(s engine.VertexStatus, pending map[string]bool) []string {
	var out []string
	for _, d := range s.DependsOn {
		if pending[d] {
			out = append(out, d)
		}
	}
	return out
}
