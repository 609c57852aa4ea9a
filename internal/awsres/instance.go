// Package awsres holds kiln's AWS resource kinds (aws:ec2 here; aws:ami and
// aws:asg beside it). Each kind finds what it owns by kiln's tags
// (kiln:owner = graph, kiln:resource = kind/name), converges it through the
// region's shared awsapi.Hub, waits on the hub's events and batched polls
// rather than per-object SDK waiters, and declares the IAM actions it calls.
// Throttling and eventual-consistency "not yet" errors are waited out; what
// retrying cannot fix comes back engine.Permanent.
package awsres

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awsapi"
	"kiln/internal/config"
	"kiln/internal/engine"
	"kiln/internal/iampolicy"
)

// instanceAPI is what aws:ec2 calls, in the SDK's shape: *ec2.Client
// satisfies it.
type instanceAPI interface {
	ModifyInstanceAttribute(context.Context, *ec2.ModifyInstanceAttributeInput, ...func(*ec2.Options)) (*ec2.ModifyInstanceAttributeOutput, error)
	CreateTags(context.Context, *ec2.CreateTagsInput, ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
	DescribeIamInstanceProfileAssociations(context.Context, *ec2.DescribeIamInstanceProfileAssociationsInput, ...func(*ec2.Options)) (*ec2.DescribeIamInstanceProfileAssociationsOutput, error)
	AssociateIamInstanceProfile(context.Context, *ec2.AssociateIamInstanceProfileInput, ...func(*ec2.Options)) (*ec2.AssociateIamInstanceProfileOutput, error)
	ReplaceIamInstanceProfileAssociation(context.Context, *ec2.ReplaceIamInstanceProfileAssociationInput, ...func(*ec2.Options)) (*ec2.ReplaceIamInstanceProfileAssociationOutput, error)
	DisassociateIamInstanceProfile(context.Context, *ec2.DisassociateIamInstanceProfileInput, ...func(*ec2.Options)) (*ec2.DisassociateIamInstanceProfileOutput, error)
}

// stateAPI is how aws:ec2 starts, stops and terminates; the hub's state
// batcher satisfies it (and so does *ec2.Client).
type stateAPI interface {
	StartInstances(context.Context, *ec2.StartInstancesInput, ...func(*ec2.Options)) (*ec2.StartInstancesOutput, error)
	StopInstances(context.Context, *ec2.StopInstancesInput, ...func(*ec2.Options)) (*ec2.StopInstancesOutput, error)
	TerminateInstances(context.Context, *ec2.TerminateInstancesInput, ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error)
}

// describeAPI is the lookup aws:ec2 makes; the hub's batcher satisfies it
// (and so does *ec2.Client).
type describeAPI interface {
	DescribeInstances(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
}

// Desired instance states.
const (
	StateRunning    = "running"
	StateStopped    = "stopped"
	StateTerminated = "terminated"
)

// tagUserData holds a digest of the user data the instance was given, so a
// change is seen without a per-instance DescribeInstanceAttribute call.
const tagUserData = "kiln:user-data"

// maxUserData is EC2's limit on user data before base64.
const maxUserData = awsapi.MaxUserData

// Instance is the aws:ec2 kind: one EC2 instance, named by the resource's
// name (its Name tag), kept in State.
type Instance struct {
	Region         string            `yaml:"region"`          // default: AWS_REGION
	State          string            `yaml:"state"`           // running (default) | stopped | terminated
	Image          string            `yaml:"image"`           // AMI id
	Type           string            `yaml:"type"`            // instance type
	UserData       string            `yaml:"user_data"`       // plain text; kiln base64-encodes it
	Subnet         string            `yaml:"subnet"`          // subnet id
	SecurityGroups []string          `yaml:"security_groups"` // group ids
	KeyName        string            `yaml:"key_name"`        // key pair; a live instance's cannot change (replace)
	IAMProfile     string            `yaml:"iam_profile"`     // instance profile name or ARN; fixed on the live instance
	Tags           map[string]string `yaml:"tags"`
	// AllowRestart lets kiln stop, modify and start a live instance to
	// change its type or user data.
	AllowRestart bool `yaml:"allow_restart"`
	// Replace lets kiln terminate and relaunch the instance when a field
	// that cannot change on a live instance (image, subnet, key_name)
	// differs.
	Replace bool `yaml:"replace"`

	hubs *awsapi.Hubs
	env  engine.Env
	poll time.Duration

	// Set on first use (resolve).
	hub      *awsapi.Hub
	api      instanceAPI
	states   stateAPI
	describe describeAPI

	mu      sync.Mutex
	out     map[string]string
	planned []engine.Change // what the last check-only CheckApply would have done
}

// NewInstance returns an empty aws:ec2 resource using the shared hubs.
func NewInstance(hubs *awsapi.Hubs) *Instance {
	return &Instance{hubs: hubs}
}

// Validate checks the fields (values holding a ${...} reference are checked
// once resolved).
func (r *Instance) Validate() error {
	var errs []error
	switch r.State {
	case "", StateRunning, StateStopped, StateTerminated:
	default:
		errs = append(errs, config.Fieldf("state", "want running, stopped or terminated, got %q", r.State))
	}
	if r.State != StateTerminated {
		if r.Image == "" {
			errs = append(errs, config.Fieldf("image", "required (an AMI id)"))
		} else if !config.HasRef(r.Image) && !strings.HasPrefix(r.Image, "ami-") {
			errs = append(errs, config.Fieldf("image", "want an AMI id like \"ami-0abc...\", got %q", r.Image))
		}
		if r.Type == "" {
			errs = append(errs, config.Fieldf("type", "required (e.g. t3.micro)"))
		} else if !config.HasRef(r.Type) && !strings.Contains(r.Type, ".") {
			errs = append(errs, config.Fieldf("type", "want an instance type like \"t3.micro\", got %q", r.Type))
		}
	}
	if len(r.UserData) > maxUserData {
		errs = append(errs, config.Fieldf("user_data", "%d bytes; EC2 takes at most %d", len(r.UserData), maxUserData))
	}
	if r.Subnet != "" {
		errs = append(errs, checkSubnetID("subnet", r.Subnet)...)
	}
	errs = append(errs, checkGroupIDs(r.SecurityGroups)...)
	errs = append(errs, checkProfile("iam_profile", r.IAMProfile)...)
	for _, k := range slices.Sorted(maps.Keys(r.Tags)) {
		if k == awsapi.TagName || strings.HasPrefix(k, "kiln:") || strings.HasPrefix(k, "aws:") {
			errs = append(errs, config.Fieldf("tags."+k, "reserved tag key (kiln sets Name and kiln:*; aws:* is AWS's)"))
		}
	}
	return errors.Join(errs...)
}

// checkSubnetID is the error for field unless s is a subnet id or a
// reference (what aws:ec2, aws:ami and aws:asg accept as a subnet).
func checkSubnetID(field, s string) []error {
	if config.HasRef(s) || strings.HasPrefix(s, "subnet-") {
		return nil
	}
	return []error{config.Fieldf(field, "want a subnet id like \"subnet-0abc...\", got %q", s)}
}

// checkGroupIDs are the errors for the security_groups entries that are
// neither a group id nor a reference.
func checkGroupIDs(groups []string) []error {
	var errs []error
	for i, g := range groups {
		if !config.HasRef(g) && !strings.HasPrefix(g, "sg-") {
			errs = append(errs, config.Fieldf(fmt.Sprintf("security_groups[%d]", i), "want a group id like \"sg-0abc...\", got %q", g))
		}
	}
	return errs
}

// Init receives the vertex's identity.
func (r *Instance) Init(env engine.Env) error {
	r.env = env
	return nil
}

// SetPoll sets the fallback poll interval (the poll meta-param); events are
// the fast path. Default: the hub's (60 s).
func (r *Instance) SetPoll(d time.Duration) { r.poll = d }

// IAMActions are the EC2 actions this instance's CheckApply may call.
func (r *Instance) IAMActions() []string {
	acts := []string{"ec2:DescribeInstances", "ec2:TerminateInstances"}
	if r.State == StateTerminated {
		return acts
	}
	acts = append(acts, "ec2:RunInstances", "ec2:CreateTags", "ec2:StartInstances", "ec2:StopInstances",
		"ec2:DescribeImages", "ec2:DescribeInstanceTypes") // the architecture check before a launch
	if r.AllowRestart || len(r.SecurityGroups) > 0 {
		acts = append(acts, "ec2:ModifyInstanceAttribute")
	}
	if r.IAMProfile != "" {
		acts = append(acts, "iam:PassRole", "ec2:DescribeIamInstanceProfileAssociations", "ec2:AssociateIamInstanceProfile",
			"ec2:ReplaceIamInstanceProfileAssociation", "ec2:DisassociateIamInstanceProfile")
	}
	return acts
}

// Outputs are instance_id, private_ip and public_ip of the converged
// instance (empty strings for an instance that is stopped or terminated).
func (r *Instance) Outputs() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.out)
}

