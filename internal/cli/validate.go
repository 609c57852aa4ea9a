package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"kiln/internal/config"
)

func newValidateCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE",
		Short: "Check a graph file, touching nothing",
		Long: `Validate parses FILE strictly and checks it: YAML syntax, kinds, every field
(unknown, missing, wrong type, bad values and durations), duplicate names,
dangling depends_on / notified_by / ${kind/name.output} references, and
dependency cycles. Every problem is reported at once, one per line, as
FILE:LINE: KIND "NAME": FIELD: PROBLEM.

Exit codes: 0 valid, 1 problems found.`,
		Example: `  kiln validate examples/local.yaml`,
		Args:    fileArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			g, err := config.Load(args[0], a.kinds())
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s: graph %q is valid: %d %s\n", args[0], g.Name, len(g.Specs), plural(len(g.Specs), "resource", "resources"))
			return nil
		},
	}
}
