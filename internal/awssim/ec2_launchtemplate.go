package awssim

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Launch templates: CreateLaunchTemplate, CreateLaunchTemplateVersion,
// DescribeLaunchTemplates, DescribeLaunchTemplateVersions and
// ModifyLaunchTemplate, and RunInstances with a LaunchTemplate. Versions
// are numbered from 1 and never change; "$Latest" and "$Default" resolve
// when used. As on AWS, template data is hardly validated when it is
// stored (an unknown AMI is a warning in the answer, not an error); it is
// validated when something launches from it.

// ltData is a template version's launch parameters; nil or empty means
// "not set", so that a version made from a SourceVersion inherits it.
type ltData struct {
	ImageID          *string
	InstanceType     *string
	KeyName          *string
	UserData         *string // base64, as sent
	ShutdownBehavior *string
	IamProfileArn    *string
	IamProfileName   *string
	DisableAPITerm   *bool
	DisableAPIStop   *bool
	EbsOptimized     *bool
	SecurityGroupIDs []string
	SecurityGroups   []string // names
	TagSpecs         []tagSpec
}

// overlay returns d with every field that o sets replaced.
func (d ltData) overlay(o ltData) ltData {
	set := func(dst **string, src *string) {
		if src != nil {
			*dst = src
		}
	}
	set(&d.ImageID, o.ImageID)
	set(&d.InstanceType, o.InstanceType)
	set(&d.KeyName, o.KeyName)
	set(&d.UserData, o.UserData)
	set(&d.ShutdownBehavior, o.ShutdownBehavior)
	if o.IamProfileArn != nil || o.IamProfileName != nil {
		d.IamProfileArn, d.IamProfileName = o.IamProfileArn, o.IamProfileName
	}
	for _, p := range []struct{ dst, src **bool }{{&d.DisableAPITerm, &o.DisableAPITerm}, {&d.DisableAPIStop, &o.DisableAPIStop}, {&d.EbsOptimized, &o.EbsOptimized}} {
		if *p.src != nil {
			*p.dst = *p.src
		}
	}
	if o.SecurityGroupIDs != nil {
		d.SecurityGroupIDs = o.SecurityGroupIDs
	}
	if o.SecurityGroups != nil {
		d.SecurityGroups = o.SecurityGroups
	}
	if o.TagSpecs != nil {
		d.TagSpecs = o.TagSpecs
	}
	return d
}

type ltVersion struct {
	number      int
	description string
	created     time.Time
	data        ltData
}

type launchTemplate struct {
	seq           uint64
	id, name      string
	created       time.Time
	defaultVer    int
	versions      []*ltVersion // versions[n-1] is version n
	versionTokens map[string]ltToken
}

func (lt *launchTemplate) latest() *ltVersion { return lt.versions[len(lt.versions)-1] }

// ltToken remembers a ClientToken: the parameters it came with and what it
// made.
type ltToken struct {
	hash    string
	id      string
	version int
}

// templates is the launch-template state, kept in Sim.asg.
type templates struct {
	byID   map[string]*launchTemplate
	byName map[string]*launchTemplate
	order  []*launchTemplate
	tokens map[string]ltToken // CreateLaunchTemplate ClientToken
	seq    uint64
}

func (t *templates) init() {
	t.byID, t.byName, t.tokens = map[string]*launchTemplate{}, map[string]*launchTemplate{}, map[string]ltToken{}
}

var ltNameRE = regexp.MustCompile(`^[a-zA-Z0-9().\-/_]{3,128}$`)

// templateLocked finds a template by id or by name (exactly one given).
func (s *Sim) templateLocked(id, name string) (*launchTemplate, error) {
	t := &s.asg.templates
	switch {
	case id != "" && name != "":
		return nil, apiErr("InvalidParameterCombination", "Only one of launchTemplateId or launchTemplateName may be specified")
	case id != "":
		if !wellFormed("lt", id) {
			return nil, apiErr("InvalidLaunchTemplateId.Malformed", "The specified ID for the launch template (%s) is not valid. Launch template IDs are of the form lt-xxxxxxxxxxxxxxxxx.", id)
		}
		lt, ok := t.byID[id]
		if !ok {
			return nil, apiErr("InvalidLaunchTemplateId.NotFound", "The specified launch template, with template ID %s, does not exist.", id)
		}
		return lt, nil
	case name != "":
		lt, ok := t.byName[name]
		if !ok {
			return nil, apiErr("InvalidLaunchTemplateName.NotFoundException", "The specified launch template, with template name %s, does not exist.", name)
		}
		return lt, nil
	}
	return nil, apiErr("MissingParameter", "The request must contain the parameter launchTemplateName or launchTemplateId")
}

