package pipeline

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awsapi"
	"kiln/internal/engine"
)

// Step names, as a Recorder receives them, in order.
const (
	StepResolve     = "resolve base image"
	StepLaunch      = "launch builder"
	StepWaitStopped = "wait for builder to stop"
	StepResult      = "read script result"
	StepCreateImage = "create image"
	StepWaitImage   = "wait for image"
	StepTagImage    = "tag image"
	StepTerminate   = "terminate builder"
	StepRetention   = "retention"
	StepRecord      = "record image"
	StepRollout     = "rollout" // when the project has a rollout target: the last step
	StepCleanup     = "clean up"
)

// Tags the bakery puts on what it makes, besides awsapi.TagBake.
const (
	TagProject     = "kiln:project"
	TagCommit      = "kiln:commit"
	TagSourceImage = "kiln:source-image"
	// TagOrigin tells apart bakes with the same id from different databases
	// (a fresh database in the same account counts from 1 again): the
	// bake's creation time in Unix milliseconds.
	TagOrigin = "kiln:bake-origin"
	// TagBakery names the bakery (one per database) whose
	// bake made the builder or image; the sweeper touches only its own.
	TagBakery = "kiln:bakery"
	// TagRole marks a bake's builder instance ("builder"), for the sweeper.
	TagRole     = "kiln:role"
	roleBuilder = "builder"
)

// Base is the image a bake starts from: an ID, or the newest image of an
// owner whose name matches a pattern.
type Base struct {
	ID         string
	Owner      string
	Name       string // name pattern, '*' and '?' wildcards as DescribeImages
	MostRecent bool
}

// Timeouts bound the two long waits of a bake.
type Timeouts struct {
	Script time.Duration // launch until the builder has stopped
	Image  time.Duration // CreateImage until the image is available
}

// Defaults of the two waits when a spec gives none.
const (
	DefaultScriptTimeout = 30 * time.Minute
	DefaultImageTimeout  = 60 * time.Minute
)

// PipelineOptions tune the waits of a bake.
type PipelineOptions struct {
	// ConsoleWait is how long to keep asking for the builder's console
	// output before concluding the marker is absent (AWS posts it a while
	// after the stop). Default 5 minutes, and never longer than the bake's
	// script timeout.
	ConsoleWait time.Duration
	// ScriptTimeout and ImageTimeout apply when a Spec gives none.
	ScriptTimeout, ImageTimeout time.Duration
	// Now is the clock of image lifecycle times (deprecation, retention's
	// disabling); default time.Now. Tests pass the simulator's.
	Now func() time.Time
}

