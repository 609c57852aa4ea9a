package awssim

import (
	"regexp"
	"slices"
	"strings"
)

// Sharing: an image's launch permissions (ModifyImageAttribute /
// DescribeImageAttribute, attribute launchPermission: account ids, the
// group "all" that makes the image public, organization and OU ARNs) and
// a snapshot's create-volume permissions (ModifySnapshotAttribute /
// DescribeSnapshotAttribute, attribute createVolumePermission: account
// ids and the group "all"). Each world (region) has its own: sharing an
// image in one region shares nothing in another. Only the owner may read
// or change them. Both calls take the structure form
// (LaunchPermission.Add.N.UserId, CreateVolumePermission.Remove.N.Group)
// and the flat one (OperationType=add with UserId.N, UserGroup.N,
// OrganizationArn.N, OrganizationalUnitArn.N).

// A permission is one entry: exactly one field is set.
type permission struct {
	UserID string `xml:"userId,omitempty"`
	Group  string `xml:"group,omitempty"`
	Org    string `xml:"organizationArn,omitempty"`
	OU     string `xml:"organizationalUnitArn,omitempty"`
}

var (
	accountRE = regexp.MustCompile(`^[0-9]{12}$`)
	orgARNRE  = regexp.MustCompile(`^arn:aws[a-z-]*:organizations::[0-9]{12}:organization/o-[a-z0-9]{10,32}$`)
	ouARNRE   = regexp.MustCompile(`^arn:aws[a-z-]*:organizations::[0-9]{12}:ou/o-[a-z0-9]{10,32}/ou-[0-9a-z]{4,32}-[0-9a-z]{8,32}$`)
)

// launchableLocked reports whether account may launch image id by a
// launch permission; s.mu is held.
func (s *Sim) launchableLocked(id, account string) bool {
	return slices.Contains(s.regions.launchPerms[id], permission{UserID: account})
}

// permChanges reads the adds and removes of a permission attribute: the
// structure form under prefix ("LaunchPermission"), or the flat form.
// orgs allows organization and OU ARNs (images only).
func (r *request) permChanges(prefix string, orgs bool, badItem string) (add, remove []permission, err error) {
	read := func(p string) []permission {
		var out []permission
		for _, it := range r.structs(p) {
			out = append(out, permission{UserID: r.str(it + ".UserId"), Group: r.str(it + ".Group"),
				Org: r.str(it + ".OrganizationArn"), OU: r.str(it + ".OrganizationalUnitArn")})
		}
		return out
	}
	add, remove = read(prefix+".Add"), read(prefix+".Remove")
	var flat []permission
	for _, u := range r.list("UserId") {
		flat = append(flat, permission{UserID: u})
	}
	for _, g := range r.list("UserGroup") {
		flat = append(flat, permission{Group: g})
	}
	for _, o := range r.list("OrganizationArn") {
		flat = append(flat, permission{Org: o})
	}
	for _, o := range r.list("OrganizationalUnitArn") {
		flat = append(flat, permission{OU: o})
	}
	if len(flat) > 0 {
		switch r.str("OperationType") {
		case "add":
			add = append(add, flat...)
		case "remove":
			remove = append(remove, flat...)
		case "":
			return nil, nil, apiErr("MissingParameter", "The request must contain the parameter OperationType")
		default:
			return nil, nil, apiErr("InvalidParameterValue", "Value (%s) for parameter operationType is invalid.", r.str("OperationType"))
		}
	}
	if len(add)+len(remove) == 0 {
		return nil, nil, apiErr("MissingParameter", "The request must contain the parameter %s", prefix)
	}
	for _, p := range slices.Concat(add, remove) {
		ok := false
		switch {
		case p.UserID != "":
			ok = accountRE.MatchString(p.UserID)
		case p.Group != "":
			ok = p.Group == "all"
		case p.Org != "":
			ok = orgs && orgARNRE.MatchString(p.Org)
		case p.OU != "":
			ok = orgs && ouARNRE.MatchString(p.OU)
		}
		if !ok || (p.UserID != "") && (p.Group != "" || p.Org != "" || p.OU != "") {
			return nil, nil, apiErr(badItem, "Invalid attribute item value: %s", p.UserID+p.Group+p.Org+p.OU)
		}
	}
	return add, remove, nil
}

