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
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"

	"kiln/internal/awsapi"
	"kiln/internal/config"
	"kiln/internal/engine"
	"kiln/internal/iampolicy"
)

// zoneAPI is what aws:route53_zone calls on Route 53, in the SDK's shape:
// *route53.Client satisfies it.
type zoneAPI interface {
	ListHostedZonesByName(context.Context, *route53.ListHostedZonesByNameInput, ...func(*route53.Options)) (*route53.ListHostedZonesByNameOutput, error)
	GetHostedZone(context.Context, *route53.GetHostedZoneInput, ...func(*route53.Options)) (*route53.GetHostedZoneOutput, error)
	CreateHostedZone(context.Context, *route53.CreateHostedZoneInput, ...func(*route53.Options)) (*route53.CreateHostedZoneOutput, error)
	UpdateHostedZoneComment(context.Context, *route53.UpdateHostedZoneCommentInput, ...func(*route53.Options)) (*route53.UpdateHostedZoneCommentOutput, error)
	DeleteHostedZone(context.Context, *route53.DeleteHostedZoneInput, ...func(*route53.Options)) (*route53.DeleteHostedZoneOutput, error)
	ListTagsForResource(context.Context, *route53.ListTagsForResourceInput, ...func(*route53.Options)) (*route53.ListTagsForResourceOutput, error)
	ChangeTagsForResource(context.Context, *route53.ChangeTagsForResourceInput, ...func(*route53.Options)) (*route53.ChangeTagsForResourceOutput, error)
}

// HostedZone is the aws:route53_zone kind: a hosted zone kiln owns, named
// by the resource's name (example.com), public or private to a VPC, with
// a comment. Route 53 zones have no tags kiln could find them by without
// extra calls, so kiln marks its zones by their caller reference
// (kiln-<digest of graph and resource>-<time>) and finds them again by
// name and that prefix; a zone of the same name made by someone else is
// not kiln's. Outputs: zone_id, name, name_servers.
type HostedZone struct {
	Private bool   `yaml:"private"` // needs vpc
	VPC     string `yaml:"vpc"`     // the VPC id of a private zone
	Region  string `yaml:"region"`  // the VPC's region; default AWS_REGION
	Comment string `yaml:"comment"`
	State   string `yaml:"state"` // present (default) | absent

	hubs *awsapi.Hubs
	env  engine.Env
	poll time.Duration

	api zoneAPI
	dns *awsapi.DNS

	mu  sync.Mutex
	out map[string]string
	dnsCheck
}

// NewHostedZone returns an empty aws:route53_zone using the shared hubs.
func NewHostedZone(hubs *awsapi.Hubs) *HostedZone { return &HostedZone{hubs: hubs} }

// Validate checks the fields.
func (r *HostedZone) Validate() error {
	var errs []error
	switch {
	case r.Private && r.VPC == "":
		errs = append(errs, config.Fieldf("vpc", "required for a private zone (a VPC id, vpc-...)"))
	case r.VPC != "" && !r.Private:
		errs = append(errs, config.Fieldf("vpc", "a zone with a VPC is private: set private: true"))
	}
	if r.VPC != "" && !config.HasRef(r.VPC) && !strings.HasPrefix(r.VPC, "vpc-") {
		errs = append(errs, config.Fieldf("vpc", "want a VPC id like \"vpc-0abc...\", got %q", r.VPC))
	}
	if r.Region != "" && r.VPC == "" {
		errs = append(errs, config.Fieldf("region", "only with vpc (the VPC's region; a zone itself is global)"))
	}
	if len(r.Comment) > 256 {
		errs = append(errs, config.Fieldf("comment", "at most 256 characters, got %d", len(r.Comment)))
	}
	if r.State != "" && r.State != StatePresent && r.State != StateAbsent {
		errs = append(errs, config.Fieldf("state", "want present or absent, got %q", r.State))
	}
	return errors.Join(errs...)
}

