package awssim

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// Image states.
const (
	imagePending      = "pending"
	imageAvailable    = "available"
	imageFailed       = "failed"
	imageDeregistered = "deregistered"
	// imageDisabled is in ec2_imagelife.go.
)

// AmazonOwner is the account that owns the stock base images (alias
// "amazon").
const AmazonOwner = "137112412989"

type bdm struct {
	device, volType string
	size            int
	snapshotID      string
	encrypted       bool   // a copy with Encrypted (ec2_copyimage.go)
	kmsKey          string // its key, when encrypted
}

type image struct {
	seq          uint64
	id, name     string
	description  string
	owner, alias string
	state        string
	arch         string
	rootDevice   string
	created      time.Time
	bdms         []bdm
	sourceInst   string
	stateReason  *xStateReason
	visibleAt    time.Time
	public       bool
	deprecateAt  time.Time // zero: never deprecated (ec2_imagelife.go)
}

func (im *image) visible(now time.Time) bool { return !now.Before(im.visibleAt) }

type snapshot struct {
	seq         uint64
	id          string
	volumeID    string
	size        int
	owner       string
	description string
	state       string // pending | completed | error
	started     time.Time
	encrypted   bool   // a copy with Encrypted (ec2_copyimage.go)
	kmsKey      string // its key, when encrypted
}

// imageLocked finds an image the caller can see; s.mu is held.
func (s *Sim) imageLocked(id string, now time.Time) (*image, error) {
	if !wellFormed("ami", id) {
		return nil, apiErr("InvalidAMIID.Malformed", "Invalid id: \"%s\" (expecting \"ami-...\")", id)
	}
	im, ok := s.images[id]
	if !ok || !im.visible(now) || im.state == imageDeregistered {
		return nil, apiErr("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", id)
	}
	return im, nil
}

func (s *Sim) snapshotLocked(id string) (*snapshot, error) {
	if !wellFormed("snap", id) {
		return nil, apiErr("InvalidSnapshotID.Malformed", "Invalid id: \"%s\" (expecting \"snap-...\")", id)
	}
	sn, ok := s.snapshots[id]
	if !ok {
		return nil, apiErr("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", id)
	}
	return sn, nil
}

// stockImages are the amazon-owned base images: several releases, so that
// "most recent" matters, for two architectures.
func (s *Sim) seedImages() {
	type stock struct {
		name, desc, arch string
		date             string
	}
	var list []stock
	for _, rel := range []struct{ ver, date string }{
		{"2023.6.20241010.0", "2024-10-10T19:11:32.000Z"},
		{"2023.6.20241121.0", "2024-11-21T21:05:44.000Z"},
		{"2023.7.20250414.0", "2025-04-14T22:41:03.000Z"},
		{"2023.9.20251110.1", "2025-11-10T18:02:19.000Z"},
	} {
		for _, arch := range []string{"x86_64", "arm64"} {
			list = append(list,
				stock{"al2023-ami-" + rel.ver + "-kernel-6.1-" + arch, "Amazon Linux 2023 AMI " + rel.ver + " " + arch + " HVM kernel-6.1", arch, rel.date},
				stock{"al2023-ami-minimal-" + rel.ver + "-kernel-6.1-" + arch, "Amazon Linux 2023 AMI minimal " + rel.ver + " " + arch + " HVM kernel-6.1", arch, rel.date},
			)
		}
	}
	for _, rel := range []struct{ ver, date string }{
		{"2.0.20241001.0", "2024-10-01T20:47:27.000Z"},
		{"2.0.20250428.0", "2025-04-28T23:12:08.000Z"},
	} {
		list = append(list, stock{"amzn2-ami-kernel-5.10-hvm-" + rel.ver + "-x86_64-gp2", "Amazon Linux 2 Kernel 5.10 AMI " + rel.ver + " x86_64 HVM gp2", "x86_64", rel.date})
	}
	for _, st := range list {
		created, _ := time.Parse("2006-01-02T15:04:05.000Z", st.date)
		snap := &snapshot{id: s.newID("snap"), volumeID: "vol-ffffffff", size: 8, owner: AmazonOwner, state: "completed", started: created, description: st.desc}
		s.addSnapshot(snap)
		s.addImage(&image{
			id: s.newID("ami"), name: st.name, description: st.desc, owner: AmazonOwner, alias: "amazon",
			state: imageAvailable, arch: st.arch, rootDevice: "/dev/xvda", created: created, public: true,
			bdms: []bdm{{device: "/dev/xvda", volType: "gp3", size: 8, snapshotID: snap.id}},
		})
	}
}

