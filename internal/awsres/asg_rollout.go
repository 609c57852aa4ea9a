package awsres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awsapi"
	"kiln/internal/engine"
)

// RollOut moves the Auto Scaling group named group in region ("" = the
// default) to imageID: it makes a numbered version of the group's launch
// template that differs from the group's current version only in its
// image (or reuses the current version when it has that image already),
// then replaces every instance running another version with an instance
// refresh under prefs, followed to its end (pushed events, else polling),
// and logs its progress to log. A refresh already running is waited on
// first. A failed refresh is rolled back (by Auto Scaling with
// auto_rollback, else by kiln) and returned as a *RolloutError.
//
// It is what a bake calls as its last steps when its project names a
// rollout target. The rollout is an aws:asg resource converged by
// engine.Converge (its panic guard; tried once, since the bake's job is
// what retries). It blocks until the rollout is over or ctx is done; it is
// idempotent (the version is created with a client token derived from
// group, template, base version and image), so a bake resumed after a
// crash follows the same rollout instead of starting another.
func RollOut(ctx context.Context, hubs *awsapi.Hubs, region, group, imageID string, prefs Rollout, log *slog.Logger) (RolloutResult, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &groupRollout{hubs: hubs, region: region, group: group, image: imageID, prefs: prefs, log: log}
	_, err := engine.Converge(ctx, r, engine.Env{ID: "aws:asg/" + group, Kind: "aws:asg", Name: group, Log: log})
	return r.res, err
}

// groupRollout is RollOut as a resource: an existing group (not kiln's
// aws:asg group) whose launch template gets imageID.
type groupRollout struct {
	hubs                 *awsapi.Hubs
	region, group, image string
	prefs                Rollout
	log                  *slog.Logger

	res RolloutResult // the last CheckApply's
}

// Static: nothing to watch, the caller converges it once.
func (r *groupRollout) Static() bool { return true }

// Watch is never called (Static).
func (r *groupRollout) Watch(ctx context.Context, ev engine.Events) error {
	ev.Running()
	<-ctx.Done()
	return nil
}

// CheckApply is the rollout (see RollOut); check only, it creates no
// version and starts no refresh.
func (r *groupRollout) CheckApply(ctx context.Context, apply bool) (bool, error) {
	res, err := r.rollOut(ctx, apply)
	r.res = res
	return !res.Changed, err
}

