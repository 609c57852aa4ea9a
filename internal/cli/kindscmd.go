package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newKindsCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "kinds",
		Short: "List every resource kind a graph file can use",
		Long: `kinds lists every resource kind, one line each: the name a graph file gives
as "kind:" and a one-line summary. Each kind's fields, outputs and behaviour
are on its page, docs/kinds/NAME.md (':' written '-').`,
		Example: `  kiln kinds`,
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			w := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			for _, k := range KindTable {
				fmt.Fprintf(w, "%s\t%s\n", k.Name, k.Summary)
			}
			return w.Flush()
		},
	}
}