// applyPerms is list with add added (once each) and remove removed.
func applyPerms(list, add, remove []permission) []permission {
	for _, p := range add {
		if !slices.Contains(list, p) {
			list = append(list, p)
		}
	}
	return slices.DeleteFunc(list, func(p permission) bool { return slices.Contains(remove, p) })
}

// permsOf is a copy of id's permissions in m, for an answer: an empty
// list (an empty element) when there are none.
func permsOf(m map[string][]permission, id string) *[]permission {
	perms := append([]permission{}, m[id]...)
	return &perms
}

// --- images ---

type describeImageAttributeResponse struct {
	ec2Meta
	ImageID          string        `xml:"imageId"`
	LaunchPermission *[]permission `xml:"launchPermission>item,omitempty"`
	Description      *xValue       `xml:"description,omitempty"`
	BlockDevices     *[]xImageBDM  `xml:"blockDeviceMapping>item,omitempty"`
}

// imageAttributes are the names DescribeImageAttribute knows; the
// simulator answers launchPermission, description and blockDeviceMapping,
// the others empty.
var imageAttributes = []string{"description", "kernel", "ramdisk", "launchPermission", "productCodes",
	"blockDeviceMapping", "sriovNetSupport", "bootMode", "tpmSupport", "uefiData", "lastLaunchedTime",
	"imdsSupport", "deregistrationProtection"}

func (s *Sim) ownImageLocked(r *request) (*image, error) {
	id, err := r.required("ImageId")
	if err != nil {
		return nil, err
	}
	im, err := s.imageLocked(id, s.nowLocked())
	if err != nil {
		return nil, err
	}
	if im.owner != s.opts.Account {
		return nil, apiErr("AuthFailure", "Not authorized for image:%s", id)
	}
	return im, nil
}

func (s *Sim) describeImageAttribute(r *request) (any, error) {
	attr, err := r.required("Attribute")
	if err != nil {
		return nil, err
	}
	if !slices.Contains(imageAttributes, attr) {
		return nil, apiErr("InvalidParameterValue", "Value (%s) for parameter attribute is invalid. Unknown attribute.", attr)
	}
	s.lock()
	defer s.mu.Unlock()
	im, err := s.ownImageLocked(r)
	if err != nil {
		return nil, err
	}
	out := &describeImageAttributeResponse{ImageID: im.id}
	switch attr {
	case "launchPermission":
		out.LaunchPermission = permsOf(s.regions.launchPerms, im.id)
	case "description":
		out.Description = &xValue{Value: im.description}
	case "blockDeviceMapping":
		bdms := s.xmlImageLocked(im).BlockDevices
		out.BlockDevices = &bdms
	}
	return out, nil
}

func (s *Sim) modifyImageAttribute(r *request) (any, error) {
	attr := r.str("Attribute")
	switch {
	case attr == "" && r.has("Description.Value"):
		attr = "description"
	case attr == "":
		attr = "launchPermission"
	}
	var add, remove []permission
	switch attr {
	case "launchPermission":
		var err error
		if add, remove, err = r.permChanges("LaunchPermission", true, "InvalidAMIAttributeItemValue"); err != nil {
			return nil, err
		}
	case "description":
	default:
		return nil, apiErr("InvalidParameterValue", "Value (%s) for parameter attribute is invalid. Unknown attribute.", attr)
	}
	s.lock()
	defer s.mu.Unlock()
	im, err := s.ownImageLocked(r)
	if err != nil {
		return nil, err
	}
	if attr == "description" {
		im.description = r.str("Description.Value")
		if r.has("Value") {
			im.description = r.str("Value")
		}
		return &returnResponse{Return: true}, nil
	}
	perms := applyPerms(s.regions.launchPerms[im.id], add, remove)
	s.regions.launchPerms[im.id] = perms
	im.public = im.owner == AmazonOwner || slices.Contains(perms, permission{Group: "all"})
	s.publishImageLocked(im) // accounts.go
	return &returnResponse{Return: true}, nil
}

