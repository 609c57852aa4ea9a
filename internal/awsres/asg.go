package awsres

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
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

// templateAPI is what aws:asg and RollOut call on EC2: *ec2.Client
// satisfies it.
type templateAPI interface {
	DescribeLaunchTemplates(context.Context, *ec2.DescribeLaunchTemplatesInput, ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplatesOutput, error)
	DescribeLaunchTemplateVersions(context.Context, *ec2.DescribeLaunchTemplateVersionsInput, ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplateVersionsOutput, error)
	CreateLaunchTemplate(context.Context, *ec2.CreateLaunchTemplateInput, ...func(*ec2.Options)) (*ec2.CreateLaunchTemplateOutput, error)
	CreateLaunchTemplateVersion(context.Context, *ec2.CreateLaunchTemplateVersionInput, ...func(*ec2.Options)) (*ec2.CreateLaunchTemplateVersionOutput, error)
	DescribeSubnets(context.Context, *ec2.DescribeSubnetsInput, ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error)
	CreateTags(context.Context, *ec2.CreateTagsInput, ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
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

var ltNameBad = regexp.MustCompile(`[^A-Za-z0-9().\-/_]`)

// templateName is the launch template's name: kiln-<graph>-<name>.
func (r *ASG) templateName() string {
	n := "kiln-" + r.env.Name
	if r.env.Graph != "" {
		n = "kiln-" + r.env.Graph + "-" + r.env.Name
	}
	n = ltNameBad.ReplaceAllString(n, "_")
	if len(n) > 128 {
		n = n[:128]
	}
	return n
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

// templateData is the launch-template data the spec asks for.
func (r *ASG) templateData() *types.RequestLaunchTemplateData {
	d := &types.RequestLaunchTemplateData{
		ImageId:      aws.String(r.Image),
		InstanceType: types.InstanceType(r.Type),
	}
	if r.UserData != "" {
		d.UserData = aws.String(base64.StdEncoding.EncodeToString([]byte(r.UserData)))
	}
	if len(r.SecurityGroups) > 0 {
		d.SecurityGroupIds = slices.Clone(r.SecurityGroups)
	}
	if r.IAMProfile != "" {
		d.IamInstanceProfile = &types.LaunchTemplateIamInstanceProfileSpecificationRequest{}
		if strings.HasPrefix(r.IAMProfile, "arn:") {
			d.IamInstanceProfile.Arn = aws.String(r.IAMProfile)
		} else {
			d.IamInstanceProfile.Name = aws.String(r.IAMProfile)
		}
	}
	return d
}

// profileOf is a version's instance profile as the spec names it: its
// ARN when the spec gives an ARN, else its name.
func profileOf(v *types.ResponseLaunchTemplateData, byARN bool) string {
	if v.IamInstanceProfile == nil {
		return ""
	}
	if byARN {
		return aws.ToString(v.IamInstanceProfile.Arn)
	}
	return aws.ToString(v.IamInstanceProfile.Name)
}

// matches reports whether a version's data is what the spec asks for.
func (r *ASG) matches(v *types.ResponseLaunchTemplateData) bool {
	if v == nil {
		return false
	}
	want := r.templateData()
	return aws.ToString(v.ImageId) == aws.ToString(want.ImageId) &&
		v.InstanceType == want.InstanceType &&
		aws.ToString(v.UserData) == aws.ToString(want.UserData) &&
		sameSet(v.SecurityGroupIds, want.SecurityGroupIds) &&
		profileOf(v, strings.HasPrefix(r.IAMProfile, "arn:")) == r.IAMProfile
}

func sameSet(a, b []string) bool {
	a, b = slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b))
	return slices.Equal(a, b)
}

func token(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return "kiln-" + hex.EncodeToString(sum[:16])
}

// template finds the launch template kept for the group and returns its id
// and the number of a version with the spec's data (0 and "" when check
// only and there is none yet), creating the template or a new version when
// apply is set. A new version is made only when neither the latest version
// nor one the group g uses (a hand change pointed it elsewhere) matches.
func (r *ASG) template(ctx context.Context, apply bool, g *astypes.AutoScalingGroup) (id string, version int64, changed bool, err error) {
	var lt *types.LaunchTemplate
	err = r.hub.Retry(ctx, func(ctx context.Context) error {
		out, err := r.ec.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{Filters: []types.Filter{
			{Name: aws.String("tag:" + awsapi.TagOwner), Values: []string{r.env.Graph}},
			{Name: aws.String("tag:" + awsapi.TagResource), Values: []string{r.id()}},
		}})
		if err != nil {
			return err
		}
		if len(out.LaunchTemplates) > 0 {
			lt = &out.LaunchTemplates[0]
		}
		return nil
	})
	if err != nil {
		return "", 0, false, fmt.Errorf("find launch template of aws:asg %q: %w", r.env.Name, err)
	}
	if lt == nil {
		if !apply {
			r.log().Info("would create launch template", "name", r.templateName())
			return "", 0, true, nil
		}
		tags := []types.Tag{
			{Key: aws.String(awsapi.TagOwner), Value: aws.String(r.env.Graph)},
			{Key: aws.String(awsapi.TagResource), Value: aws.String(r.id())},
		}
		var out *ec2.CreateLaunchTemplateOutput
		err = r.hub.Retry(ctx, func(ctx context.Context) error {
			var err error
			out, err = r.ec.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
				LaunchTemplateName: aws.String(r.templateName()),
				LaunchTemplateData: r.templateData(),
				ClientToken:        aws.String(token("lt", r.env.Graph, r.id())),
				TagSpecifications:  []types.TagSpecification{{ResourceType: types.ResourceTypeLaunchTemplate, Tags: tags}},
			})
			return err
		})
		if err != nil {
			return "", 0, false, fmt.Errorf("create launch template of aws:asg %q: %w", r.env.Name, awsapi.Classify(err, "InvalidLaunchTemplateName.AlreadyExistsException", "InvalidAMIID.NotFound", "InvalidAMIID.Malformed"))
		}
		id := aws.ToString(out.LaunchTemplate.LaunchTemplateId)
		r.log().Info("launch template created", "id", id)
		return id, aws.ToInt64(out.LaunchTemplate.LatestVersionNumber), true, nil
	}
	id = aws.ToString(lt.LaunchTemplateId)
	r.recallFailure(lt.Tags)
	v, changed, err := ensureVersion(ctx, r.hub, r.ec, id, versionsInUse(g, id), r.matches, r.templateData(), nil, apply, r.log())
	if err != nil {
		return "", 0, false, fmt.Errorf("aws:asg %q: %w", r.env.Name, err)
	}
	return id, v, changed, nil
}

