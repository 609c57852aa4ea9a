package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"kiln/internal/project"
	"kiln/internal/web"
)

// clientOptions are the flags of every command that talks to kiln serve.
type clientOptions struct {
	server string
	token  string
	json   bool
}

// addClientFlags adds --server, --token and --json to cmd and its
// subcommands.
func addClientFlags(cmd *cobra.Command, o *clientOptions) {
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.server, "server", "", "the kiln server's URL (default $KILN_SERVER, else "+defaultServer+")")
	pf.StringVar(&o.token, "token", "", "the admin token or a personal API token (default $KILN_TOKEN)")
	pf.BoolVar(&o.json, "json", false, "print JSON instead of text")
}

func (o *clientOptions) client() *web.Client {
	server := firstNonEmpty(o.server, os.Getenv("KILN_SERVER"), defaultServer)
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	return web.NewClient(server, firstNonEmpty(o.token, os.Getenv("KILN_TOKEN")))
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

const clientHelp = `

The server is --server, else $KILN_SERVER, else ` + defaultServer + `; the admin
token is --token, else $KILN_TOKEN: the admin token (kiln serve prints it on its
first start) or a personal API token (kiln token create).`

func newProjectCmd(a *app) *cobra.Command {
	var o clientOptions
	cmd := &cobra.Command{
		Use:   "project",
		Short: "Manage the bakery's projects (apply, list, show, delete, rotate-secret)",
		Long: `A project is what the bakery bakes: a base image, an init script and the
builder's settings, in a project file (see docs/bakery/projects.md). Projects live in the
kiln server's database; these commands manage them through its API.` + clientHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	addClientFlags(cmd, &o)
	var file string
	apply := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Create or update a project from a project file",
		Long: `Apply sends the project file to the server, which validates it (every problem
is reported with its line) and creates or updates the project. It prints the
project's webhook URL, and the webhook secret when the server generated one:
that is the only time the secret is shown.

${VAR} in webhook_secret is read from this command's environment.` + clientHelp,
		Example: `  kiln project apply -f web.yaml
  WEB_HOOK_SECRET=... kiln project apply -f web.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return &usageError{cmd: cmd.CommandPath(), err: errors.New("missing -f FILE")}
			}
			return a.projectApply(cmd.Context(), &o, file)
		},
	}
	apply.Flags().StringVarP(&file, "file", "f", "", "the project file (YAML or JSON)")
	cmd.AddCommand(
		apply,
		&cobra.Command{
			Use:     "list",
			Short:   "List the projects",
			Example: `  kiln project list --server https://kiln.example.com`,
			Args:    cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return a.projectList(cmd.Context(), &o)
			},
		},
		&cobra.Command{
			Use:     "show NAME",
			Short:   "Show a project (never its webhook secret)",
			Example: `  kiln project show web`,
			Args:    nameArg("project NAME"),
			RunE: func(cmd *cobra.Command, args []string) error {
				return a.projectShow(cmd.Context(), &o, args[0])
			},
		},
		&cobra.Command{
			Use:     "delete NAME",
			Short:   "Delete a project and the records of its bakes (not its images)",
			Example: `  kiln project delete web    # refused (exit 1) while a bake of it runs`,
			Args:    nameArg("project NAME"),
			RunE: func(cmd *cobra.Command, args []string) error {
				return a.projectDelete(cmd.Context(), &o, args[0])
			},
		},
		&cobra.Command{
			Use:   "rotate-secret NAME",
			Short: "Give a project a new, generated webhook secret and print it once",
			Long: `Rotate-secret replaces the project's webhook secret with a new random one and
prints it with the webhook URL. It is shown only this once: the server never
shows it again (run rotate-secret again if it is lost).

The old secret stops working at once: deliveries signed with it are refused
(401) until the webhook at the Git host has the new one (GitHub: Secret;
GitLab: Secret token). To choose the secret yourself instead, apply the
project file with webhook_secret set.` + clientHelp,
			Example: `  kiln project rotate-secret web
  kiln project rotate-secret web --json`,
			Args: nameArg("project NAME"),
			RunE: func(cmd *cobra.Command, args []string) error {
				return a.projectRotateSecret(cmd.Context(), &o, args[0])
			},
		},
	)
	return cmd
}

// nameArg accepts exactly one argument, described as what.
func nameArg(what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch len(args) {
		case 1:
			return nil
		case 0:
			return &usageError{cmd: cmd.CommandPath(), err: fmt.Errorf("missing %s", what)}
		}
		return &usageError{cmd: cmd.CommandPath(), err: fmt.Errorf("want one %s, got %d arguments", what, len(args))}
	}
}