// --- snapshots ---

type describeSnapshotAttributeResponse struct {
	ec2Meta
	SnapshotID   string        `xml:"snapshotId"`
	Permissions  *[]permission `xml:"createVolumePermission>item,omitempty"`
	ProductCodes *[]string     `xml:"productCodes>item,omitempty"`
}

func (s *Sim) ownSnapshotLocked(r *request) (*snapshot, error) {
	id, err := r.required("SnapshotId")
	if err != nil {
		return nil, err
	}
	sn, err := s.snapshotLocked(id)
	if err != nil {
		return nil, err
	}
	if sn.owner != s.opts.Account {
		return nil, apiErr("UnauthorizedOperation", "You are not authorized to perform this operation.")
	}
	return sn, nil
}

// snapshotAttribute is the Attribute parameter, def when absent (""
// makes it required).
func (s *Sim) snapshotAttribute(r *request, def string) (string, error) {
	attr := r.str("Attribute")
	if attr == "" && def != "" {
		attr = def
	}
	if attr == "" {
		return "", apiErr("MissingParameter", "The request must contain the parameter Attribute")
	}
	if attr != "createVolumePermission" && attr != "productCodes" {
		return "", apiErr("InvalidParameterValue", "Value (%s) for parameter attribute is invalid. Unknown attribute.", attr)
	}
	return attr, nil
}

func (s *Sim) describeSnapshotAttribute(r *request) (any, error) {
	attr, err := s.snapshotAttribute(r, "")
	if err != nil {
		return nil, err
	}
	s.lock()
	defer s.mu.Unlock()
	sn, err := s.ownSnapshotLocked(r)
	if err != nil {
		return nil, err
	}
	out := &describeSnapshotAttributeResponse{SnapshotID: sn.id}
	if attr == "productCodes" {
		out.ProductCodes = &[]string{}
		return out, nil
	}
	out.Permissions = permsOf(s.regions.volumePerms, sn.id)
	return out, nil
}

func (s *Sim) modifySnapshotAttribute(r *request) (any, error) {
	attr, err := s.snapshotAttribute(r, "createVolumePermission")
	if err != nil {
		return nil, err
	}
	if attr != "createVolumePermission" {
		return nil, apiErr("InvalidParameterValue", "Value (%s) for parameter attribute is invalid. The attribute cannot be modified.", attr)
	}
	add, remove, err := r.permChanges("CreateVolumePermission", false, "InvalidParameterValue")
	if err != nil {
		return nil, err
	}
	s.lock()
	defer s.mu.Unlock()
	sn, err := s.ownSnapshotLocked(r)
	if err != nil {
		return nil, err
	}
	if len(add) > 0 && sn.encrypted && isDefaultEBSKey(sn.kmsKey) {
		return nil, apiErr("InvalidParameter", "Snapshots encrypted with the AWS Managed CMK can't be shared. Specify another snapshot.")
	}
	s.regions.volumePerms[sn.id] = applyPerms(s.regions.volumePerms[sn.id], add, remove)
	return &returnResponse{Return: true}, nil
}

// isDefaultEBSKey: the AWS managed key (alias aws/ebs), which cannot be
// shared with another account.
func isDefaultEBSKey(key string) bool {
	return key == "" || key == "alias/aws/ebs" || strings.HasSuffix(key, ":alias/aws/ebs")
}
