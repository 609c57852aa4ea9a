package awsres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awsapi"
	"kiln/internal/config"
	"kiln/internal/engine"
	"kiln/internal/iampolicy"
)

// groupAPI is what aws:asg and RollOut call on Auto Scaling, in the SDK's
// shape: *autoscaling.Client satisfies it.
type groupAPI interface {
	DescribeAutoScalingGroups(context.Context, *autoscaling.DescribeAutoScalingGroupsInput, ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingGroupsOutput, error)
	CreateAutoScalingGroup(context.Context, *autoscaling.CreateAutoScalingGroupInput, ...func(*autoscaling.Options)) (*autoscaling.CreateAutoScalingGroupOutput, error)
	UpdateAutoScalingGroup(context.Context, *autoscaling.UpdateAutoScalingGroupInput, ...func(*autoscaling.Options)) (*autoscaling.UpdateAutoScalingGroupOutput, error)
	StartInstanceRefresh(context.Context, *autoscaling.StartInstanceRefreshInput, ...func(*autoscaling.Options)) (*autoscaling.StartInstanceRefreshOutput, error)
	DescribeInstanceRefreshes(context.Context, *autoscaling.DescribeInstanceRefreshesInput, ...func(*autoscaling.Options)) (*autoscaling.DescribeInstanceRefreshesOutput, error)
	RollbackInstanceRefresh(context.Context, *autoscaling.RollbackInstanceRefreshInput, ...func(*autoscaling.Options)) (*autoscaling.RollbackInstanceRefreshOutput, error)
}

// ASG is the aws:asg kind: an Auto Scaling group named by the resource's
// name, and the launch template kiln keeps for it (tagged kiln:owner and
// kiln:resource). Every change of image, type, user data or security groups
// becomes a new numbered template version, and the group's instances are
// moved to it by an instance refresh that keeps Rollout.MinHealthyPercent of
// the group in service and rolls back when it fails. Capacity or template
// changed by hand are put back. Outputs: group, launch_template_id, version.
type ASG struct {
	Region         string   `yaml:"region"`          // default: AWS_REGION
	Image          string   `yaml:"image"`           // AMI id, usually ${aws:ami/NAME.image_id}
	Type           string   `yaml:"type"`            // instance type
	UserData       string   `yaml:"user_data"`       // plain text; kiln base64-encodes it
	SecurityGroups []string `yaml:"security_groups"` // group ids
	Subnets        []string `yaml:"subnets"`         // subnet ids; default: the default subnets
	IAMProfile     string   `yaml:"iam_profile"`     // instance profile name or ARN of the instances
	Min            int      `yaml:"min"`
	Max            int      `yaml:"max"`
	Desired        *int     `yaml:"desired"` // default: min
	Rollout        Rollout  `yaml:"rollout"`
	// WaitForCapacity bounds how long a check waits, after creating or
	// changing the group, until its desired capacity is InService and
	// healthy: the check converges only then. Default 10m; 0 skips the wait.
	WaitForCapacity *time.Duration `yaml:"wait_for_capacity"`
	// Reuse are launch-template versions (numbers) to go back to when
	// their data is what the spec asks for, besides the latest version and
	// those the group uses: a promotion back to an earlier image names the
	// version that ran it, so the group returns to that version instead of
	// a new copy of it. Not a graph field.
	Reuse []string `yaml:"-"`

	hubs *awsapi.Hubs
	env  engine.Env
	poll time.Duration

	hub *awsapi.Hub
	as  groupAPI
	ec  templateAPI

	mu     sync.Mutex
	out    map[string]string
	seen   string            // fingerprint of the group as the last CheckApply left it
	busy   bool              // a CheckApply is running: Watch stays quiet
	failed map[string]string // template version → why its refresh failed (also on the template's tags)
}

// NewASG returns an empty aws:asg resource using the shared hubs.
func NewASG(hubs *awsapi.Hubs) *ASG {
	return &ASG{hubs: hubs}
}