func (r *Instance) setOutputs(in *types.Instance) {
	out := map[string]string{"instance_id": "", "private_ip": "", "public_ip": ""}
	if in != nil {
		out["instance_id"] = aws.ToString(in.InstanceId)
		out["private_ip"] = aws.ToString(in.PrivateIpAddress)
		out["public_ip"] = aws.ToString(in.PublicIpAddress)
	}
	r.mu.Lock()
	r.out = out
	r.mu.Unlock()
}

func (r *Instance) owner() awsapi.Owner {
	return awsapi.Owner{Graph: r.env.Graph, Resource: r.id()}
}

func (r *Instance) id() string {
	if r.env.ID != "" {
		return r.env.ID
	}
	return "aws:ec2/" + r.env.Name
}

func (r *Instance) state() string {
	if r.State == "" {
		return StateRunning
	}
	return r.State
}

// resolve finds the region's hub on first use.
func (r *Instance) resolve(ctx context.Context) error {
	if r.hub != nil {
		return nil
	}
	if r.hubs == nil {
		return engine.Permanent(errors.New("aws:ec2: no AWS hubs (constructed without NewInstance)"))
	}
	h, err := r.hubs.Hub(ctx, r.Region)
	if err != nil {
		return fmt.Errorf("aws:ec2 %q: %w", r.env.Name, err)
	}
	r.hub, r.api, r.states, r.describe = h, h.EC2(), h.States(), h.Instances()
	return nil
}

