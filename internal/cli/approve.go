package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

func newApproveCmd(a *app) *cobra.Command {
	var o clientOptions
	cmd := &cobra.Command{
		Use:   "approve PROJECT ENV",
		Short: "Let a promotion through an environment's approval gate",
		Long: `Approve lets the promotion waiting at environment ENV's approval gate through
(deployer role). An environment declared with approval: manual (and
promotion: auto) is not promoted when the previous environment's soak ends:
the promotion waits, and kiln project show says "awaiting approval". Approve
records who approved (and an audit row, promotion.approve) and promotes the
soaked image to ENV.

Nothing awaiting approval, an environment without a gate, or a rollout
running there is refused (exit 1). kiln promote PROJECT --to ENV --wait
follows a promotion; approve returns once it has started.` + clientHelp,
		Example: `  kiln approve web production
  kiln approve web production --json`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.approve(cmd.Context(), &o, args[0], args[1])
		},
	}
	addClientFlags(cmd, &o)
	return cmd
}

func (a *app) approve(ctx context.Context, o *clientOptions, project, env string) error {
	p, err := o.client().Approve(ctx, project, env)
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(a, p)
	}
	fmt.Fprintf(a.stdout, "approved: promotion %d: %s to %s of %s: rolling out\n", p.ID, p.Image, env, project)
	return nil
}