// version resolves "", "$Default", "$Latest" or a number.
func (lt *launchTemplate) version(v string) (*ltVersion, error) {
	switch v {
	case "", "$Default":
		return lt.versions[lt.defaultVer-1], nil
	case "$Latest":
		return lt.latest(), nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return nil, apiErr("InvalidLaunchTemplateId.VersionNotFound", "Could not find the specified version %s for the launch template with ID %s.", v, lt.id)
	}
	if n > len(lt.versions) {
		return nil, apiErr("InvalidLaunchTemplateId.VersionNotFound", "Could not find the specified version %d for the launch template with ID %s.", n, lt.id)
	}
	return lt.versions[n-1], nil
}

// ltData reads prefix+ImageId, ... (LaunchTemplateData.*) from a request.
func (r *request) ltData(prefix string) (ltData, error) {
	var d ltData
	str := func(name string) *string {
		if !r.has(prefix + name) {
			return nil
		}
		v := r.str(prefix + name)
		return &v
	}
	d.ImageID = str("ImageId")
	d.InstanceType = str("InstanceType")
	d.KeyName = str("KeyName")
	d.UserData = str("UserData")
	d.ShutdownBehavior = str("InstanceInitiatedShutdownBehavior")
	d.IamProfileArn = str("IamInstanceProfile.Arn")
	d.IamProfileName = str("IamInstanceProfile.Name")
	for _, b := range []struct {
		name string
		dst  **bool
	}{{"DisableApiTermination", &d.DisableAPITerm}, {"DisableApiStop", &d.DisableAPIStop}, {"EbsOptimized", &d.EbsOptimized}} {
		if r.has(prefix + b.name) {
			v, err := r.boolean(prefix + b.name)
			if err != nil {
				return d, err
			}
			*b.dst = &v
		}
	}
	if r.hasList(prefix + "SecurityGroupId") {
		d.SecurityGroupIDs = append([]string{}, r.list(prefix+"SecurityGroupId")...)
	}
	if r.hasList(prefix + "SecurityGroup") {
		d.SecurityGroups = append([]string{}, r.list(prefix+"SecurityGroup")...)
	}
	if d.UserData != nil {
		if _, err := base64.StdEncoding.DecodeString(*d.UserData); err != nil {
			return d, apiErr("InvalidUserData.Malformed", "Invalid BASE64 encoding of user data.")
		}
	}
	if d.InstanceType != nil && !instanceTypeRE.MatchString(*d.InstanceType) {
		return d, apiErr("InvalidParameterValue", "Invalid value '%s' for InstanceType.", *d.InstanceType)
	}
	if d.ShutdownBehavior != nil && *d.ShutdownBehavior != "stop" && *d.ShutdownBehavior != "terminate" {
		return d, apiErr("InvalidParameterValue", "Invalid value '%s' for instanceInitiatedShutdownBehavior", *d.ShutdownBehavior)
	}
	var err error
	d.TagSpecs, err = r.tagSpecs(prefix, func(rt string) error {
		switch rt {
		case "instance", "volume", "network-interface", "spot-instances-request":
			return nil
		}
		return apiErr("InvalidParameterValue", "'%s' is not a valid taggable resource type for launch template data.", rt)
	})
	return d, err
}