// Watch subscribes to the hub's events and poller for this resource's
// instances, then calls Running; every event or poll difference calls
// Changed. It blocks until ctx is done.
func (r *Instance) Watch(ctx context.Context, ev engine.Events) error {
	if err := r.resolve(ctx); err != nil {
		return err
	}
	cancel := r.hub.SubscribePolled(r.owner(), r.poll, ev.Changed, func() { engine.Polled(ev) })
	defer cancel()
	ev.Running()
	<-ctx.Done()
	return ctx.Err()
}

func stateOf(in types.Instance) string {
	if in.State == nil {
		return ""
	}
	return string(in.State.Name)
}

// find lists the instances tagged as this resource's, oldest first.
func (r *Instance) find(ctx context.Context) ([]types.Instance, error) {
	in := &ec2.DescribeInstancesInput{Filters: []types.Filter{
		{Name: aws.String("tag:" + awsapi.TagOwner), Values: []string{r.env.Graph}},
		{Name: aws.String("tag:" + awsapi.TagResource), Values: []string{r.id()}},
	}}
	var all []types.Instance
	err := r.hub.Retry(ctx, func(ctx context.Context) error {
		out, err := r.describe.DescribeInstances(ctx, in)
		if err != nil {
			return err
		}
		all = all[:0]
		for _, res := range out.Reservations {
			all = append(all, res.Instances...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find instance %q: %w", r.env.Name, err)
	}
	if all, err = r.withClaimed(ctx, all); err != nil {
		return nil, err
	}
	slices.SortStableFunc(all, func(a, b types.Instance) int {
		if c := aws.ToTime(a.LaunchTime).Compare(aws.ToTime(b.LaunchTime)); c != 0 {
			return c
		}
		return strings.Compare(aws.ToString(a.InstanceId), aws.ToString(b.InstanceId))
	})
	return all, nil
}

// withClaimed adds to all the batch instance the hub gave this resource
// and has not yet seen under its tags (its Name and kiln:resource are set
// after the launch), or settles the claim once all holds it.
func (r *Instance) withClaimed(ctx context.Context, all []types.Instance) ([]types.Instance, error) {
	id := r.hub.Claimed(r.owner())
	if id == "" {
		return all, nil
	}
	for _, in := range all {
		if aws.ToString(in.InstanceId) == id {
			r.hub.Settle(r.owner(), id)
			return all, nil
		}
	}
	var found []types.Instance
	err := r.hub.Retry(ctx, func(ctx context.Context) error {
		out, err := r.describe.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
		if err != nil {
			return notFoundNotYet(err)
		}
		found = found[:0]
		for _, res := range out.Reservations {
			found = append(found, res.Instances...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find instance %q: launched as %s: %w", r.env.Name, id, err)
	}
	for i := range found {
		found[i].Tags = withTags(found[i].Tags, r.hub.GivenTags(id))
	}
	return append(all, found...), nil
}

// withGiven is tags with, when id is the batch instance the hub gave this
// resource, the own tags the hub's naming set or will set (it names them
// in the background; CheckApply must not tag them a second time).
func (r *Instance) withGiven(tags []types.Tag, id string) []types.Tag {
	if r.hub.Claimed(r.owner()) != id {
		return tags
	}
	return withTags(tags, r.hub.GivenTags(id))
}

// withTags is tags with more set over them: tags queued to be set count as
// set.
func withTags(tags, more []types.Tag) []types.Tag {
	for _, t := range more {
		tags = setTag(tags, aws.ToString(t.Key), aws.ToString(t.Value))
	}
	return tags
}

// CheckApply finds the instance by its tags and, when apply is set, makes
// it match: launch, start, stop, terminate, stop→modify→start (type or user
// data, with allow_restart), terminate→launch (image, subnet or key_name,
// with replace), tags, the instance profile. It waits until the state is reached, so dependents see a
// running instance and its outputs.
func (r *Instance) CheckApply(ctx context.Context, apply bool) (bool, error) {
	r.mu.Lock()
	r.planned = nil
	r.mu.Unlock()
	if err := r.resolve(ctx); err != nil {
		return false, err
	}
	all, err := r.find(ctx)
	if err != nil {
		return false, err
	}
	var live []types.Instance
	var prev string // the newest gone instance: what a launch replaces
	for _, in := range all {
		if awsapi.IsLive(in) {
			live = append(live, in)
		} else {
			prev = aws.ToString(in.InstanceId)
		}
	}
	if len(live) > 1 {
		ids := make([]string, len(live))
		for i, in := range live {
			ids[i] = aws.ToString(in.InstanceId)
		}
		return false, fmt.Errorf("aws:ec2 %q: %d live instances claim this resource: %s; kiln will not pick one: terminate the extras",
			r.env.Name, len(live), strings.Join(ids, ", "))
	}
	ids := make([]string, 0, len(all))
	for _, in := range all {
		ids = append(ids, aws.ToString(in.InstanceId))
	}
	r.hub.Track(r.owner(), ids...)

	want := r.state()
	if want == StateTerminated {
		if len(live) == 0 {
			r.setOutputs(nil)
			return true, nil
		}
		if !apply {
			r.plan(engine.Change{Action: engine.ActionDelete, Summary: "terminate instance"}, live[0])
			return false, nil
		}
		if err := r.terminate(ctx, live[0]); err != nil {
			return false, err
		}
		r.setOutputs(nil)
		return false, nil
	}

	ok := true
	var cur types.Instance
	if len(live) == 0 {
		if err := r.checkArch(ctx, r.Type); err != nil {
			return false, err
		}
		if !apply {
			what := "launch instance"
			if prev != "" {
				what += " replacing " + prev
			}
			r.plan(engine.Change{Action: engine.ActionCreate, Summary: what, Attrs: r.launchAttrs()}, types.Instance{})
			return false, nil
		}
		in, err := r.launch(ctx, prev)
		if err != nil {
			return false, err
		}
		cur, ok = in, false
	} else {
		cur = live[0]
		if attrs := r.immutableDrift(cur); len(attrs) > 0 {
			drift := describeDrift(attrs)
			if err := r.checkArch(ctx, r.Type); err != nil {
				return false, err
			}
			if !apply {
				// Plan shows the replacement, refused or not: every later
				// difference is the new instance's.
				c := engine.Change{Action: engine.ActionReplace, Summary: "replace instance (" + drift + ")", Attrs: attrs}
				if !r.Replace {
					c.Refused = "set replace: true to let kiln replace it"
					r.setOutputs(&cur) // run stops here: the instance stays
				}
				r.plan(c, cur)
				return false, nil
			}
			if !r.Replace {
				return false, engine.Permanent(fmt.Errorf("aws:ec2 %q: instance %s: %s; set replace: true to let kiln replace it",
					r.env.Name, aws.ToString(cur.InstanceId), drift))
			}
			if err := r.terminate(ctx, cur); err != nil {
				return false, err
			}
			in, err := r.launch(ctx, aws.ToString(cur.InstanceId))
			if err != nil {
				return false, err
			}
			cur, ok = in, false
		}
	}

	// A check-only pass goes on past each difference, so that plan lists
	// all of them.
	if attrs := r.restartDrift(cur); len(attrs) > 0 {
		drift := describeDrift(attrs)
		if string(cur.InstanceType) != r.Type {
			// The live instance's image must run on the new type too.
			if err := r.hub.CheckArchitecture(ctx, aws.ToString(cur.ImageId), r.Type); err != nil {
				return false, fmt.Errorf("aws:ec2 %q: change instance %s type: %w", r.env.Name, aws.ToString(cur.InstanceId), err)
			}
		}
		switch {
		case !apply:
			c := engine.Change{Action: engine.ActionRestart, Summary: "stop, modify and start instance (" + drift + ")", Attrs: attrs}
			if !r.AllowRestart {
				c.Refused = "changing it needs a stop and start: set allow_restart: true"
			}
			r.plan(c, cur)
			ok = false
		case !r.AllowRestart:
			return false, engine.Permanent(fmt.Errorf("aws:ec2 %q: instance %s: %s; changing it needs a stop and start: set allow_restart: true",
				r.env.Name, aws.ToString(cur.InstanceId), drift))
		default:
			in, err := r.modify(ctx, cur)
			if err != nil {
				return false, err
			}
			cur, ok = in, false
		}
	}

	if groups, same := r.groupDrift(cur); !same {
		if apply {
			if err := r.setGroups(ctx, cur, groups); err != nil {
				return false, err
			}
		} else {
			r.plan(engine.Change{Action: engine.ActionUpdate, Summary: "set security groups to " + strings.Join(groups, ", ") + " on instance",
				Attrs: []engine.Attr{{Name: "security_groups", Old: strings.Join(instanceGroups(cur), ", "), New: strings.Join(groups, ", ")}}}, cur)
		}
		ok = false
	}

	if missing := r.missingTags(cur); len(missing) > 0 {
		if apply {
			if err := r.tag(ctx, cur, missing); err != nil {
				return false, err
			}
		} else {
			var attrs []engine.Attr
			for _, t := range missing {
				old, _ := tagLookup(cur.Tags, aws.ToString(t.Key))
				attrs = append(attrs, engine.Attr{Name: "tags." + aws.ToString(t.Key), Old: old, New: aws.ToString(t.Value)})
			}
			r.plan(engine.Change{Action: engine.ActionUpdate, Summary: "tag instance", Attrs: attrs}, cur)
		}
		ok = false
	}

	in, changed, err := r.converge(ctx, cur, want, apply)
	if err != nil {
		return false, err
	}
	if changed {
		ok = false
	}

	if drift := r.profileDrift(in); drift != "" {
		if apply {
			if err := r.setProfile(ctx, in); err != nil {
				return false, err
			}
		} else {
			r.plan(engine.Change{Action: engine.ActionUpdate, Summary: "set instance profile (" + drift + ") on instance",
				Attrs: []engine.Attr{{Name: "iam_profile", Old: cmp.Or(profileARN(in), "none"), New: r.IAMProfile}}}, in)
		}
		ok = false
	}
	if ok || apply || r.allRefused() {
		// A check-only pass whose every change run would refuse leaves
		// the instance as it is: its dependents are planned against it.
		r.setOutputs(&in)
	}
	return ok, nil
}

// converge brings cur to state want (running or stopped) and waits for it.
// Someone else may move the instance meanwhile (an out-of-band stop while
// kiln waits for running): it then starts over from the state it found.
func (r *Instance) converge(ctx context.Context, cur types.Instance, want string, apply bool) (types.Instance, bool, error) {
	id := aws.ToString(cur.InstanceId)
	if stateOf(cur) == want {
		return cur, false, nil
	}
	if !apply {
		r.plan(engine.Change{Action: engine.ActionUpdate, Summary: map[string]string{StateRunning: "start instance", StateStopped: "stop instance"}[want],
			Attrs: []engine.Attr{{Name: "state", Old: stateOf(cur), New: want}}}, cur)
		return cur, true, nil
	}
	for range maxMoves {
		var err error
		switch s := stateOf(cur); {
		case s == want:
			return cur, true, nil
		case s == StateStopped && want == StateRunning:
			err = r.start(ctx, id)
		case s == StateRunning && want == StateStopped:
			err = r.stop(ctx, id)
		case s == StateTerminated || s == string(types.InstanceStateNameShuttingDown):
			return cur, true, fmt.Errorf("instance %s is %s", id, s)
		}
		// pending and stopping settle by themselves.
		if err != nil {
			return cur, true, err
		}
		cur, err = r.await(ctx, id, want)
		if err != nil && !errors.Is(err, errMoved) {
			return cur, true, err
		}
	}
	return cur, true, fmt.Errorf("instance %s: still %s after %d attempts to make it %s", id, stateOf(cur), maxMoves, want)
}

// maxMoves bounds how often converge starts over after someone else moved
// the instance.
const maxMoves = 5

// errMoved: the instance settled in a state other than the awaited one.
var errMoved = errors.New("instance moved to another state")

// plan records (and logs) what a check-only CheckApply would do to in; the
// instance's id and state join the summary.
func (r *Instance) plan(c engine.Change, in types.Instance) {
	id := aws.ToString(in.InstanceId)
	r.log().Info("would "+c.Summary, "instance", id, "state", stateOf(in))
	if id != "" {
		c.Summary = fmt.Sprintf("%s %s (%s)", c.Summary, id, stateOf(in))
	}
	r.mu.Lock()
	r.planned = append(r.planned, c)
	r.mu.Unlock()
}

// allRefused: the last check-only pass planned changes and run would
// refuse each of them.
func (r *Instance) allRefused() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.planned {
		if c.Refused == "" {
			return false
		}
	}
	return len(r.planned) > 0
}

// Changes lists what the last CheckApply with apply=false found it would
// do, one line each ("start instance i-0abc (stopped)").
func (r *Instance) Changes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	lines := make([]string, len(r.planned))
	for i, c := range r.planned {
		lines[i] = c.Summary
	}
	return lines
}

// PlannedChanges is Changes in detail, for kiln plan.
func (r *Instance) PlannedChanges() []engine.Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.planned)
}

// launchAttrs are what a launch sets, as plan shows them.
func (r *Instance) launchAttrs() []engine.Attr {
	attrs := []engine.Attr{
		{Name: "image", New: r.Image}, {Name: "type", New: r.Type},
		{Name: "region", New: cmp.Or(r.Region, r.hub.Region())},
		{Name: "subnet", New: cmp.Or(r.Subnet, "(the default VPC's)")},
		{Name: "state", New: r.state()},
	}
	opt := func(name, v string) {
		if v != "" {
			attrs = append(attrs, engine.Attr{Name: name, New: v})
		}
	}
	opt("security_groups", strings.Join(r.SecurityGroups, ", "))
	opt("key_name", r.KeyName)
	opt("iam_profile", r.IAMProfile)
	if r.UserData != "" {
		opt("user_data", fmt.Sprintf("%d bytes, sha256 %s…", len(r.UserData), userDataDigest(r.UserData)[:12]))
	}
	for _, k := range slices.Sorted(maps.Keys(r.Tags)) {
		opt("tags."+k, r.Tags[k])
	}
	return attrs
}

// describeDrift is a plan's attributes as one line: "type is t3.micro,
// spec wants t3.small; user_data differs".
func describeDrift(attrs []engine.Attr) string {
	d := make([]string, len(attrs))
	for i, a := range attrs {
		if a.Old == "" && a.New == "" {
			d[i] = a.Name + " differs"
			continue
		}
		d[i] = fmt.Sprintf("%s is %s, spec wants %s", a.Name, a.Old, a.New)
	}
	return strings.Join(d, "; ")
}

func (r *Instance) log() *slog.Logger {
	if r.env.Log != nil {
		return r.env.Log
	}
	return slog.New(slog.DiscardHandler)
}

// immutableDrift is the differences that only a replacement can fix.
func (r *Instance) immutableDrift(in types.Instance) []engine.Attr {
	var d []engine.Attr
	if got := aws.ToString(in.ImageId); got != r.Image {
		d = append(d, engine.Attr{Name: "image", Old: got, New: r.Image})
	}
	if r.Subnet != "" && aws.ToString(in.SubnetId) != r.Subnet {
		d = append(d, engine.Attr{Name: "subnet", Old: aws.ToString(in.SubnetId), New: r.Subnet})
	}
	// A key pair is only given at launch. Without one in the spec, any will do.
	if got := aws.ToString(in.KeyName); r.KeyName != "" && got != r.KeyName {
		d = append(d, engine.Attr{Name: "key_name", Old: cmp.Or(got, "none"), New: r.KeyName})
	}
	return d
}

// restartDrift is the differences fixed by stop → modify → start. User
// data is known only by its digest, so its Old and New are empty.
func (r *Instance) restartDrift(in types.Instance) []engine.Attr {
	var d []engine.Attr
	if got := string(in.InstanceType); got != r.Type {
		d = append(d, engine.Attr{Name: "type", Old: got, New: r.Type})
	}
	if awsapi.TagValue(in.Tags, tagUserData) != userDataDigest(r.UserData) {
		d = append(d, engine.Attr{Name: "user_data"})
	}
	return d
}

// instanceGroups are the ids of in's security groups, sorted.
func instanceGroups(in types.Instance) []string {
	var got []string
	for _, g := range in.SecurityGroups {
		got = append(got, aws.ToString(g.GroupId))
	}
	slices.Sort(got)
	return got
}

// groupDrift reports whether the instance has exactly the spec's security
// groups (any order); with none in the spec, whatever it has is fine.
func (r *Instance) groupDrift(in types.Instance) (want []string, ok bool) {
	if len(r.SecurityGroups) == 0 {
		return nil, true
	}
	want = slices.Sorted(slices.Values(r.SecurityGroups))
	want = slices.Compact(want)
	return want, slices.Equal(instanceGroups(in), want)
}

// setGroups changes a live instance's security groups (no restart needed).
func (r *Instance) setGroups(ctx context.Context, in types.Instance, groups []string) error {
	id := aws.ToString(in.InstanceId)
	err := r.hub.Retry(ctx, func(ctx context.Context) error {
		_, err := r.api.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(id), Groups: groups})
		return awsapi.Classify(notFoundNotYet(err), awsapi.PermanentLaunchCodes()...)
	})
	if err != nil {
		return fmt.Errorf("set security groups of instance %s: %w", id, err)
	}
	r.log().Info("instance security groups set", "instance", id, "groups", groups)
	return nil
}