// Init receives the vertex's identity; the resource's name is the zone's.
func (r *HostedZone) Init(env engine.Env) error {
	r.env = env
	if n := awsapi.CanonicalName(env.Name); strings.Count(n, ".") < 2 || len(n) > 255 {
		return engine.Permanent(fmt.Errorf("name: %q is not a domain name a zone can have (want e.g. example.com)", env.Name))
	}
	return nil
}

// SetPoll sets how often Watch reads the zone (the poll meta-param).
// Default: the hub's (60 s).
func (r *HostedZone) SetPoll(d time.Duration) { r.poll = d }

// IAMActions are the calls CheckApply and Watch may make.
func (r *HostedZone) IAMActions() []string {
	acts := []string{"route53:ListHostedZonesByName", "route53:GetHostedZone"}
	if r.State == StateAbsent {
		return append(acts, "route53:DeleteHostedZone")
	}
	acts = append(acts, "route53:CreateHostedZone", "route53:UpdateHostedZoneComment", "route53:GetChange",
		"route53:ListTagsForResource", "route53:ChangeTagsForResource")
	if r.Private {
		acts = append(acts, "ec2:DescribeVpcs", "route53:AssociateVPCWithHostedZone")
	}
	return acts
}

// Outputs are zone_id, name (with its trailing dot) and name_servers
// (comma-separated; empty for a private zone).
func (r *HostedZone) Outputs() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.out)
}