func (r *groupRollout) rollOut(ctx context.Context, apply bool) (RolloutResult, error) {
	hubs, region, group, imageID, prefs, log := r.hubs, r.region, r.group, r.image, r.prefs, r.log
	res := RolloutResult{Group: group}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if errs := prefs.validate("rollout."); len(errs) > 0 {
		return res, engine.Permanent(errors.Join(errs...))
	}
	hub, as, g, err := findGroup(ctx, hubs, region, group)
	if err != nil {
		return res, fmt.Errorf("roll out to group %q: %w", group, err)
	}
	ec := hub.EC2()
	if g == nil {
		return res, engine.Permanent(fmt.Errorf("roll out to group %q: no such Auto Scaling group in %s", group, hub.Region()))
	}
	if g.LaunchTemplate == nil {
		return res, engine.Permanent(fmt.Errorf("roll out to group %q: the group has no launch template (mixed instances policies and launch configurations are not supported)", group))
	}
	ltID := aws.ToString(g.LaunchTemplate.LaunchTemplateId)
	var base types.LaunchTemplateVersion
	if err := hub.Retry(ctx, func(ctx context.Context) error {
		in := &ec2.DescribeLaunchTemplateVersionsInput{Versions: []string{aws.ToString(g.LaunchTemplate.Version)}}
		if ltID != "" {
			in.LaunchTemplateId = aws.String(ltID)
		} else {
			in.LaunchTemplateName = g.LaunchTemplate.LaunchTemplateName
		}
		out, err := ec.DescribeLaunchTemplateVersions(ctx, in)
		if err != nil {
			return err
		}
		if len(out.LaunchTemplateVersions) == 0 {
			return awsapi.NotYet(fmt.Errorf("launch template of group %q has no version %s", group, aws.ToString(g.LaunchTemplate.Version)))
		}
		base = out.LaunchTemplateVersions[0]
		return nil
	}); err != nil {
		return res, fmt.Errorf("roll out to group %q: %w", group, err)
	}
	ltID = aws.ToString(base.LaunchTemplateId)
	res.LaunchTemplateID = ltID
	n := aws.ToInt64(base.VersionNumber)
	if base.LaunchTemplateData == nil || aws.ToString(base.LaunchTemplateData.ImageId) != imageID {
		if d := base.LaunchTemplateData; d != nil && d.InstanceType != "" {
			if err := hub.CheckArchitecture(ctx, imageID, string(d.InstanceType)); err != nil {
				return res, fmt.Errorf("roll out to group %q: %w", group, err)
			}
		}
		if !apply {
			log.Info("would create launch template version", "group", group, "template", ltID, "image", imageID)
			res.Changed = true
			return res, nil
		}
		in := &ec2.CreateLaunchTemplateVersionInput{
			LaunchTemplateId:   aws.String(ltID),
			SourceVersion:      aws.String(strconv.FormatInt(n, 10)),
			LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: aws.String(imageID)},
			ClientToken:        aws.String(token("rollout", group, ltID, strconv.FormatInt(n, 10), imageID)),
		}
		var out *ec2.CreateLaunchTemplateVersionOutput
		if err := hub.Retry(ctx, func(ctx context.Context) error {
			var err error
			out, err = ec.CreateLaunchTemplateVersion(ctx, in)
			return err
		}); err != nil {
			return res, fmt.Errorf("roll out to group %q: create launch template version: %w", group, awsapi.Classify(err, "InvalidAMIID.NotFound", "InvalidAMIID.Malformed"))
		}
		n = aws.ToInt64(out.LaunchTemplateVersion.VersionNumber)
		res.Changed = true
		log.Info("launch template version created", "group", group, "template", ltID, "version", n, "image", imageID)
	}
	ro := &roller{hub: hub, as: as, group: group, prefs: prefs, log: log}
	out, err := ro.converge(ctx, ltID, strconv.FormatInt(n, 10), apply)
	out.Changed = out.Changed || res.Changed
	return out, err
}

// RolloutIAMActions are the calls RollOut and awsapi.Hubs.ImagesInUse
// make, for the policy of a bakery whose projects roll out.
func RolloutIAMActions() []string {
	return []string{
		"autoscaling:DescribeAutoScalingGroups", "autoscaling:StartInstanceRefresh", "autoscaling:DescribeInstanceRefreshes",
		"autoscaling:RollbackInstanceRefresh", "ec2:CreateLaunchTemplateVersion", "ec2:DescribeLaunchTemplateVersions",
		"ec2:RunInstances", "ec2:CreateTags", "ec2:DescribeImages", "ec2:DescribeInstanceTypes",
	}
}

// findGroup reads the group named group in region (nil when there is
// none), with the region's hub and Auto Scaling client.
func findGroup(ctx context.Context, hubs *awsapi.Hubs, region, group string) (*awsapi.Hub, groupAPI, *astypes.AutoScalingGroup, error) {
	hub, err := hubs.Hub(ctx, region)
	if err != nil {
		return nil, nil, nil, err
	}
	as, err := hubs.AutoScaling(ctx, hub.Region())
	if err != nil {
		return nil, nil, nil, err
	}
	var g *astypes.AutoScalingGroup
	err = hub.Retry(ctx, func(ctx context.Context) error {
		var err error
		g, err = describeGroup(ctx, as, group)
		return err
	})
	return hub, as, g, err
}

// Health is what GroupHealth found.
type Health struct {
	Healthy   bool
	Reason    string   // why not, when not
	Instances []string // the group's live instances, sorted
}

