package awsres

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awsapi"
	"kiln/internal/config"
	"kiln/internal/engine"
	"kiln/internal/iampolicy"
	"kiln/internal/pipeline"
)

// tagSpec holds the digest of what an aws:ami image was baked from.
const tagSpec = "kiln:spec"

// AMI is the aws:ami kind: an image baked from a base image and a script by
// the bakery's pipeline (the same code as kiln serve's bakes), found again
// by its tags kiln:owner, kiln:resource and kiln:spec (a digest of base,
// script, type and builder settings). A spec change bakes a new image; the
// old ones stay unless keep is set. With rebake_on_new_base, a base given by
// owner and name pattern is resolved on every check and poll and hashed as
// the image id it resolves to, so a newer base release bakes a new image.
// Output: image_id.
type AMI struct {
	Region         string            `yaml:"region"`
	Base           AMIBase           `yaml:"base"`
	Script         string            `yaml:"script"`
	Type           string            `yaml:"type"`            // the builder's instance type
	Keep           int               `yaml:"keep"`            // >0: keep this many images of this resource, remove older ones
	SecurityGroups []string          `yaml:"security_groups"` // of the builder
	Subnet         string            `yaml:"subnet"`          // of the builder
	IAMProfile     string            `yaml:"iam_profile"`     // of the builder
	Tags           map[string]string `yaml:"tags"`            // on the image and its snapshots
	Timeouts       AMITimeouts       `yaml:"timeouts"`
	// DeprecateAfter ("30d", "2w", "36h") gives each image a deprecation
	// time that long after its creation; DisableFor makes retention (keep)
	// disable an old image that long before deregistering it.
	DeprecateAfter string `yaml:"deprecate_after"`
	DisableFor     string `yaml:"disable_for"`
	// RebakeOnNewBase hashes the image a base pattern resolves to instead of
	// the pattern: a newer base release (a patched Amazon Linux) bakes anew.
	RebakeOnNewBase bool `yaml:"rebake_on_new_base"`
	// Distribution (ami_distribute.go): copies to other regions, their
	// encryption, and the accounts, organizations and OUs the image is
	// shared with in every region.
	CopyTo        []string `yaml:"copy_to"`
	Encrypt       bool     `yaml:"encrypt"`
	KMSKeyID      string   `yaml:"kms_key_id"`
	ShareWith     []string `yaml:"share_with"`
	ShareWithOrgs []string `yaml:"share_with_orgs"`
	ShareWithOUs  []string `yaml:"share_with_ous"`
	// Tests (ami_tests.go) runs a test on an instance of each new image
	// before it is used; an image that fails is kept, never output.
	Tests *AMITests `yaml:"tests"`

	hubs     *awsapi.Hubs
	env      engine.Env
	poll     time.Duration
	pipeOpts pipeline.PipelineOptions // tests shorten the console wait

	hub  *awsapi.Hub
	pipe *pipeline.Pipeline

	mu      sync.Mutex
	out     map[string]string
	base    string          // with RebakeOnNewBase: the base the image in out was baked from
	planned []engine.Change // what the last check-only CheckApply would do
}

// AMIBase is the image a bake starts from: id, or owner + name pattern
// (with most_recent when several match).
type AMIBase struct {
	ID         string `yaml:"id"`
	Owner      string `yaml:"owner"`
	Name       string `yaml:"name"`
	MostRecent bool   `yaml:"most_recent"`
}

// AMITimeouts bound the bake's waits; zero takes the bakery's defaults.
type AMITimeouts struct {
	Script time.Duration `yaml:"script"`
	Image  time.Duration `yaml:"image"`
}

// NewAMI returns an empty aws:ami resource using the shared hubs.
func NewAMI(hubs *awsapi.Hubs) *AMI {
	return &AMI{hubs: hubs}
}