func userDataDigest(s string) string {
	if s == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}

// tags are every tag the instance should carry.
func (r *Instance) tags() []types.Tag {
	m := maps.Clone(r.Tags)
	if m == nil {
		m = map[string]string{}
	}
	m[awsapi.TagName] = r.env.NameTag()
	m[awsapi.TagOwner] = r.env.Graph
	m[awsapi.TagResource] = r.id()
	protectTag(r.env, m)
	if d := userDataDigest(r.UserData); d != "" {
		m[tagUserData] = d
	}
	return awsapi.Tags(m)
}

func (r *Instance) missingTags(in types.Instance) []types.Tag {
	var out []types.Tag
	for _, t := range r.tags() {
		k := aws.ToString(t.Key)
		if k == tagUserData {
			continue // restartDrift's business
		}
		if v, ok := tagLookup(in.Tags, k); !ok || v != aws.ToString(t.Value) {
			out = append(out, t)
		}
	}
	return out
}

func tagLookup(tags []types.Tag, key string) (string, bool) {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value), true
		}
	}
	return "", false
}

// ClientToken is RunInstances' idempotency token for the launch of
// resource id in graph that replaces the instance prev ("" for the first):
// derived only from durable facts, so a process killed right after
// RunInstances sends the same token again and gets the same instance.
func ClientToken(graph, id, prev string) string {
	return awsapi.ClientToken("kiln-", graph, id, prev) // 53 chars ≤ 64
}

