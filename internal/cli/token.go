package cli

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"kiln/internal/auth"
	"kiln/internal/web"
)

func newTokenCmd(a *app) *cobra.Command {
	var o clientOptions
	cmd := &cobra.Command{
		Use:   "token create|list|revoke",
		Short: "Manage personal API tokens (admin)",
		Long: `Token manages the personal API tokens of a kiln server. A token has a name
and a role (viewer: read; deployer: also bake, cancel, promote; admin: also
projects, secrets, tokens). It is shown once, when created; the server keeps
only its hash. Use it as KILN_TOKEN. Revoking a token refuses it at once.
The admin token (kiln serve's first start prints it) stays the break-glass.` + clientHelp,
		Example: `  kiln token create --name ci --role deployer --expires 90d
  kiln token list
  kiln token revoke ci`,
		Args: cobra.NoArgs,
	}
	addClientFlags(cmd, &o)
	var (
		name, role, expires string
	)
	create := &cobra.Command{
		Use:   "create --name NAME --role ROLE [--expires 30d]",
		Short: "Create a token and print it, this once",
		Example: `  kiln token create --name ci --role deployer --expires 90d
  kiln token create --name alice --role viewer`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				return &usageError{cmd: cmd.CommandPath(), err: fmt.Errorf("--name is required")}
			}
			r, err := auth.ParseRole(role)
			if err != nil {
				return &usageError{cmd: cmd.CommandPath(), err: fmt.Errorf("--role: %w", err)}
			}
			if _, err := web.ParseExpiry(expires); err != nil {
				return &usageError{cmd: cmd.CommandPath(), err: fmt.Errorf("--%w", err)}
			}
			return a.tokenCreate(cmd.Context(), &o, web.TokenRequest{Name: name, Role: r, Expires: expires})
		},
	}
	create.Flags().StringVar(&name, "name", "", "the token's name (whose it is, or what uses it)")
	create.Flags().StringVar(&role, "role", "", "viewer, deployer or admin")
	create.Flags().StringVar(&expires, "expires", "", "lifetime, in days (30d) or as a duration (12h); default: never expires")
	cmd.AddCommand(
		create,
		&cobra.Command{
			Use:     "list",
			Short:   "List tokens with their role, last use and expiry",
			Example: `  kiln token list --json`,
			Args:    cobra.NoArgs,
			RunE:    func(cmd *cobra.Command, _ []string) error { return a.tokenList(cmd.Context(), &o) },
		},
		&cobra.Command{
			Use:     "revoke NAME",
			Short:   "Revoke a token at once",
			Example: `  kiln token revoke ci`,
			Args:    nameArg("token NAME"),
			RunE: func(cmd *cobra.Command, args []string) error {
				if err := o.client().RevokeToken(cmd.Context(), args[0]); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "token %s revoked\n", args[0])
				return nil
			},
		},
	)
	return cmd
}

func (a *app) tokenCreate(ctx context.Context, o *clientOptions, req web.TokenRequest) error {
	nt, err := o.client().CreateToken(ctx, req)
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(a, nt)
	}
	exp := "never expires"
	if nt.ExpiresAt != nil {
		exp = "expires " + nt.ExpiresAt.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(a.stdout, "token %s created, role %s, %s (shown only this once; the server keeps its hash):\n\n  export KILN_TOKEN=%s\n\n",
		nt.Name, nt.Role, exp, nt.Secret)
	return nil
}

func (a *app) tokenList(ctx context.Context, o *clientOptions) error {
	ts, err := o.client().Tokens(ctx)
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(a, ts)
	}
	if len(ts) == 0 {
		fmt.Fprintln(a.stdout, "no tokens (kiln token create --name NAME --role ROLE adds one)")
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tCREATED\tLAST USED\tEXPIRES\tSTATE")
	for _, t := range ts {
		state := "live"
		switch {
		case t.RevokedAt != nil:
			state = "revoked " + stamp(t.RevokedAt)
		case t.ExpiresAt != nil && !time.Now().Before(*t.ExpiresAt):
			state = "expired"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.Role, stamp(&t.CreatedAt), stamp(t.LastUsed), stamp(t.ExpiresAt), state)
	}
	return tw.Flush()
}

// stamp is a time for a table: UTC to the minute, "-" for none.
func stamp(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04Z")
}
