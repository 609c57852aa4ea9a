package pipeline

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awsapi"
)

// Distribution: once the image is available in the bake's region, it is
// copied to every region of CopyTo (CopyImage in the destination region,
// with a client token from the bake and the region, so a bake resumed
// after a crash gets the copy it started, never a second one; the copy
// keeps the image's name, which is unique per region, and carries the
// bake's tags, on its snapshots too), the bake waits until every copy is available, and the image and
// each copy are shared (a launch permission for every account,
// organization and OU, and a create-volume permission on their
// snapshots for every account). A copy that fails fails the bake, naming
// its region; the bake's clean-up then removes the image and every copy.

// Distribution is where a bake's image goes besides its own region.
type Distribution struct {
	CopyTo        []string // regions
	Encrypt       bool     // encrypt the copies' snapshots
	KMSKeyID      string   // with this key; "" = the account's default EBS key
	ShareWith     []string // account ids
	ShareWithOrgs []string // organization ARNs
	ShareWithOUs  []string // organizational unit ARNs
}

func (d Distribution) shares() int {
	return len(d.ShareWith) + len(d.ShareWithOrgs) + len(d.ShareWithOUs)
}

// Step names of the distribution, after StepTerminate.
const (
	StepCopy  = "copy image"
	StepShare = "share image"
)

// TagShared is on the image in every region once it is shared: a digest
// of the accounts, organizations and OUs (ShareDigest), so a check can
// tell a changed share list without reading the permissions.
const TagShared = "kiln:shared"

// ShareDigest is TagShared's value for d ("" when d shares with no one).
func ShareDigest(d Distribution) string {
	if d.shares() == 0 {
		return ""
	}
	all := slices.Concat(d.ShareWith, d.ShareWithOrgs, d.ShareWithOUs)
	slices.Sort(all)
	return awsapi.ClientToken("", all...)[:16]
}

// TagCopyOf is on every copy: the image it was copied from, with
// TagCopyRegion, the region of that image.
const (
	TagCopyOf     = "kiln:copy-of"
	TagCopyRegion = "kiln:copy-region"
)

// RegionImage is a bake's image in one region: the home region's, or a copy.
type RegionImage struct {
	Region    string
	ImageID   string
	State     string // pending, available, failed
	Snapshots []string
}

// RegionRecorder is an optional Recorder method: every region's image id
// and state, as soon as it is known and whenever it changes (the home
// region's once it is available).
type RegionRecorder interface {
	RegionImage(ctx context.Context, region, imageID, state string) error
}

// DistributionIAMActions are the calls of copy_to and share_with.
func DistributionIAMActions(d Distribution) []string {
	var out []string
	if len(d.CopyTo) > 0 {
		out = append(out, "ec2:CopyImage")
	}
	if d.shares() > 0 {
		out = append(out, "ec2:ModifyImageAttribute")
	}
	if len(d.ShareWith) > 0 {
		out = append(out, "ec2:ModifySnapshotAttribute")
	}
	return out
}

// CopyToken is the CopyImage client token of bake id's copy to region
// (attempt: Spec.CopyAttempt).
func CopyToken(id string, match map[string]string, region, attempt string) string {
	return awsapi.ClientToken("kiln-copy-", ClientToken(id, match), region, attempt) // 58 chars ≤ 64
}

func (r *run) recordRegion(ctx context.Context, im RegionImage) error {
	if rr, ok := r.rec.(RegionRecorder); ok {
		return rr.RegionImage(ctx, im.Region, im.ImageID, im.State)
	}
	return nil
}

// distribute copies the image to every CopyTo region and waits for the
// copies, then shares the image and the copies.
func (r *run) distribute(ctx context.Context, res *Result) error {
	d := r.spec.Distribution
	home := RegionImage{Region: r.hub.Region(), ImageID: res.ImageID, State: string(types.ImageStateAvailable), Snapshots: res.Snapshots}
	if err := r.recordRegion(ctx, home); err != nil {
		return err
	}
	res.Regions = []RegionImage{home}
	if len(d.CopyTo) > 0 {
		var copies []RegionImage
		err := r.step(ctx, StepCopy, strings.Join(d.CopyTo, ", "), func() (string, error) {
			var err error
			copies, err = r.copyAll(ctx, *res)
			var parts []string
			for _, c := range copies {
				parts = append(parts, c.Region+" "+c.ImageID)
			}
			return strings.Join(parts, ", "), err
		})
		if err != nil {
			return err
		}
		res.Regions = append(res.Regions, copies...)
	}
	if d.shares() == 0 {
		return nil
	}
	return r.step(ctx, StepShare, shareDetail(d), func() (string, error) {
		for _, im := range res.Regions {
			if err := r.share(ctx, im); err != nil {
				return "", err
			}
		}
		return fmt.Sprintf("%s in %d regions", shareDetail(d), len(res.Regions)), nil
	})
}