// Validate checks the fields (values holding a ${...} reference are checked
// once resolved).
func (r *ASG) Validate() error {
	var errs []error
	if r.Image == "" {
		errs = append(errs, config.Fieldf("image", "required (an AMI id, e.g. ${aws:ami/web.image_id})"))
	} else if !config.HasRef(r.Image) && !strings.HasPrefix(r.Image, "ami-") {
		errs = append(errs, config.Fieldf("image", "want an AMI id like \"ami-0abc...\", got %q", r.Image))
	}
	if r.Type == "" {
		errs = append(errs, config.Fieldf("type", "required (e.g. t3.micro)"))
	} else if !config.HasRef(r.Type) && !strings.Contains(r.Type, ".") {
		errs = append(errs, config.Fieldf("type", "want an instance type like \"t3.micro\", got %q", r.Type))
	}
	if len(r.UserData) > maxUserData {
		errs = append(errs, config.Fieldf("user_data", "%d bytes; EC2 takes at most %d", len(r.UserData), maxUserData))
	}
	errs = append(errs, checkGroupIDs(r.SecurityGroups)...)
	errs = append(errs, checkProfile("iam_profile", r.IAMProfile)...)
	for i, s := range r.Subnets {
		errs = append(errs, checkSubnetID(fmt.Sprintf("subnets[%d]", i), s)...)
	}
	switch {
	case r.Min < 0:
		errs = append(errs, config.Fieldf("min", "must not be negative, got %d", r.Min))
	case r.Max < r.Min || r.Max == 0:
		errs = append(errs, config.Fieldf("max", "want at least 1 and at least min (%d), got %d", r.Min, r.Max))
	case r.Desired != nil && (*r.Desired < r.Min || *r.Desired > r.Max):
		errs = append(errs, config.Fieldf("desired", "want between min (%d) and max (%d), got %d", r.Min, r.Max, *r.Desired))
	}
	errs = append(errs, r.Rollout.validate("rollout.")...)
	return errors.Join(errs...)
}

// Init receives the vertex's identity.
func (r *ASG) Init(env engine.Env) error {
	r.env = env
	return nil
}

// SetPoll sets the fallback poll interval (the poll meta-param); pushed
// Auto Scaling events are the fast path. Default: the hub's (60 s).
func (r *ASG) SetPoll(d time.Duration) { r.poll = d }

// IAMActions are the calls CheckApply and Watch may make.
func (r *ASG) IAMActions() []string {
	acts := []string{
		"autoscaling:CreateAutoScalingGroup", "autoscaling:DescribeAutoScalingGroups", "autoscaling:UpdateAutoScalingGroup",
		"autoscaling:StartInstanceRefresh", "autoscaling:DescribeInstanceRefreshes", "autoscaling:RollbackInstanceRefresh",
		"ec2:CreateLaunchTemplate", "ec2:CreateLaunchTemplateVersion", "ec2:DescribeLaunchTemplates",
		"ec2:DescribeLaunchTemplateVersions", "ec2:CreateTags", "ec2:RunInstances",
		"ec2:DescribeImages", "ec2:DescribeInstanceTypes", // the architecture check
	}
	if len(r.Subnets) == 0 {
		acts = append(acts, "ec2:DescribeSubnets")
	}
	if r.IAMProfile != "" {
		acts = append(acts, "iam:PassRole")
	}
	return acts
}

// Outputs are group (its name), launch_template_id and version (the
// template version the group runs).
func (r *ASG) Outputs() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.out)
}

func (r *ASG) id() string {
	if r.env.ID != "" {
		return r.env.ID
	}
	return "aws:asg/" + r.env.Name
}

func (r *ASG) desired() int {
	if r.Desired != nil {
		return *r.Desired
	}
	return r.Min
}

func (r *ASG) resolve(ctx context.Context) error {
	if r.hub != nil {
		return nil
	}
	if r.hubs == nil {
		return engine.Permanent(errors.New("aws:asg: no AWS hubs (constructed without NewASG)"))
	}
	h, err := r.hubs.Hub(ctx, r.Region)
	if err != nil {
		return fmt.Errorf("aws:asg %q: %w", r.env.Name, err)
	}
	as, err := r.hubs.AutoScaling(ctx, h.Region())
	if err != nil {
		return fmt.Errorf("aws:asg %q: %w", r.env.Name, err)
	}
	r.hub, r.as, r.ec = h, as, h.EC2()
	return nil
}

func (r *ASG) log() *slog.Logger {
	if r.env.Log != nil {
		return r.env.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Watch calls Running, then on every pushed Auto Scaling event for the group
// and every poll reads the group (one DescribeAutoScalingGroups) and calls
// Changed when it differs from what the last CheckApply left: capacity,
// launch template, or the versions its instances run. It stays quiet while
// a CheckApply runs (the changes are the check's own). It blocks until ctx
// is done.
func (r *ASG) Watch(ctx context.Context, ev engine.Events) error {
	if err := r.resolve(ctx); err != nil {
		return err
	}
	poll := r.poll
	if poll <= 0 {
		poll = r.hub.Options().Poll
	}
	ch, cancel := r.hub.Changes(r.env.Name)
	defer cancel()
	t := time.NewTicker(poll)
	defer t.Stop()
	ev.Running()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		case <-t.C:
		}
		g, err := describeGroup(ctx, r.as, r.env.Name)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue // the next poll looks again
		}
		fp := fingerprint(g)
		r.mu.Lock()
		drift := !r.busy && r.seen != "" && fp != r.seen
		if drift {
			r.seen = fp
		}
		r.mu.Unlock()
		if drift {
			r.log().Info("group changed", "group", r.env.Name)
			ev.Changed()
		}
	}
}