// checkArch refuses, before any launch, an image whose architecture the
// instance type does not run (EC2 would refuse the launch): a permanent
// error naming both.
func (r *Instance) checkArch(ctx context.Context, itype string) error {
	if err := r.hub.CheckArchitecture(ctx, r.Image, itype); err != nil {
		return fmt.Errorf("aws:ec2 %q: %w", r.env.Name, err)
	}
	return nil
}

// maxLaunchHops bounds following old tokens to terminated instances.
const maxLaunchHops = 10

// launch runs the instance (tags in the same call, so it is never untagged)
// and waits until it is running. A token already spent on an instance that
// has gone since (AWS remembers tokens longer than it lists terminated
// instances) leads to the next token, derived from that instance.
func (r *Instance) launch(ctx context.Context, prev string) (types.Instance, error) {
	for range maxLaunchHops {
		inst, err := r.hub.LaunchInBatch(ctx, r.sharedLaunch(), awsapi.BatchMember{
			Owner: r.owner(), Prev: prev, Token: ClientToken(r.env.Graph, r.id(), prev), Tags: r.ownTags(),
		})
		if err != nil {
			return types.Instance{}, fmt.Errorf("run instance %q: %w", r.env.Name, err)
		}
		id := aws.ToString(inst.InstanceId)
		inst.Tags = r.withGiven(inst.Tags, id)
		r.hub.Track(r.owner(), id)
		if !awsapi.IsLive(inst) {
			prev = id
			continue
		}
		r.log().Info("instance launched", "instance", id)
		cur, err := r.await(ctx, id, StateRunning)
		// await read the instance as EC2 lists it: the tags the hub is
		// setting count as set, or CheckApply would set them a second time.
		cur.Tags = r.withGiven(cur.Tags, id)
		if errors.Is(err, errMoved) {
			return cur, nil // converge takes it from there
		}
		return cur, err
	}
	return types.Instance{}, fmt.Errorf("run instance %q: every client token led to a terminated instance", r.env.Name)
}