func (s *Sim) addImage(im *image) {
	s.instSeq++
	im.seq = s.instSeq
	s.images[im.id] = im
	s.imgOrder = append(s.imgOrder, im)
}

func (s *Sim) addSnapshot(sn *snapshot) {
	s.instSeq++
	sn.seq = s.instSeq
	s.snapshots[sn.id] = sn
	s.snapOrder = append(s.snapOrder, sn)
}

var amiNameRE = regexp.MustCompile(`^[a-zA-Z0-9()\[\]./\-'@_ ]{3,128}$`)

// --- CreateImage ---

type createImageResponse struct {
	ec2Meta
	ImageID string `xml:"imageId"`
}

func (s *Sim) createImage(r *request) (any, error) {
	id, err := r.required("InstanceId")
	if err != nil {
		return nil, err
	}
	name, imgTags, snapTags, err := r.newImageParams() // ec2_copyimage.go
	if err != nil {
		return nil, err
	}
	noReboot, err := r.boolean("NoReboot")
	if err != nil {
		return nil, err
	}
	now := s.lock()
	defer s.mu.Unlock()
	in, err := s.instanceLocked(id, now)
	if err != nil {
		return nil, err
	}
	if in.state != StateRunning && in.state != StateStopped {
		return nil, apiErr("IncorrectInstanceState", "The instance '%s' is not in a state from which it can be imaged.", id)
	}
	for _, im := range s.images {
		if im.owner == s.opts.Account && im.name == name && im.state != imageDeregistered {
			return nil, apiErr("InvalidAMIName.Duplicate", "AMI name %s is already in use by AMI %s", name, im.id)
		}
	}
	im := &image{
		id: s.newID("ami"), name: name, description: r.str("Description"), owner: s.opts.Account,
		state: imagePending, arch: in.arch, rootDevice: in.rootDevice, created: now, sourceInst: in.id,
		visibleAt: s.notYetLocked(now),
	}
	var snaps []*snapshot
	for _, v := range in.volumes {
		sn := &snapshot{id: s.newID("snap"), volumeID: v.id, size: v.size, owner: s.opts.Account, state: "pending", started: now,
			description: fmt.Sprintf("Created by CreateImage(%s) for %s", in.id, im.id)}
		s.addSnapshot(sn)
		snaps = append(snaps, sn)
		im.bdms = append(im.bdms, bdm{device: v.device, volType: v.volType, size: v.size, snapshotID: sn.id})
		for _, tg := range snapTags {
			s.tags.set(sn.id, tg.Key, tg.Value)
		}
	}
	s.addImage(im)
	for _, tg := range imgTags {
		s.tags.set(im.id, tg.Key, tg.Value)
	}
	if in.state == StateRunning && !noReboot {
		s.rebootLocked(in, now)
	}
	s.completeImageAfter(im, snaps, now, s.opts.Durations.Image,
		&xStateReason{Code: "Client.ImageCreationFailed", Message: "Image creation failed: simulated failure"})
	return &createImageResponse{ImageID: im.id}, nil
}

// --- DescribeImages ---

type xImage struct {
	ImageID            string        `xml:"imageId"`
	ImageLocation      string        `xml:"imageLocation"`
	State              string        `xml:"imageState"`
	OwnerID            string        `xml:"imageOwnerId"`
	CreationDate       string        `xml:"creationDate"`
	IsPublic           bool          `xml:"isPublic"`
	Architecture       string        `xml:"architecture"`
	ImageType          string        `xml:"imageType"`
	OwnerAlias         string        `xml:"imageOwnerAlias,omitempty"`
	Name               string        `xml:"name"`
	Description        string        `xml:"description,omitempty"`
	RootDeviceType     string        `xml:"rootDeviceType"`
	RootDeviceName     string        `xml:"rootDeviceName"`
	BlockDevices       []xImageBDM   `xml:"blockDeviceMapping>item"`
	VirtualizationType string        `xml:"virtualizationType"`
	Hypervisor         string        `xml:"hypervisor"`
	EnaSupport         bool          `xml:"enaSupport"`
	PlatformDetails    string        `xml:"platformDetails"`
	UsageOperation     string        `xml:"usageOperation"`
	SourceInstanceID   string        `xml:"sourceInstanceId,omitempty"`
	StateReason        *xStateReason `xml:"stateReason,omitempty"`
	DeprecationTime    string        `xml:"deprecationTime,omitempty"`
	Tags               []Tag         `xml:"tagSet>item"`
}

