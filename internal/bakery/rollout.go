package bakery

import (
	"context"
	"errors"
	"log/slog"

	"kiln/internal/awsapi"
	"kiln/internal/awsres"
	"kiln/internal/project"
)

// rollOut rolls image out to target's group through aws:asg's rollout
// (awsres.RollOut): a new launch template version and an instance
// refresh, waited for. A refresh that failed for good becomes a
// *RolloutFailedError, so the bake fails with its reason and keeps its
// image; other errors are the rollout's (permanent, or retried).
func rollOut(ctx context.Context, hubs *awsapi.Hubs, region, group, imageID string, t project.RolloutTarget, log *slog.Logger) error {
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
		return &RolloutFailedError{Reason: re.Error(), Err: err}
	}
	if err != nil {
		return err
	}
	log.Info("rolled out", "group", res.Group, "template", res.LaunchTemplateID, "version", res.Version,
		"changed", res.Changed, "refreshes", res.Refreshes)
	return nil
}