// warningsLocked lists what would stop an instance from launching, as the
// ValidationWarning AWS returns on create.
func (s *Sim) warningsLocked(d ltData, now time.Time) []xValidationError {
	var out []xValidationError
	if d.ImageID != nil {
		if !wellFormed("ami", *d.ImageID) {
			out = append(out, xValidationError{Code: "InvalidAMIID.Malformed", Message: fmt.Sprintf("Invalid id: \"%s\" (expecting \"ami-...\")", *d.ImageID)})
		} else if _, ok := s.launchImageLocked(*d.ImageID, now); !ok { // accounts.go
			out = append(out, xValidationError{Code: "InvalidAmiID.NotFound", Message: fmt.Sprintf("The image id '[%s]' does not exist", *d.ImageID)})
		}
	}
	for _, g := range d.SecurityGroupIDs {
		if _, err := s.groupLocked(g); err != nil {
			out = append(out, xValidationError{Code: "InvalidGroupId.NotFound", Message: fmt.Sprintf("The security group '%s' does not exist", g)})
		}
	}
	return out
}

// specFromVersion turns a version into a launchSpec for launchLocked (which
// validates it).
func (s *Sim) specFromVersion(v *ltVersion) (launchSpec, error) {
	d := v.data
	sp := launchSpec{}
	sp.ImageID, sp.InstanceType, sp.KeyName = deref(d.ImageID), deref(d.InstanceType), deref(d.KeyName)
	sp.ShutdownBehavior = deref(d.ShutdownBehavior)
	sp.IamProfile = deref(d.IamProfileArn)
	if sp.IamProfile == "" {
		sp.IamProfile = deref(d.IamProfileName)
	}
	if d.UserData != nil {
		b, err := base64.StdEncoding.DecodeString(*d.UserData)
		if err != nil {
			return sp, apiErr("InvalidUserData.Malformed", "Invalid BASE64 encoding of user data.")
		}
		sp.UserData = b
	}
	if d.DisableAPITerm != nil {
		sp.NoTerminate = *d.DisableAPITerm
	}
	if d.DisableAPIStop != nil {
		sp.DisableAPIStop = *d.DisableAPIStop
	}
	sp.SecurityGroupIDs = slices.Clone(d.SecurityGroupIDs)
	for _, n := range d.SecurityGroups {
		g := s.groupByNameLocked(n)
		if g == nil {
			return sp, apiErr("InvalidGroup.NotFound", "The security group '%s' does not exist in default VPC '%s'", n, s.subnets[0].vpcID)
		}
		sp.SecurityGroupIDs = append(sp.SecurityGroupIDs, g.id)
	}
	for _, ts := range d.TagSpecs {
		switch ts.ResourceType {
		case "instance":
			sp.Tags = append(sp.Tags, ts.Tags...)
		case "volume":
			sp.VolumeTags = append(sp.VolumeTags, ts.Tags...)
		}
	}
	return sp, nil
}

// tagTemplateInstances adds the tags AWS puts on instances launched from a
// template.
func (s *Sim) tagTemplateInstances(ins []*instance, lt *launchTemplate, v *ltVersion) {
	for _, in := range ins {
		s.tags.set(in.id, "aws:ec2launchtemplate:id", lt.id)
		s.tags.set(in.id, "aws:ec2launchtemplate:version", strconv.Itoa(v.number))
	}
}

// fillFromTemplateLocked fills what RunInstances left unset from the
// request's LaunchTemplate, if it names one, before launchLocked validates
// the spec; s.mu is held.
func (s *Sim) fillFromTemplateLocked(r *request, sp *launchSpec) error {
	ref, ok := r.ltRefParam("LaunchTemplate")
	if !ok {
		return nil
	}
	lt, err := s.templateLocked(ref.id, ref.name)
	if err != nil {
		return err
	}
	v, err := lt.version(ref.version)
	if err != nil {
		return err
	}
	base, err := s.specFromVersion(v)
	if err != nil {
		return err
	}
	fill := func(dst *string, src string) {
		if *dst == "" {
			*dst = src
		}
	}
	fill(&sp.ImageID, base.ImageID)
	fill(&sp.InstanceType, base.InstanceType)
	fill(&sp.KeyName, base.KeyName)
	fill(&sp.ShutdownBehavior, base.ShutdownBehavior)
	fill(&sp.IamProfile, base.IamProfile)
	if sp.UserData == nil {
		sp.UserData = base.UserData
	}
	if len(sp.SecurityGroupIDs) == 0 {
		sp.SecurityGroupIDs = base.SecurityGroupIDs
	}
	if len(sp.Tags) == 0 {
		sp.Tags = base.Tags
	}
	if len(sp.VolumeTags) == 0 {
		sp.VolumeTags = base.VolumeTags
	}
	sp.NoTerminate = sp.NoTerminate || base.NoTerminate
	sp.DisableAPIStop = base.DisableAPIStop
	return nil
}