func shareDetail(d Distribution) string {
	return strings.Join(slices.Concat(d.ShareWith, d.ShareWithOrgs, d.ShareWithOUs), ", ")
}

// copyAll copies to every region at once and waits for them all. The
// first failure for good is the bake's (the others are still waited for,
// so the clean-up finds every copy made).
func (r *run) copyAll(ctx context.Context, res Result) ([]RegionImage, error) {
	regions := r.spec.Distribution.CopyTo
	out := make([]RegionImage, len(regions))
	errs := make([]error, len(regions))
	var wg sync.WaitGroup
	for i, region := range regions {
		wg.Go(func() {
			out[i], errs[i] = r.copyTo(ctx, res, region)
		})
	}
	wg.Wait()
	var fe *FailedError
	for _, err := range errs {
		if errors.As(err, &fe) {
			return out, fe
		}
	}
	return out, errors.Join(errs...)
}

// regionRun is r with the clients of another region.
func (r *run) regionRun(ctx context.Context, region string) (*run, error) {
	h, err := r.p.hubs.Hub(ctx, region)
	if err != nil {
		return nil, err
	}
	c := *r
	c.hub, c.api, c.describe = h, h.EC2(), h.Instances()
	c.log = r.log.With("region", region)
	return &c, nil
}

// copyTo makes (or finds again) the copy in region and waits until it is
// available.
func (r *run) copyTo(ctx context.Context, res Result, region string) (RegionImage, error) {
	ri := RegionImage{Region: region}
	rr, err := r.regionRun(ctx, region)
	if err != nil {
		return ri, fmt.Errorf("copy to %s: %w", region, err)
	}
	d := r.spec.Distribution
	tags := r.tags(map[string]string{TagSourceImage: res.SourceImage, TagCopyOf: res.ImageID, TagCopyRegion: r.hub.Region()})
	var img *types.Image
	err = rr.hub.Retry(ctx, func(ctx context.Context) error {
		var err error
		if img, err = rr.findImage(ctx); err != nil || img != nil {
			return err
		}
		in := &ec2.CopyImageInput{
			SourceRegion:  aws.String(r.hub.Region()),
			SourceImageId: aws.String(res.ImageID),
			Name:          aws.String(rr.spec.ImageName),
			Description:   aws.String("kiln bake " + r.spec.ID + ", copy of " + res.ImageID + " in " + r.hub.Region()),
			ClientToken:   aws.String(CopyToken(r.spec.ID, r.spec.Match, region, r.spec.CopyAttempt)),
			// The bake's tags, on the copy and its snapshots; not
			// CopyImageTags, which would carry kiln:shared over before the
			// copy is shared.
			TagSpecifications: []types.TagSpecification{
				{ResourceType: types.ResourceTypeImage, Tags: tags},
				{ResourceType: types.ResourceTypeSnapshot, Tags: tags},
			},
		}
		if d.Encrypt {
			in.Encrypted = aws.Bool(true)
			if d.KMSKeyID != "" {
				in.KmsKeyId = aws.String(d.KMSKeyID)
			}
		}
		out, err := rr.api.CopyImage(ctx, in)
		switch {
		case awsapi.Code(err) == "InvalidAMIName.Duplicate":
			return awsapi.NotYet(err) // made before: the lookup finds it
		case err != nil:
			return awsapi.Classify(err, permanentCodes...)
		}
		img = &types.Image{ImageId: out.ImageId, State: types.ImageStatePending}
		return nil
	})
	if err != nil {
		return ri, fmt.Errorf("copy to %s: %w", region, err)
	}
	ri.ImageID, ri.State = aws.ToString(img.ImageId), string(img.State)
	rr.log.Info("image copying", "image", ri.ImageID)
	if err := r.recordRegion(ctx, ri); err != nil {
		return ri, err
	}
	done, err := rr.awaitImage(ctx, ri.ImageID, StepCopy)
	if done != nil {
		ri.State, ri.Snapshots = string(done.State), snapshotsOf(*done)
		if rerr := r.recordRegion(context.WithoutCancel(ctx), ri); rerr != nil && err == nil {
			err = rerr
		}
	}
	var fe *FailedError
	if errors.As(err, &fe) {
		return ri, &FailedError{Reason: "copy to " + region + ": " + fe.Reason}
	}
	if err != nil {
		return ri, fmt.Errorf("copy to %s: %w", region, err)
	}
	return ri, nil
}