type xImageBDM struct {
	DeviceName string `xml:"deviceName"`
	SnapshotID string `xml:"ebs>snapshotId"`
	VolumeSize int    `xml:"ebs>volumeSize"`
	DeleteOnT  bool   `xml:"ebs>deleteOnTermination"`
	VolumeType string `xml:"ebs>volumeType"`
	Encrypted  bool   `xml:"ebs>encrypted"`
	KmsKeyID   string `xml:"ebs>kmsKeyId,omitempty"`
}

type describeImagesResponse struct {
	ec2Meta
	Images    []xImage `xml:"imagesSet>item"`
	NextToken string   `xml:"nextToken,omitempty"`
}

var imageFilters = map[string]func(im *image) []string{
	"name":                func(im *image) []string { return []string{im.name} },
	"state":               func(im *image) []string { return []string{im.state} },
	"image-id":            func(im *image) []string { return []string{im.id} },
	"owner-id":            func(im *image) []string { return []string{im.owner} },
	"owner-alias":         func(im *image) []string { return []string{im.alias} },
	"architecture":        func(im *image) []string { return []string{im.arch} },
	"description":         func(im *image) []string { return []string{im.description} },
	"is-public":           func(im *image) []string { return []string{fmt.Sprint(im.public)} },
	"root-device-type":    func(*image) []string { return []string{"ebs"} },
	"virtualization-type": func(*image) []string { return []string{"hvm"} },
	"image-type":          func(*image) []string { return []string{"machine"} },
	"platform-details":    func(*image) []string { return []string{"Linux/UNIX"} },
	"source-instance-id":  func(im *image) []string { return []string{im.sourceInst} },
	"block-device-mapping.snapshot-id": func(im *image) []string {
		var out []string
		for _, b := range im.bdms {
			out = append(out, b.snapshotID)
		}
		return out
	},
}

func (s *Sim) xmlImageLocked(im *image) xImage {
	x := xImage{
		ImageID: im.id, ImageLocation: im.owner + "/" + im.name, State: im.state, OwnerID: im.owner,
		CreationDate: isoTime(im.created), IsPublic: im.public, Architecture: im.arch, ImageType: "machine",
		OwnerAlias: im.alias, Name: im.name, Description: im.description, RootDeviceType: "ebs",
		RootDeviceName: im.rootDevice, VirtualizationType: "hvm", Hypervisor: "xen", EnaSupport: true,
		PlatformDetails: "Linux/UNIX", UsageOperation: "RunInstances", SourceInstanceID: im.sourceInst,
		StateReason: im.stateReason, Tags: s.tags.list(im.id), DeprecationTime: isoTime(im.deprecateAt),
	}
	if im.alias != "" {
		x.ImageLocation = im.alias + "/" + im.name
	}
	for _, b := range im.bdms {
		x.BlockDevices = append(x.BlockDevices, xImageBDM{DeviceName: b.device, SnapshotID: b.snapshotID, VolumeSize: b.size, DeleteOnT: true, VolumeType: b.volType,
			Encrypted: b.encrypted, KmsKeyID: b.kmsKey})
	}
	return x
}

func (s *Sim) ownerMatches(im *image, owners []string) bool {
	if len(owners) == 0 {
		return im.owner == s.opts.Account || im.public
	}
	for _, o := range owners {
		switch {
		case o == "self" && im.owner == s.opts.Account:
			return true
		case o == im.owner, o != "" && o == im.alias:
			return true
		}
	}
	return false
}