// Validate checks the fields: the builder's by the rules every bake's
// builder follows (pipeline.Builder.Validate, as a project file's), then
// aws:ami's own. References are left to the engine.
func (r *AMI) Validate() error {
	var errs []error
	for _, p := range r.builder().Validate(config.HasRef) {
		errs = append(errs, config.Fieldf(p.Field, "%s", p.Msg))
	}
	if r.RebakeOnNewBase && r.Base.ID != "" {
		errs = append(errs, config.Fieldf("rebake_on_new_base", "needs a base given by owner and name pattern; base.id names one image, which no release replaces"))
	}
	if r.Keep < 0 {
		errs = append(errs, config.Fieldf("keep", "want 0 (keep all) or more, got %d", r.Keep))
	}
	for _, f := range []struct{ field, v string }{{"deprecate_after", r.DeprecateAfter}, {"disable_for", r.DisableFor}} {
		if _, err := pipeline.ParseAge(f.v); f.v != "" && err != nil {
			errs = append(errs, config.Fieldf(f.field, "%v", err))
		}
	}
	if r.DisableFor != "" && r.Keep == 0 {
		errs = append(errs, config.Fieldf("disable_for", "needs keep: only images retention removes are disabled first"))
	}
	return errors.Join(errs...)
}

// builder is the resource's bake settings in the pipeline's shape.
func (r *AMI) builder() pipeline.Builder {
	return pipeline.Builder{
		Region:         r.Region,
		Base:           pipeline.Base{ID: r.Base.ID, Owner: r.Base.Owner, Name: r.Base.Name, MostRecent: r.Base.MostRecent},
		Type:           r.Type,
		Script:         r.Script,
		SecurityGroups: r.SecurityGroups,
		Subnet:         r.Subnet,
		IAMProfile:     r.IAMProfile,
		Tags:           r.Tags,
		Timeouts:       pipeline.Timeouts{Script: r.Timeouts.Script, Image: r.Timeouts.Image},
		Distribution:   r.distribution(),
		DeprecateAfter: age(r.DeprecateAfter),
		Tests:          r.tests(),
	}
}

// age is a validated age field's value, 0 when unset.
func age(s string) time.Duration {
	d, _ := pipeline.ParseAge(s)
	if s == "" {
		return 0
	}
	return d
}

// Init receives the vertex's identity.
func (r *AMI) Init(env engine.Env) error {
	r.env = env
	return nil
}

// SetPoll sets how often Watch re-reads the image (the poll meta-param);
// pushed AMI events are the fast path. Default: the hub's (60 s).
func (r *AMI) SetPoll(d time.Duration) { r.poll = d }

// IAMActions are the calls a bake makes, plus iam:PassRole for a builder
// with an instance profile; the lookup of security groups by name only when
// the builder names one.
func (r *AMI) IAMActions() []string {
	byName := slices.ContainsFunc(r.SecurityGroups, func(g string) bool { return !strings.HasPrefix(g, "sg-") })
	acts := slices.DeleteFunc(pipeline.IAMActions(), func(a string) bool { return a == "ec2:DescribeSecurityGroups" && !byName })
	acts = append(acts, pipeline.DistributionIAMActions(r.distribution())...)
	acts = append(acts, pipeline.LifecycleIAMActions(r.DeprecateAfter != "", r.DisableFor != "" && r.Keep > 0)...)
	if r.IAMProfile != "" {
		acts = append(acts, "iam:PassRole")
	}
	return acts
}

// Outputs are image_id of the converged image.
func (r *AMI) Outputs() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.out)
}

// setImage records the converged image, its copies by region (the home
// region's included) and the resolved base it was baked from ("" without
// RebakeOnNewBase).
func (r *AMI) setImage(id string, regions map[string]string, base string) {
	r.mu.Lock()
	r.out = map[string]string{"image_id": id}
	for region, img := range regions {
		r.out[RegionOutput(region)] = img
	}
	r.base = base
	r.mu.Unlock()
}

func (r *AMI) current() (image, base string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out["image_id"], r.base
}

// plan records what a check-only pass found due.
func (r *AMI) plan(c engine.Change) {
	r.mu.Lock()
	r.planned = append(r.planned, c)
	r.mu.Unlock()
}

// bakeChange is a bake a check-only pass found due: a new image, with
// what it is baked from.
func (r *AMI) bakeChange(why, base string) engine.Change {
	return engine.Change{Action: engine.ActionCreate, Summary: why, Attrs: []engine.Attr{
		{Name: "base", New: cmp.Or(base, r.Base.ID, r.Base.Name)},
		{Name: "type", New: r.Type},
		{Name: "script", New: fmt.Sprintf("%d bytes", len(r.Script))},
	}}
}

// Changes lists what the last CheckApply with apply=false found it would
// do ("bake image: new base ami-x replaces ami-y").
func (r *AMI) Changes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	lines := make([]string, len(r.planned))
	for i, c := range r.planned {
		lines[i] = c.Summary
	}
	return lines
}