func (a *app) projectApply(ctx context.Context, o *clientOptions, file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read project file: %w", err)
	}
	// The server validates the file; parsing it here only learns which
	// variables webhook_secret names, to send their values along.
	env := map[string]string{}
	_, _ = project.Parse(file, data, func(k string) string {
		v := os.Getenv(k)
		if v != "" {
			env[k] = v
		}
		return v
	})
	res, err := o.client().Apply(ctx, file, data, env)
	var apiErr *web.APIError
	if errors.As(err, &apiErr) && len(apiErr.Problems) > 0 {
		for _, p := range apiErr.Problems {
			fmt.Fprintln(a.stderr, p)
		}
		n := len(apiErr.Problems)
		return &exitError{code: ExitError, err: fmt.Errorf("%d %s in the project file", n, plural(n, "problem", "problems"))}
	}
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(a, res)
	}
	verb := "updated"
	if res.Created {
		verb = "created"
	}
	fmt.Fprintf(a.stdout, "project %s %s\n", res.Project.Name, verb)
	fmt.Fprintf(a.stdout, "webhook URL:    %s\n", res.WebhookURL)
	if res.WebhookSecret != "" {
		fmt.Fprintf(a.stdout, "webhook secret: %s\n", res.WebhookSecret)
		fmt.Fprintln(a.stdout, "(shown only this once: give it to your Git host now)")
	}
	return nil
}

func (a *app) projectList(ctx context.Context, o *clientOptions) error {
	ps, err := o.client().Projects(ctx)
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(a, ps)
	}
	if len(ps) == 0 {
		fmt.Fprintln(a.stdout, "no projects (kiln project apply -f FILE adds one)")
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tREGION\tBASE\tTYPE\tKEEP\tBRANCH")
	for _, p := range ps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", p.Name, p.Region, baseString(p.Base), p.Type, p.Keep, orDash(p.Branch))
	}
	return tw.Flush()
}

func (a *app) projectShow(ctx context.Context, o *clientOptions, name string) error {
	p, err := o.client().Project(ctx, name)
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(a, p)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 1, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("name", p.Name)
	row("region", p.Region)
	row("base", baseString(p.Base))
	row("type", p.Type)
	if len(p.SecurityGroups) > 0 {
		row("security groups", strings.Join(p.SecurityGroups, ", "))
	}
	if p.Subnet != "" {
		row("subnet", p.Subnet)
	}
	if p.IAMProfile != "" {
		row("iam profile", p.IAMProfile)
	}
	if len(p.Tags) > 0 {
		keys := make([]string, 0, len(p.Tags))
		for k := range p.Tags {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var kv []string
		for _, k := range keys {
			kv = append(kv, k+"="+p.Tags[k])
		}
		row("tags", strings.Join(kv, ", "))
	}
	row("keep", fmt.Sprint(p.Keep))
	row("branch", orDash(p.Branch))
	row("timeouts", fmt.Sprintf("script %s, image %s", p.Timeouts.Script, p.Timeouts.Image))
	if d := p.Distribution; d != nil {
		if len(d.CopyTo) > 0 {
			enc := ""
			if d.Encrypt {
				enc = " (encrypted, key " + cmp.Or(d.KMSKeyID, "the default EBS key") + ")"
			}
			row("copy to", strings.Join(d.CopyTo, ", ")+enc)
		}
		if shared := slices.Concat(d.ShareWith, d.ShareWithOrgs, d.ShareWithOUs); len(shared) > 0 {
			row("shared with", strings.Join(shared, ", "))
		}
	}
	row("webhook URL", p.WebhookURL)
	row("updated", p.UpdatedAt.Local().Format("2006-01-02 15:04:05"))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "script:\n%s\n", indent(strings.TrimRight(p.Script, "\n"), "  "))
	return a.printEnvironments(p.Environments)
}

func (a *app) projectDelete(ctx context.Context, o *clientOptions, name string) error {
	if err := o.client().DeleteProject(ctx, name); err != nil {
		return err
	}
	if o.json {
		return printJSON(a, map[string]string{"deleted": name})
	}
	fmt.Fprintf(a.stdout, "project %s deleted\n", name)
	return nil
}

func (a *app) projectRotateSecret(ctx context.Context, o *clientOptions, name string) error {
	res, err := o.client().RotateSecret(ctx, name)
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(a, res)
	}
	fmt.Fprintf(a.stdout, "project %s has a new webhook secret\n", res.Project)
	fmt.Fprintf(a.stdout, "webhook URL:    %s\n", res.WebhookURL)
	fmt.Fprintf(a.stdout, "webhook secret: %s\n", res.WebhookSecret)
	fmt.Fprintln(a.stdout, "(shown only this once: give it to your Git host now; the old secret no longer works)")
	return nil
}

func baseString(b web.Base) string {
	if b.ID != "" {
		return b.ID
	}
	s := b.Owner + "/" + b.Name
	if b.MostRecent {
		s += " (most recent)"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printJSON(a *app, v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