// fingerprint sums up what Watch compares: existence, capacity, template
// and how many live instances run each template version.
func fingerprint(g *astypes.AutoScalingGroup) string {
	if g == nil {
		return "absent"
	}
	lt := groupTemplate(g)
	versions := map[string]int{}
	for _, in := range g.Instances {
		if live(in) {
			versions[instanceTemplate(in)]++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d/%d/%d %s", aws.ToInt32(g.MinSize), aws.ToInt32(g.MaxSize), aws.ToInt32(g.DesiredCapacity), lt)
	for _, k := range slices.Sorted(maps.Keys(versions)) {
		fmt.Fprintf(&b, " %s=%d", k, versions[k])
	}
	return b.String()
}

func groupTemplate(g *astypes.AutoScalingGroup) string {
	if g.LaunchTemplate == nil {
		return "-"
	}
	return aws.ToString(g.LaunchTemplate.LaunchTemplateId) + ":" + aws.ToString(g.LaunchTemplate.Version)
}

func instanceTemplate(in astypes.Instance) string {
	if in.LaunchTemplate == nil {
		return "-"
	}
	return aws.ToString(in.LaunchTemplate.LaunchTemplateId) + ":" + aws.ToString(in.LaunchTemplate.Version)
}

// live reports an instance that counts as a member (not on its way out).
func live(in astypes.Instance) bool {
	s := string(in.LifecycleState)
	return !strings.HasPrefix(s, "Terminating") && s != "Terminated" && !strings.HasPrefix(s, "Detach")
}

// describeGroup returns the group, or nil when there is none.
func describeGroup(ctx context.Context, as groupAPI, name string) (*astypes.AutoScalingGroup, error) {
	out, err := as.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{name}})
	if err != nil {
		return nil, err
	}
	for i := range out.AutoScalingGroups {
		if aws.ToString(out.AutoScalingGroups[i].AutoScalingGroupName) == name {
			return &out.AutoScalingGroups[i], nil
		}
	}
	return nil, nil
}

// subnets are the spec's, or the region's default subnets.
func (r *ASG) subnets(ctx context.Context) ([]string, error) {
	if len(r.Subnets) > 0 {
		return r.Subnets, nil
	}
	var ids []string
	err := r.hub.Retry(ctx, func(ctx context.Context) error {
		out, err := r.ec.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: []types.Filter{{Name: aws.String("default-for-az"), Values: []string{"true"}}}})
		if err != nil {
			return err
		}
		ids = ids[:0]
		for _, s := range out.Subnets {
			ids = append(ids, aws.ToString(s.SubnetId))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find default subnets for aws:asg %q: %w", r.env.Name, err)
	}
	if len(ids) == 0 {
		return nil, engine.Permanent(fmt.Errorf("aws:asg %q: no default subnets in %s: set subnets", r.env.Name, r.hub.Region()))
	}
	slices.Sort(ids)
	return ids, nil
}

