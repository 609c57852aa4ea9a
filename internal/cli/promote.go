package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"kiln/internal/web"
)

func newPromoteCmd(a *app) *cobra.Command {
	var (
		o           clientOptions
		to, image   string
		wait        bool
		waitTimeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "promote PROJECT --to ENV [--image ami-...]",
		Short: "Roll an image out to one of a project's environments (promotion, rollback)",
		Long: `Promote rolls an image out to an environment of the project (see
environments in the project file): a new launch-template version of the
environment's group with the image and the environment's configuration, and
an instance refresh.

Without --image it promotes what the previous environment runs (for the first
environment, the newest image). Environments go in order: an image must have
run successfully in the previous environment first. A rollback is a promotion
of an earlier image. An image that is not the project's or not available, an
unknown environment, or a promotion that skips one is refused and changes
nothing (exit 1); so is a promotion while the environment's rollout runs.

With --wait, promote waits until the rollout is over: exit 0 when it
succeeded, 1 when it failed. Without it, promote returns once the rollout has
started; kiln project show PROJECT shows how it goes.` + clientHelp,
		Example: `  kiln promote web --to production
  kiln promote web --to production --image ami-0123456789abcdef0 --wait
  kiln promote web --to staging --json`,
		Args: nameArg("PROJECT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return &usageError{cmd: cmd.CommandPath(), err: errors.New("missing --to ENV")}
			}
			return a.promote(cmd.Context(), &o, args[0], to, image, wait, waitTimeout)
		},
	}
	addClientFlags(cmd, &o)
	f := cmd.Flags()
	f.StringVar(&to, "to", "", "the environment to promote to")
	f.StringVar(&image, "image", "", "the image (default: the previous environment's; for the first, the newest)")
	f.BoolVar(&wait, "wait", false, "wait until the rollout is over; exit 1 when it failed")
	f.DurationVar(&waitTimeout, "wait-timeout", time.Hour, "with --wait: give up waiting after this long (the rollout goes on)")
	return cmd
}

func (a *app) promote(ctx context.Context, o *clientOptions, project, env, image string, wait bool, timeout time.Duration) error {
	c := o.client()
	p, err := c.Promote(ctx, project, env, image)
	if err != nil {
		return err
	}
	if !o.json {
		fmt.Fprintf(a.stdout, "promotion %d: %s to %s of %s: rolling out\n", p.ID, p.Image, env, project)
	}
	if !wait {
		if o.json {
			return printJSON(a, p)
		}
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		envs, err := c.Environments(wctx, project)
		if err != nil {
			if wctx.Err() != nil && ctx.Err() == nil {
				return fmt.Errorf("promotion %d still rolling after %s (it goes on; kiln project show %s)", p.ID, timeout, project)
			}
			return err
		}
		for _, e := range envs {
			for _, q := range e.Promotions {
				if q.ID != p.ID || q.State == "rolling" {
					continue
				}
				if o.json {
					if err := printJSON(a, q); err != nil {
						return err
					}
				} else {
					fmt.Fprintf(a.stdout, "promotion %d %s: %s runs %s\n", q.ID, q.State, env, q.Image)
				}
				if q.State != "succeeded" {
					return &exitError{code: ExitError, err: fmt.Errorf("promotion %d failed: %s", q.ID, q.Reason)}
				}
				return nil
			}
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("promotion %d still rolling after %s (it goes on; kiln project show %s)", p.ID, timeout, project)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// printEnvironments is the environments part of kiln project show.
func (a *app) printEnvironments(envs []web.Environment) error {
	if len(envs) == 0 {
		return nil
	}
	fmt.Fprintln(a.stdout, "environments:")
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tPROMOTION\tGROUP\tSIZE\tIMAGE\tSTATE\tCONFIG")
	for _, e := range envs {
		rule := e.Promotion
		if e.Soak != "" {
			rule += " after " + e.Soak
		}
		var kv []string
		for _, c := range e.Config {
			kv = append(kv, c.Key+"="+c.Value)
		}
		state := e.State
		if e.Detail != "" {
			state += " (" + e.Detail + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Name, rule, e.Group, envSize(e), orDash(e.Image), state, orDash(strings.Join(kv, " ")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, e := range envs {
		if len(e.Promotions) == 0 {
			continue
		}
		fmt.Fprintf(a.stdout, "promotions to %s:\n", e.Name)
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		for _, p := range e.Promotions[:min(len(e.Promotions), 5)] {
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\n", p.ID, p.CreatedAt.Local().Format("2006-01-02 15:04:05"), p.Image, p.State, p.Cause)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// envSize is an environment's size as kiln project show prints it: the
// live InService (and healthy) count beside the declared range, "2/2-4".
func envSize(e web.Environment) string {
	declared := fmt.Sprintf("%d-%d", e.Min, e.Max)
	switch {
	case e.Live == nil:
		return "?/" + declared
	case !e.Live.Exists:
		return "no group/" + declared
	}
	return fmt.Sprintf("%d/%s", e.Live.InService, declared)
}
