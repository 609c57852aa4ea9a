package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func newRevokeCmd(a *app) *cobra.Command {
	var (
		o      clientOptions
		reason string
	)
	cmd := &cobra.Command{
		Use:   "revoke PROJECT IMAGE --reason TEXT",
		Short: "Revoke a bad image: refuse it from now on and take every environment off it",
		Long: `Revoke marks one of the project's images as bad (admin role): the image is
tagged kiln:revoked with the reason and recorded, every later promotion of it
is refused ("image ami-... was revoked: REASON"), and every environment
running it is promoted, in pipeline order (each after the one before has
ended), to the newest good image baked before it: not revoked, and (images
that failed their tests are never promoted) tested.

An environment with no good image before the revoked one keeps running it:
revoke says so and exits 1, so that a script notices; bake a fixed image and
promote it. kiln images marks revoked images; kiln project show shows the
promotions back. The revocation, with who revoked and why, is in the audit
log (image.revoke), and targets subscribed to image.revoked are told.` + clientHelp,
		Example: `  kiln revoke web ami-0123456789abcdef0 --reason "leaks memory under load"
  kiln revoke web ami-0123456789abcdef0 --reason CVE-2026-1234 --json`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return &usageError{cmd: cmd.CommandPath(), err: errors.New("missing --reason TEXT: say why the image is revoked")}
			}
			return a.revoke(cmd.Context(), &o, args[0], args[1], reason)
		},
	}
	addClientFlags(cmd, &o)
	cmd.Flags().StringVar(&reason, "reason", "", "why the image is revoked (required; the image's kiln:revoked tag)")
	return cmd
}

func (a *app) revoke(ctx context.Context, o *clientOptions, project, image, reason string) error {
	rv, err := o.client().Revoke(ctx, project, image, reason)
	if err != nil {
		return err
	}
	if o.json {
		if err := printJSON(a, rv); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(a.stdout, "image %s of %s revoked: %s\n", rv.ImageID, project, rv.Reason)
		for _, r := range rv.Replace {
			fmt.Fprintf(a.stdout, "  %s: going back to %s\n", r.Env, r.To)
		}
		if len(rv.Replace)+len(rv.Stranded) == 0 {
			fmt.Fprintln(a.stdout, "  no environment runs it")
		}
	}
	if len(rv.Stranded) > 0 {
		return &exitError{code: ExitError, err: fmt.Errorf("still running the revoked image %s, with no good image baked before it: %s; bake a fixed image and promote it",
			image, strings.Join(rv.Stranded, ", "))}
	}
	return nil
}