func (r *HostedZone) log() *slog.Logger {
	if r.env.Log != nil {
		return r.env.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (r *HostedZone) name() string { return awsapi.CanonicalName(r.env.Name) }

// refPrefix starts the caller reference of every zone this resource makes.
func (r *HostedZone) refPrefix() string {
	id := r.env.ID
	if id == "" {
		id = "aws:route53_zone/" + r.env.Name
	}
	return token(r.env.Graph, id) + "-"
}

func (r *HostedZone) resolve(ctx context.Context) error {
	if r.api != nil {
		return nil
	}
	if r.hubs == nil {
		return engine.Permanent(errors.New("aws:route53_zone: no AWS hubs (constructed without NewHostedZone)"))
	}
	d, err := r.hubs.DNS(ctx)
	if err != nil {
		return err
	}
	c, err := r.hubs.Route53(ctx)
	if err != nil {
		return err
	}
	r.dns, r.api = d, c
	return nil
}

// find returns kiln's zone of this resource (nil when there is none).
func (r *HostedZone) find(ctx context.Context) (*types.HostedZone, error) {
	all, err := awsapi.ZonesNamed(ctx, r.api, r.name(), r.dns.Options().RetryPolicy())
	if err != nil {
		return nil, err
	}
	var mine []types.HostedZone
	for _, z := range all {
		if strings.HasPrefix(aws.ToString(z.CallerReference), r.refPrefix()) {
			mine = append(mine, z)
			continue
		}
		// A zone kiln did not create is this resource's when kiln adopt
		// tagged it so.
		ok, err := r.taggedMine(ctx, strings.TrimPrefix(aws.ToString(z.Id), "/hostedzone/"))
		if err != nil {
			return nil, err
		}
		if ok {
			mine = append(mine, z)
		}
	}
	switch len(mine) {
	case 0:
		return nil, nil
	case 1:
		return &mine[0], nil
	}
	ids := make([]string, len(mine))
	for i, z := range mine {
		ids[i] = aws.ToString(z.Id)
	}
	return nil, engine.Permanent(fmt.Errorf("%d zones %s claim this resource: %s; kiln will not pick one: delete the extras", len(mine), r.name(), strings.Join(ids, ", ")))
}

// CheckApply finds the zone, and creates it, updates its comment or
// deletes it as the spec says. A zone whose privacy or VPC differs from
// the spec is an error naming the field: Route 53 cannot change either.
func (r *HostedZone) CheckApply(ctx context.Context, apply bool) (bool, error) {
	defer r.begin(apply)()
	if err := r.resolve(ctx); err != nil {
		return false, err
	}
	z, err := r.find(ctx)
	if err != nil {
		return false, err
	}
	if r.State == StateAbsent {
		if z == nil {
			return true, nil
		}
		return false, r.delete(ctx, apply, z)
	}
	if z == nil {
		return false, r.create(ctx, apply)
	}
	id := strings.TrimPrefix(aws.ToString(z.Id), "/hostedzone/")
	g, err := r.get(ctx, id)
	if err != nil {
		return false, err
	}
	if err := r.immutable(g); err != nil {
		return false, err
	}
	comment := ""
	if g.HostedZone.Config != nil {
		comment = aws.ToString(g.HostedZone.Config.Comment)
	}
	tagChange, err := r.ownTags(ctx, id, apply)
	if err != nil {
		return false, err
	}
	if comment == r.Comment {
		r.setOutputs(g)
		return tagChange == "", nil
	}
	change := fmt.Sprintf("update comment of zone %s (%s): %q -> %q", r.name(), id, comment, r.Comment)
	if !apply {
		r.plan(slices.DeleteFunc([]string{tagChange, change}, func(s string) bool { return s == "" })...)
		return false, nil
	}
	err = awsapi.Retry(ctx, r.dns.Options().RetryPolicy(), func(ctx context.Context) error {
		_, err := r.api.UpdateHostedZoneComment(ctx, &route53.UpdateHostedZoneCommentInput{Id: aws.String(id), Comment: aws.String(r.Comment)})
		return err
	})
	if err != nil {
		return false, fmt.Errorf("%s: %w", change, awsapi.Classify(err, "InvalidInput", "NoSuchHostedZone"))
	}
	r.log().Info("zone comment updated", "zone", r.name(), "id", id)
	g.HostedZone.Config = &types.HostedZoneConfig{Comment: aws.String(r.Comment), PrivateZone: r.Private}
	r.setOutputs(g)
	return false, nil
}

func (r *HostedZone) get(ctx context.Context, id string) (*route53.GetHostedZoneOutput, error) {
	var g *route53.GetHostedZoneOutput
	err := awsapi.Retry(ctx, r.dns.Options().RetryPolicy(), func(ctx context.Context) (err error) {
		g, err = r.api.GetHostedZone(ctx, &route53.GetHostedZoneInput{Id: aws.String(id)})
		return err
	})
	if awsapi.Code(err) == "NoSuchHostedZone" {
		err = awsapi.NotYet(err) // listed a moment ago: deleted since, or not yet consistent
	}
	return g, err
}

// immutable reports a difference Route 53 cannot apply to a zone.
func (r *HostedZone) immutable(g *route53.GetHostedZoneOutput) error {
	private := g.HostedZone.Config != nil && g.HostedZone.Config.PrivateZone
	id := aws.ToString(g.HostedZone.Id)
	if private != r.Private {
		return engine.Permanent(fmt.Errorf("private: zone %s (%s) is private=%t, spec wants %t; a zone cannot change that (delete it first)", r.name(), id, private, r.Private))
	}
	if r.Private && !slices.ContainsFunc(g.VPCs, func(v types.VPC) bool { return aws.ToString(v.VPCId) == r.VPC }) {
		var vpcs []string
		for _, v := range g.VPCs {
			vpcs = append(vpcs, aws.ToString(v.VPCId))
		}
		return engine.Permanent(fmt.Errorf("vpc: zone %s (%s) is in VPC %s, spec wants %s", r.name(), id, strings.Join(vpcs, ", "), r.VPC))
	}
	return nil
}

func (r *HostedZone) create(ctx context.Context, apply bool) error {
	kind := "public"
	if r.Private {
		kind = "private to " + r.VPC
	}
	change := fmt.Sprintf("create zone %s (%s)", r.name(), kind)
	if !apply {
		r.plan(change)
		return nil
	}
	in := &route53.CreateHostedZoneInput{
		Name:             aws.String(r.name()),
		CallerReference:  aws.String(r.refPrefix() + strconv.FormatInt(time.Now().UnixNano(), 36)),
		HostedZoneConfig: &types.HostedZoneConfig{Comment: aws.String(r.Comment), PrivateZone: r.Private},
	}
	if r.Private {
		region := r.Region
		if region == "" {
			rg, err := r.hubs.DefaultRegion(ctx)
			if err != nil {
				return err
			}
			region = rg
		}
		in.VPC = &types.VPC{VPCId: aws.String(r.VPC), VPCRegion: types.VPCRegion(region)}
	}
	var out *route53.CreateHostedZoneOutput
	err := awsapi.Retry(ctx, r.dns.Options().RetryPolicy(), func(ctx context.Context) (err error) {
		out, err = r.api.CreateHostedZone(ctx, in)
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: %w", change, awsapi.Classify(err, "InvalidDomainName", "InvalidVPCId", "ConflictingDomainExists", "InvalidInput", "HostedZoneAlreadyExists", "TooManyHostedZones"))
	}
	id := strings.TrimPrefix(aws.ToString(out.HostedZone.Id), "/hostedzone/")
	r.log().Info("zone created", "zone", r.name(), "id", id)
	if _, err := r.ownTags(ctx, id, true); err != nil {
		return err // found again by its caller reference and tagged next time
	}
	if err := r.dns.AwaitInsync(ctx, aws.ToString(out.ChangeInfo.Id)); err != nil {
		return fmt.Errorf("wait for zone %s to be INSYNC: %w", id, err)
	}
	g := &route53.GetHostedZoneOutput{HostedZone: out.HostedZone, DelegationSet: out.DelegationSet}
	r.setOutputs(g)
	return nil
}

func (r *HostedZone) delete(ctx context.Context, apply bool, z *types.HostedZone) error {
	id := strings.TrimPrefix(aws.ToString(z.Id), "/hostedzone/")
	change := fmt.Sprintf("delete zone %s (%s)", r.name(), id)
	if !apply {
		r.plan(change)
		return nil
	}
	err := awsapi.Retry(ctx, r.dns.Options().RetryPolicy(), func(ctx context.Context) error {
		_, err := r.api.DeleteHostedZone(ctx, &route53.DeleteHostedZoneInput{Id: aws.String(id)})
		return err
	})
	switch {
	case awsapi.Code(err) == "HostedZoneNotEmpty":
		// Not permanent: records the graph deletes (state: absent) may
		// still be on their way out; the engine's retry meta decides.
		return fmt.Errorf("%s: the zone still has records other than its SOA and NS: %w", change, err)
	case awsapi.Code(err) == "NoSuchHostedZone":
		return nil
	case err != nil:
		return fmt.Errorf("%s: %w", change, err)
	}
	r.log().Info("zone deleted", "zone", r.name(), "id", id)
	r.mu.Lock()
	r.out = map[string]string{"zone_id": "", "name": r.name(), "name_servers": ""}
	r.mu.Unlock()
	return nil
}

// taggedMine reports whether zone id carries this resource's owner and
// resource tags.
func (r *HostedZone) taggedMine(ctx context.Context, id string) (bool, error) {
	var got *route53.ListTagsForResourceOutput
	err := awsapi.Retry(ctx, r.dns.Options().RetryPolicy(), func(ctx context.Context) (err error) {
		got, err = r.api.ListTagsForResource(ctx, &route53.ListTagsForResourceInput{ResourceType: types.TagResourceTypeHostedzone, ResourceId: aws.String(id)})
		return err
	})
	if awsapi.Code(err) == "NoSuchHostedZone" {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read tags of zone %s (%s): %w", r.name(), id, err)
	}
	want := r.zoneTags()
	n := 0
	if got.ResourceTagSet != nil {
		for _, t := range got.ResourceTagSet.Tags {
			if k := aws.ToString(t.Key); (k == awsapi.TagOwner || k == awsapi.TagResource) && aws.ToString(t.Value) == want[k] {
				n++
			}
		}
	}
	return n == 2, nil
}

// zoneTags are the tags kiln keeps on its zones: the owner and resource
// tags that prune and destroy find them by, and kiln:protect with meta
// protect.
func (r *HostedZone) zoneTags() map[string]string {
	id := r.env.ID
	if id == "" {
		id = "aws:route53_zone/" + r.env.Name
	}
	m := map[string]string{awsapi.TagOwner: r.env.Graph, awsapi.TagResource: id}
	if r.env.Meta.Protect {
		m[TagProtect] = "true"
	}
	return m
}

// ownTags reads zone id's tags and, with apply, writes those of
// zoneTags that differ (and drops kiln:protect when protect is off). It
// returns the change ("" when the tags are right).
func (r *HostedZone) ownTags(ctx context.Context, id string, apply bool) (string, error) {
	var got *route53.ListTagsForResourceOutput
	err := awsapi.Retry(ctx, r.dns.Options().RetryPolicy(), func(ctx context.Context) (err error) {
		got, err = r.api.ListTagsForResource(ctx, &route53.ListTagsForResourceInput{ResourceType: types.TagResourceTypeHostedzone, ResourceId: aws.String(id)})
		if awsapi.Code(err) == "NoSuchHostedZone" {
			err = awsapi.NotYet(err)
		}
		return err
	})
	if err != nil {
		return "", fmt.Errorf("read tags of zone %s (%s): %w", r.name(), id, err)
	}
	have := map[string]string{}
	if got.ResourceTagSet != nil {
		for _, t := range got.ResourceTagSet.Tags {
			have[aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
	}
	in := &route53.ChangeTagsForResourceInput{ResourceType: types.TagResourceTypeHostedzone, ResourceId: aws.String(id)}
	want := r.zoneTags()
	var what []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if have[k] != want[k] {
			in.AddTags = append(in.AddTags, types.Tag{Key: aws.String(k), Value: aws.String(want[k])})
			what = append(what, k+"="+want[k])
		}
	}
	if _, ok := have[TagProtect]; ok && want[TagProtect] == "" {
		in.RemoveTagKeys = append(in.RemoveTagKeys, TagProtect)
		what = append(what, "-"+TagProtect)
	}
	if len(what) == 0 {
		return "", nil
	}
	change := fmt.Sprintf("tag zone %s (%s): %s", r.name(), id, strings.Join(what, ", "))
	if !apply {
		return change, nil
	}
	err = awsapi.Retry(ctx, r.dns.Options().RetryPolicy(), func(ctx context.Context) error {
		_, err := r.api.ChangeTagsForResource(ctx, in)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("%s: %w", change, awsapi.Classify(err, "InvalidInput"))
	}
	r.log().Info("zone tagged", "zone", r.name(), "id", id)
	return change, nil
}

func (r *HostedZone) setOutputs(g *route53.GetHostedZoneOutput) {
	out := map[string]string{
		"zone_id": strings.TrimPrefix(aws.ToString(g.HostedZone.Id), "/hostedzone/"),
		"name":    r.name(), "name_servers": "",
	}
	if g.DelegationSet != nil {
		out["name_servers"] = strings.Join(g.DelegationSet.NameServers, ",")
	}
	r.mu.Lock()
	r.out = out
	r.mu.Unlock()
}

// Watch reads the zone every poll (one ListHostedZonesByName) and calls
// Changed when it differs from the spec: gone, or another comment. It
// stays quiet while a CheckApply runs. It blocks until ctx is done.
func (r *HostedZone) Watch(ctx context.Context, ev engine.Events) error {
	if err := r.resolve(ctx); err != nil {
		return err
	}
	return pollWatch(ctx, ev, r.poll, r.dns.Options().Poll, func(ctx context.Context) error {
		z, err := r.find(ctx)
		if err != nil {
			return nil // the next poll looks again
		}
		drift := (z == nil) != (r.State == StateAbsent)
		if z != nil && r.State != StateAbsent {
			comment := ""
			if z.Config != nil {
				comment = aws.ToString(z.Config.Comment)
			}
			drift = comment != r.Comment
		}
		if drift && !r.applying() {
			r.log().Info("zone drifted", "zone", r.name())
			ev.Changed()
		}
		return nil
	})
}

var (
	_ engine.Resource       = (*HostedZone)(nil)
	_ engine.Changer        = (*HostedZone)(nil)
	_ iampolicy.IAMActioner = (*HostedZone)(nil)
)