func (o *PipelineOptions) fill() {
	if o.ConsoleWait <= 0 {
		o.ConsoleWait = 5 * time.Minute
	}
	if o.ScriptTimeout <= 0 {
		o.ScriptTimeout = DefaultScriptTimeout
	}
	if o.ImageTimeout <= 0 {
		o.ImageTimeout = DefaultImageTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Spec is one bake as the pipeline needs it: what it is baked from
// (Builder, as the project or aws:ami declares it) and the bake's identity.
type Spec struct {
	ID        string // the bake's identity: console marker, kiln:bake tag, client token
	ImageName string // unique per account and region: the image's idempotency key
	Builder
	// Match are the tags that identify this bake's builder and image (found
	// again by them after a crash); they are put on builder, image and
	// snapshots besides Builder.Tags (Match wins). kiln:bake = ID is always
	// among them.
	Match map[string]string
	// KeepImage: the image in the bake's region is made and in use already
	// (aws:ami distributing an existing image to a new region): a failure or
	// a clean-up removes the copies only.
	KeepImage bool
	// CopyAttempt is part of the copies' client tokens. A bake leaves it
	// empty; aws:ami sets a fresh one when it copies an image it made
	// before again (a copy deregistered by hand, or failed): the first
	// copy's token would answer that gone copy. The copy's name, unique
	// per region, still keeps a resumed attempt from making two.
	CopyAttempt string
}

// Result is what a successful bake made.
type Result struct {
	ImageID     string
	ImageName   string // Spec.ImageName, or "<it>-<origin>" when another database's bake took it
	SourceImage string // the base image id
	BuilderID   string
	Snapshots   []string
	ConsoleTail string
	// Regions is the image in every region: the bake's own first, then
	// each copy in CopyTo's order.
	Regions []RegionImage
}

// StepState is how a step ended, as FinishStep reports it.
type StepState string

// The ends of a step.
const (
	StepSucceeded StepState = "succeeded"
	StepFailed    StepState = "failed"
)

// Recorder receives a bake's progress. The Service's records steps in the
// store; aws:ami's logs them. A non-nil error from StartStep stops the bake
// with that error (the Service returns one when a cancel was requested).
type Recorder interface {
	StartStep(ctx context.Context, name, detail string) error
	FinishStep(ctx context.Context, name string, state StepState, detail string) error
	// Builder and Image are called as soon as the builder's or image's id is
	// known, before waiting on it.
	Builder(ctx context.Context, instanceID string) error
	Image(ctx context.Context, imageID string) error
}

// StepClock is an optional Recorder method: when a step first started, kept
// across restarts, so a resumed wait keeps the deadline of the first
// attempt instead of starting its timeout afresh.
type StepClock interface {
	FirstStarted(ctx context.Context, name string) (time.Time, bool)
}

// deadline is the end of step name's timeout d, counted from the step's
// first start when the recorder knows it.
func (r *run) deadline(ctx context.Context, name string, d time.Duration) time.Time {
	if c, ok := r.rec.(StepClock); ok {
		if t, ok := c.FirstStarted(ctx, name); ok && !t.IsZero() {
			return t.Add(d)
		}
	}
	return time.Now().Add(d)
}

// FailedError is a bake that ended for good: the script failed or timed
// out, or the image failed. The builder has been terminated and a partial
// image removed before it is returned.
type FailedError struct {
	Reason      string
	ConsoleTail string
	// ImageID is set when the image is kept: it failed its tests (tagged
	// kiln:tests=failed, for inspection; retention removes it first).
	ImageID string
}

func (e *FailedError) Error() string { return "bake failed: " + e.Reason }

// ec2API is what the pipeline calls, in the SDK's shape: *ec2.Client
// satisfies it.
type ec2API interface {
	DescribeInstances(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	RunInstances(context.Context, *ec2.RunInstancesInput, ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error)
	TerminateInstances(context.Context, *ec2.TerminateInstancesInput, ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error)
	GetConsoleOutput(context.Context, *ec2.GetConsoleOutputInput, ...func(*ec2.Options)) (*ec2.GetConsoleOutputOutput, error)
	CreateImage(context.Context, *ec2.CreateImageInput, ...func(*ec2.Options)) (*ec2.CreateImageOutput, error)
	DescribeImages(context.Context, *ec2.DescribeImagesInput, ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error)
	CreateTags(context.Context, *ec2.CreateTagsInput, ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
	DeregisterImage(context.Context, *ec2.DeregisterImageInput, ...func(*ec2.Options)) (*ec2.DeregisterImageOutput, error)
	DeleteSnapshot(context.Context, *ec2.DeleteSnapshotInput, ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error)
	// Distribution (distribute.go).
	CopyImage(context.Context, *ec2.CopyImageInput, ...func(*ec2.Options)) (*ec2.CopyImageOutput, error)
	ModifyImageAttribute(context.Context, *ec2.ModifyImageAttributeInput, ...func(*ec2.Options)) (*ec2.ModifyImageAttributeOutput, error)
	// Deprecation and disabling (lifecycle.go).
	EnableImageDeprecation(context.Context, *ec2.EnableImageDeprecationInput, ...func(*ec2.Options)) (*ec2.EnableImageDeprecationOutput, error)
	DisableImage(context.Context, *ec2.DisableImageInput, ...func(*ec2.Options)) (*ec2.DisableImageOutput, error)
	ModifySnapshotAttribute(context.Context, *ec2.ModifySnapshotAttributeInput, ...func(*ec2.Options)) (*ec2.ModifySnapshotAttributeOutput, error)
	DescribeLaunchTemplates(context.Context, *ec2.DescribeLaunchTemplatesInput, ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplatesOutput, error)
	DescribeLaunchTemplateVersions(context.Context, *ec2.DescribeLaunchTemplateVersionsInput, ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplateVersionsOutput, error)
}

// describer is the by-id lookup of a builder; the hub's batcher satisfies it.
type describer interface {
	DescribeInstances(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
}

// IAMActions are the calls a bake makes (retention included; a rollout's
// are awsres.RolloutIAMActions).
func IAMActions() []string {
	return []string{
		"ec2:DescribeImages", "ec2:DescribeInstanceTypes", "ec2:RunInstances", "ec2:CreateTags", "ec2:DescribeInstances",
		"ec2:GetConsoleOutput", "ec2:TerminateInstances", "ec2:CreateImage", "ec2:DeregisterImage",
		"ec2:DeleteSnapshot", "ec2:DescribeLaunchTemplateVersions", "autoscaling:DescribeAutoScalingGroups",
		"ec2:DescribeSecurityGroups", // security groups given by name
	}
}

// Pipeline runs bakes against EC2 through the region hubs. It is stateless
// between calls and safe for concurrent use.
type Pipeline struct {
	hubs *awsapi.Hubs
	log  *slog.Logger
	o    PipelineOptions
}

// NewPipeline returns a pipeline over hubs (hubs.Run must be running while it
// bakes: the batcher serves the builder's lookups). log may be nil.
func NewPipeline(hubs *awsapi.Hubs, log *slog.Logger, o PipelineOptions) *Pipeline {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	o.fill()
	return &Pipeline{hubs: hubs, log: log, o: o}
}

// run is one call of Bake or Cleanup: the region's clients and the spec.
type run struct {
	p        *Pipeline
	hub      *awsapi.Hub
	api      ec2API
	describe describer
	spec     Spec
	rec      Recorder
	log      *slog.Logger
}

func (p *Pipeline) start(ctx context.Context, spec Spec, rec Recorder) (*run, error) {
	if spec.ID == "" || spec.ImageName == "" {
		return nil, engine.Permanent(errors.New("bake: spec without id or image name"))
	}
	h, err := p.hubs.Hub(ctx, spec.Region)
	if err != nil {
		return nil, engine.Permanent(fmt.Errorf("bake %s: %w", spec.ID, err))
	}
	if spec.Match == nil {
		spec.Match = map[string]string{}
	}
	spec.Match = maps.Clone(spec.Match)
	spec.Match[awsapi.TagBake] = spec.ID
	if spec.Timeouts.Script <= 0 {
		spec.Timeouts.Script = p.o.ScriptTimeout
	}
	if spec.Timeouts.Image <= 0 {
		spec.Timeouts.Image = p.o.ImageTimeout
	}
	if rec == nil {
		rec = nopRecorder{}
	}
	return &run{p: p, hub: h, api: h.EC2(), describe: h.Instances(), spec: spec, rec: rec,
		log: p.log.With("bake", spec.ID)}, nil
}

// Bake runs every step of spec, each idempotent: a repeated call (after a
// crash) finds the image by its name and the builder by its tags and
// client token, and carries on from there. It blocks until the image is
// available and tagged and the builder is terminating, or the bake failed.
// Errors: *FailedError (for good, already cleaned up); an error marked
// engine.Permanent (a bad spec or a missing permission: retrying will not
// help; not cleaned up, call Cleanup); ctx's error; or another AWS error
// (transient: call Bake again later).
func (p *Pipeline) Bake(ctx context.Context, spec Spec, rec Recorder) (Result, error) {
	r, err := p.start(ctx, spec, rec)
	if err != nil {
		return Result{}, err
	}
	res, err := r.bake(ctx)
	var fe *FailedError
	if errors.As(err, &fe) {
		if fe.ImageID != "" {
			r.spec.KeepImage = true // failed its tests: kept for inspection
		}
		// Clean up even when ctx ended meanwhile: a failed bake must not
		// leave its builder running.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if cerr := r.cleanup(cctx); cerr != nil {
			r.log.Warn("clean up after failure", "err", cerr)
		}
	}
	return res, err
}

// Cleanup terminates the bake's builder and deregisters its image (deleting
// the image's snapshots) when there is one; for a cancelled or failed bake.
// It is idempotent and blocks until the calls are made (not until the
// builder is gone). rec may be nil.
func (p *Pipeline) Cleanup(ctx context.Context, spec Spec, rec Recorder) error {
	r, err := p.start(ctx, spec, rec)
	if err != nil {
		return err
	}
	return r.cleanup(ctx)
}

func (r *run) bake(ctx context.Context) (Result, error) {
	var res Result
	img, err := r.ownImage(ctx)
	if err != nil {
		return res, err
	}
	if img == nil {
		if err := r.build(ctx, &res); err != nil {
			return res, err
		}
		if img, err = r.createImage(ctx, &res); err != nil {
			return res, err
		}
	} else {
		// A restart after CreateImage: the builder, when still around, is
		// terminated below.
		res.SourceImage = awsapi.TagValue(img.Tags, TagSourceImage)
		r.log.Info("image found again", "image", aws.ToString(img.ImageId))
		if err := r.rec.Image(ctx, aws.ToString(img.ImageId)); err != nil {
			return res, err
		}
	}
	res.ImageID, res.ImageName = aws.ToString(img.ImageId), r.spec.ImageName
	if img, err = r.waitImage(ctx, res.ImageID); err != nil {
		return res, err
	}
	res.Snapshots = snapshotsOf(*img)
	if res.SourceImage == "" {
		res.SourceImage = awsapi.TagValue(img.Tags, TagSourceImage)
	}
	if err := r.tagImage(ctx, res, *img); err != nil {
		return res, err
	}
	if err := r.step(ctx, StepTerminate, "", func() (string, error) {
		ids, err := r.terminateBuilders(ctx)
		return strings.Join(ids, ", "), err
	}); err != nil {
		return res, err
	}
	if err := r.testImage(ctx, *img); err != nil { // imagetest.go
		return res, err
	}
	if err := r.distribute(ctx, &res); err != nil {
		return res, err
	}
	return res, nil
}

// step records a step around fn; fn's string is the detail on success.
func (r *run) step(ctx context.Context, name, detail string, fn func() (string, error)) error {
	if err := r.rec.StartStep(ctx, name, detail); err != nil {
		return err
	}
	out, err := fn()
	state := StepSucceeded
	switch {
	case err == nil:
		if out != "" {
			detail = out
		}
	case ctx.Err() != nil:
		// Interrupted (shutdown or cancel): the step stays "running" for a
		// restart to pick up, unless the cancel is recorded by the caller.
		return err
	default:
		state, detail = StepFailed, err.Error()
		var fe *FailedError
		if errors.As(err, &fe) {
			detail = fe.Reason
		}
	}
	if ferr := r.rec.FinishStep(context.WithoutCancel(ctx), name, state, detail); ferr != nil && err == nil {
		return ferr
	}
	return err
}

// build launches the builder (or finds it again), waits until the script
// has powered it off and reads the result from its console.
func (r *run) build(ctx context.Context, res *Result) error {
	b, err := r.findBuilder(ctx)
	if err != nil {
		return err
	}
	if b != nil && !isLive(*b) {
		// The builder went before an image was made: a failed bake whose
		// bookkeeping a crash cut short, or someone terminated it.
		res.BuilderID = aws.ToString(b.InstanceId)
		ok, tail, _ := r.readResult(ctx, res.BuilderID, 0)
		if ok {
			return &FailedError{Reason: fmt.Sprintf("builder %s was terminated before the image was created", res.BuilderID), ConsoleTail: tail}
		}
		return &FailedError{Reason: fmt.Sprintf("builder %s was terminated: %s", res.BuilderID, failureLine(tail, r.spec.ID)), ConsoleTail: tail}
	}
	if b == nil {
		var source string
		if err := r.step(ctx, StepResolve, describeBase(r.spec.Base), func() (string, error) {
			var err error
			source, err = r.resolveBase(ctx)
			return source, err
		}); err != nil {
			return err
		}
		res.SourceImage = source
		if err := r.step(ctx, StepLaunch, "", func() (string, error) {
			in, err := r.launch(ctx, source)
			if err != nil {
				return "", err
			}
			b = &in
			if id := aws.ToString(in.ImageId); id != "" {
				res.SourceImage = id // an earlier attempt's builder, from the base resolved then
			}
			return aws.ToString(in.InstanceId), nil
		}); err != nil {
			return err
		}
	} else {
		res.SourceImage = aws.ToString(b.ImageId)
		r.log.Info("builder found again", "instance", aws.ToString(b.InstanceId))
	}
	res.BuilderID = aws.ToString(b.InstanceId)
	if err := r.rec.Builder(ctx, res.BuilderID); err != nil {
		return err
	}
	if err := r.step(ctx, StepWaitStopped, res.BuilderID, func() (string, error) {
		return "", r.waitStopped(ctx, res.BuilderID)
	}); err != nil {
		return err
	}
	return r.step(ctx, StepResult, res.BuilderID, func() (string, error) {
		// The wait keeps the deadline of its first attempt across restarts.
		wait := min(r.p.o.ConsoleWait, r.spec.Timeouts.Script)
		ok, tail, err := r.readResult(ctx, res.BuilderID, time.Until(r.deadline(ctx, StepResult, wait)))
		res.ConsoleTail = tail
		if err != nil {
			return "", err
		}
		if !ok {
			return "", &FailedError{Reason: failureLine(tail, r.spec.ID), ConsoleTail: tail}
		}
		return "script succeeded", nil
	})
}

func describeBase(b Base) string {
	if b.ID != "" {
		return b.ID
	}
	s := b.Owner + "/" + b.Name
	if b.MostRecent {
		s += " (most recent)"
	}
	return s
}

// Codes that retrying cannot fix, for the image calls of a bake (the
// launch's are awsapi's table).
var permanentCodes = append(awsapi.PermanentLaunchCodes(), "InvalidAMIName.Malformed")

// ResolveBase returns the id of the image a bake of base b in region would
// start from now, as the bake's "resolve base image" step finds it: b.ID
// (checked to exist and be available), or the newest available image of
// b.Owner matching b.Name. It blocks for one DescribeImages (paged,
// retried while the error is transient). An error marked engine.Permanent
// means no image matches, or several do without MostRecent.
//
// A pattern resolves only among the images of an architecture that the
// builder's instance type itype runs (an "al2023-ami-*" pattern also
// matches arm64 images, which an x86_64 type cannot launch); a base given
// by id of another architecture is a permanent error naming both.
func (p *Pipeline) ResolveBase(ctx context.Context, region, itype string, b Base) (string, error) {
	h, err := p.hubs.Hub(ctx, region)
	if err != nil {
		return "", engine.Permanent(fmt.Errorf("resolve base image %s: %w", describeBase(b), err))
	}
	r := &run{p: p, hub: h, api: h.EC2(), spec: Spec{Builder: Builder{Region: region, Base: b, Type: itype}}, log: p.log}
	return r.resolveBase(ctx)
}

// resolveBase returns the base image's id: the given one (checked to
// exist and to be of an architecture the builder's type runs), or the
// newest available image of the owner matching the name among those of
// the type's architectures.
func (r *run) resolveBase(ctx context.Context) (string, error) {
	b := r.spec.Base
	archs, err := r.hub.TypeArchitectures(ctx, r.spec.Type)
	if err != nil {
		return "", fmt.Errorf("resolve base image %s: %w", describeBase(b), err)
	}
	in := &ec2.DescribeImagesInput{}
	if b.ID != "" {
		in.ImageIds = []string{b.ID}
	} else {
		in.Owners = []string{b.Owner}
		in.Filters = []types.Filter{
			{Name: aws.String("name"), Values: []string{b.Name}},
			{Name: aws.String("state"), Values: []string{string(types.ImageStateAvailable)}},
			{Name: aws.String("architecture"), Values: archs},
		}
	}
	var imgs []types.Image
	err = r.hub.Retry(ctx, func(ctx context.Context) error {
		imgs = imgs[:0]
		p := ec2.NewDescribeImagesPaginator(r.api, in)
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				return awsapi.Classify(err, permanentCodes...)
			}
			imgs = append(imgs, out.Images...)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("resolve base image %s: %w", describeBase(b), err)
	}
	switch {
	case len(imgs) == 0 && b.ID == "":
		return "", engine.Permanent(fmt.Errorf("resolve base image %s: no such image of architecture %s (what instance type %s runs)",
			describeBase(b), strings.Join(archs, " or "), r.spec.Type))
	case len(imgs) == 0:
		return "", engine.Permanent(fmt.Errorf("resolve base image %s: no such image", describeBase(b)))
	case b.ID != "":
		if imgs[0].State != types.ImageStateAvailable {
			return "", engine.Permanent(fmt.Errorf("resolve base image %s: image is %s", b.ID, imgs[0].State))
		}
		if err := awsapi.ArchMismatch(b.ID, string(imgs[0].Architecture), r.spec.Type, archs); err != nil {
			return "", fmt.Errorf("resolve base image %s: %w", b.ID, err)
		}
		return b.ID, nil
	case len(imgs) > 1 && !b.MostRecent:
		return "", engine.Permanent(fmt.Errorf("resolve base image %s: %d images match; set most_recent: true or narrow the name", describeBase(b), len(imgs)))
	}
	newest := slices.MaxFunc(imgs, func(a, b types.Image) int {
		if c := strings.Compare(aws.ToString(a.CreationDate), aws.ToString(b.CreationDate)); c != 0 {
			return c
		}
		return strings.Compare(aws.ToString(a.Name), aws.ToString(b.Name))
	})
	return aws.ToString(newest.ImageId), nil
}

// ClientToken is the RunInstances idempotency token of a bake's builder:
// derived from the bake's identity only (its id and match tags), so a
// restarted bake sends the same token and gets the same builder.
func ClientToken(id string, match map[string]string) string {
	parts := []string{"kiln-bake", id}
	for _, k := range slices.Sorted(maps.Keys(match)) {
		parts = append(parts, k+"="+match[k])
	}
	return awsapi.ClientToken("kiln-bake-", parts...) // 58 chars ≤ 64
}

// scriptDelimiter ends the here-document holding the project's script.
const scriptDelimiter = "KILN_BAKE_SCRIPT"

// scriptFile is where the wrapper writes the bake script on the builder;
// the shell names it in its error messages.
const scriptFile = "/var/lib/kiln-bake/script"

// ErrScriptDelimiter: a script holding the wrapper's delimiter line would
// end the here-document early.
var ErrScriptDelimiter = errors.New("script contains a line " + scriptDelimiter)

// WrapScript is the builder's user data: the script, written to a file and
// run by sh; on success "kiln-bake <id> ok" goes to the console, on failure
// "kiln-bake <id> failed: exit N"; then the machine powers off (and, with
// shutdown behaviour stop, stops).
func WrapScript(id, script string) (string, error) {
	for _, l := range strings.Split(script, "\n") {
		if strings.TrimRight(l, " \r") == scriptDelimiter {
			return "", ErrScriptDelimiter
		}
	}
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	b.WriteString("mkdir -p /var/lib/kiln-bake\n")
	b.WriteString("cat > " + scriptFile + " <<'" + scriptDelimiter + "'\n")
	b.WriteString(strings.TrimSuffix(script, "\n") + "\n")
	b.WriteString(scriptDelimiter + "\n")
	b.WriteString("if sh " + scriptFile + "; then\n")
	b.WriteString("echo \"kiln-bake " + id + " ok\" > /dev/console\n")
	b.WriteString("else\n")
	b.WriteString("echo \"kiln-bake " + id + " failed: exit $?\" > /dev/console\n")
	b.WriteString("fi\n")
	b.WriteString("poweroff\n")
	return b.String(), nil
}

// tags returns Match and Tags (Match wins) plus extra, sorted by key.
func (r *run) tags(extra map[string]string) []types.Tag {
	m := maps.Clone(r.spec.Tags)
	if m == nil {
		m = map[string]string{}
	}
	maps.Copy(m, extra)
	maps.Copy(m, r.spec.Match)
	return awsapi.Tags(m)
}

func (r *run) matchFilters() []types.Filter {
	var fs []types.Filter
	for _, k := range slices.Sorted(maps.Keys(r.spec.Match)) {
		fs = append(fs, types.Filter{Name: aws.String("tag:" + k), Values: []string{r.spec.Match[k]}})
	}
	return fs
}

func isLive(in types.Instance) bool { return awsapi.IsLive(in) }

// findBuilders lists the instances tagged as this bake's builder.
func (r *run) findBuilders(ctx context.Context) ([]types.Instance, error) {
	return r.findRole(ctx, roleBuilder, "builder")
}

// findRole lists the instances tagged as this bake's role (its builder,
// or its test instance: what names it in an error).
func (r *run) findRole(ctx context.Context, role, what string) ([]types.Instance, error) {
	fs := append(r.matchFilters(), types.Filter{Name: aws.String("tag:" + TagRole), Values: []string{role}})
	var all []types.Instance
	err := r.hub.Retry(ctx, func(ctx context.Context) error {
		all = all[:0]
		p := ec2.NewDescribeInstancesPaginator(r.api, &ec2.DescribeInstancesInput{Filters: fs})
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				return err
			}
			for _, res := range out.Reservations {
				all = append(all, res.Instances...)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find %s of bake %s: %w", what, r.spec.ID, err)
	}
	return all, nil
}

// findBuilder returns the live builder, else the newest gone one, else nil.
func (r *run) findBuilder(ctx context.Context) (*types.Instance, error) {
	all, err := r.findBuilders(ctx)
	if err != nil {
		return nil, err
	}
	return liveOrLast(all), nil
}

// liveOrLast is the live instance of all, else the last gone one (its
// console still tells the result), else nil.
func liveOrLast(all []types.Instance) *types.Instance {
	var gone *types.Instance
	for i := range all {
		if isLive(all[i]) {
			return &all[i]
		}
		gone = &all[i]
	}
	return gone
}

// launch runs the builder with the bake's client token and tags (in the
// same call, so it is never untagged). A builder an earlier attempt of the
// bake launched with other parameters (a base image resolved anew) is
// the bake's builder all the same: awsapi answers with it.
func (r *run) launch(ctx context.Context, source string) (types.Instance, error) {
	ud, err := WrapScript(r.spec.ID, r.spec.Script)
	if err != nil {
		return types.Instance{}, engine.Permanent(err)
	}
	groups, err := groupIDs(ctx, r.hub, r.hub.EC2(), r.spec.SecurityGroups) // groups.go
	if err != nil {
		return types.Instance{}, fmt.Errorf("launch builder of bake %s: %w", r.spec.ID, err)
	}
	inst, err := r.hub.Launch(ctx, r.api, awsapi.Launch{
		Token: ClientToken(r.spec.ID, r.spec.Match), Image: source, Type: r.spec.Type, UserData: ud,
		Subnet: r.spec.Subnet, SecurityGroups: groups, Profile: r.spec.IAMProfile,
		Shutdown: types.ShutdownBehaviorStop,
		Tags:     r.tags(map[string]string{TagRole: roleBuilder, awsapi.TagName: "kiln-bake " + r.spec.ImageName, TagSourceImage: source}),
	})
	if err != nil {
		return types.Instance{}, fmt.Errorf("launch builder of bake %s: %w", r.spec.ID, err)
	}
	r.log.Info("builder launched", "instance", aws.ToString(inst.InstanceId), "source", source)
	return inst, nil
}

// instance looks the builder up by id through the batcher; NotFound right
// after the launch is "not yet".
func (r *run) instance(ctx context.Context, id string) (types.Instance, error) {
	out, err := r.describe.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if awsapi.IsNotFound(err) {
		return types.Instance{}, awsapi.NotYet(err)
	}
	if err != nil {
		return types.Instance{}, err
	}
	for _, res := range out.Reservations {
		for _, in := range res.Instances {
			if aws.ToString(in.InstanceId) == id {
				return in, nil
			}
		}
	}
	return types.Instance{}, awsapi.NotYet(fmt.Errorf("instance %s not listed", id))
}

// waitStopped waits until the builder has stopped, within the script
// timeout. A timeout or a builder that went away fails the bake.
func (r *run) waitStopped(ctx context.Context, id string) error {
	wctx, cancel := context.WithDeadline(ctx, r.deadline(ctx, StepWaitStopped, r.spec.Timeouts.Script))
	defer cancel()
	var gone string
	err := r.hub.Await(wctx, id, func(ctx context.Context) (bool, error) {
		in, err := r.instance(ctx, id)
		if err != nil {
			return false, err
		}
		switch in.State.Name {
		case types.InstanceStateNameStopped:
			return true, nil
		case types.InstanceStateNameTerminated, types.InstanceStateNameShuttingDown:
			gone = string(in.State.Name)
			return true, nil
		}
		return false, nil
	})
	switch {
	case err == nil && gone != "":
		_, tail, _ := r.readResult(ctx, id, 0)
		return &FailedError{Reason: fmt.Sprintf("builder %s is %s while its script ran", id, gone), ConsoleTail: tail}
	case err == nil:
		return nil
	case ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
		_, tail, _ := r.readResult(ctx, id, 0)
		return &FailedError{Reason: fmt.Sprintf("script timed out after %s", r.spec.Timeouts.Script), ConsoleTail: tail}
	}
	return fmt.Errorf("wait for builder %s to stop: %w", id, err)
}

// consoleTailBytes is how much of the console a failed bake keeps.
const consoleTailBytes = 4096

// readResult reads the builder's console until the bake's marker is there
// or wait has passed (console output is posted a while after the stop),
// and returns whether the script succeeded and the console's tail.
func (r *run) readResult(ctx context.Context, id string, wait time.Duration) (ok bool, tail string, err error) {
	return r.readMarker(ctx, id, r.spec.ID, wait)
}

// readMarker is readResult for the marker of marker id (the bake's, or
// its test's).
func (r *run) readMarker(ctx context.Context, id, marker string, wait time.Duration) (ok bool, tail string, err error) {
	okLine := "kiln-bake " + marker + " ok"
	failLine := "kiln-bake " + marker + " failed"
	deadline := time.Now().Add(wait)
	b := r.hub.Options().Wait
	for n := 0; ; n++ {
		var text string
		err := r.hub.Retry(ctx, func(ctx context.Context) error {
			out, err := r.api.GetConsoleOutput(ctx, &ec2.GetConsoleOutputInput{InstanceId: aws.String(id), Latest: aws.Bool(true)})
			if awsapi.IsNotFound(err) {
				return awsapi.NotYet(err)
			}
			if err != nil {
				// Latest is for Nitro instances; ask again without it.
				if awsapi.Code(err) == "UnsupportedOperation" {
					out, err = r.api.GetConsoleOutput(ctx, &ec2.GetConsoleOutputInput{InstanceId: aws.String(id)})
				}
				if err != nil {
					return err
				}
			}
			raw, derr := base64.StdEncoding.DecodeString(aws.ToString(out.Output))
			if derr != nil {
				raw = []byte(aws.ToString(out.Output))
			}
			text = string(raw)
			return nil
		})
		if err != nil {
			return false, tail, fmt.Errorf("read console of %s: %w", id, err)
		}
		tail = consoleTail(text)
		for _, l := range slices.Backward(strings.Split(text, "\n")) {
			switch {
			case strings.Contains(l, okLine):
				return true, tail, nil
			case strings.Contains(l, failLine):
				return false, tail, nil
			}
		}
		if !time.Now().Before(deadline) {
			return false, tail, nil
		}
		d := min(b.Min<<min(n, 10), b.Max, time.Until(deadline))
		t := time.NewTimer(max(d, time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return false, tail, ctx.Err()
		case <-t.C:
		}
	}
}

func consoleTail(s string) string {
	if len(s) <= consoleTailBytes {
		return s
	}
	s = s[len(s)-consoleTailBytes:]
	if i := strings.IndexByte(s, '\n'); i >= 0 && i < len(s)-1 {
		s = s[i+1:]
	}
	return s
}

// failureLine is the reason of a failed script: its marker line, or what is
// missing.
func failureLine(tail, id string) string {
	marker := "kiln-bake " + id + " failed"
	lines := strings.Split(tail, "\n")
	for at, l := range slices.Backward(lines) {
		if i := strings.Index(l, marker); i >= 0 {
			reason := "script " + strings.TrimSpace(strings.TrimPrefix(l[i:], "kiln-bake "+id+" "))
			if why := shellError(lines[max(0, at-3):at]); why != "" {
				reason += " (" + why + ")"
			}
			return reason
		}
	}
	return "no result on the builder's console (the script powered off by itself, or its output was lost)"
}

// shellError is the last message the shell wrote about the script in
// lines (the few console lines before the failure marker), such as a
// syntax error with its line and column, with the script's path
// shortened to "script"; "" when there is none.
func shellError(lines []string) string {
	const path = scriptFile + ":"
	for _, l := range slices.Backward(lines) {
		if i := strings.Index(l, path); i >= 0 {
			return "script:" + strings.TrimSpace(l[i+len(path):])
		}
	}
	return ""
}

// findImage looks the bake's image up by its name; nil when there is none.
func (r *run) findImage(ctx context.Context) (*types.Image, error) {
	var found *types.Image
	err := r.hub.Retry(ctx, func(ctx context.Context) error {
		out, err := r.api.DescribeImages(ctx, &ec2.DescribeImagesInput{
			Owners:  []string{"self"},
			Filters: []types.Filter{{Name: aws.String("name"), Values: []string{r.spec.ImageName}}},
		})
		if err != nil {
			return err
		}
		found = nil
		for i, im := range out.Images {
			if aws.ToString(im.Name) == r.spec.ImageName && im.State != types.ImageStateDeregistered {
				found = &out.Images[i]
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find image %q: %w", r.spec.ImageName, err)
	}
	if found != nil {
		// The name is the key, but only for images this bake made (tagged in
		// CreateImage itself): another bake's image is never taken for ours.
		for k, v := range r.spec.Match {
			if awsapi.TagValue(found.Tags, k) != v {
				return nil, fmt.Errorf("%w: image name %q is taken by %s, which this bake did not make (%s is %q, want %q)",
					errNameTaken, r.spec.ImageName, aws.ToString(found.ImageId), k, awsapi.TagValue(found.Tags, k), v)
			}
		}
	}
	return found, nil
}

var errNameTaken = errors.New("image name taken")

// ownImage is findImage for the first look of a run: when the name is
// taken by an image of another bake with the same id (from another
// database), the bake's image is named "<name>-<origin>" instead, still a
// deterministic key.
func (r *run) ownImage(ctx context.Context) (*types.Image, error) {
	img, err := r.findImage(ctx)
	origin := r.spec.Match[TagOrigin]
	if !errors.Is(err, errNameTaken) || origin == "" {
		return img, err
	}
	r.log.Warn("image name taken; using another", "err", err)
	r.spec.ImageName += "-" + origin
	img, err = r.findImage(ctx)
	if errors.Is(err, errNameTaken) {
		return nil, engine.Permanent(err)
	}
	return img, err
}

// createImage makes the image from the stopped builder. CreateImage has no
// client token: the name is the key, looked up before each attempt, and
// InvalidAMIName.Duplicate means an earlier attempt made it.
func (r *run) createImage(ctx context.Context, res *Result) (*types.Image, error) {
	var img *types.Image
	err := r.step(ctx, StepCreateImage, r.spec.ImageName, func() (string, error) {
		tags := r.tags(map[string]string{TagSourceImage: res.SourceImage})
		err := r.hub.Retry(ctx, func(ctx context.Context) error {
			var err error
			if img, err = r.findImage(ctx); err != nil || img != nil {
				return err
			}
			out, err := r.api.CreateImage(ctx, &ec2.CreateImageInput{
				InstanceId:  aws.String(res.BuilderID),
				Name:        aws.String(r.spec.ImageName),
				Description: aws.String("kiln bake " + r.spec.ID),
				TagSpecifications: []types.TagSpecification{
					{ResourceType: types.ResourceTypeImage, Tags: tags},
					{ResourceType: types.ResourceTypeSnapshot, Tags: tags},
				},
			})
			switch {
			case awsapi.Code(err) == "InvalidAMIName.Duplicate":
				return awsapi.NotYet(err) // made before: the lookup finds it
			case awsapi.IsNotFound(err):
				return awsapi.NotYet(err)
			case err != nil:
				return awsapi.Classify(err, permanentCodes...)
			}
			img = &types.Image{ImageId: out.ImageId, Name: aws.String(r.spec.ImageName), State: types.ImageStatePending}
			return nil
		})
		if err != nil {
			return "", fmt.Errorf("create image %q: %w", r.spec.ImageName, err)
		}
		r.log.Info("image created", "image", aws.ToString(img.ImageId), "name", r.spec.ImageName)
		return aws.ToString(img.ImageId), nil
	})
	if err != nil {
		return nil, err
	}
	if err := r.rec.Image(ctx, aws.ToString(img.ImageId)); err != nil {
		return nil, err
	}
	return img, nil
}

// waitImage waits until the image is available, within the image timeout.
// NotFound right after CreateImage is "not yet"; failed fails the bake.
func (r *run) waitImage(ctx context.Context, id string) (*types.Image, error) {
	var img *types.Image
	err := r.step(ctx, StepWaitImage, id, func() (string, error) {
		var err error
		img, err = r.awaitImage(ctx, id, StepWaitImage)
		if err != nil {
			return "", err
		}
		return "available", nil
	})
	if err != nil {
		return nil, err
	}
	return img, nil
}

// awaitImage waits until image id is available, within the image timeout
// counted from step's first start, and returns it (also when it failed).
// NotFound right after CreateImage or CopyImage is "not yet"; failed is a
// *FailedError.
func (r *run) awaitImage(ctx context.Context, id, step string) (*types.Image, error) {
	var img types.Image
	wctx, cancel := context.WithDeadline(ctx, r.deadline(ctx, step, r.spec.Timeouts.Image))
	defer cancel()
	err := r.hub.Await(wctx, id, func(ctx context.Context) (bool, error) {
		out, err := r.api.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}})
		if awsapi.IsNotFound(err) {
			return false, awsapi.NotYet(err)
		}
		if err != nil {
			return false, err
		}
		if len(out.Images) == 0 {
			return false, awsapi.NotYet(fmt.Errorf("image %s not listed", id))
		}
		img = out.Images[0]
		switch img.State {
		case types.ImageStateAvailable:
			return true, nil
		case types.ImageStatePending:
			return false, nil
		}
		return true, nil
	})
	switch {
	case err == nil && img.State == types.ImageStateAvailable:
		return &img, nil
	case err == nil:
		reason := fmt.Sprintf("image %s is %s", id, img.State)
		if sr := img.StateReason; sr != nil {
			reason += ": " + aws.ToString(sr.Message)
		}
		return &img, &FailedError{Reason: reason}
	case ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
		return nil, &FailedError{Reason: fmt.Sprintf("image %s not available after %s", id, r.spec.Timeouts.Image)}
	}
	return nil, fmt.Errorf("wait for image %s: %w", id, err)
}

func snapshotsOf(img types.Image) []string {
	var out []string
	for _, m := range img.BlockDeviceMappings {
		if m.Ebs != nil && aws.ToString(m.Ebs.SnapshotId) != "" {
			out = append(out, aws.ToString(m.Ebs.SnapshotId))
		}
	}
	return out
}

// tagImage (re)tags the image and its snapshots; CreateTags is idempotent.
func (r *run) tagImage(ctx context.Context, res Result, img types.Image) error {
	return r.step(ctx, StepTagImage, res.ImageID, func() (string, error) {
		ids := append([]string{res.ImageID}, res.Snapshots...)
		extra := map[string]string{}
		if res.SourceImage != "" {
			extra[TagSourceImage] = res.SourceImage
		}
		tags := r.tags(extra)
		err := r.hub.Retry(ctx, func(ctx context.Context) error {
			_, err := r.api.CreateTags(ctx, &ec2.CreateTagsInput{Resources: ids, Tags: tags})
			if awsapi.IsNotFound(err) {
				return awsapi.NotYet(err)
			}
			return err
		})
		if err != nil {
			return "", fmt.Errorf("tag image %s: %w", res.ImageID, err)
		}
		if err := r.deprecate(ctx, img); err != nil { // lifecycle.go
			return "", err
		}
		return strings.Join(ids, ", "), nil
	})
}

// terminateBuilders terminates every live builder of the bake (there is at
// most one) and returns their ids. It does not wait for them to be gone.
func (r *run) terminateBuilders(ctx context.Context) ([]string, error) {
	return r.terminateRole(ctx, roleBuilder, "builder")
}

// terminateRole terminates every live instance of the bake's role (see
// findRole) and returns their ids; it does not wait for them to be gone.
func (r *run) terminateRole(ctx context.Context, role, what string) ([]string, error) {
	all, err := r.findRole(ctx, role, what)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, in := range all {
		if isLive(in) {
			ids = append(ids, aws.ToString(in.InstanceId))
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	err = r.hub.Retry(ctx, func(ctx context.Context) error {
		_, err := r.api.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids})
		if awsapi.IsNotFound(err) {
			return awsapi.NotYet(err)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("terminate %s %s: %w", what, strings.Join(ids, ", "), err)
	}
	r.log.Info(what+" terminating", "instance", strings.Join(ids, ", "))
	return ids, nil
}

// cleanup terminates the builder and removes the bake's image, if any.
func (r *run) cleanup(ctx context.Context) error {
	return r.step(ctx, StepCleanup, "", func() (string, error) {
		ids, err := r.terminateBuilders(ctx)
		if err != nil {
			return "", err
		}
		testers, err := r.terminateTesters(ctx) // imagetest.go
		if err != nil {
			return "", err
		}
		ids = append(ids, testers...)
		img, err := r.ownImage(ctx)
		if err != nil {
			return "", err
		}
		detail := "terminated " + strings.Join(ids, ", ")
		if len(ids) == 0 {
			detail = "no builder left"
		}
		if img != nil && !r.spec.KeepImage {
			if err := removeImage(ctx, r.hub, r.api, *img); err != nil {
				return "", err
			}
			detail += "; deregistered " + aws.ToString(img.ImageId)
		}
		copies, err := r.cleanupCopies(ctx)
		if len(copies) > 0 {
			detail += "; deregistered the copies " + strings.Join(copies, ", ")
		}
		return detail, err
	})
}

// removeImage deregisters img and deletes its snapshots (deregistering
// leaves them behind). Both are idempotent: NotFound is done.
func removeImage(ctx context.Context, h *awsapi.Hub, api ec2API, img types.Image) error {
	id := aws.ToString(img.ImageId)
	err := h.Retry(ctx, func(ctx context.Context) error {
		_, err := api.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: img.ImageId})
		if awsapi.IsNotFound(err) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("deregister image %s: %w", id, err)
	}
	for _, sn := range snapshotsOf(img) {
		err := h.Retry(ctx, func(ctx context.Context) error {
			_, err := api.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(sn)})
			switch {
			case awsapi.IsNotFound(err):
				return nil
			case awsapi.Code(err) == "InvalidSnapshot.InUse":
				// The deregistration has not reached the snapshot yet.
				return awsapi.NotYet(err)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("delete snapshot %s of image %s: %w", sn, id, err)
		}
	}
	return nil
}

type nopRecorder struct{}

func (nopRecorder) StartStep(context.Context, string, string) error { return nil }
func (nopRecorder) FinishStep(context.Context, string, StepState, string) error {
	return nil
}
func (nopRecorder) Builder(context.Context, string) error { return nil }
func (nopRecorder) Image(context.Context, string) error   { return nil }