// --- XML shapes ---

type xLaunchTemplate struct {
	ID             string `xml:"launchTemplateId"`
	Name           string `xml:"launchTemplateName"`
	CreateTime     string `xml:"createTime"`
	CreatedBy      string `xml:"createdBy"`
	DefaultVersion int    `xml:"defaultVersionNumber"`
	LatestVersion  int    `xml:"latestVersionNumber"`
	Tags           []Tag  `xml:"tagSet>item"`
}

type xValidationError struct {
	Code    string `xml:"code"`
	Message string `xml:"message"`
}

type xWarning struct {
	Errors []xValidationError `xml:"errorSet>item"`
}

type xLTTagSpec struct {
	ResourceType string `xml:"resourceType"`
	Tags         []Tag  `xml:"tagSet>item"`
}

type xLTIamProfile struct {
	Arn  string `xml:"arn,omitempty"`
	Name string `xml:"name,omitempty"`
}

type xLTData struct {
	ImageID          string         `xml:"imageId,omitempty"`
	InstanceType     string         `xml:"instanceType,omitempty"`
	KeyName          string         `xml:"keyName,omitempty"`
	UserData         string         `xml:"userData,omitempty"`
	ShutdownBehavior string         `xml:"instanceInitiatedShutdownBehavior,omitempty"`
	IamProfile       *xLTIamProfile `xml:"iamInstanceProfile,omitempty"`
	DisableAPITerm   *bool          `xml:"disableApiTermination,omitempty"`
	DisableAPIStop   *bool          `xml:"disableApiStop,omitempty"`
	EbsOptimized     *bool          `xml:"ebsOptimized,omitempty"`
	SecurityGroupIDs []string       `xml:"securityGroupIdSet>item,omitempty"`
	SecurityGroups   []string       `xml:"securityGroupSet>item,omitempty"`
	TagSpecs         []xLTTagSpec   `xml:"tagSpecificationSet>item,omitempty"`
}

type xLTVersion struct {
	TemplateID     string  `xml:"launchTemplateId"`
	TemplateName   string  `xml:"launchTemplateName"`
	VersionNumber  int     `xml:"versionNumber"`
	Description    string  `xml:"versionDescription,omitempty"`
	CreateTime     string  `xml:"createTime"`
	CreatedBy      string  `xml:"createdBy"`
	DefaultVersion bool    `xml:"defaultVersion"`
	Data           xLTData `xml:"launchTemplateData"`
}

func (s *Sim) xmlTemplateLocked(lt *launchTemplate) xLaunchTemplate {
	return xLaunchTemplate{
		ID: lt.id, Name: lt.name, CreateTime: isoTime(lt.created), CreatedBy: s.creator(),
		DefaultVersion: lt.defaultVer, LatestVersion: len(lt.versions), Tags: s.tags.list(lt.id),
	}
}

func (s *Sim) creator() string { return "arn:aws:iam::" + s.opts.Account + ":root" }

func (s *Sim) xmlVersion(lt *launchTemplate, v *ltVersion) xLTVersion {
	d, val := v.data, deref
	x := xLTVersion{
		TemplateID: lt.id, TemplateName: lt.name, VersionNumber: v.number, Description: v.description,
		CreateTime: isoTime(v.created), CreatedBy: s.creator(), DefaultVersion: v.number == lt.defaultVer,
		Data: xLTData{
			ImageID: val(d.ImageID), InstanceType: val(d.InstanceType), KeyName: val(d.KeyName),
			UserData: val(d.UserData), ShutdownBehavior: val(d.ShutdownBehavior),
			DisableAPITerm: d.DisableAPITerm, DisableAPIStop: d.DisableAPIStop, EbsOptimized: d.EbsOptimized,
			SecurityGroupIDs: d.SecurityGroupIDs, SecurityGroups: d.SecurityGroups,
		},
	}
	if d.IamProfileArn != nil || d.IamProfileName != nil {
		x.Data.IamProfile = &xLTIamProfile{Arn: val(d.IamProfileArn), Name: val(d.IamProfileName)}
	}
	for _, ts := range d.TagSpecs {
		x.Data.TagSpecs = append(x.Data.TagSpecs, xLTTagSpec{ResourceType: ts.ResourceType, Tags: ts.Tags})
	}
	return x
}