// PlannedChanges is Changes in detail, for kiln plan.
func (r *AMI) PlannedChanges() []engine.Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.planned)
}

func (r *AMI) id() string {
	if r.env.ID != "" {
		return r.env.ID
	}
	return "aws:ami/" + r.env.Name
}

func (r *AMI) resolve(ctx context.Context) error {
	if r.hub != nil {
		return nil
	}
	if r.hubs == nil {
		return engine.Permanent(errors.New("aws:ami: no AWS hubs (constructed without NewAMI)"))
	}
	h, err := r.hubs.Hub(ctx, r.Region)
	if err != nil {
		return fmt.Errorf("aws:ami %q: %w", r.env.Name, err)
	}
	r.hub, r.pipe = h, pipeline.NewPipeline(r.hubs, r.env.Log, r.pipeOpts)
	return nil
}

// specDigest identifies what the image is baked from: base, script, type
// and the builder's settings. A base given by name pattern is hashed as the
// pattern, so a newer base release does not by itself rebake; with
// RebakeOnNewBase, resolved (the image the pattern resolves to now) is
// hashed in its place. resolved is "" without the option, which keeps the
// digest, and so the images found, what they were before the option existed.
func (r *AMI) specDigest(resolved string) string {
	base := r.Base
	if resolved != "" {
		base = AMIBase{ID: resolved}
	}
	b, _ := json.Marshal(struct {
		Base           AMIBase
		Script, Type   string
		SecurityGroups []string
		Subnet         string
		IAMProfile     string
	}{base, r.Script, r.Type, r.SecurityGroups, r.Subnet, r.IAMProfile})
	sum := sha256.Sum256(b)
	return r.testsDigest(hex.EncodeToString(sum[:16])) // ami_tests.go
}

// match are the tags of this resource's images for the spec with base
// resolved (see specDigest).
func (r *AMI) match(resolved string) map[string]string {
	return map[string]string{awsapi.TagOwner: r.env.Graph, awsapi.TagResource: r.id(), tagSpec: r.specDigest(resolved)}
}

// resolveBase returns the image the base pattern resolves to now, with
// RebakeOnNewBase, by the bake pipeline's own resolution (one
// DescribeImages); "" without the option, making no call.
func (r *AMI) resolveBase(ctx context.Context) (string, error) {
	if !r.RebakeOnNewBase {
		return "", nil
	}
	id, err := r.pipe.ResolveBase(ctx, r.Region, r.Type, pipeline.Base{Owner: r.Base.Owner, Name: r.Base.Name, MostRecent: r.Base.MostRecent})
	if err != nil {
		return "", fmt.Errorf("aws:ami %q: %w", r.env.Name, err)
	}
	return id, nil
}

// Watch calls Running, then re-reads the converged image on every pushed
// event for it and every poll, and calls Changed when it is no longer
// available (deregistered, disabled, failed); every poll also looks at
// the copies (one DescribeImages per copy_to region). With RebakeOnNewBase every
// poll also resolves the base pattern again (one more DescribeImages) and
// calls Changed, once per release, when it resolves to another image than
// the one the converged image was baked from. It blocks until ctx is done.
func (r *AMI) Watch(ctx context.Context, ev engine.Events) error {
	if err := r.resolve(ctx); err != nil {
		return err
	}
	poll := r.poll
	if poll <= 0 {
		poll = r.hub.Options().Poll
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	ev.Running()
	reported := "" // the newer base already reported, so a long bake is not reported again every poll
	for {
		id, base := r.current()
		var ch <-chan struct{}
		cancel := func() {}
		if id != "" {
			ch, cancel = r.hub.Changes(id)
		}
		polled := false
		select {
		case <-ctx.Done():
			cancel()
			return ctx.Err()
		case <-ch:
		case <-t.C:
			polled = true
		}
		cancel()
		if id == "" {
			continue
		}
		ok, err := r.available(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue // the next poll looks again
		}
		if !ok {
			ev.Changed()
			continue
		}
		if polled && r.copyGone(ctx) { // ami_distribute.go
			ev.Changed()
			continue
		}
		if !polled || base == "" {
			continue // a pushed event is about the image, not the base
		}
		newest, err := r.resolveBase(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue // CheckApply reports a base that no longer resolves
		}
		if newest != base && newest != reported {
			reported = newest
			r.log("new base image", "base", newest, "replaces", base)
			ev.Changed()
		}
	}
}

// available reports whether image id exists and is available.
func (r *AMI) available(ctx context.Context, id string) (bool, error) {
	out, err := r.hub.EC2().DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}})
	if awsapi.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return len(out.Images) == 1 && out.Images[0].State == types.ImageStateAvailable, nil
}