// sharedLaunch is the launch without what is this instance's own (its
// token and its Name and kiln:resource tags), so that identical instances
// launch in one batch (awsapi.Hub.LaunchInBatch).
func (r *Instance) sharedLaunch() awsapi.Launch {
	tags := slices.DeleteFunc(r.tags(), func(t types.Tag) bool {
		k := aws.ToString(t.Key)
		return k == awsapi.TagName || k == awsapi.TagResource
	})
	return awsapi.Launch{
		Image: r.Image, Type: r.Type, UserData: r.UserData, Subnet: r.Subnet,
		SecurityGroups: r.SecurityGroups, KeyName: r.KeyName, Profile: r.IAMProfile, Tags: tags,
	}
}

// ownTags are the tags only this instance carries.
func (r *Instance) ownTags() []types.Tag {
	return awsapi.Tags(map[string]string{awsapi.TagName: r.env.NameTag(), awsapi.TagResource: r.id()})
}

// await waits on the hub (pushed events, then backoff re-checks through the
// batcher) until instance id is in state want, or has settled in another
// stable state (errMoved, with the instance). NotFound is "not yet", except
// when waiting for terminated, where it means gone.
func (r *Instance) await(ctx context.Context, id, want string) (types.Instance, error) {
	var cur types.Instance
	var moved bool
	err := r.hub.Await(ctx, id, func(ctx context.Context) (bool, error) {
		out, err := r.describe.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
		if awsapi.IsNotFound(err) {
			if want == StateTerminated {
				return true, nil
			}
			return false, awsapi.NotYet(err)
		}
		if err != nil {
			return false, err
		}
		for _, res := range out.Reservations {
			for _, in := range res.Instances {
				if aws.ToString(in.InstanceId) == id {
					cur = in
				}
			}
		}
		switch s := stateOf(cur); s {
		case want:
			return true, nil
		case StateRunning, StateStopped, StateTerminated:
			if !(want == StateTerminated && s != StateTerminated) {
				moved = true
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return cur, fmt.Errorf("wait for instance %s %s: %w", id, want, err)
	}
	if moved {
		return cur, fmt.Errorf("wait for instance %s %s: it is %s: %w", id, want, stateOf(cur), errMoved)
	}
	return cur, nil
}

func (r *Instance) start(ctx context.Context, id string) error {
	err := r.hub.Retry(ctx, func(ctx context.Context) error {
		_, err := r.states.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}})
		return notFoundNotYet(err)
	})
	if err != nil {
		return fmt.Errorf("start instance %s: %w", id, err)
	}
	r.log().Info("instance started", "instance", id)
	return nil
}

