package bakery

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"kiln/internal/awsres"
	"kiln/internal/project"
	"kiln/internal/store"
)

// An environment's alarm gate (alarms: and rollback: in the project file,
// kept as its group's Rollout.Alarms and AutoRollback): its instance
// refresh runs with the alarms as Auto Scaling's AlarmSpecification, so an
// alarm that fires during the refresh fails it (and rolls it back with
// rollback: auto, or kiln does); once the group is healthy, and at every
// look of the soak before the next environment, kiln reads the alarms
// itself. An alarm in ALARM then fails the promotion with a reason naming
// it, rolls the environment back to the image and launch-template version
// it ran before (a promotion with cause rollback), and the next
// environment is not promoted.

// alarmsOf reads env's alarms; "" when none is in ALARM (or env has none),
// else why the promotion fails. A failure to read them is logged and
// reads as "" (the next look tries again; the refresh itself is gated by
// Auto Scaling).
func (s *Service) alarmsOf(ctx context.Context, log *slog.Logger, env project.Environment) string {
	names := env.Group.Rollout.Alarms
	if len(names) == 0 {
		return ""
	}
	g, err := alarmGate(ctx, s.envHubs(env), env.Region, names)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("reading the environment's alarms failed", "err", err)
		}
		return ""
	}
	if len(g.Missing) > 0 {
		log.Warn("alarms of the environment do not exist", "alarms", strings.Join(g.Missing, ", "))
	}
	return g.Error()
}

// alarmGate is awsres.Alarms.
var alarmGate = awsres.Alarms

// prepareRollout adjusts p's group before its rollout: a rollback is not
// gated by the alarms (the alarm that caused it may still be in ALARM, and
// would fail the refresh back), and the group goes back to the launch
// template version that last ran p's image with these settings, if any,
// instead of a new copy of it.
func (s *Service) prepareRollout(ctx context.Context, asg *awsres.ASG, p Promotion) {
	if p.Cause == CauseRollback {
		asg.Rollout.Alarms = nil
	}
	ran, err := s.store.Promotions(ctx, store.PromotionQuery{Project: p.Project, Env: p.Env, ImageID: p.ImageID, State: store.PromotionSucceeded, Limit: 10})
	if err != nil {
		return
	}
	for _, q := range ran {
		if q.ID != p.ID && q.Version != "" && q.Digest == p.Digest && !slices.Contains(asg.Reuse, q.Version) {
			asg.Reuse = append(asg.Reuse, q.Version)
		}
	}
}

// alarmFailed fails promotion p of env because of an alarm (reason names
// it), and rolls env back to the image it ran before p: a promotion with
// cause rollback. The soak, when one runs, has been marked failed already.
func (s *Service) alarmFailed(ctx context.Context, log *slog.Logger, p Promotion, env project.Environment, reason, version string) {
	s.finishPromotion(ctx, log, p, store.PromotionFailed, reason, version)
	prev, err := s.current(ctx, p.Project, env.Name)
	switch {
	case err != nil:
		log.Warn("alarm rollback: reading the previous image failed", "err", err)
		return
	case prev == "" || prev == p.ImageID:
		log.Warn("alarm rollback: no earlier image to go back to", "image", p.ImageID)
		return
	}
	log.Warn("rolling back after an alarm", "image", p.ImageID, "back_to", prev, "reason", reason)
	if _, err := s.promote(ctx, p.Project, env.Name, prev, CauseRollback); err != nil {
		log.Warn("alarm rollback refused", "back_to", prev, "err", err)
	}
	s.notify(Progress{Project: p.Project, Detail: fmt.Sprintf("promotion %d to %s failed: %s; rolling back to %s", p.ID, p.Env, reason, prev), Time: time.Now()})
}