func (s *Sim) describeImages(r *request) (any, error) {
	ids := r.list("ImageId")
	owners := r.list("Owner")
	execBy := r.list("ExecutableBy")
	fs, err := r.filters(filterNames(imageFilters, true))
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if !wellFormed("ami", id) {
			return nil, apiErr("InvalidAMIID.Malformed", "Invalid id: \"%s\" (expecting \"ami-...\")", id)
		}
	}
	max, start, err := r.page("ami", 5, 1000, "imageIds", len(ids) > 0)
	if err != nil {
		return nil, err
	}
	includeDeprecated, err := r.boolean("IncludeDeprecated")
	if err != nil {
		return nil, err
	}
	includeDisabled, err := r.boolean("IncludeDisabled")
	if err != nil {
		return nil, err
	}
	now := s.lock()
	defer s.mu.Unlock()
	var cands []*image
	shared := s.sharedWithLocked() // accounts.go: other accounts' images shared with this one
	if len(ids) > 0 {
		var missing []string
		for _, id := range ids {
			im, ok := s.images[id]
			if !ok {
				if i := slices.IndexFunc(shared, func(im *image) bool { return im.id == id }); i >= 0 {
					cands = append(cands, shared[i])
					continue
				}
			}
			if !ok || !im.visible(now) || im.state == imageDeregistered {
				missing = append(missing, id)
				continue
			}
			cands = append(cands, im)
		}
		if len(missing) > 0 {
			return nil, apiErr("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", strings.Join(missing, ", "))
		}
		owners = append(owners[:len(owners):len(owners)], "self", AmazonOwner)
		for _, im := range cands {
			if im.owner != s.opts.Account && !im.public {
				owners = append(owners, im.owner) // shared with this account
			}
		}
	} else {
		cands = s.imgOrder
	}
	i := sort.Search(len(cands), func(i int) bool { return len(ids) > 0 || cands[i].seq >= start })
	out := &describeImagesResponse{}
	for ; i < len(cands); i++ {
		im := cands[i]
		if im.state == imageDeregistered || !im.visible(now) || !s.ownerMatches(im, owners) || !s.matchImage(fs, im) ||
			!s.executableBy(im, execBy) {
			continue
		}
		if len(ids) == 0 && !s.listed(im, now, includeDeprecated, includeDisabled) { // ec2_imagelife.go
			continue
		}
		if max > 0 && len(out.Images) == max {
			out.NextToken = pageToken("ami", im.seq)
			break
		}
		out.Images = append(out.Images, s.xmlImageLocked(im))
	}
	if len(ids) == 0 && out.NextToken == "" {
		// The images other accounts share with this one come after its
		// own, on the page where those end: they have no place in this
		// world's paging order, and a page may hold more than max of them.
		for _, im := range shared {
			if (len(owners) == 0 || s.ownerMatches(im, owners)) && s.matchImage(fs, im) && s.executableBy(im, execBy) &&
				(includeDeprecated || !im.deprecated(now)) {
				out.Images = append(out.Images, s.xmlImageLocked(im))
			}
		}
	}
	return out, nil
}

// executableBy reports whether im has an explicit launch permission for
// one of users (ExecutableBy: an account id, "self" for the caller's, or
// "all" for public images); true when users is empty. An image of another
// account is in this world only when it is shared with this account.
func (s *Sim) executableBy(im *image, users []string) bool {
	if len(users) == 0 {
		return true
	}
	for _, u := range users {
		if u == "self" {
			u = s.opts.Account
		}
		switch {
		case u == "all" && im.public:
			return true
		case u == s.opts.Account && im.owner != s.opts.Account && s.images[im.id] == nil: // shared with this account
			return true
		case slices.Contains(s.regions.launchPerms[im.id], permission{UserID: u}):
			return true
		}
	}
	return false
}

func (s *Sim) matchImage(fs []filter, im *image) bool {
	return matchFilters(fs, s.tags.get(im.id), func(f filter) bool {
		return slices.ContainsFunc(imageFilters[f.Name](im), func(v string) bool { return matchAny(f.Values, v) })
	})
}

// --- DeregisterImage ---

func (s *Sim) deregisterImage(r *request) (any, error) {
	id, err := r.required("ImageId")
	if err != nil {
		return nil, err
	}
	now := s.lock()
	defer s.mu.Unlock()
	im, err := s.imageLocked(id, now)
	if err != nil {
		return nil, err
	}
	if im.owner != s.opts.Account {
		return nil, apiErr("AuthFailure", "Not authorized for image:%s", id)
	}
	im.state = imageDeregistered
	delete(s.images, im.id)
	s.imgOrder = slices.DeleteFunc(s.imgOrder, func(x *image) bool { return x == im })
	s.tags.drop(im.id)
	s.publishImageLocked(im) // accounts.go
	s.imageEventLocked(im, now)
	return &returnResponse{Return: true}, nil
}

// --- Snapshots ---

