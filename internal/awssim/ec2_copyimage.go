package awssim

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// CopyImage, as AWS has it: the call goes to the destination region (the
// request's signing region) and names the source region and image. The
// copy is a new image with new snapshots in the destination world,
// pending for Durations.Copy (scaled), then available, or failed when
// FailNextImages was set in the destination world. ClientToken makes the
// call idempotent in the destination region: the same token and
// parameters answer the first copy's id, other parameters
// IdempotentParameterMismatch. CopyImageTags copies the source image's
// user tags (not aws:*); TagSpecification tags the copy and its snapshots.
// Encrypted encrypts the copy's snapshots, with KmsKeyId or the account's
// default EBS key; an encrypted source gives an encrypted copy.

type copyToken struct {
	hash    string
	imageID string
}

type copyImageResponse struct {
	ec2Meta
	ImageID string `xml:"imageId"`
}

// kmsKeyRE accepts the four ways to name a KMS key: key id, key ARN,
// alias name, alias ARN.
var kmsKeyRE = regexp.MustCompile(`^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32}|alias/[a-zA-Z0-9/_-]+|arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key/[0-9a-f-]+|key/mrk-[0-9a-f]{32}|alias/[a-zA-Z0-9/_-]+))$`)

// source is what a copy takes from the source image.
type copySource struct {
	id, name, arch, root string
	bdms                 []bdm
	tags                 map[string]string
}

func (s *Sim) copyImage(r *request) (any, error) {
	srcRegion, err := r.required("SourceRegion")
	if err != nil {
		return nil, err
	}
	srcID, err := r.required("SourceImageId")
	if err != nil {
		return nil, err
	}
	name, imgTags, snapTags, err := r.newImageParams()
	if err != nil {
		return nil, err
	}
	encrypted, err := r.boolean("Encrypted")
	if err != nil {
		return nil, err
	}
	copyTags, err := r.boolean("CopyImageTags")
	if err != nil {
		return nil, err
	}
	kms := r.str("KmsKeyId")
	if kms != "" && !encrypted {
		return nil, apiErr("InvalidParameterDependency", "The parameter KmsKeyId requires the parameter Encrypted to be set.")
	}
	if kms != "" && !kmsKeyRE.MatchString(kms) {
		return nil, apiErr("InvalidParameterValue", "Value (%s) for parameter kmsKeyId is invalid.", kms)
	}
	token := r.str("ClientToken")
	if len(token) > 64 {
		return nil, apiErr("InvalidParameterValue", "Value (%s) for parameter clientToken is invalid. Length exceeds 64 characters.", token)
	}
	if !KnownRegion(srcRegion) {
		return nil, apiErr("InvalidParameterValue", "Invalid value '%s' for SourceRegion. The region is not valid.", srcRegion)
	}
	hash := paramsHash(r)
	if token != "" {
		if id, done, err := s.copyByToken(token, hash); done {
			return &copyImageResponse{ImageID: id}, err
		}
	}
	srcWorld, err := s.Region(srcRegion)
	if err != nil {
		return nil, err
	}
	// The source is read under its world's lock, released before the
	// destination's is taken: two copies in opposite directions never
	// wait on each other.
	src, err := srcWorld.copySource(srcID)
	if err != nil {
		return nil, err
	}

	now := s.lock()
	defer s.mu.Unlock()
	if token != "" {
		if te, ok := s.regions.copies[token]; ok { // a concurrent twin won
			if te.hash != hash {
				return nil, tokenMismatch()
			}
			return &copyImageResponse{ImageID: te.imageID}, nil
		}
	}
	for _, im := range s.images {
		if im.owner == s.opts.Account && im.name == name && im.state != imageDeregistered {
			return nil, apiErr("InvalidAMIName.Duplicate", "AMI name %s is already in use by AMI %s", name, im.id)
		}
	}
	if encrypted && kms == "" {
		kms = "arn:aws:kms:" + s.opts.Region + ":" + s.opts.Account + ":alias/aws/ebs"
	}
	im := &image{
		id: s.newID("ami"), name: name, description: r.str("Description"), owner: s.opts.Account,
		state: imagePending, arch: src.arch, rootDevice: src.root, created: now,
		visibleAt: s.notYetLocked(now),
	}
	var snaps []*snapshot
	for _, b := range src.bdms {
		enc, key := b.encrypted, b.kmsKey
		if encrypted {
			enc, key = true, kms
		}
		sn := &snapshot{id: s.newID("snap"), volumeID: "vol-ffffffff", size: b.size, owner: s.opts.Account, state: "pending", started: now,
			description: fmt.Sprintf("Copied for DestinationAmi %s from SourceAmi %s for SourceSnapshot %s. Task created on %d.", im.id, src.id, b.snapshotID, now.UnixMilli()),
			encrypted:   enc, kmsKey: key}
		s.addSnapshot(sn)
		snaps = append(snaps, sn)
		im.bdms = append(im.bdms, bdm{device: b.device, volType: b.volType, size: b.size, snapshotID: sn.id, encrypted: enc, kmsKey: key})
		for _, tg := range snapTags {
			s.tags.set(sn.id, tg.Key, tg.Value)
		}
	}
	s.addImage(im)
	if copyTags {
		for k, v := range src.tags {
			s.tags.set(im.id, k, v)
		}
	}
	for _, tg := range imgTags {
		s.tags.set(im.id, tg.Key, tg.Value)
	}
	if token != "" {
		s.regions.copies[token] = copyToken{hash: hash, imageID: im.id}
	}
	s.completeImageAfter(im, snaps, now, s.opts.Durations.Copy,
		&xStateReason{Code: "Client.ImageCopyFailed", Message: "Image copy failed: simulated failure"})
	return &copyImageResponse{ImageID: im.id}, nil
}