// share grants the launch permissions on im and the create-volume
// permissions on its snapshots; granting again is harmless.
func (r *run) share(ctx context.Context, im RegionImage) error {
	d := r.spec.Distribution
	rr, err := r.regionRun(ctx, im.Region)
	if err != nil {
		return fmt.Errorf("share %s in %s: %w", im.ImageID, im.Region, err)
	}
	var perms []types.LaunchPermission
	for _, a := range d.ShareWith {
		perms = append(perms, types.LaunchPermission{UserId: aws.String(a)})
	}
	for _, o := range d.ShareWithOrgs {
		perms = append(perms, types.LaunchPermission{OrganizationArn: aws.String(o)})
	}
	for _, o := range d.ShareWithOUs {
		perms = append(perms, types.LaunchPermission{OrganizationalUnitArn: aws.String(o)})
	}
	err = rr.hub.Retry(ctx, func(ctx context.Context) error {
		_, err := rr.api.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{
			ImageId:          aws.String(im.ImageID),
			LaunchPermission: &types.LaunchPermissionModifications{Add: perms},
		})
		return awsapi.Classify(err, shareCodes...)
	})
	if err != nil {
		return fmt.Errorf("share image %s in %s: %w", im.ImageID, im.Region, err)
	}
	if len(d.ShareWith) > 0 {
		if err := rr.shareSnapshots(ctx, im); err != nil {
			return err
		}
	}
	err = rr.hub.Retry(ctx, func(ctx context.Context) error {
		_, err := rr.api.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{im.ImageID},
			Tags: []types.Tag{{Key: aws.String(TagShared), Value: aws.String(ShareDigest(d))}}})
		return err
	})
	if err != nil {
		return fmt.Errorf("tag shared image %s in %s: %w", im.ImageID, im.Region, err)
	}
	return nil
}

// shareSnapshots grants create-volume permission on im's snapshots.
func (r *run) shareSnapshots(ctx context.Context, im RegionImage) error {
	d := r.spec.Distribution
	var vol []types.CreateVolumePermission
	for _, a := range d.ShareWith {
		vol = append(vol, types.CreateVolumePermission{UserId: aws.String(a)})
	}
	for _, sn := range im.Snapshots {
		err := r.hub.Retry(ctx, func(ctx context.Context) error {
			_, err := r.api.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{
				SnapshotId:             aws.String(sn),
				Attribute:              types.SnapshotAttributeNameCreateVolumePermission,
				CreateVolumePermission: &types.CreateVolumePermissionModifications{Add: vol},
			})
			return awsapi.Classify(err, shareCodes...)
		})
		if err != nil {
			return fmt.Errorf("share snapshot %s of %s in %s: %w", sn, im.ImageID, im.Region, err)
		}
	}
	return nil
}

// shareCodes are the sharing answers retrying cannot fix: a malformed
// account or ARN, a snapshot under the AWS managed key.
var shareCodes = []string{"InvalidAMIAttributeItemValue", "InvalidParameterValue", "InvalidParameter", "AuthFailure"}

// cleanupCopies removes the bake's copy in every CopyTo region (found by
// its name and tags): for a failed or cancelled bake.
func (r *run) cleanupCopies(ctx context.Context) ([]string, error) {
	var removed []string
	for _, region := range r.spec.Distribution.CopyTo {
		rr, err := r.regionRun(ctx, region)
		if err != nil {
			return removed, err
		}
		img, err := rr.findImage(ctx)
		if err != nil {
			return removed, fmt.Errorf("find copy in %s: %w", region, err)
		}
		if img == nil {
			continue
		}
		if err := removeImage(ctx, rr.hub, rr.api, *img); err != nil {
			return removed, fmt.Errorf("remove copy in %s: %w", region, err)
		}
		removed = append(removed, region+" "+aws.ToString(img.ImageId))
	}
	return removed, nil
}