type xSnapshot struct {
	SnapshotID  string `xml:"snapshotId"`
	VolumeID    string `xml:"volumeId"`
	Status      string `xml:"status"`
	StartTime   string `xml:"startTime"`
	Progress    string `xml:"progress"`
	OwnerID     string `xml:"ownerId"`
	VolumeSize  int    `xml:"volumeSize"`
	Description string `xml:"description"`
	Encrypted   bool   `xml:"encrypted"`
	KmsKeyID    string `xml:"kmsKeyId,omitempty"`
	StorageTier string `xml:"storageTier"`
	Tags        []Tag  `xml:"tagSet>item"`
}

type describeSnapshotsResponse struct {
	ec2Meta
	Snapshots []xSnapshot `xml:"snapshotSet>item"`
	NextToken string      `xml:"nextToken,omitempty"`
}

var snapshotFilters = map[string]func(sn *snapshot) string{
	"snapshot-id": func(sn *snapshot) string { return sn.id },
	"volume-id":   func(sn *snapshot) string { return sn.volumeID },
	"status":      func(sn *snapshot) string { return sn.state },
	"owner-id":    func(sn *snapshot) string { return sn.owner },
	"description": func(sn *snapshot) string { return sn.description },
	"volume-size": func(sn *snapshot) string { return fmt.Sprint(sn.size) },
}

func (s *Sim) describeSnapshots(r *request) (any, error) {
	ids := r.list("SnapshotId")
	owners := r.list("Owner")
	fs, err := r.filters(filterNames(snapshotFilters, true))
	if err != nil {
		return nil, err
	}
	max, start, err := r.page("snap", 5, 1000, "snapshotIds", len(ids) > 0)
	if err != nil {
		return nil, err
	}
	s.lock()
	defer s.mu.Unlock()
	var cands []*snapshot
	if len(ids) > 0 {
		for _, id := range ids {
			sn, err := s.snapshotLocked(id)
			if err != nil {
				return nil, err
			}
			cands = append(cands, sn)
		}
	} else {
		cands = s.snapOrder
	}
	out := &describeSnapshotsResponse{}
	for _, sn := range cands {
		if len(ids) == 0 && sn.seq < start {
			continue
		}
		if !s.snapshotOwner(sn, owners, len(ids) > 0) || !s.matchSnapshot(fs, sn) {
			continue
		}
		if max > 0 && len(out.Snapshots) == max {
			out.NextToken = pageToken("snap", sn.seq)
			break
		}
		progress := "100%"
		if sn.state == "pending" {
			progress = "0%"
		}
		out.Snapshots = append(out.Snapshots, xSnapshot{SnapshotID: sn.id, VolumeID: sn.volumeID, Status: sn.state,
			StartTime: isoTime(sn.started), Progress: progress, OwnerID: sn.owner, VolumeSize: sn.size,
			Description: sn.description, StorageTier: "standard", Tags: s.tags.list(sn.id),
			Encrypted: sn.encrypted, KmsKeyID: sn.kmsKey})
	}
	return out, nil
}

// snapshotOwner: without owners, only your own snapshots are listed (the
// stock images' snapshots are amazon's and not public).
func (s *Sim) snapshotOwner(sn *snapshot, owners []string, byID bool) bool {
	if len(owners) == 0 {
		return byID || sn.owner == s.opts.Account
	}
	for _, o := range owners {
		if (o == "self" && sn.owner == s.opts.Account) || o == sn.owner || (o == "amazon" && sn.owner == AmazonOwner) {
			return true
		}
	}
	return false
}

func (s *Sim) matchSnapshot(fs []filter, sn *snapshot) bool {
	return matchFilters(fs, s.tags.get(sn.id), func(f filter) bool { return matchAny(f.Values, snapshotFilters[f.Name](sn)) })
}

func (s *Sim) deleteSnapshot(r *request) (any, error) {
	id, err := r.required("SnapshotId")
	if err != nil {
		return nil, err
	}
	s.lock()
	defer s.mu.Unlock()
	sn, err := s.snapshotLocked(id)
	if err != nil {
		return nil, err
	}
	if sn.owner != s.opts.Account {
		return nil, apiErr("UnauthorizedOperation", "You are not authorized to perform this operation.")
	}
	for _, im := range s.imgOrder {
		for _, b := range im.bdms {
			if b.snapshotID == id {
				return nil, apiErr("InvalidSnapshot.InUse", "The snapshot %s is currently in use by %s", id, im.id)
			}
		}
	}
	delete(s.snapshots, id)
	s.snapOrder = slices.DeleteFunc(s.snapOrder, func(x *snapshot) bool { return x == sn })
	s.tags.drop(id)
	return &returnResponse{Return: true}, nil
}
