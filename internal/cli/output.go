package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/spf13/cobra"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"kiln/internal/engine"
	"kiln/internal/hclgraph"
)

func newOutputCmd(a *app) *cobra.Command {
	var v graphVars
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "output GRAPH",
		Short: "Print an HCL graph's outputs",
		Long: `Output evaluates the HCL graph GRAPH (a .hcl file or a directory), checks its
resources without changing anything (as plan does) and prints its outputs
with the values the resources have now. A value only a run can tell (an
instance not launched yet) prints as "(known after apply)"; a sensitive
output as "(sensitive)". kiln run --once prints the same after converging.

Exit codes: 0 ok, 1 a bad graph or a failed check.`,
		Example: `  kiln output --sim examples/fleet
  kiln output --json examples/fleet | jq .web_ips`,
		Args: fileArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.output(cmd.Context(), args[0], v, asJSON)
		},
	}
	v.register(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the outputs as one JSON object")
	return cmd
}

func (a *app) output(ctx context.Context, path string, v graphVars, asJSON bool) error {
	src, err := a.graphSource(path, v, a.kinds())
	if err != nil {
		return err
	}
	if !src.hcl {
		return &usageError{cmd: "kiln output", err: fmt.Errorf("%s: outputs are an HCL graph's (.hcl or a directory)", path)}
	}
	g, err := src.load(ctx)
	if err != nil {
		return err
	}
	if err := a.checkCredentials(ctx, g); err != nil {
		return err
	}
	eng := engine.New(g, engine.Options{Noop: true, Once: true, Workers: defaultWorkers, Log: a.log})
	if err := eng.Run(ctx); err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return writeOutputs(a.stdout, src.last.Outputs, eng.Output, asJSON)
}

// writeOutputs prints outputs resolved through lookup: NAME = VALUE lines
// in HCL, or one JSON object.
func writeOutputs(w io.Writer, outs []hclgraph.Output, lookup engine.Lookup, asJSON bool) error {
	doc := map[string]json.RawMessage{}
	p := &errWriter{w: w}
	for _, o := range outs {
		val := hclgraph.Resolve(o.Value, lookup)
		secret := o.Sensitive || val.ContainsMarked()
		if asJSON {
			if secret {
				doc[o.Name] = json.RawMessage(`"(sensitive)"`)
				continue
			}
			b, err := ctyjson.Marshal(val, val.Type())
			if err != nil {
				return fmt.Errorf("output %s: %w", o.Name, err)
			}
			doc[o.Name] = b
			continue
		}
		if secret {
			p.printf("%s = (sensitive)\n", o.Name)
			continue
		}
		p.printf("%s = %s\n", o.Name, hclwrite.TokensForValue(val).Bytes())
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(doc)
	}
	if p.err != nil {
		return fmt.Errorf("write outputs: %w", p.err)
	}
	return nil
}