// find lists this resource's images with tags m, newest first.
func (r *AMI) find(ctx context.Context, m map[string]string) ([]types.Image, error) {
	var fs []types.Filter
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fs = append(fs, types.Filter{Name: aws.String("tag:" + k), Values: []string{m[k]}})
	}
	var imgs []types.Image
	err := r.hub.Retry(ctx, func(ctx context.Context) error {
		imgs = imgs[:0]
		p := ec2.NewDescribeImagesPaginator(r.hub.EC2(), &ec2.DescribeImagesInput{Owners: []string{"self"}, Filters: fs})
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				return err
			}
			imgs = append(imgs, out.Images...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find image of aws:ami %q: %w", r.env.Name, err)
	}
	slices.SortFunc(imgs, func(a, b types.Image) int {
		return strings.Compare(aws.ToString(b.CreationDate), aws.ToString(a.CreationDate))
	})
	return imgs, nil
}

// liveBuilderBake returns the kiln:bake tag of a live builder of this
// resource with tags m (a bake a crash interrupted, to resume), or "".
// Live builders of this resource baking another spec (the spec changed
// while kiln was down) are terminated: no bake of this resource will ever
// own them again.
func (r *AMI) liveBuilderBake(ctx context.Context, m map[string]string) (string, error) {
	builders, err := r.pipe.Builders(ctx, r.Region,
		types.Filter{Name: aws.String("tag:" + awsapi.TagOwner), Values: []string{r.env.Graph}},
		types.Filter{Name: aws.String("tag:" + awsapi.TagResource), Values: []string{r.id()}})
	if err != nil {
		return "", fmt.Errorf("find builder of aws:ami %q: %w", r.env.Name, err)
	}
	var id string
	var stale []string
	for _, in := range builders {
		if awsapi.TagValue(in.Tags, tagSpec) != m[tagSpec] {
			stale = append(stale, aws.ToString(in.InstanceId))
		} else if v := awsapi.TagValue(in.Tags, awsapi.TagBake); v != "" {
			id = v
		}
	}
	if len(stale) > 0 {
		if err := r.pipe.Terminate(ctx, r.Region, stale); err != nil {
			return "", fmt.Errorf("aws:ami %q: builders of an older spec: %w", r.env.Name, err)
		}
		r.log("terminated builders of an older spec", "instances", stale)
	}
	return id, nil
}

