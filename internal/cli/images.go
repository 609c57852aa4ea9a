package cli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"kiln/internal/web"
)

func newImagesCmd(a *app) *cobra.Command {
	var o clientOptions
	cmd := &cobra.Command{
		Use:   "images PROJECT",
		Short: "List a project's kept images: copies, state, use by environments, deprecation",
		Long: `Images lists the images kiln keeps for the project, newest first: each with
its bake, commit and region, its state in EC2 (available, pending, failed,
disabled, or gone when EC2 no longer has it), its copies in other regions with
theirs, whether it is in use and by which environments (the image an
environment runs, or one a promotion is taking there), and when EC2 deprecates
it. Retention never removes an image in use.` + clientHelp,
		Example: `  kiln images web
  kiln images web --json`,
		Args: nameArg("PROJECT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.images(cmd.Context(), &o, args[0])
		},
	}
	addClientFlags(cmd, &o)
	return cmd
}

func (a *app) images(ctx context.Context, o *clientOptions, project string) error {
	imgs, err := o.client().Images(ctx, project)
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(a, struct {
			Images []web.Image `json:"images"`
		}{imgs})
	}
	if len(imgs) == 0 {
		fmt.Fprintf(a.stdout, "project %s has no images yet\n", project)
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tBAKE\tCREATED\tREGION\tSTATE\tIN USE BY\tCOPIES\tDEPRECATION")
	for _, im := range imgs {
		bake := "-"
		if im.BakeID != 0 {
			bake = fmt.Sprint(im.BakeID)
		}
		use := strings.Join(im.Environments, ",")
		for _, e := range im.Rolling {
			use = strings.TrimPrefix(use+","+e+" (rolling)", ",")
		}
		var copies []string
		for _, c := range im.Copies {
			copies = append(copies, fmt.Sprintf("%s:%s(%s)", c.Region, orDash(c.ID), c.State))
		}
		dep := "-"
		if im.Deprecation != nil {
			dep = im.Deprecation.UTC().Format("2006-01-02 15:04 MST")
		}
		state := im.State
		if im.Revoked != "" {
			state += ", REVOKED: " + im.Revoked
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", im.ID, bake, im.CreatedAt.Local().Format("2006-01-02 15:04:05"),
			im.Region, state, orDash(use), orDash(strings.Join(copies, " ")), dep)
	}
	return tw.Flush()
}
