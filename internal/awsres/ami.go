package awsres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
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
	"kiln/internal/bake"
	"kiln/internal/config"
	"kiln/internal/engine"
	"kiln/internal/store"
)

// tagSpec holds the digest of what an aws:ami image was baked from.
const tagSpec = "kiln:spec"

// AMI is the aws:ami kind: an image baked from a base image and a script by
// the bakery's pipeline (the same code as kiln serve's bakes), found again
// by its tags kiln:owner, kiln:resource and kiln:spec (a digest of base,
// script, type and builder settings). A spec change bakes a new image; the
// old ones stay unless keep is set. Output: image_id.
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

	hubs     *awsapi.Hubs
	env      engine.Env
	poll     time.Duration
	pipeOpts bake.PipelineOptions // tests shorten the console wait

	hub  *awsapi.Hub
	pipe *bake.Pipeline

	mu  sync.Mutex
	out map[string]string
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

// Validate checks the fields.
func (r *AMI) Validate() error {
	var errs []error
	b := r.Base
	switch {
	case b.ID != "" && (b.Owner != "" || b.Name != ""):
		errs = append(errs, config.Fieldf("base", "give either id, or owner and name"))
	case b.ID != "":
		if !config.HasRef(b.ID) && !strings.HasPrefix(b.ID, "ami-") {
			errs = append(errs, config.Fieldf("base.id", "want an AMI id like \"ami-0abc...\", got %q", b.ID))
		}
	case b.Owner == "" || b.Name == "":
		errs = append(errs, config.Fieldf("base", "required: {id: ami-...} or {owner: amazon, name: \"al2023-ami-*\", most_recent: true}"))
	}
	if strings.TrimSpace(r.Script) == "" {
		errs = append(errs, config.Fieldf("script", "required (the shell script that prepares the image)"))
	} else if _, err := bake.WrapScript("x", r.Script); err != nil {
		errs = append(errs, config.Fieldf("script", "%v", err))
	}
	if r.Type == "" {
		errs = append(errs, config.Fieldf("type", "required (e.g. t3.small)"))
	} else if !config.HasRef(r.Type) && !strings.Contains(r.Type, ".") {
		errs = append(errs, config.Fieldf("type", "want an instance type like \"t3.small\", got %q", r.Type))
	}
	if r.Keep < 0 {
		errs = append(errs, config.Fieldf("keep", "want 0 (keep all) or more, got %d", r.Keep))
	}
	if r.Subnet != "" {
		errs = append(errs, checkSubnetID("subnet", r.Subnet)...)
	}
	errs = append(errs, checkGroupIDs(r.SecurityGroups)...)
	if r.Timeouts.Script < 0 || r.Timeouts.Image < 0 {
		errs = append(errs, config.Fieldf("timeouts", "must not be negative"))
	}
	for _, k := range slices.Sorted(maps.Keys(r.Tags)) {
		if strings.HasPrefix(k, "kiln:") || strings.HasPrefix(k, "aws:") {
			errs = append(errs, config.Fieldf("tags."+k, "reserved tag key (kiln:* is kiln's; aws:* is AWS's)"))
		}
	}
	return errors.Join(errs...)
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
// with an instance profile.
func (r *AMI) IAMActions() []string {
	acts := bake.IAMActions()
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

func (r *AMI) imageID() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out["image_id"]
}

func (r *AMI) setImage(id string) {
	r.mu.Lock()
	r.out = map[string]string{"image_id": id}
	r.mu.Unlock()
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
	r.hub, r.pipe = h, bake.NewPipeline(r.hubs, r.env.Log, r.pipeOpts)
	return nil
}

// specDigest identifies what the image is baked from: base, script, type
// and the builder's settings. A base given by name pattern is hashed as the
// pattern, so a newer base release does not by itself rebake.
func (r *AMI) specDigest() string {
	b, _ := json.Marshal(struct {
		Base           AMIBase
		Script, Type   string
		SecurityGroups []string
		Subnet         string
		IAMProfile     string
	}{r.Base, r.Script, r.Type, r.SecurityGroups, r.Subnet, r.IAMProfile})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// match are the tags of this resource's images for the current spec.
func (r *AMI) match() map[string]string {
	return map[string]string{awsapi.TagOwner: r.env.Graph, awsapi.TagResource: r.id(), tagSpec: r.specDigest()}
}

// Watch calls Running, then re-reads the converged image on every pushed
// event for it and every poll, and calls Changed when it is no longer
// available (deregistered, disabled, failed). It blocks until ctx is done.
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
	for {
		id := r.imageID()
		var ch <-chan struct{}
		cancel := func() {}
		if id != "" {
			ch, cancel = r.hub.Changes(id)
		}
		select {
		case <-ctx.Done():
			cancel()
			return ctx.Err()
		case <-ch:
		case <-t.C:
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

// find lists this resource's images of the current spec, newest first.
func (r *AMI) find(ctx context.Context) ([]types.Image, error) {
	m := r.match()
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
// resource's current spec (a bake a crash interrupted), or "".
func (r *AMI) liveBuilderBake(ctx context.Context) (string, error) {
	m := r.match()
	fs := []types.Filter{{Name: aws.String("instance-state-name"), Values: []string{"pending", "running", "stopping", "stopped"}}}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fs = append(fs, types.Filter{Name: aws.String("tag:" + k), Values: []string{m[k]}})
	}
	var id string
	err := r.hub.Retry(ctx, func(ctx context.Context) error {
		out, err := r.hub.EC2().DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: fs})
		if err != nil {
			return err
		}
		for _, res := range out.Reservations {
			for _, in := range res.Instances {
				if v := awsapi.TagValue(in.Tags, awsapi.TagBake); v != "" {
					id = v
				}
			}
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("find builder of aws:ami %q: %w", r.env.Name, err)
	}
	return id, nil
}

// CheckApply looks for an available image of the current spec. When there
// is none and apply is set, it bakes one with the bakery's pipeline and
// waits until it is available (resuming a bake a crash interrupted: a
// pending image or a live builder of the spec is picked up by its
// kiln:bake tag), then applies keep.
func (r *AMI) CheckApply(ctx context.Context, apply bool) (bool, error) {
	if err := r.resolve(ctx); err != nil {
		return false, err
	}
	imgs, err := r.find(ctx)
	if err != nil {
		return false, err
	}
	var bakeID string
	for _, im := range imgs {
		switch im.State {
		case types.ImageStateAvailable:
			r.setImage(aws.ToString(im.ImageId))
			return true, nil
		case types.ImageStatePending:
			if bakeID == "" {
				bakeID = awsapi.TagValue(im.Tags, awsapi.TagBake)
			}
		}
	}
	if !apply {
		r.log("would bake image", "spec", r.specDigest())
		return false, nil
	}
	if bakeID == "" {
		if bakeID, err = r.liveBuilderBake(ctx); err != nil {
			return false, err
		}
	}
	if bakeID == "" {
		// A new attempt: a fresh identity, so a failed attempt's spent
		// client token and image name are not met again.
		bakeID = r.specDigest()[:12] + "-" + strconv.FormatInt(time.Now().UnixMilli(), 36)
	}
	spec := r.bakeSpec(bakeID)
	res, err := r.pipe.Bake(ctx, spec, logRecorder{r})
	var fe *bake.FailedError
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
	r.setImage(res.ImageID)
	r.log("image baked", "image", res.ImageID, "name", spec.ImageName)
	if r.Keep > 0 {
		m := map[string]string{awsapi.TagOwner: r.env.Graph, awsapi.TagResource: r.id()}
		if _, err := r.pipe.Retain(ctx, r.Region, m, r.Keep); err != nil {
			return false, fmt.Errorf("aws:ami %q: %w", r.env.Name, err)
		}
	}
	return false, nil
}

var amiNameBad = regexp.MustCompile(`[^A-Za-z0-9()\[\]./\-'@_ ]`)

func (r *AMI) bakeSpec(id string) bake.Spec {
	name := amiNameBad.ReplaceAllString(fmt.Sprintf("kiln/%s/%s/%s", r.env.Graph, r.env.Name, id), "_")
	if len(name) > 128 {
		name = name[len(name)-128:]
	}
	return bake.Spec{
		ID:             id,
		ImageName:      name,
		Region:         r.Region,
		Base:           bake.Base{ID: r.Base.ID, Owner: r.Base.Owner, Name: r.Base.Name, MostRecent: r.Base.MostRecent},
		Type:           r.Type,
		Script:         r.Script,
		SecurityGroups: r.SecurityGroups,
		Subnet:         r.Subnet,
		IAMProfile:     r.IAMProfile,
		Match:          r.match(),
		Tags:           r.Tags,
		Timeouts:       bake.Timeouts{Script: r.Timeouts.Script, Image: r.Timeouts.Image},
	}
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

func (l logRecorder) FinishStep(_ context.Context, name string, state store.StepState, detail string) error {
	l.r.log("bake step "+string(state), "step", name, "detail", detail)
	return nil
}

func (l logRecorder) Builder(context.Context, string) error { return nil }
func (l logRecorder) Image(context.Context, string) error   { return nil }

var (
	_ engine.Resource    = (*AMI)(nil)
	_ engine.Initer      = (*AMI)(nil)
	_ engine.Outputter   = (*AMI)(nil)
	_ engine.SelfPoller  = (*AMI)(nil)
	_ config.Validator   = (*AMI)(nil)
	_ awsapi.IAMActioner = (*AMI)(nil)
)