// versionsInUse are the numbered versions of template id that group g and
// its live instances use.
func versionsInUse(g *astypes.AutoScalingGroup, id string) []string {
	if g == nil {
		return nil
	}
	var vs []string
	add := func(lt *astypes.LaunchTemplateSpecification) {
		if lt == nil || aws.ToString(lt.LaunchTemplateId) != id {
			return
		}
		v := aws.ToString(lt.Version)
		if _, err := strconv.ParseInt(v, 10, 64); err == nil && !slices.Contains(vs, v) {
			vs = append(vs, v)
		}
	}
	add(g.LaunchTemplate)
	for _, in := range g.Instances {
		if live(in) {
			add(in.LaunchTemplate)
		}
	}
	return vs
}

// ensureVersion returns the number of a version of template id whose data
// ok accepts: the latest, else the highest of also (versions in use), else
// a new version with data (from source when set: only data's fields
// change). Check only, it returns 0 and changed instead of creating.
func ensureVersion(ctx context.Context, hub *awsapi.Hub, ec templateAPI, id string, also []string, ok func(*types.ResponseLaunchTemplateData) bool,
	data *types.RequestLaunchTemplateData, source *int64, apply bool, log *slog.Logger) (int64, bool, error) {
	var vs []types.LaunchTemplateVersion
	err := hub.Retry(ctx, func(ctx context.Context) error {
		out, err := ec.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: aws.String(id), Versions: append([]string{"$Latest"}, also...)})
		if err != nil {
			return err
		}
		if len(out.LaunchTemplateVersions) == 0 {
			return awsapi.NotYet(fmt.Errorf("launch template %s has no versions", id))
		}
		vs = out.LaunchTemplateVersions
		return nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("describe launch template %s versions: %w", id, err)
	}
	slices.SortFunc(vs, func(a, b types.LaunchTemplateVersion) int {
		return int(aws.ToInt64(b.VersionNumber) - aws.ToInt64(a.VersionNumber))
	})
	latest := aws.ToInt64(vs[0].VersionNumber)
	for _, v := range vs {
		if ok(v.LaunchTemplateData) {
			return aws.ToInt64(v.VersionNumber), false, nil
		}
	}
	if !apply {
		log.Info("would create launch template version", "template", id, "after", latest)
		return 0, true, nil
	}
	in := &ec2.CreateLaunchTemplateVersionInput{
		LaunchTemplateId:   aws.String(id),
		LaunchTemplateData: data,
		ClientToken:        aws.String(token("ltv", id, strconv.FormatInt(latest, 10), versionKey(data))),
	}
	if source != nil {
		in.SourceVersion = aws.String(strconv.FormatInt(*source, 10))
	}
	var out *ec2.CreateLaunchTemplateVersionOutput
	err = hub.Retry(ctx, func(ctx context.Context) error {
		var err error
		out, err = ec.CreateLaunchTemplateVersion(ctx, in)
		return err
	})
	if err != nil {
		return 0, false, fmt.Errorf("create launch template %s version: %w", id, awsapi.Classify(err, "InvalidAMIID.NotFound", "InvalidAMIID.Malformed"))
	}
	v := aws.ToInt64(out.LaunchTemplateVersion.VersionNumber)
	log.Info("launch template version created", "template", id, "version", v)
	return v, true, nil
}

