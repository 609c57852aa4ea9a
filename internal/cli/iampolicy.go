package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"kiln/internal/awsres"
	"kiln/internal/engine"
	"kiln/internal/eventqueue"
	"kiln/internal/iampolicy"
	"kiln/internal/project"
)

func newIAMPolicyCmd(a *app) *cobra.Command {
	var queues []string
	var bakery bool
	var kmsKey string
	var trusted string
	var v graphVars
	cmd := &cobra.Command{
		Use:   "iam-policy [FILE] [--events-queue QUEUE_URL]... | --bakery PROJECT_FILE...",
		Short: "Print the least-privilege IAM policy for a graph, or for kiln serve with projects",
		Long: `IAM-policy parses the graph in FILE and prints, as JSON, the IAM policy that
allows exactly the AWS actions its resources may call (each AWS kind
declares them from its fields), scoped by kiln's ownership tag as AWS
recommends: read-only calls on "*"; launches and other creating calls only
when they tag what they create kiln:owner=<graph name>; stop, terminate,
deregister, retag and the other changes only on resources already tagged
kiln:owner=<graph name>; iam:PassRole only for the roles of the graph's
instance profiles (a role is assumed to have its profile's name), passed
to EC2. Local kinds add nothing. A graph with an AWS resource (or prune)
also gets the read calls of the orphan scan, which lists what the graph
owns among every kind kiln prunes (instances, groups, launch templates,
security groups, key pairs, images, hosted zones and their records),
whatever kinds the graph still declares; with prune, also the calls that
destroy them. It makes no AWS call and needs no credentials.

With --events-queue (repeatable, as given to kiln run or kiln serve) the
policy also allows reading and deleting that queue's messages, in a
statement of its own naming the queue's ARN; FILE is then optional.

With --bakery, the arguments are project files and the policy is the one
kiln serve needs to bake, copy, share and retain their images, promote
them through their environments (Auto Scaling groups and launch
templates, secrets in SSM under /kiln/PROJECT/) and roll them out: a
bake's builder, image and snapshots only while tagged kiln:project=<a
project>, the environments' groups and templates only while tagged
kiln:owner=<a project>, the rollout targets by group name, the secrets by
parameter path, and iam:PassRole for the builders' and groups' instance
profiles. Apply the projects with the same files afterwards; a new project
needs the policy made again. ${VAR} references in the files need not be
set: no secret is read.

A graph whose resources work in other accounts (account: NAME, see
docs/accounts.md) needs a policy in each: iam-policy then prints a JSON
list with one entry per account, the starting credentials' first (its
policy also allows sts:AssumeRole on the accounts' roles), each other
account's with its role_arn, the policy to attach to that role and the
trust_relationship the role needs, trusting the account of the starting
credentials (--trusted-account ID; a placeholder without it). So does
--bakery when a project's environments live in other accounts (account:
on an environment, see docs/bakery/environments.md): the bakery's policy
first (bakes, the environments in its own account, sts:AssumeRole on the
roles), then each account's, named by its id, for its environments'
groups, templates and secrets.

A graph with no AWS resources (and no --events-queue) needs no
permissions: iam-policy says so on stderr, prints no policy and exits 0.

Exit codes: 0 ok (also when there is nothing to allow), 1 a bad graph file.`,
		Example: `  kiln iam-policy examples/ec2.yaml > kiln-policy.json
  kiln iam-policy --events-queue https://sqs.us-east-1.amazonaws.com/123456789012/kiln-events examples/ec2.yaml
  kiln iam-policy --bakery web.yaml api.yaml > kiln-serve-policy.json
  aws iam put-role-policy --role-name kiln --policy-name kiln --policy-document file://kiln-policy.json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if bakery {
				if len(args) == 0 {
					return &usageError{cmd: cmd.CommandPath(), err: errors.New("--bakery needs one or more project files")}
				}
				return nil
			}
			if len(args) == 0 && len(queues) > 0 {
				return nil
			}
			return fileArg(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if bakery {
				return a.writeBakeryPolicy(args, queues, trusted, kmsKey)
			}
			if len(args) == 0 {
				return a.writePolicy("", iampolicy.Policy(""), queues)
			}
			g, err := a.loadGraph(cmd.Context(), args[0], v)
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
			if byAccount, roles := a.accountResources(rs); len(roles) > 0 {
				if scansEstate(g) { // each account's estate is scanned with its own hubs
					for name := range byAccount {
						byAccount[name] = append(byAccount[name], estatePolicy{prune: g.Prune})
					}
				}
				return a.writeAccountPolicies(iampolicy.AccountPolicies(g.Name, byAccount, roles, trusted), queues)
			}
			if scansEstate(g) {
				rs = append(rs, estatePolicy{prune: g.Prune})
			}
			return a.writePolicy(g.Name, iampolicy.Policy(g.Name, rs...), queues)
		},
	}
	v.register(cmd.Flags())
	cmd.Flags().StringArrayVar(&queues, "events-queue", nil, "add what reading this events queue (URL or name) needs (repeatable)")
	cmd.Flags().StringVar(&trusted, "trusted-account", "STARTING_ACCOUNT_ID", "the account id of the credentials kiln starts with, as the accounts' trust relationships name it")
	cmd.Flags().BoolVar(&bakery, "bakery", false, "the arguments are project files: print the policy of kiln serve with those projects")
	cmd.Flags().StringVar(&kmsKey, "kms-key-id", "", "with --bakery: add what sealing secrets under this AWS KMS key needs (kiln serve --kms-key-id)")
	return cmd
}

// writePolicy prints doc, with the statements the events queues need. A
// policy with nothing to allow is not printed: IAM refuses one without
// statements, and one that allows nothing would be attached for nothing.
func (a *app) writePolicy(graph string, doc iampolicy.PolicyDocument, queues []string) error {
	doc.Statement = append(doc.Statement, eventqueue.Statements(queues)...)
	if len(doc.Statement) == 0 {
		fmt.Fprintf(a.stderr, "kiln: graph %q has no AWS resources: kiln needs no IAM permissions for it; no policy printed\n", graph)
		return nil
	}
	b, _ := json.MarshalIndent(doc, "", "  ")
	if _, err := a.stdout.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write policy: %w", err)
	}
	return nil
}

// writeBakeryPolicy prints the policy of kiln serve with the projects of
// files (project.Parse's errors, with file and line, when one is bad).
func (a *app) writeBakeryPolicy(files, queues []string, trusted, kmsKey string) error {
	var ps []iampolicy.BakeryProject
	byAccount := map[string][]iampolicy.BakeryProject{}
	var roles []iampolicy.AccountRole
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("read project file: %w", err)
		}
		// No secret is read: any ${VAR} stands for a value long enough.
		p, err := project.Parse(f, data, func(string) string { return "policy-placeholder-value" })
		if perrs, ok := errors.AsType[project.Errors](err); ok {
			for _, p := range perrs {
				fmt.Fprintln(a.stderr, p)
			}
			n := len(perrs)
			return &exitError{code: ExitError, err: fmt.Errorf("%d %s in the project file", n, plural(n, "problem", "problems"))}
		}
		if err != nil {
			return err
		}
		ps = append(ps, p.IAM())
		parts, rs := p.IAMByAccount()
		for name, b := range parts {
			byAccount[name] = append(byAccount[name], b)
		}
		for _, r := range rs {
			if !slices.ContainsFunc(roles, func(x iampolicy.AccountRole) bool { return x.Name == r.Name }) {
				roles = append(roles, r)
			}
		}
	}
	if len(roles) > 0 { // environments in other accounts: a policy in each
		list := iampolicy.BakeryAccounts(byAccount, roles, trusted)
		if kmsKey != "" { // the server's own key, in the starting account's policy
			list[0].Policy.Statement = append(list[0].Policy.Statement, iampolicy.SecretsKey(kmsKey))
		}
		return a.writeAccountPolicies(list, queues)
	}
	doc := iampolicy.Bakery(ps...)
	if kmsKey != "" {
		doc.Statement = append(doc.Statement, iampolicy.SecretsKey(kmsKey))
	}
	doc.Statement = append(doc.Statement, eventqueue.Statements(queues)...)
	b, _ := json.MarshalIndent(doc, "", "  ")
	if _, err := a.stdout.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write policy: %w", err)
	}
	return nil
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

// accountResources groups rs by the account they work in ("" for the
// starting credentials), with the roles of the accounts used; no roles
// when every resource uses the starting credentials.
func (a *app) accountResources(rs []any) (map[string][]any, []iampolicy.AccountRole) {
	by := map[string][]any{}
	var roles []iampolicy.AccountRole
	for _, r := range rs {
		name := awsres.Account(r)
		if _, seen := by[name]; !seen && name != "" {
			if h := a.awsHubs().AccountNamed(name); h != nil {
				d := h.AccountDef()
				roles = append(roles, iampolicy.AccountRole{Name: name, RoleARN: d.RoleARN, ExternalID: d.ExternalID})
			}
		}
		by[name] = append(by[name], r)
	}
	slices.SortFunc(roles, func(x, y iampolicy.AccountRole) int { return strings.Compare(x.Name, y.Name) })
	return by, roles
}

// writeAccountPolicies prints the policies of a graph working in several
// accounts; the events queues' statements go to the starting credentials'.
func (a *app) writeAccountPolicies(list []iampolicy.AccountPolicy, queues []string) error {
	list[0].Policy.Statement = append(list[0].Policy.Statement, eventqueue.Statements(queues)...)
	b, _ := json.MarshalIndent(list, "", "  ")
	if _, err := a.stdout.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write policy: %w", err)
	}
	return nil
}