// --- CreateLaunchTemplate ---

type createLaunchTemplateResponse struct {
	ec2Meta
	Template xLaunchTemplate `xml:"launchTemplate"`
	Warning  *xWarning       `xml:"warning,omitempty"`
}

func (s *Sim) createLaunchTemplate(r *request) (any, error) {
	name, err := r.required("LaunchTemplateName")
	if err != nil {
		return nil, err
	}
	if !ltNameRE.MatchString(name) {
		return nil, apiErr("InvalidLaunchTemplateName.MalformedException", "A launch template name must be between 3 and 128 characters, and may contain letters, numbers, and the following characters: - ( ) . / _.")
	}
	data, err := r.ltData("LaunchTemplateData.")
	if err != nil {
		return nil, err
	}
	specs, err := r.tagSpecs("", anyTagType)
	if err != nil {
		return nil, err
	}
	tags, err := tagsFor(specs, "launch-template", "launch-template")
	if err != nil {
		return nil, err
	}
	token := r.str("ClientToken")
	now := s.lock()
	defer s.mu.Unlock()
	t := &s.asg.templates
	var hash string
	if token != "" {
		hash = paramsHash(r)
		if tk, ok := t.tokens[token]; ok {
			if tk.hash != hash {
				return nil, tokenMismatch()
			}
			return &createLaunchTemplateResponse{Template: s.xmlTemplateLocked(t.byID[tk.id])}, nil
		}
	}
	if _, dup := t.byName[name]; dup {
		return nil, apiErr("InvalidLaunchTemplateName.AlreadyExistsException", "Launch template name already in use.")
	}
	t.seq++
	lt := &launchTemplate{seq: t.seq, id: s.newID("lt"), name: name, created: now, defaultVer: 1, versionTokens: map[string]ltToken{}}
	lt.versions = []*ltVersion{{number: 1, description: r.str("VersionDescription"), created: now, data: data}}
	t.byID[lt.id], t.byName[name] = lt, lt
	t.order = append(t.order, lt)
	for _, tg := range tags {
		s.tags.set(lt.id, tg.Key, tg.Value)
	}
	if token != "" {
		t.tokens[token] = ltToken{hash: hash, id: lt.id, version: 1}
	}
	out := &createLaunchTemplateResponse{Template: s.xmlTemplateLocked(lt)}
	if w := s.warningsLocked(data, now); len(w) > 0 {
		out.Warning = &xWarning{Errors: w}
	}
	return out, nil
}

// --- CreateLaunchTemplateVersion ---

type createLaunchTemplateVersionResponse struct {
	ec2Meta
	Version xLTVersion `xml:"launchTemplateVersion"`
	Warning *xWarning  `xml:"warning,omitempty"`
}

func (s *Sim) createLaunchTemplateVersion(r *request) (any, error) {
	data, err := r.ltData("LaunchTemplateData.")
	if err != nil {
		return nil, err
	}
	token := r.str("ClientToken")
	now := s.lock()
	defer s.mu.Unlock()
	lt, err := s.templateLocked(r.str("LaunchTemplateId"), r.str("LaunchTemplateName"))
	if err != nil {
		return nil, err
	}
	var hash string
	if token != "" {
		hash = paramsHash(r)
		if tk, ok := lt.versionTokens[token]; ok {
			if tk.hash != hash {
				return nil, tokenMismatch()
			}
			return &createLaunchTemplateVersionResponse{Version: s.xmlVersion(lt, lt.versions[tk.version-1])}, nil
		}
	}
	if src := r.str("SourceVersion"); src != "" {
		sv, err := lt.version(src)
		if err != nil {
			return nil, err
		}
		data = sv.data.overlay(data)
	}
	if len(lt.versions) >= 10000 {
		return nil, apiErr("VersionLimitExceeded", "You have reached the maximum number of versions (10000) for launch template %s.", lt.id)
	}
	v := &ltVersion{number: len(lt.versions) + 1, description: r.str("VersionDescription"), created: now, data: data}
	lt.versions = append(lt.versions, v)
	if token != "" {
		lt.versionTokens[token] = ltToken{hash: hash, id: lt.id, version: v.number}
	}
	out := &createLaunchTemplateVersionResponse{Version: s.xmlVersion(lt, v)}
	if w := s.warningsLocked(data, now); len(w) > 0 {
		out.Warning = &xWarning{Errors: w}
	}
	return out, nil
}