// CheckApply converges the launch template (a version with the spec's
// data), the group (exists, capacity, uses that version) and its instances
// (an instance refresh when any runs another version, followed to its end).
// A refresh already running is waited on first: there is never a second.
// A refresh that fails is rolled back and fails the resource Permanently
// with Auto Scaling's reason; the same version is not tried again until the
// spec changes, also by a restarted kiln (the launch template's tags record
// it).
func (r *ASG) CheckApply(ctx context.Context, apply bool) (bool, error) {
	if err := r.resolve(ctx); err != nil {
		return false, err
	}
	if err := r.hub.CheckArchitecture(ctx, r.Image, r.Type); err != nil {
		return false, fmt.Errorf("aws:asg %q: %w", r.env.Name, err)
	}
	r.mu.Lock()
	r.busy = true
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.busy = false
		r.mu.Unlock()
	}()
	var g *astypes.AutoScalingGroup
	if err := r.hub.Retry(ctx, func(ctx context.Context) error {
		var err error
		g, err = describeGroup(ctx, r.as, r.env.Name)
		return err
	}); err != nil {
		return false, fmt.Errorf("describe group of aws:asg %q: %w", r.env.Name, err)
	}
	ltID, version, changed, err := r.template(ctx, apply, g)
	if err != nil {
		return false, err
	}
	if ltID == "" || version == 0 { // check only: template or version missing
		return false, nil
	}
	vs := strconv.FormatInt(version, 10)
	if g == nil {
		if !apply {
			r.log().Info("would create group", "group", r.env.Name)
			return false, nil
		}
		if err := r.create(ctx, ltID, vs); err != nil {
			return false, err
		}
		changed = true
	} else {
		min, max, des := int32(r.Min), int32(r.Max), int32(r.desired())
		if aws.ToInt32(g.MinSize) != min || aws.ToInt32(g.MaxSize) != max || aws.ToInt32(g.DesiredCapacity) != des {
			if !apply {
				r.log().Info("would set capacity", "min", min, "max", max, "desired", des)
				return false, nil
			}
			r.log().Info("capacity differs: putting it back", "min", aws.ToInt32(g.MinSize), "max", aws.ToInt32(g.MaxSize), "desired", aws.ToInt32(g.DesiredCapacity))
			if err := r.hub.Retry(ctx, func(ctx context.Context) error {
				_, err := r.as.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{
					AutoScalingGroupName: aws.String(r.env.Name), MinSize: &min, MaxSize: &max, DesiredCapacity: &des,
				})
				return err
			}); err != nil {
				return false, fmt.Errorf("update capacity of aws:asg %q: %w", r.env.Name, err)
			}
			changed = true
		}
	}
	r.mu.Lock()
	why, failedBefore := r.failed[vs]
	r.mu.Unlock()
	if failedBefore {
		r.settle(ctx)
		return false, engine.Permanent(fmt.Errorf("aws:asg %q: launch template version %s failed its rollout: %s", r.env.Name, vs, why))
	}
	ro := r.roller()
	res, err := ro.converge(ctx, ltID, vs, apply)
	if err != nil {
		var rf *RolloutError
		if errors.As(err, &rf) && rf.Version == vs {
			r.rememberFailure(ctx, ltID, vs, rf.Reason)
			r.settle(ctx)
			return false, engine.Permanent(fmt.Errorf("aws:asg %q: %w", r.env.Name, err))
		}
		return false, fmt.Errorf("aws:asg %q: %w", r.env.Name, err)
	}
	changed = changed || res.Changed
	if apply && r.waitForCapacity() > 0 && r.desired() > 0 {
		g, err := r.awaitCapacity(ctx, r.desired(), r.waitForCapacity())
		if g != nil {
			res.group = g
		}
		if err != nil {
			r.settle(ctx)
			return false, err
		}
	}
	r.mu.Lock()
	r.out = map[string]string{"group": r.env.Name, "launch_template_id": ltID, "version": vs}
	if res.group != nil {
		r.seen = fingerprint(res.group)
	}
	r.mu.Unlock()
	return !changed, nil
}

// DefaultWaitForCapacity is wait_for_capacity when the spec sets none (as
// Terraform's wait_for_capacity_timeout).
const DefaultWaitForCapacity = 10 * time.Minute

func (r *ASG) waitForCapacity() time.Duration {
	if r.WaitForCapacity == nil {
		return DefaultWaitForCapacity
	}
	return *r.WaitForCapacity
}

// inService counts the group's instances that are InService and healthy.
func inService(g *astypes.AutoScalingGroup) int {
	n := 0
	for _, in := range g.Instances {
		if in.LifecycleState == astypes.LifecycleStateInService && strings.EqualFold(aws.ToString(in.HealthStatus), "Healthy") {
			n++
		}
	}
	return n
}

// awaitCapacity waits, at most limit, until want instances of the group
// are InService and healthy, woken by the group's pushed events and
// otherwise re-reading it with the hub's backoff, and logs the count
// whenever it changes. It returns the group as last read; running out of
// time is an error naming the count (retried as the meta-params say).
func (r *ASG) awaitCapacity(ctx context.Context, want int, limit time.Duration) (*astypes.AutoScalingGroup, error) {
	wctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var g *astypes.AutoScalingGroup
	last, waited := -1, false
	err := r.hub.Await(wctx, r.env.Name, func(ctx context.Context) (bool, error) {
		got, err := describeGroup(ctx, r.as, r.env.Name)
		if err != nil {
			return false, err
		}
		if got == nil {
			return false, awsapi.NotYet(fmt.Errorf("group %q not found", r.env.Name))
		}
		g = got
		n := inService(g)
		if n != last && n < want {
			waited = true
			r.log().Info("waiting for capacity", "group", r.env.Name, "in_service", n, "desired", want)
		}
		last = n
		return n >= want, nil
	})
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return g, fmt.Errorf("aws:asg %q: %d of %d instances InService and healthy after %s (wait_for_capacity)", r.env.Name, max(last, 0), want, limit)
		}
		return g, fmt.Errorf("aws:asg %q: wait for capacity: %w", r.env.Name, err)
	}
	if waited {
		r.log().Info("capacity in service", "group", r.env.Name, "in_service", last, "desired", want)
	}
	return g, nil
}