// CheckApply looks for an available image of the current spec (with
// RebakeOnNewBase, of the base as it resolves now). When there is none and
// apply is set, it bakes one with the bakery's pipeline and waits until it
// is available (resuming a bake a crash interrupted: a pending image or a
// live builder of the spec is picked up by its kiln:bake tag), then applies
// keep.
func (r *AMI) CheckApply(ctx context.Context, apply bool) (bool, error) {
	if err := r.resolve(ctx); err != nil {
		return false, err
	}
	r.mu.Lock()
	r.planned = nil
	r.mu.Unlock()
	base, err := r.resolveBase(ctx)
	if err != nil {
		return false, err
	}
	m := r.match(base)
	imgs, err := r.find(ctx, m)
	if err != nil {
		return false, err
	}
	var bakeID string
	var have *types.Image // available here, its distribution not complete
	for _, im := range imgs {
		switch im.State {
		case types.ImageStateAvailable:
			if err := r.testsFailed(im); err != nil { // ami_tests.go
				return false, err
			}
			if have != nil {
				continue
			}
			if r.untested(im) {
				if !apply {
					r.plan(r.bakeChange("test image "+aws.ToString(im.ImageId), base))
					return false, nil
				}
				have, bakeID = &im, awsapi.TagValue(im.Tags, awsapi.TagBake)
				continue
			}
			regions, todo, err := r.distributed(ctx, im)
			if err != nil {
				return false, err
			}
			if len(todo) == 0 {
				r.setImage(aws.ToString(im.ImageId), regions, base)
				return true, nil
			}
			if !apply {
				for _, t := range todo {
					r.plan(engine.Change{Action: engine.ActionUpdate, Summary: t})
				}
				r.log("would distribute image", "image", aws.ToString(im.ImageId), "todo", strings.Join(todo, "; "))
				return false, nil
			}
			have = &im
			bakeID = awsapi.TagValue(im.Tags, awsapi.TagBake)
		case types.ImageStatePending:
			if bakeID == "" {
				bakeID = awsapi.TagValue(im.Tags, awsapi.TagBake)
			}
		}
	}
	why := "bake image"
	if have != nil {
		why = "distribute image " + aws.ToString(have.ImageId)
	}
	if base != "" && have == nil {
		old, err := r.replacedBase(ctx, base)
		if err != nil {
			return false, err
		}
		if old != "" {
			why = fmt.Sprintf("bake image: new base %s replaces %s", base, old)
		}
	}
	if !apply {
		r.log("would bake image", "spec", m[tagSpec], "base", base, "why", why)
		r.plan(r.bakeChange(why, base))
		return false, nil
	}
	if bakeID == "" {
		if bakeID, err = r.liveBuilderBake(ctx, m); err != nil {
			return false, err
		}
	}
	if bakeID == "" {
		// A new attempt: a fresh identity, so a failed attempt's spent
		// client token and image name are not met again.
		bakeID = m[tagSpec][:12] + "-" + strconv.FormatInt(time.Now().UnixMilli(), 36)
	}
	r.log("baking image", "spec", m[tagSpec], "base", base, "why", why)
	spec := r.bakeSpec(bakeID, base)
	if have != nil {
		spec.ImageName, spec.KeepImage = aws.ToString(have.Name), true
		spec.CopyAttempt = strconv.FormatInt(time.Now().UnixMilli(), 36)
	}
	res, err := r.pipe.Bake(ctx, spec, logRecorder{r})
	if err != nil && ctx.Err() != nil {
		r.cleanupInterrupted(ctx, spec)
	}
	var fe *pipeline.FailedError
	if errors.As(err, &fe) {
		tail := fe.ConsoleTail
		if len(tail) > 1024 {
			tail = tail[len(tail)-1024:]
		}
		return false, fmt.Errorf("aws:ami %q: %s\n%s", r.env.Name, fe.Reason, tail)
	}
	if err != nil {
		return false, fmt.Errorf("aws:ami %q: %w", r.env.Name, err)
	}
	regions := map[string]string{}
	for _, ri := range res.Regions {
		regions[ri.Region] = ri.ImageID
	}
	r.setImage(res.ImageID, regions, base)
	r.log("image baked", "image", res.ImageID, "name", spec.ImageName, "regions", len(res.Regions))
	if r.Keep > 0 {
		m := map[string]string{awsapi.TagOwner: r.env.Graph, awsapi.TagResource: r.id()}
		if _, err := r.pipe.RetainRegions(ctx, append([]string{r.hub.Region()}, r.CopyTo...), m, pipeline.Keep{N: r.Keep, DisableFor: age(r.DisableFor)}); err != nil {
			return false, fmt.Errorf("aws:ami %q: %w", r.env.Name, err)
		}
	}
	return false, nil
}

// interruptCleanup bounds the clean-up of a bake that was interrupted: kiln
// stopping (SIGINT, SIGTERM) waits this long at most for it.
const interruptCleanup = 30 * time.Second

// cleanupInterrupted terminates the builder and removes the pending image
// of a bake whose check was cancelled (kiln stopping, the resource removed
// from the graph, its timeout), so a stopped kiln leaves nothing running.
// A kiln that is killed instead resumes the bake at its next start.
func (r *AMI) cleanupInterrupted(ctx context.Context, spec pipeline.Spec) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), interruptCleanup)
	defer cancel()
	if err := r.pipe.Cleanup(cctx, spec, nil); err != nil {
		if r.env.Log != nil {
			r.env.Log.Warn("clean up interrupted bake", "bake", spec.ID, "err", err)
		}
		return
	}
	r.log("interrupted bake cleaned up", "bake", spec.ID)
}

