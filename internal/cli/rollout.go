package cli

import (
	"context"
	"errors"
	"log/slog"

	"kiln/internal/awsapi"
	"kiln/internal/awsres"
	"kiln/internal/bake"
)

// bakeOptions are the bake service's options of kiln serve and kiln bake
// --local: production's, with rollouts through hubs.
func bakeOptions(hubs *awsapi.Hubs) bake.Options {
	return bake.Options{RollOut: bakeRollOut(hubs)}
}

// bakeRollOut is bake.Options.RollOut: awsres.RollOut through hubs (bake
// cannot import awsres, which imports bake), a failed instance refresh
// turned into a *bake.RolloutFailedError so the bake fails with its reason.
func bakeRollOut(hubs *awsapi.Hubs) func(ctx context.Context, region, group, imageID string, t bake.RolloutTarget, log *slog.Logger) error {
	return func(ctx context.Context, region, group, imageID string, t bake.RolloutTarget, log *slog.Logger) error {
		res, err := awsres.RollOut(ctx, hubs, region, group, imageID, awsres.Rollout{
			MinHealthyPercent: t.MinHealthyPercent,
			Warmup:            t.Warmup,
			Checkpoints:       t.Checkpoints,
			CheckpointDelay:   t.CheckpointDelay,
			SkipMatching:      t.SkipMatching,
			AutoRollback:      t.AutoRollback,
			Alarms:            t.Alarms,
		}, log)
		var re *awsres.RolloutError
		if errors.As(err, &re) {
			return &bake.RolloutFailedError{Reason: re.Error(), Err: err}
		}
		if err != nil {
			return err
		}
		log.Info("rolled out", "group", res.Group, "template", res.LaunchTemplateID, "version", res.Version,
			"changed", res.Changed, "refreshes", res.Refreshes)
		return nil
	}
}
