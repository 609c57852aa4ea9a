package cli

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"kiln/internal/web"
)

type auditOptions struct {
	project, actor, action, since string
	limit                         int
}

func newAuditCmd(a *app) *cobra.Command {
	var (
		o  clientOptions
		ao auditOptions
	)
	cmd := &cobra.Command{
		Use:   "audit [--project P] [--since D] [--actor A] [--action X]",
		Short: "Show the audit log: who changed what, when, from where, and how it ended",
		Long: `Audit prints the server's audit log, newest first: every project apply and
delete, secret rotation, manual and webhook-triggered bake, cancel,
promotion, token creation and revocation and sign-in, refused ones too,
with who did it (a user, a token's name, the admin token, or the webhook
delivery), the request's address and the outcome.` + clientHelp,
		Example: `  kiln audit --project web --since 7d
  kiln audit --actor ci --action bake.
  kiln audit --since 2026-01-02 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ao.since != "" {
				if _, err := web.ParseSince(ao.since, time.Now()); err != nil {
					return &usageError{cmd: cmd.CommandPath(), err: fmt.Errorf("--%w", err)}
				}
			}
			return a.audit(cmd.Context(), &o, ao)
		},
	}
	addClientFlags(cmd, &o)
	f := cmd.Flags()
	f.StringVar(&ao.project, "project", "", "only this project's rows")
	f.StringVar(&ao.since, "since", "", "only rows from this time on: 2026-01-02, RFC 3339, or a duration back from now (24h, 7d)")
	f.StringVar(&ao.actor, "actor", "", "only this actor's rows (a user, a token's name, admin-token)")
	f.StringVar(&ao.action, "action", "", `only this action (bake.trigger), or a family ("bake.")`)
	f.IntVar(&ao.limit, "limit", 50, "rows to show (1 to 1000)")
	return cmd
}

func (a *app) audit(ctx context.Context, o *clientOptions, ao auditOptions) error {
	q := url.Values{}
	for k, v := range map[string]string{"project": ao.project, "actor": ao.actor, "action": ao.action} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if ao.since != "" {
		// Resolved here: "24h" means before now on this machine.
		t, _ := web.ParseSince(ao.since, time.Now())
		q.Set("since", t.UTC().Format(time.RFC3339))
	}
	q.Set("limit", strconv.Itoa(ao.limit))
	list, err := o.client().Audit(ctx, q)
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(a, list.Entries)
	}
	if len(list.Entries) == 0 {
		fmt.Fprintln(a.stdout, "no audit rows")
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tACTOR\tACTION\tPROJECT\tTARGET\tFROM\tOUTCOME")
	for _, e := range list.Entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.At.UTC().Format("2006-01-02 15:04:05Z"), e.Actor, e.Action,
			orDash(e.Project), orDash(e.Target), orDash(e.Remote), e.Outcome)
	}
	return tw.Flush()
}