// versionKey sums up a version's data for its client token (the instance
// profile only when set, so that tokens of versions without one stay as
// they were).
func versionKey(data *types.RequestLaunchTemplateData) string {
	k := fmt.Sprint(aws.ToString(data.ImageId), data.InstanceType, aws.ToString(data.UserData), data.SecurityGroupIds)
	if p := data.IamInstanceProfile; p != nil {
		k += " profile=" + aws.ToString(p.Name) + aws.ToString(p.Arn)
	}
	return k
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
		Tags:              []astypes.Tag{tag(awsapi.TagOwner, r.env.Graph), tag(awsapi.TagResource, r.id()), tag(awsapi.TagName, r.env.Name)},
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
		if err := ro.hub.Retry(ctx, func(ctx context.Context) error {
			var err error
			g, err = describeGroup(ctx, ro.as, ro.group)
			return err
		}); err != nil {
			return res, fmt.Errorf("describe group %q: %w", ro.group, err)
		}
		if g == nil {
			return res, awsapi.NotYet(fmt.Errorf("group %q not found", ro.group))
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
// rollout target. It blocks until the rollout is over or ctx is done; it
// is idempotent (the version is created with a client token derived from
// group, template, base version and image), so a bake resumed after a
// crash follows the same rollout instead of starting another.
func RollOut(ctx context.Context, hubs *awsapi.Hubs, region, group, imageID string, prefs Rollout, log *slog.Logger) (RolloutResult, error) {
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
	r, err := ro.converge(ctx, ltID, strconv.FormatInt(n, 10), true)
	r.Changed = r.Changed || res.Changed
	return r, err
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

var (
	_ engine.Resource       = (*ASG)(nil)
	_ engine.Initer         = (*ASG)(nil)
	_ engine.Outputter      = (*ASG)(nil)
	_ engine.SelfPoller     = (*ASG)(nil)
	_ config.Validator      = (*ASG)(nil)
	_ iampolicy.IAMActioner = (*ASG)(nil)
)

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