// --- DescribeLaunchTemplates ---

type describeLaunchTemplatesResponse struct {
	ec2Meta
	Templates []xLaunchTemplate `xml:"launchTemplates>item"`
	NextToken string            `xml:"nextToken,omitempty"`
}

var templateFilters = map[string]func(lt *launchTemplate) string{
	"launch-template-name": func(lt *launchTemplate) string { return lt.name },
	"create-time":          func(lt *launchTemplate) string { return isoTime(lt.created) },
}

func (s *Sim) describeLaunchTemplates(r *request) (any, error) {
	ids, names := r.list("LaunchTemplateId"), r.list("LaunchTemplateName")
	fs, err := r.filters(filterNames(templateFilters, true))
	if err != nil {
		return nil, err
	}
	max, start, err := r.page("lt", 1, 200, "LaunchTemplateIds", len(ids) > 0)
	if err != nil {
		return nil, err
	}
	s.lock()
	defer s.mu.Unlock()
	t := &s.asg.templates
	for _, id := range ids {
		if _, err := s.templateLocked(id, ""); err != nil {
			return nil, err
		}
	}
	for _, n := range names {
		if _, err := s.templateLocked("", n); err != nil {
			return nil, err
		}
	}
	out := &describeLaunchTemplatesResponse{}
	for _, lt := range t.order {
		if lt.seq < start || (len(ids) > 0 && !slices.Contains(ids, lt.id)) || (len(names) > 0 && !slices.Contains(names, lt.name)) {
			continue
		}
		if !s.matchTemplate(fs, lt) {
			continue
		}
		if max > 0 && len(out.Templates) == max {
			out.NextToken = pageToken("lt", lt.seq)
			break
		}
		out.Templates = append(out.Templates, s.xmlTemplateLocked(lt))
	}
	return out, nil
}

func (s *Sim) matchTemplate(fs []filter, lt *launchTemplate) bool {
	return matchFilters(fs, s.tags.get(lt.id), func(f filter) bool { return matchAny(f.Values, templateFilters[f.Name](lt)) })
}

// --- DescribeLaunchTemplateVersions ---

type describeLaunchTemplateVersionsResponse struct {
	ec2Meta
	Versions  []xLTVersion `xml:"launchTemplateVersionSet>item"`
	NextToken string       `xml:"nextToken,omitempty"`
}

