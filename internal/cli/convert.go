package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"kiln/internal/config"
	"kiln/internal/hclgraph"
)

func newConvertCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "convert FILE",
		Short: "Print a YAML graph as HCL",
		Long: `Convert checks the YAML graph FILE and prints the same graph in HCL (see
kiln fmt for its layout): the same resources, fields, meta-params and
edges, each ${kind/name.output} reference written as an HCL reference
(kind_name.output). Both yield the same specs.

Exit codes: 0 ok, 1 a bad graph file.`,
		Example: `  kiln convert examples/ec2.yaml > ec2.hcl`,
		Args:    fileArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := config.Load(args[0], a.kinds()); err != nil {
				return err
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return fmt.Errorf("read graph file: %w", err)
			}
			out, err := hclgraph.Convert(args[0], data)
			if err != nil {
				return err
			}
			if _, err := a.stdout.Write(out); err != nil {
				return fmt.Errorf("write: %w", err)
			}
			return nil
		},
	}
}
