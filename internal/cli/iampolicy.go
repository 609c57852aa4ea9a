package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"kiln/internal/awsapi"
	"kiln/internal/config"
	"kiln/internal/engine"
)

func newIAMPolicyCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "iam-policy FILE",
		Short: "Print the least-privilege IAM policy for a graph",
		Long: `IAM-policy parses the graph in FILE and prints, as JSON, the IAM policy that
allows exactly the AWS actions its resources may call (each AWS kind
declares them from its fields), scoped by kiln's ownership tag as AWS
recommends: read-only calls on "*"; launches and other creating calls only
when they tag what they create kiln:owner=<graph name>; stop, terminate,
deregister, retag and the other changes only on resources already tagged
kiln:owner=<graph name>; iam:PassRole only for the roles of the graph's
instance profiles (a role is assumed to have its profile's name), passed
to EC2. Local kinds add nothing. It makes no AWS call and needs no
credentials.

A graph with no AWS resources needs no permissions: iam-policy says so on
stderr, prints no policy and exits 0.

Exit codes: 0 ok (also when there is nothing to allow), 1 a bad graph file.`,
		Example: `  kiln iam-policy examples/ec2.yaml > kiln-policy.json
  aws iam put-role-policy --role-name kiln --policy-name kiln --policy-document file://kiln-policy.json`,
		Args: fileArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			g, err := config.Load(args[0], a.kinds())
			if err != nil {
				return err
			}
			rs, err := specResources(g)
			defer func() {
				for _, r := range rs {
					if c, ok := r.(io.Closer); ok {
						_ = c.Close()
					}
				}
			}()
			if err != nil {
				return err
			}
			doc := awsapi.Policy(g.Name, rs...)
			if len(doc.Statement) == 0 {
				// IAM refuses a policy without statements, and one that
				// allows nothing would be attached for nothing.
				fmt.Fprintf(a.stderr, "kiln: graph %q has no AWS resources: kiln needs no IAM permissions for it; no policy printed\n", g.Name)
				return nil
			}
			if _, err := a.stdout.Write(awsapi.PolicyJSON(g.Name, rs...)); err != nil {
				return fmt.Errorf("write policy: %w", err)
			}
			return nil
		},
	}
}

// unresolved leaves a reference as its own text.
func unresolved(id, key string) (string, bool) { return "${" + id + "." + key + "}", true }

// specResources builds every resource of g without running anything. A
// reference (${aws:ami/web.image_id}) is left as its own text: the actions a
// kind declares depend on which fields are set, not on values that only
// exist once the graph has run.
func specResources(g *engine.Graph) ([]any, error) {
	rs := make([]any, 0, len(g.Specs))
	for _, s := range g.Specs {
		r, _, err := s.Build(unresolved)
		if err != nil {
			return rs, fmt.Errorf("%s: %w", s.ID(), err)
		}
		rs = append(rs, r)
	}
	return rs, nil
}