// replacedBase returns the base of this resource's newest available image
// when that image differs from the spec only by its base (its kiln:spec is
// the digest with its kiln:source-image as the base) and base replaces it;
// else "". One DescribeImages, made only when a bake is due.
func (r *AMI) replacedBase(ctx context.Context, base string) (string, error) {
	imgs, err := r.find(ctx, map[string]string{awsapi.TagOwner: r.env.Graph, awsapi.TagResource: r.id()})
	if err != nil {
		return "", err
	}
	for _, im := range imgs {
		if im.State != types.ImageStateAvailable {
			continue
		}
		old := awsapi.TagValue(im.Tags, pipeline.TagSourceImage)
		if old != "" && old != base && awsapi.TagValue(im.Tags, tagSpec) == r.specDigest(old) {
			return old, nil
		}
		return "", nil
	}
	return "", nil
}

var amiNameBad = regexp.MustCompile(`[^A-Za-z0-9()\[\]./\-'@_ ]`)

// bakeSpec is the bake of identity id; with a resolved base it bakes from
// exactly that image, the one the spec's digest names, even when a newer
// release appears while the bake runs.
func (r *AMI) bakeSpec(id, resolved string) pipeline.Spec {
	name := amiNameBad.ReplaceAllString(fmt.Sprintf("kiln/%s/%s/%s", r.env.Graph, r.env.Name, id), "_")
	if len(name) > 128 {
		name = name[len(name)-128:]
	}
	b := r.builder()
	if resolved != "" {
		b.Base = pipeline.Base{ID: resolved}
	}
	return pipeline.Spec{ID: id, ImageName: name, Builder: b, Match: r.match(resolved)}
}

func (r *AMI) log(msg string, args ...any) {
	if r.env.Log != nil {
		r.env.Log.Info(msg, args...)
	}
}

// logRecorder logs a bake's steps (kiln run keeps no bake records).
type logRecorder struct{ r *AMI }

func (l logRecorder) StartStep(_ context.Context, name, detail string) error {
	l.r.log("bake step", "step", name, "detail", detail)
	return nil
}

func (l logRecorder) FinishStep(_ context.Context, name string, state pipeline.StepState, detail string) error {
	l.r.log("bake step "+string(state), "step", name, "detail", detail)
	return nil
}

func (l logRecorder) Builder(context.Context, string) error { return nil }
func (l logRecorder) Image(context.Context, string) error   { return nil }

var (
	_ engine.Resource       = (*AMI)(nil)
	_ engine.Initer         = (*AMI)(nil)
	_ engine.Outputter      = (*AMI)(nil)
	_ engine.Changer        = (*AMI)(nil)
	_ engine.ChangePlanner  = (*AMI)(nil)
	_ engine.SelfPoller     = (*AMI)(nil)
	_ config.Validator      = (*AMI)(nil)
	_ iampolicy.IAMActioner = (*AMI)(nil)
	_ iampolicy.RolePasser  = (*AMI)(nil)
)

// SweepBuilders terminates the live builders of graph's aws:ami resources
// that no resource of rs (the graph's resources by id, as built for a
// run) owns any more: left by a kiln that was killed mid-bake and whose resource
// has since left the graph. It looks in every region the AWS resources of
// rs use; builders of resources still in the graph are theirs to resume or
// terminate (liveBuilderBake). A graph without AWS resources makes no call.
func SweepBuilders(ctx context.Context, hubs *awsapi.Hubs, graph string, rs map[string]any, log *slog.Logger) ([]string, error) {
	keep := map[string]bool{}
	regions := map[string]bool{}
	for id, r := range rs {
		switch r := r.(type) {
		case *AMI:
			keep[id] = true
			regions[r.Region] = true
		case *Instance:
			regions[r.Region] = true
		case *ASG:
			regions[r.Region] = true
		}
	}
	if len(regions) == 0 {
		return nil, nil
	}
	p := pipeline.NewPipeline(hubs, log, pipeline.PipelineOptions{})
	var swept []string
	var errs []error
	for _, region := range slices.Sorted(maps.Keys(regions)) {
		ids, err := p.SweepGraph(ctx, region, graph, keep)
		swept = append(swept, ids...)
		errs = append(errs, err)
	}
	return swept, errors.Join(errs...)
}

// InstanceProfiles is the builder's profile, for the policy's iam:PassRole.
func (r *AMI) InstanceProfiles() []string {
	if r.IAMProfile == "" {
		return nil
	}
	return []string{r.IAMProfile}
}