func (r *Instance) stop(ctx context.Context, id string) error {
	err := r.hub.Retry(ctx, func(ctx context.Context) error {
		_, err := r.states.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}})
		return notFoundNotYet(err)
	})
	if err != nil {
		return fmt.Errorf("stop instance %s: %w", id, err)
	}
	r.log().Info("instance stopping", "instance", id)
	return nil
}

func (r *Instance) terminate(ctx context.Context, in types.Instance) error {
	id := aws.ToString(in.InstanceId)
	err := r.hub.Retry(ctx, func(ctx context.Context) error {
		_, err := r.states.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
		return notFoundNotYet(err)
	})
	if err != nil {
		return fmt.Errorf("terminate instance %s: %w", id, err)
	}
	r.log().Info("instance terminating", "instance", id)
	if _, err := r.await(ctx, id, StateTerminated); err != nil {
		return err
	}
	return nil
}

// modify stops the instance, changes type and user data, and leaves it
// stopped (converge starts it again when the spec says running).
func (r *Instance) modify(ctx context.Context, cur types.Instance) (types.Instance, error) {
	id := aws.ToString(cur.InstanceId)
	cur, _, err := r.converge(ctx, cur, StateStopped, true)
	if err != nil {
		return cur, err
	}
	if string(cur.InstanceType) != r.Type {
		err := r.hub.Retry(ctx, func(ctx context.Context) error {
			_, err := r.api.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{
				InstanceId: aws.String(id), InstanceType: &types.AttributeValue{Value: aws.String(r.Type)},
			})
			return awsapi.Classify(err, awsapi.PermanentLaunchCodes()...)
		})
		if err != nil {
			return cur, fmt.Errorf("modify instance %s type: %w", id, err)
		}
		cur.InstanceType = types.InstanceType(r.Type)
	}
	if awsapi.TagValue(cur.Tags, tagUserData) != userDataDigest(r.UserData) {
		err := r.hub.Retry(ctx, func(ctx context.Context) error {
			_, err := r.api.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{
				InstanceId: aws.String(id), UserData: &types.SecureBlobAttributeValue{Value: []byte(r.UserData)},
			})
			return awsapi.Classify(err, awsapi.PermanentLaunchCodes()...)
		})
		if err != nil {
			return cur, fmt.Errorf("modify instance %s user data: %w", id, err)
		}
		d := userDataDigest(r.UserData)
		if err := r.tag(ctx, cur, []types.Tag{{Key: aws.String(tagUserData), Value: aws.String(d)}}); err != nil {
			return cur, err
		}
		cur.Tags = setTag(cur.Tags, tagUserData, d)
	}
	r.log().Info("instance modified", "instance", id, "type", r.Type)
	return cur, nil
}