// RetainRegions is Retain in each of regions (the home region and the
// copies' regions): keep-N counts in every region on its own, and an
// image in use there is kept there. It goes on to the other regions after
// an error and returns what each did and the errors joined.
func (p *Pipeline) RetainRegions(ctx context.Context, regions []string, match map[string]string, keep Keep, protect ...string) ([]Retained, error) {
	var out []Retained
	var errs []error
	for _, region := range slices.Compact(slices.Clone(regions)) {
		r, err := p.Retain(ctx, region, match, keep, protect...)
		out = append(out, r)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", region, err))
		}
	}
	return out, errors.Join(errs...)
}

// A Problem is one field of a distribution that is wrong, for the caller
// to report in its own form (a graph's or a project file's line).
type Problem struct {
	Field string // copy_to, encrypt, kms_key_id, share_with, share_with_orgs, share_with_ous
	Msg   string
}

var (
	regionRE  = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
	accountRE = regexp.MustCompile(`^[0-9]{12}$`)
	orgARNRE  = regexp.MustCompile(`^arn:aws[a-z-]*:organizations::[0-9]{12}:organization/o-[a-z0-9]{10,32}$`)
	ouARNRE   = regexp.MustCompile(`^arn:aws[a-z-]*:organizations::[0-9]{12}:ou/o-[a-z0-9]{10,32}/ou-[0-9a-z]{4,32}-[0-9a-z]{8,32}$`)
	kmsKeyRE  = regexp.MustCompile(`^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32}|alias/[a-zA-Z0-9/_-]+|arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key/[0-9a-f-]+|alias/[a-zA-Z0-9/_-]+))$`)
)

// Check returns what is wrong with d for images baked in home ("" when
// not known yet). skip reports values to leave alone (references resolved
// later).
func (d Distribution) Check(home string, skip func(string) bool) []Problem {
	var out []Problem
	add := func(field, format string, args ...any) {
		out = append(out, Problem{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	seen := map[string]bool{}
	for i, r := range d.CopyTo {
		field := fmt.Sprintf("copy_to[%d]", i)
		switch {
		case skip(r):
		case !regionRE.MatchString(r):
			add(field, "want a region like \"us-west-2\", got %q", r)
		case r == home:
			add(field, "%s is the region the image is baked in; list only the regions to copy it to", r)
		case seen[r]:
			add(field, "%s is listed twice", r)
		}
		seen[r] = true
	}
	if d.Encrypt && len(d.CopyTo) == 0 {
		add("encrypt", "encrypts the copies; set copy_to (the image in its own region keeps the builder's volume encryption)")
	}
	if d.KMSKeyID != "" && !d.Encrypt {
		add("kms_key_id", "needs encrypt: true")
	}
	if d.KMSKeyID != "" && !skip(d.KMSKeyID) && !kmsKeyRE.MatchString(d.KMSKeyID) {
		add("kms_key_id", "want a key id, key ARN, alias/NAME or alias ARN, got %q", d.KMSKeyID)
	}
	if d.Encrypt && d.KMSKeyID == "" && len(d.ShareWith) > 0 {
		add("kms_key_id", "required with encrypt and share_with: snapshots under the AWS managed key cannot be shared with other accounts")
	}
	for _, l := range []struct {
		field string
		list  []string
		re    *regexp.Regexp
		want  string
	}{
		{"share_with", d.ShareWith, accountRE, "a 12-digit account id"},
		{"share_with_orgs", d.ShareWithOrgs, orgARNRE, "an organization ARN (arn:aws:organizations::ACCOUNT:organization/o-...)"},
		{"share_with_ous", d.ShareWithOUs, ouARNRE, "an OU ARN (arn:aws:organizations::ACCOUNT:ou/o-.../ou-...)"},
	} {
		for i, v := range l.list {
			if !skip(v) && !l.re.MatchString(v) {
				add(fmt.Sprintf("%s[%d]", l.field, i), "want %s, got %q", l.want, v)
			}
		}
	}
	return out
}