var versionFilters = map[string]func(lt *launchTemplate, v *ltVersion) string{
	"is-default-version": func(lt *launchTemplate, v *ltVersion) string { return strconv.FormatBool(v.number == lt.defaultVer) },
	"image-id":           func(_ *launchTemplate, v *ltVersion) string { return deref(v.data.ImageID) },
	"instance-type":      func(_ *launchTemplate, v *ltVersion) string { return deref(v.data.InstanceType) },
	"create-time":        func(_ *launchTemplate, v *ltVersion) string { return isoTime(v.created) },
	"version-description": func(_ *launchTemplate, v *ltVersion) string {
		return v.description
	},
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func (s *Sim) describeLaunchTemplateVersions(r *request) (any, error) {
	fs, err := r.filters(filterNames(versionFilters, false))
	if err != nil {
		return nil, err
	}
	max, start, err := r.page("lt", 1, 200, "LaunchTemplateIds", false)
	if err != nil {
		return nil, err
	}
	bound := func(name string) (int, error) {
		if !r.has(name) {
			return 0, nil
		}
		n, err := strconv.Atoi(r.str(name))
		if err != nil || n < 1 {
			return 0, apiErr("InvalidParameterValue", "Invalid value '%s' for %s", r.str(name), name)
		}
		return n, nil
	}
	minV, err := bound("MinVersion")
	if err != nil {
		return nil, err
	}
	maxV, err := bound("MaxVersion")
	if err != nil {
		return nil, err
	}
	wanted := r.list("LaunchTemplateVersion")
	id, name := r.str("LaunchTemplateId"), r.str("LaunchTemplateName")
	s.lock()
	defer s.mu.Unlock()
	t := &s.asg.templates
	var lts []*launchTemplate
	if id == "" && name == "" {
		if len(wanted) == 0 || slices.ContainsFunc(wanted, func(v string) bool { return v != "$Latest" && v != "$Default" }) {
			return nil, apiErr("MissingParameter", "To describe the launch template data for all your launch templates, for 'Versions' specify '$Latest', '$Default', or both, and omit 'LaunchTemplateId', 'LaunchTemplateName', and version numbers. To describe the launch template data for a specific launch template, specify 'LaunchTemplateId' or 'LaunchTemplateName', and optionally include version numbers.")
		}
		lts = t.order
	} else {
		lt, err := s.templateLocked(id, name)
		if err != nil {
			return nil, err
		}
		lts = []*launchTemplate{lt}
	}
	type pair struct {
		lt *launchTemplate
		v  *ltVersion
	}
	var all []pair
	for _, lt := range lts {
		var vs []*ltVersion
		if len(wanted) > 0 {
			for _, w := range wanted {
				v, err := lt.version(w)
				if err != nil {
					return nil, err
				}
				if !slices.Contains(vs, v) {
					vs = append(vs, v)
				}
			}
		} else {
			vs = slices.Clone(lt.versions)
		}
		// Newest first, as AWS lists them.
		slices.SortFunc(vs, func(a, b *ltVersion) int { return b.number - a.number })
		for _, v := range vs {
			if (minV > 0 && v.number < minV) || (maxV > 0 && v.number > maxV) {
				continue
			}
			match := true
			for _, f := range fs {
				match = match && matchAny(f.Values, versionFilters[f.Name](lt, v))
			}
			if match {
				all = append(all, pair{lt, v})
			}
		}
	}
	out := &describeLaunchTemplateVersionsResponse{}
	page, next := pageOf(all, start, max, "lt")
	for _, p := range page {
		out.Versions = append(out.Versions, s.xmlVersion(p.lt, p.v))
	}
	out.NextToken = next
	return out, nil
}

// --- ModifyLaunchTemplate ---

type modifyLaunchTemplateResponse struct {
	ec2Meta
	Template xLaunchTemplate `xml:"launchTemplate"`
}

func (s *Sim) modifyLaunchTemplate(r *request) (any, error) {
	s.lock()
	defer s.mu.Unlock()
	lt, err := s.templateLocked(r.str("LaunchTemplateId"), r.str("LaunchTemplateName"))
	if err != nil {
		return nil, err
	}
	if r.has("SetDefaultVersion") {
		dv := r.str("SetDefaultVersion")
		if strings.HasPrefix(dv, "$") && dv != "$Latest" && dv != "$Default" {
			return nil, apiErr("InvalidLaunchTemplateId.VersionNotFound", "Could not find the specified version %s for the launch template with ID %s.", dv, lt.id)
		}
		v, err := lt.version(dv)
		if err != nil {
			return nil, err
		}
		lt.defaultVer = v.number
	}
	return &modifyLaunchTemplateResponse{Template: s.xmlTemplateLocked(lt)}, nil
}

// --- DeleteLaunchTemplate ---

func (s *Sim) deleteLaunchTemplate(r *request) (any, error) {
	s.lock()
	defer s.mu.Unlock()
	lt, err := s.templateLocked(r.str("LaunchTemplateId"), r.str("LaunchTemplateName"))
	if err != nil {
		return nil, err
	}
	out := &modifyLaunchTemplateResponse{Template: s.xmlTemplateLocked(lt)}
	t := &s.asg.templates
	delete(t.byID, lt.id)
	delete(t.byName, lt.name)
	t.order = slices.DeleteFunc(t.order, func(x *launchTemplate) bool { return x == lt })
	s.tags.drop(lt.id)
	return out, nil
}