func setTag(tags []types.Tag, k, v string) []types.Tag {
	out := slices.DeleteFunc(slices.Clone(tags), func(t types.Tag) bool { return aws.ToString(t.Key) == k })
	return append(out, types.Tag{Key: aws.String(k), Value: aws.String(v)})
}

func (r *Instance) tag(ctx context.Context, in types.Instance, tags []types.Tag) error {
	id := aws.ToString(in.InstanceId)
	err := r.hub.Retry(ctx, func(ctx context.Context) error {
		_, err := r.api.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id}, Tags: tags})
		return notFoundNotYet(err)
	})
	if err != nil {
		return fmt.Errorf("tag instance %s: %w", id, err)
	}
	return nil
}

// notFoundNotYet: a NotFound for an instance kiln has just seen is
// eventual consistency.
func notFoundNotYet(err error) error {
	if awsapi.Code(err) == "InvalidInstanceID.NotFound" {
		return awsapi.NotYet(err)
	}
	return err
}

var (
	_ engine.Resource       = (*Instance)(nil)
	_ engine.Initer         = (*Instance)(nil)
	_ engine.Outputter      = (*Instance)(nil)
	_ engine.SelfPoller     = (*Instance)(nil)
	_ engine.Changer        = (*Instance)(nil)
	_ engine.ChangePlanner  = (*Instance)(nil)
	_ config.Validator      = (*Instance)(nil)
	_ iampolicy.IAMActioner = (*Instance)(nil)
	_ iampolicy.RolePasser  = (*Instance)(nil)
)

// InstanceProfiles is the profile this instance is launched with, for the
// policy's iam:PassRole.
func (r *Instance) InstanceProfiles() []string {
	if r.IAMProfile == "" || r.State == StateTerminated {
		return nil
	}
	return []string{r.IAMProfile}
}