// GroupHealth reports whether the Auto Scaling group named group in region
// is healthy: it exists, at least its desired capacity of live instances
// are InService and Healthy, all of them on the group's launch-template
// version, and no instance refresh is running. When it is not, Reason
// says why. A soak before an automatic promotion asks it repeatedly, and
// compares Instances too: an instance replaced meanwhile was unhealthy.
func GroupHealth(ctx context.Context, hubs *awsapi.Hubs, region, group string) (Health, error) {
	hub, as, g, err := findGroup(ctx, hubs, region, group)
	if err != nil {
		return Health{}, fmt.Errorf("health of group %q: %w", group, err)
	}
	if g == nil {
		return Health{Reason: fmt.Sprintf("group %s does not exist", group)}, nil
	}
	var h Health
	want := groupTemplate(g)
	for _, in := range g.Instances {
		if !live(in) {
			continue
		}
		id := aws.ToString(in.InstanceId)
		h.Instances = append(h.Instances, id)
		switch {
		case h.Reason != "":
		case in.LifecycleState != astypes.LifecycleStateInService:
			h.Reason = fmt.Sprintf("instance %s is %s", id, in.LifecycleState)
		case aws.ToString(in.HealthStatus) != "Healthy":
			h.Reason = fmt.Sprintf("instance %s is %s", id, aws.ToString(in.HealthStatus))
		case instanceTemplate(in) != want:
			h.Reason = fmt.Sprintf("instance %s runs %s, the group %s", id, instanceTemplate(in), want)
		}
	}
	slices.Sort(h.Instances)
	if d := int(aws.ToInt32(g.DesiredCapacity)); h.Reason == "" && len(h.Instances) < d {
		h.Reason = fmt.Sprintf("%d of %d instances in service", len(h.Instances), d)
	}
	if h.Reason != "" {
		return h, nil
	}
	ro := &roller{hub: hub, as: as, group: group, log: slog.New(slog.DiscardHandler)}
	act, err := ro.active(ctx)
	if err != nil {
		return Health{}, err
	}
	if act != nil {
		h.Reason = fmt.Sprintf("instance refresh %s is %s", aws.ToString(act.InstanceRefreshId), act.Status)
		return h, nil
	}
	h.Healthy = true
	return h, nil
}

var (
	_ engine.Resource = (*groupRollout)(nil)
	_ engine.Static   = (*groupRollout)(nil)
)

// GroupState is an Auto Scaling group as ReadGroup found it.
type GroupState struct {
	Exists            bool
	Min, Max, Desired int
	LaunchTemplateID  string
	Version           string // the group's launch-template version
	Live              int    // live instances (not on their way out)
	InService         int    // of those, InService and Healthy
}

// ReadGroup reads the Auto Scaling group named group in region (one
// DescribeAutoScalingGroups): its size, its launch-template version and
// how many of its instances are in service and healthy. A group that does
// not exist is a GroupState with Exists false, not an error.
func ReadGroup(ctx context.Context, hubs *awsapi.Hubs, region, group string) (GroupState, error) {
	_, _, g, err := findGroup(ctx, hubs, region, group)
	if err != nil {
		return GroupState{}, fmt.Errorf("read group %q: %w", group, err)
	}
	if g == nil {
		return GroupState{}, nil
	}
	st := GroupState{Exists: true, Min: int(aws.ToInt32(g.MinSize)), Max: int(aws.ToInt32(g.MaxSize)),
		Desired: int(aws.ToInt32(g.DesiredCapacity)), InService: inService(g)}
	if lt := g.LaunchTemplate; lt != nil {
		st.LaunchTemplateID, st.Version = aws.ToString(lt.LaunchTemplateId), aws.ToString(lt.Version)
	}
	for _, in := range g.Instances {
		if live(in) {
			st.Live++
		}
	}
	return st, nil
}
