package awsres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"

	"kiln/internal/awsapi"
	"kiln/internal/config"
)

// Rollout are the instance-refresh preferences of a rollout.
type Rollout struct {
	// MinHealthyPercent of the desired capacity stays in service and warmed
	// up while instances are replaced. Default 90.
	MinHealthyPercent *int `yaml:"min_healthy_percent"`
	// Warmup is how long a new instance takes before it counts as healthy.
	// Default: the group's (its health-check grace period).
	Warmup time.Duration `yaml:"warmup"`
	// Checkpoints are percentages of the group replaced after which the
	// refresh pauses for CheckpointDelay (default 1h).
	Checkpoints     []int         `yaml:"checkpoints"`
	CheckpointDelay time.Duration `yaml:"checkpoint_delay"`
	// SkipMatching leaves instances already on the new version alone.
	// Default true.
	SkipMatching *bool `yaml:"skip_matching"`
	// AutoRollback lets Auto Scaling undo a failed refresh itself. Default
	// true; when false kiln rolls back.
	AutoRollback *bool `yaml:"auto_rollback"`
	// Alarms (CloudWatch alarm names, at most 10) fail the refresh when
	// they go to ALARM.
	Alarms []string `yaml:"alarms"`
}

func (p Rollout) validate(prefix string) []error {
	var errs []error
	if m := p.MinHealthyPercent; m != nil && (*m < 0 || *m > 100) {
		errs = append(errs, config.Fieldf(prefix+"min_healthy_percent", "want 0 to 100, got %d", *m))
	}
	if p.Warmup%time.Second != 0 {
		errs = append(errs, config.Fieldf(prefix+"warmup", "want whole seconds, got %s", p.Warmup))
	}
	for i, c := range p.Checkpoints {
		if c < 1 || c > 100 || (i > 0 && c <= p.Checkpoints[i-1]) {
			errs = append(errs, config.Fieldf(prefix+"checkpoints", "want ascending percentages from 1 to 100, got %v", p.Checkpoints))
			break
		}
	}
	if p.CheckpointDelay != 0 {
		if len(p.Checkpoints) == 0 {
			errs = append(errs, config.Fieldf(prefix+"checkpoint_delay", "needs checkpoints"))
		}
		if p.CheckpointDelay > 48*time.Hour || p.CheckpointDelay%time.Second != 0 {
			errs = append(errs, config.Fieldf(prefix+"checkpoint_delay", "want whole seconds up to 48h, got %s", p.CheckpointDelay))
		}
	}
	if len(p.Alarms) > 10 {
		errs = append(errs, config.Fieldf(prefix+"alarms", "at most 10 alarms, got %d", len(p.Alarms)))
	}
	return errs
}

// RolloutError is a failed instance refresh: Auto Scaling's reason, and
// what kiln did about it.
type RolloutError struct {
	Group     string
	RefreshID string
	Version   string // the launch template version that failed
	Status    string // the refresh's final status (RollbackSuccessful, Failed, ...)
	Reason    string // Auto Scaling's StatusReason
}

func (e *RolloutError) Error() string {
	return fmt.Sprintf("instance refresh %s of group %q to version %s failed (%s): %s", e.RefreshID, e.Group, e.Version, e.Status, e.Reason)
}

// RolloutResult says what a rollout did.
type RolloutResult struct {
	Group            string
	LaunchTemplateID string
	Version          string // the template version the group runs now
	Changed          bool   // a version was created, the group updated or instances replaced
	Refreshes        int    // instance refreshes started

	group *astypes.AutoScalingGroup // as last read
}

// roller moves one group's instances to a launch-template version.
type roller struct {
	hub   *awsapi.Hub
	as    groupAPI
	group string
	prefs Rollout
	log   *slog.Logger
}

// maxRefreshes bounds the refreshes one converge starts: more means
// something else keeps changing the group.
const maxRefreshes = 3

