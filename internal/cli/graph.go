package cli

import (
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/spf13/cobra"

	"kiln/internal/engine"
)

func newGraphCmd(a *app) *cobra.Command {
	var v graphVars
	cmd := &cobra.Command{
		Use:   "graph FILE",
		Short: "Print the graph as Graphviz DOT",
		Long: `Graph prints the resources of FILE and their edges in Graphviz DOT on stdout.
An edge points from a dependency to the resource that waits for it; notify
edges are dashed.

Exit codes: 0 ok, 1 a bad graph file.`,
		Example: `  kiln graph examples/local.yaml | dot -Tsvg > graph.svg`,
		Args:    fileArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			g, err := a.loadGraph(cmd.Context(), args[0], v)
			if err != nil {
				return err
			}
			return writeDOT(a.stdout, g)
		},
	}
	v.register(cmd.Flags())
	return cmd
}

// writeDOT writes g as a Graphviz digraph.
func writeDOT(w io.Writer, g *engine.Graph) error {
	q := strconv.Quote
	p := &errWriter{w: w}
	p.printf("digraph %s {\n", q(g.Name))
	p.printf("  rankdir=LR;\n  node [shape=box];\n")
	for _, s := range g.Specs {
		p.printf("  %s;\n", q(s.ID()))
	}
	for _, s := range g.Specs {
		for _, d := range s.DependsOn {
			switch {
			case slices.Contains(s.NotifiedBy, d):
				p.printf("  %s -> %s [style=dashed, label=\"notify\"];\n", q(d), q(s.ID()))
			case slices.Contains(s.Refs, d):
				p.printf("  %s -> %s [label=\"ref\"];\n", q(d), q(s.ID()))
			default:
				p.printf("  %s -> %s;\n", q(d), q(s.ID()))
			}
		}
	}
	p.printf("}\n")
	if p.err != nil {
		return fmt.Errorf("write graph: %w", p.err)
	}
	return nil
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
