package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newValidateCmd(a *app) *cobra.Command {
	var v graphVars
	cmd := &cobra.Command{
		Use:   "validate FILE",
		Short: "Check a graph file, touching nothing",
		Long: `Validate parses FILE strictly and checks it: YAML syntax, kinds, every field
(unknown, missing, wrong type, bad values and durations), duplicate names,
dangling depends_on / notified_by / ${kind/name.output} references, and
dependency cycles. Every problem is reported at once, one per line, as
FILE:LINE: KIND "NAME": FIELD: PROBLEM.

FILE may be an HCL graph (a .hcl file, or a directory of them): its
problems read FILE:LINE:COL: PROBLEM, each with its source line underlined.
--var, --var-file and KILN_VAR_NAME give its variables' values.

Exit codes: 0 valid, 1 problems found.`,
		Example: `  kiln validate examples/local.yaml
  kiln validate --var regions='{eu="eu-west-1"}' examples/fleet`,
		Args: fileArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			g, err := a.loadGraph(cmd.Context(), args[0], v)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s: graph %q is valid: %d %s\n", args[0], g.Name, len(g.Specs), plural(len(g.Specs), "resource", "resources"))
			return nil
		},
	}
	v.register(cmd.Flags())
	return cmd
}