// converge makes the group run ltID version on every instance: it waits
// for a refresh already running, starts one when an instance runs another
// version, follows it, and points the group at the version when only the
// group's setting differs. A failed refresh is rolled back (unless Auto
// Scaling did) and returned as *RolloutError.
func (ro *roller) converge(ctx context.Context, ltID, version string, apply bool) (RolloutResult, error) {
	res := RolloutResult{Group: ro.group, LaunchTemplateID: ltID, Version: version}
	for {
		var g *astypes.AutoScalingGroup
		// The group exists (it was just created, or found): not listed
		// yet is Auto Scaling's eventual consistency, waited out here.
		if err := ro.hub.Retry(ctx, func(ctx context.Context) error {
			var err error
			g, err = describeGroup(ctx, ro.as, ro.group)
			if err == nil && g == nil {
				return awsapi.NotYet(fmt.Errorf("group %q not found", ro.group))
			}
			return err
		}); err != nil {
			return res, fmt.Errorf("describe group %q: %w", ro.group, err)
		}
		res.group = g
		act, err := ro.active(ctx)
		if err != nil {
			return res, err
		}
		if act != nil {
			if !apply {
				ro.log.Info("instance refresh running", "group", ro.group, "refresh", aws.ToString(act.InstanceRefreshId))
				return res, nil
			}
			if newer(target(act), ltID, version) {
				// A later change of this template is rolling out: this
				// (older) spec must not undo it.
				return res, fmt.Errorf("group %q: superseded by launch template version %s being rolled out", ro.group, target(act))
			}
			ro.log.Info("waiting for the running instance refresh", "group", ro.group, "refresh", aws.ToString(act.InstanceRefreshId))
			end, reason, err := ro.follow(ctx, aws.ToString(act.InstanceRefreshId))
			if err != nil {
				return res, err
			}
			if target(act) == ltID+":"+version && end.Status != astypes.InstanceRefreshStatusSuccessful {
				return res, ro.failed(ctx, end, version, reason)
			}
			continue
		}
		want := ltID + ":" + version
		outdated := 0
		for _, in := range g.Instances {
			if live(in) && instanceTemplate(in) != want {
				outdated++
			}
		}
		if outdated == 0 {
			if groupTemplate(g) != want {
				if !apply {
					ro.log.Info("would point the group at the version", "group", ro.group, "version", version)
					res.Changed = true
					return res, nil
				}
				ro.log.Info("group template differs: putting it back", "group", ro.group, "was", groupTemplate(g), "version", version)
				if err := ro.hub.Retry(ctx, func(ctx context.Context) error {
					_, err := ro.as.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{
						AutoScalingGroupName: aws.String(ro.group),
						LaunchTemplate:       &astypes.LaunchTemplateSpecification{LaunchTemplateId: aws.String(ltID), Version: aws.String(version)},
					})
					return err
				}); err != nil {
					return res, fmt.Errorf("update template of group %q: %w", ro.group, err)
				}
				res.Changed = true
				continue
			}
			return res, nil
		}
		if !apply {
			ro.log.Info("would refresh instances", "group", ro.group, "outdated", outdated, "version", version)
			res.Changed = true
			return res, nil
		}
		if res.Refreshes == maxRefreshes {
			return res, fmt.Errorf("group %q: %d instances still outdated after %d instance refreshes", ro.group, outdated, maxRefreshes)
		}
		id, err := ro.start(ctx, ltID, version, g)
		if err != nil {
			return res, err
		}
		if id == "" {
			continue // another refresh started first: wait on it
		}
		res.Refreshes++
		res.Changed = true
		ro.log.Info("instance refresh started", "group", ro.group, "refresh", id, "version", version, "outdated", outdated)
		end, reason, err := ro.follow(ctx, id)
		if err != nil {
			return res, err
		}
		if end.Status != astypes.InstanceRefreshStatusSuccessful {
			return res, ro.failed(ctx, end, version, reason)
		}
		ro.log.Info("instance refresh succeeded", "group", ro.group, "refresh", id, "version", version)
		// Done: the group took the version when the refresh succeeded. A
		// later check sees whatever happened since.
		if g, err := describeGroup(ctx, ro.as, ro.group); err == nil && g != nil {
			res.group = g
		}
		return res, nil
	}
}

// newer reports whether tgt ("id:version") is a later version of
// template ltID than version.
func newer(tgt, ltID, version string) bool {
	id, v, ok := strings.Cut(tgt, ":")
	if !ok || id != ltID {
		return false
	}
	a, err1 := strconv.ParseInt(v, 10, 64)
	b, err2 := strconv.ParseInt(version, 10, 64)
	return err1 == nil && err2 == nil && a > b
}

func target(rf *astypes.InstanceRefresh) string {
	if rf.DesiredConfiguration == nil || rf.DesiredConfiguration.LaunchTemplate == nil {
		return ""
	}
	lt := rf.DesiredConfiguration.LaunchTemplate
	return aws.ToString(lt.LaunchTemplateId) + ":" + aws.ToString(lt.Version)
}

