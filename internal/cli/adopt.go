package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"kiln/internal/awsres"
	"kiln/internal/hclgraph"
)

type adoptFlags struct {
	filters []string
	ids     []string
	region  string
	graph   string
	tag     bool
	format  string
}

func newAdoptCmd(a *app) *cobra.Command {
	var f adoptFlags
	cmd := &cobra.Command{
		Use:   "adopt KIND [--filter NAME=VALUE]... [--id ID]... [--region R] [--graph NAME] [--tag] [--format yaml|hcl]",
		Short: "Hand existing AWS resources to a graph: print their blocks, and tag them",
		Long: `Adopt finds existing resources of KIND that no graph owns and prints a graph
(name: --graph) whose blocks declare them as they are: kiln plan on a graph
holding those blocks finds nothing to change once they are tagged.

KIND is one of ` + strings.Join(awsres.AdoptKinds, ", ") + `.
--filter NAME=VALUE selects them (repeat a NAME for several values): for the
EC2 kinds it is an EC2 API filter (tag:Name=web, vpc-id=vpc-0abc,
instance-state-name=running, key-name=ops); for aws:route53_zone it is
name=ZONE; for aws:route53_record zone=ZONE (a name or an id, required),
and name=FQDN and type=TYPE. --id picks instances, key pairs (key-...),
security groups or zones by id. A VPC's default security group is never
offered.

With --tag, adopt writes what makes them the graph's: the kiln:owner and
kiln:resource tags (and Name = the resource's name on an instance or
security group whose Name tag differs); for a record, its TXT ownership
record. Nothing else changes. Without --tag it only prints.

A resource that another graph owns is refused, naming its owner, and
nothing is tagged. Instances keep their user data; the printed block
leaves user_data out (give it later and kiln restarts the instance with
it, under allow_restart).

Exit codes: 0 printed (and tagged), 1 nothing matched, a resource owned by
another graph, bad arguments or an AWS error.`,
		Example: `  kiln adopt aws:ec2 --filter tag:team=web --graph shop --tag >> adopted.yaml
  kiln adopt aws:key_pair --id key-0abc --graph shop
  kiln adopt aws:route53_record --filter zone=example.com --filter type=A --graph shop --tag --format hcl`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.adoptCmd(cmd.Context(), args[0], f)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&f.filters, "filter", nil, "select by NAME=VALUE (repeatable)")
	fl.StringArrayVar(&f.ids, "id", nil, "select by AWS id (repeatable)")
	fl.StringVar(&f.region, "region", "", "the region to look in (default: AWS_REGION)")
	fl.StringVar(&f.graph, "graph", "", "the graph's name (required with --tag)")
	fl.BoolVar(&f.tag, "tag", false, "write the owner and resource tags (records: the TXT ownership record)")
	fl.StringVar(&f.format, "format", "yaml", "print the graph as yaml or hcl")
	return cmd
}

// errOwned is wrapped when adopt finds a resource a graph owns already.
var errOwned = errors.New("owned by a graph")

func (a *app) adoptCmd(ctx context.Context, kind string, f adoptFlags) error {
	usage := func(format string, args ...any) error {
		return &usageError{cmd: "kiln adopt", err: fmt.Errorf(format, args...)}
	}
	if f.format != "yaml" && f.format != "hcl" {
		return usage("--format %q: want yaml or hcl", f.format)
	}
	if f.tag && f.graph == "" {
		return usage("--tag needs --graph NAME: the graph whose tags to write")
	}
	filters := map[string][]string{}
	for _, fl := range f.filters {
		k, v, ok := strings.Cut(fl, "=")
		if !ok || k == "" {
			return usage("--filter %q: want NAME=VALUE", fl)
		}
		filters[k] = append(filters[k], v)
	}
	if err := a.awsHubs().CheckCredentials(ctx); err != nil {
		return err
	}
	group, gctx := errgroup.WithContext(ctx)
	runCtx, stop := context.WithCancel(gctx)
	a.runAWS(runCtx, group, nil)
	var err error
	group.Go(func() error {
		defer stop()
		err = a.adopt(runCtx, kind, filters, f)
		return nil
	})
	if werr := group.Wait(); werr != nil {
		return werr
	}
	if errors.Is(err, awsres.ErrAdoptUsage) {
		return &usageError{cmd: "kiln adopt", err: err}
	}
	return err
}

func (a *app) adopt(ctx context.Context, kind string, filters map[string][]string, f adoptFlags) error {
	found, err := awsres.NewEstate(a.awsHubs(), a.log).Adoptables(ctx, kind, f.region, filters, f.ids)
	if err != nil {
		return fmt.Errorf("adopt %s: %w", kind, err)
	}
	if len(found) == 0 {
		return fmt.Errorf("adopt %s: nothing matches", kind)
	}
	graph := f.graph
	if graph == "" {
		graph = "adopted"
	}
	// Refuse before anything is tagged: all or nothing.
	var errs []error
	seen := map[string]string{}
	for _, r := range found {
		switch {
		case r.Owner != "" && (r.Owner != graph || r.Resource != r.ID()):
			errs = append(errs, fmt.Errorf("%s (%s): %w: graph %q owns it as %s", r.ID(), r.Ref, errOwned, r.Owner, r.Resource))
		case seen[r.ID()] != "":
			errs = append(errs, fmt.Errorf("%s and %s would both be %s: select fewer, or rename one first", seen[r.ID()], r.Ref, r.ID()))
		}
		seen[r.ID()] = r.Ref
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("adopt refused, nothing tagged:\n%w", err)
	}
	if f.tag {
		for _, r := range found {
			if r.Owner != "" {
				continue // this graph's already
			}
			if err := r.Tag(ctx, graph); err != nil {
				return fmt.Errorf("adopt %s (%s): tag: %w", r.ID(), r.Ref, err)
			}
			a.log.Info("resource adopted", "resource", r.ID(), "id", r.Ref, "graph", graph)
		}
	}
	out, err := adoptedGraph(graph, f.region, found, f.format)
	if err != nil {
		return err
	}
	if _, err := a.stdout.Write(out); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// adoptedGraph is a graph file named graph declaring found, in format.
func adoptedGraph(graph, region string, found []awsres.Adoptable, format string) ([]byte, error) {
	var resources []yaml.MapSlice
	for _, r := range found {
		block := yaml.MapSlice{{Key: "kind", Value: r.Kind}, {Key: "name", Value: r.Name}}
		if region != "" && !strings.HasPrefix(r.Kind, "aws:route53") {
			block = append(block, yaml.MapItem{Key: "region", Value: region})
		}
		block = append(block, mapSlice(r.Fields)...)
		resources = append(resources, block)
	}
	doc := yaml.MapSlice{{Key: "name", Value: graph}, {Key: "resources", Value: resources}}
	b, err := yaml.MarshalWithOptions(doc, yaml.IndentSequence(true))
	if err != nil {
		return nil, fmt.Errorf("write graph: %w", err)
	}
	if format == "yaml" {
		return b, nil
	}
	return hclgraph.Convert("adopted.yaml", b)
}

func mapSlice(fields []awsres.Field) yaml.MapSlice {
	var m yaml.MapSlice
	for _, f := range fields {
		v := f.Value
		switch x := v.(type) {
		case []awsres.Field:
			v = mapSlice(x)
		case [][]awsres.Field:
			var l []yaml.MapSlice
			for _, e := range x {
				l = append(l, mapSlice(e))
			}
			v = l
		}
		m = append(m, yaml.MapItem{Key: f.Key, Value: v})
	}
	return m
}