// Tags on the launch template that record its version whose rollout failed,
// so that a restarted kiln does not try it again either.
const (
	tagRolloutFailed       = "kiln:rollout-failed"        // the version number
	tagRolloutFailedReason = "kiln:rollout-failed-reason" // Auto Scaling's reason, cut to fit a tag
)

// rememberFailure records that version's rollout failed: in memory, and on
// the launch template's tags. A failure to tag is logged: the memory still
// holds it for this process.
func (r *ASG) rememberFailure(ctx context.Context, ltID, version, reason string) {
	r.mu.Lock()
	if r.failed == nil {
		r.failed = map[string]string{}
	}
	r.failed[version] = reason
	r.mu.Unlock()
	if len(reason) > 256 {
		reason = reason[:253] + "..."
	}
	err := r.hub.Retry(ctx, func(ctx context.Context) error {
		_, err := r.ec.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{ltID}, Tags: []types.Tag{
			{Key: aws.String(tagRolloutFailed), Value: aws.String(version)},
			{Key: aws.String(tagRolloutFailedReason), Value: aws.String(reason)},
		}})
		return err
	})
	if err != nil {
		r.log().Warn("could not record the failed rollout on the launch template", "version", version, "err", err)
	}
}

// recallFailure learns a failed version from the launch template's tags
// (left by an earlier process).
func (r *ASG) recallFailure(tags []types.Tag) {
	v := awsapi.TagValue(tags, tagRolloutFailed)
	if v == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.failed[v]; ok {
		return
	}
	if r.failed == nil {
		r.failed = map[string]string{}
	}
	r.failed[v] = awsapi.TagValue(tags, tagRolloutFailedReason)
}

// settle records the group as it is now, so Watch reports only later
// changes (after a failed rollout the group is back where it was).
func (r *ASG) settle(ctx context.Context) {
	g, err := describeGroup(ctx, r.as, r.env.Name)
	if err != nil {
		return
	}
	r.mu.Lock()
	r.seen = fingerprint(g)
	r.mu.Unlock()
}

func (r *ASG) create(ctx context.Context, ltID, version string) error {
	subnets, err := r.subnets(ctx)
	if err != nil {
		return err
	}
	min, max, des := int32(r.Min), int32(r.Max), int32(r.desired())
	tag := func(k, v string) astypes.Tag {
		return astypes.Tag{Key: aws.String(k), Value: aws.String(v), PropagateAtLaunch: aws.Bool(true)}
	}
	in := &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String(r.env.Name),
		LaunchTemplate:       &astypes.LaunchTemplateSpecification{LaunchTemplateId: aws.String(ltID), Version: aws.String(version)},
		MinSize:              &min, MaxSize: &max, DesiredCapacity: &des,
		VPCZoneIdentifier: aws.String(strings.Join(subnets, ",")),
		Tags:              []astypes.Tag{tag(awsapi.TagOwner, r.env.Graph), tag(awsapi.TagResource, r.id()), tag(awsapi.TagName, r.env.NameTag())},
	}
	if r.env.Meta.Protect {
		in.Tags = append(in.Tags, tag(TagProtect, "true"))
	}
	if r.Rollout.Warmup > 0 {
		in.DefaultInstanceWarmup = aws.Int32(int32(r.Rollout.Warmup / time.Second))
	}
	err = r.hub.Retry(ctx, func(ctx context.Context) error {
		_, err := r.as.CreateAutoScalingGroup(ctx, in)
		if awsapi.Code(err) == "AlreadyExists" {
			return nil // a retry of ours that went through
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create group of aws:asg %q: %w", r.env.Name, awsapi.Classify(err, "ValidationError"))
	}
	r.log().Info("group created", "group", r.env.Name, "template", ltID, "version", version, "desired", des)
	return nil
}

func (r *ASG) roller() *roller {
	return &roller{hub: r.hub, as: r.as, group: r.env.Name, prefs: r.Rollout, log: r.log()}
}

var (
	_ engine.Resource       = (*ASG)(nil)
	_ engine.Initer         = (*ASG)(nil)
	_ engine.Outputter      = (*ASG)(nil)
	_ engine.SelfPoller     = (*ASG)(nil)
	_ config.Validator      = (*ASG)(nil)
	_ iampolicy.IAMActioner = (*ASG)(nil)
)