// active returns the group's refresh that is not over, or nil.
func (ro *roller) active(ctx context.Context) (*astypes.InstanceRefresh, error) {
	var act *astypes.InstanceRefresh
	err := ro.hub.Retry(ctx, func(ctx context.Context) error {
		out, err := ro.as.DescribeInstanceRefreshes(ctx, &autoscaling.DescribeInstanceRefreshesInput{AutoScalingGroupName: aws.String(ro.group), MaxRecords: aws.Int32(1)})
		if err != nil {
			return err
		}
		act = nil
		if len(out.InstanceRefreshes) > 0 && !over(out.InstanceRefreshes[0].Status) {
			act = &out.InstanceRefreshes[0]
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("describe instance refreshes of group %q: %w", ro.group, err)
	}
	return act, nil
}

func over(s astypes.InstanceRefreshStatus) bool {
	switch s {
	case astypes.InstanceRefreshStatusSuccessful, astypes.InstanceRefreshStatusFailed, astypes.InstanceRefreshStatusCancelled,
		astypes.InstanceRefreshStatusRollbackSuccessful, astypes.InstanceRefreshStatusRollbackFailed:
		return true
	}
	return false
}

func (p Rollout) preferences() *astypes.RefreshPreferences {
	rp := &astypes.RefreshPreferences{
		MinHealthyPercentage: aws.Int32(90),
		SkipMatching:         aws.Bool(p.SkipMatching == nil || *p.SkipMatching),
		AutoRollback:         aws.Bool(p.AutoRollback == nil || *p.AutoRollback),
	}
	if p.MinHealthyPercent != nil {
		rp.MinHealthyPercentage = aws.Int32(int32(*p.MinHealthyPercent))
	}
	if p.Warmup > 0 {
		rp.InstanceWarmup = aws.Int32(int32(p.Warmup / time.Second))
	}
	for _, c := range p.Checkpoints {
		rp.CheckpointPercentages = append(rp.CheckpointPercentages, int32(c))
	}
	if len(p.Checkpoints) > 0 && p.CheckpointDelay > 0 {
		rp.CheckpointDelay = aws.Int32(int32(p.CheckpointDelay / time.Second))
	}
	if len(p.Alarms) > 0 {
		rp.AlarmSpecification = &astypes.AlarmSpecification{Alarms: p.Alarms}
	}
	return rp
}

// start starts a refresh of the group to ltID version and returns its id,
// or "" when another refresh is running already (InstanceRefreshInProgress).
func (ro *roller) start(ctx context.Context, ltID, version string, g *astypes.AutoScalingGroup) (string, error) {
	prefs := ro.prefs.preferences()
	if g.LaunchTemplate == nil || strings.HasPrefix(aws.ToString(g.LaunchTemplate.Version), "$") {
		// Auto Scaling can roll back only to a numbered version.
		prefs.AutoRollback = aws.Bool(false)
	}
	var id string
	err := ro.hub.Retry(ctx, func(ctx context.Context) error {
		out, err := ro.as.StartInstanceRefresh(ctx, &autoscaling.StartInstanceRefreshInput{
			AutoScalingGroupName: aws.String(ro.group),
			Strategy:             astypes.RefreshStrategyRolling,
			DesiredConfiguration: &astypes.DesiredConfiguration{LaunchTemplate: &astypes.LaunchTemplateSpecification{
				LaunchTemplateId: aws.String(ltID), Version: aws.String(version),
			}},
			Preferences: prefs,
		})
		if awsapi.Code(err) == "InstanceRefreshInProgress" {
			return nil
		}
		if err != nil {
			return err
		}
		id = aws.ToString(out.InstanceRefreshId)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("start instance refresh of group %q: %w", ro.group, awsapi.Classify(err, "ValidationError"))
	}
	return id, nil
}

// follow waits until refresh id is over, woken by the group's pushed
// events and otherwise polling DescribeInstanceRefreshes with the hub's
// backoff, and logs its progress. It returns the refresh as it ended and
// the first failure reason it saw.
func (ro *roller) follow(ctx context.Context, id string) (*astypes.InstanceRefresh, string, error) {
	var end *astypes.InstanceRefresh
	var reason string
	lastPct, lastStatus := int32(-1), astypes.InstanceRefreshStatus("")
	err := ro.hub.Await(ctx, ro.group, func(ctx context.Context) (bool, error) {
		out, err := ro.as.DescribeInstanceRefreshes(ctx, &autoscaling.DescribeInstanceRefreshesInput{
			AutoScalingGroupName: aws.String(ro.group), InstanceRefreshIds: []string{id},
		})
		if err != nil {
			return false, err
		}
		if len(out.InstanceRefreshes) == 0 {
			return false, awsapi.NotYet(fmt.Errorf("instance refresh %s not found", id))
		}
		rf := &out.InstanceRefreshes[0]
		pct := aws.ToInt32(rf.PercentageComplete)
		if rf.RollbackDetails != nil && rf.Status == astypes.InstanceRefreshStatusRollbackInProgress {
			pct = aws.ToInt32(rf.RollbackDetails.PercentageCompleteOnRollback)
		}
		if reason == "" {
			switch rf.Status {
			case astypes.InstanceRefreshStatusFailed, astypes.InstanceRefreshStatusRollbackInProgress,
				astypes.InstanceRefreshStatusRollbackSuccessful, astypes.InstanceRefreshStatusRollbackFailed, astypes.InstanceRefreshStatusCancelled:
				reason = aws.ToString(rf.StatusReason)
				if rf.RollbackDetails != nil && aws.ToString(rf.RollbackDetails.RollbackReason) != "" {
					reason = aws.ToString(rf.RollbackDetails.RollbackReason)
				}
			}
		}
		if pct != lastPct || rf.Status != lastStatus {
			lastPct, lastStatus = pct, rf.Status
			ro.log.Info("instance refresh progress", "group", ro.group, "refresh", id, "status", string(rf.Status),
				"percent", pct, "to_update", aws.ToInt32(rf.InstancesToUpdate))
		}
		end = rf
		return over(rf.Status), nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("follow instance refresh %s of group %q: %w", id, ro.group, err)
	}
	if reason == "" {
		reason = aws.ToString(end.StatusReason)
	}
	return end, reason, nil
}

// failed handles a refresh to version that ended without success: when
// Auto Scaling did not roll it back, kiln moves the instances it replaced
// back to the group's own (unchanged) version with a second refresh. It
// returns the *RolloutError to report.
func (ro *roller) failed(ctx context.Context, end *astypes.InstanceRefresh, version, reason string) error {
	e := &RolloutError{Group: ro.group, RefreshID: aws.ToString(end.InstanceRefreshId), Version: version, Status: string(end.Status), Reason: reason}
	ro.log.Warn("instance refresh failed", "group", ro.group, "refresh", e.RefreshID, "status", e.Status, "reason", reason)
	if end.Status != astypes.InstanceRefreshStatusFailed {
		return e // rolled back (or cancelled) by Auto Scaling
	}
	// RollbackInstanceRefresh first: it applies while the refresh is
	// still active (a refresh that fails as we look may not be yet).
	_, err := ro.as.RollbackInstanceRefresh(ctx, &autoscaling.RollbackInstanceRefreshInput{AutoScalingGroupName: aws.String(ro.group)})
	if err == nil {
		back, _, ferr := ro.follow(ctx, e.RefreshID)
		if ferr != nil {
			return errors.Join(e, ferr)
		}
		e.Status = string(back.Status)
		return e
	}
	g, err := describeGroup(ctx, ro.as, ro.group)
	if err != nil || g == nil || g.LaunchTemplate == nil {
		return errors.Join(e, fmt.Errorf("roll back group %q: %v", ro.group, err))
	}
	back := &roller{hub: ro.hub, as: ro.as, group: ro.group, prefs: ro.prefs, log: ro.log}
	f, t := false, true
	back.prefs.AutoRollback, back.prefs.SkipMatching = &f, &t
	back.prefs.Checkpoints, back.prefs.CheckpointDelay = nil, 0
	back.prefs.Alarms = nil // the alarm that failed the refresh must not fail its rollback
	id, err := back.start(ctx, aws.ToString(g.LaunchTemplate.LaunchTemplateId), aws.ToString(g.LaunchTemplate.Version), g)
	if err != nil || id == "" {
		return errors.Join(e, fmt.Errorf("roll back group %q: %v", ro.group, err))
	}
	ro.log.Info("rolling back", "group", ro.group, "refresh", id, "version", aws.ToString(g.LaunchTemplate.Version))
	rb, _, err := back.follow(ctx, id)
	if err != nil {
		return errors.Join(e, err)
	}
	e.Status = "Failed; rollback " + string(rb.Status)
	return e
}