// newImageParams reads what CreateImage and CopyImage share: the new
// image's Name (checked as AWS checks AMI names) and the image and
// snapshot tags of its TagSpecifications.
func (r *request) newImageParams() (name string, imgTags, snapTags []Tag, err error) {
	if name, err = r.required("Name"); err != nil {
		return "", nil, nil, err
	}
	if !amiNameRE.MatchString(name) {
		return "", nil, nil, apiErr("InvalidAMIName.Malformed", "AMI names must be between 3 and 128 characters long, and may contain letters, numbers, '(', ')', '.', '-', '/' and '_'")
	}
	specs, err := r.tagSpecs("", anyTagType)
	if err != nil {
		return "", nil, nil, err
	}
	if imgTags, err = tagsFor(specs, "image", "image", "snapshot"); err != nil {
		return "", nil, nil, err
	}
	snapTags, _ = tagsFor(specs, "snapshot", "image", "snapshot")
	return name, imgTags, snapTags, nil
}

// completeImageAfter makes a pending image (CreateImage's, CopyImage's)
// available after d (scaled), its snapshots completed, or failed with
// reason when FailNextImages asked for it; s.mu is held.
func (s *Sim) completeImageAfter(im *image, snaps []*snapshot, now time.Time, d time.Duration, reason *xStateReason) {
	fail := s.failImgs > 0
	if fail {
		s.failImgs--
	}
	s.after(now, d, func(at time.Time) {
		if im.state != imagePending {
			return
		}
		st := "completed"
		if fail {
			im.state, im.stateReason, st = imageFailed, reason, "error"
		} else {
			im.state = imageAvailable
		}
		for _, sn := range snaps {
			sn.state = st
		}
		s.publishImageLocked(im) // accounts.go
		s.imageEventLocked(im, at)
	})
}

// copyByToken answers a repeated CopyImage from its token: done is false
// when the token is new.
func (s *Sim) copyByToken(token, hash string) (id string, done bool, err error) {
	s.lock()
	defer s.mu.Unlock()
	te, ok := s.regions.copies[token]
	if !ok {
		return "", false, nil
	}
	if te.hash != hash {
		return "", true, tokenMismatch()
	}
	return te.imageID, true, nil
}

// copySource reads what a copy needs of image id in this world: an
// available image the account owns or may launch.
func (s *Sim) copySource(id string) (copySource, error) {
	now := s.lock()
	defer s.mu.Unlock()
	im, err := s.imageLocked(id, now)
	if err != nil {
		return copySource{}, err
	}
	if im.owner != s.opts.Account && !im.public && !s.launchableLocked(im.id, s.opts.Account) {
		return copySource{}, apiErr("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", id)
	}
	if im.state != imageAvailable {
		return copySource{}, apiErr("IncorrectState", "The image %s is %s; only an available image can be copied.", id, im.state)
	}
	src := copySource{id: im.id, name: im.name, arch: im.arch, root: im.rootDevice, bdms: append([]bdm(nil), im.bdms...), tags: map[string]string{}}
	for k, v := range s.tags.get(im.id) {
		if !strings.HasPrefix(k, "aws:") {
			src.tags[k] = v
		}
	}
	return src, nil
}
