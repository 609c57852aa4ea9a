package pipeline

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Builder is what a bake is baked from and with: the one shape of a bake's
// settings. A project file (package project) and aws:ami both decode into
// it and check it with Validate, so the two accept the same values; a Spec
// carries it to the pipeline unchanged.
type Builder struct {
	Region string // "" = the default region
	Base   Base
	Type   string // the builder's instance type
	Script string // the init script, run as user data
	// SecurityGroups are group ids (sg-...) or group names, looked up at
	// launch; Subnet and IAMProfile (a profile name or ARN) are optional.
	SecurityGroups []string
	Subnet         string
	IAMProfile     string
	// Tags are put on the builder, the image and its snapshots.
	Tags     map[string]string
	Timeouts Timeouts // zero: the defaults
	// Distribution copies and shares the image (distribute.go).
	Distribution Distribution
	// DeprecateAfter, when set, gives the image a deprecation time this long
	// after its creation (EnableImageDeprecation, lifecycle.go).
	DeprecateAfter time.Duration
	// Tests, when set, is the image test run before the image is copied,
	// shared or promoted (imagetest.go).
	Tests *Tests
}

// Limits of a Builder.
const (
	// MaxScriptLen leaves room for kiln's wrapper inside EC2's 16 KB
	// user-data limit.
	MaxScriptLen = 15 * 1024
	// MaxTags leaves room under EC2's 50 tags per resource for kiln's own.
	MaxTags = 40
	// MaxTimeout bounds each of Timeouts.
	MaxTimeout = 24 * time.Hour
)

var (
	amiRE     = regexp.MustCompile(`^ami-[0-9a-f]{8}([0-9a-f]{9})?$`)
	sgRE      = regexp.MustCompile(`^sg-[0-9a-f]{8}([0-9a-f]{9})?$`)
	sgNameRE  = regexp.MustCompile(`^[A-Za-z0-9 ._\-:/()#,@\[\]+=&;{}!$*]{1,255}$`) // EC2's group-name characters
	subnetRE  = regexp.MustCompile(`^subnet-[0-9a-f]{8}([0-9a-f]{9})?$`)
	typeRE    = regexp.MustCompile(`^[a-z][a-z0-9-]*\.[a-z0-9]+$`)
	ownerRE   = regexp.MustCompile(`^([0-9]{12}|self|amazon|aws-marketplace|aws-backup-vault)$`)
	profileRE = regexp.MustCompile(`^([\w+=,.@-]{1,128}|arn:aws[a-z-]*:iam::[0-9]{12}:instance-profile/[\w+=,.@/-]{1,128})$`)
	// AMI names: letters, digits, ( ) [ ] . / - ' @ _ and space; a
	// pattern adds * and ?.
	amiPatternRE = regexp.MustCompile(`^[A-Za-z0-9()\[\]./\-'@_ *?]+$`)
)

// Validate returns what is wrong with b, in field order; Problem.Field is
// the field as both files write it ("base.owner", "security_groups[1]",
// "tags.KEY"). skip reports values to leave alone: references that the
// engine resolves later (nil: none). Required fields that are empty are
// problems too (base, type, script); the region may be empty.
func (b Builder) Validate(skip func(string) bool) []Problem {
	if skip == nil {
		skip = func(string) bool { return false }
	}
	var out []Problem
	add := func(field, format string, args ...any) {
		out = append(out, Problem{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if b.Region != "" && !skip(b.Region) && !regionRE.MatchString(b.Region) {
		add("region", "%q is not a region name such as us-east-1", b.Region)
	}
	out = append(out, b.Base.validate(skip)...)
	switch {
	case b.Type == "":
		add("type", "must not be empty")
	case !skip(b.Type) && !typeRE.MatchString(b.Type):
		add("type", "%q is not an instance type such as t3.small", b.Type)
	}
	switch {
	case strings.TrimSpace(b.Script) == "":
		add("script", "must not be empty")
	case len(b.Script) > MaxScriptLen:
		add("script", "%d bytes; at most %d", len(b.Script), MaxScriptLen)
	default:
		if _, err := WrapScript("x", b.Script); err != nil {
			add("script", "%v", err)
		}
	}
	seen := map[string]bool{}
	for i, g := range b.SecurityGroups {
		field := fmt.Sprintf("security_groups[%d]", i)
		switch {
		case skip(g):
		case strings.HasPrefix(g, "sg-") && !sgRE.MatchString(g):
			add(field, "%q is not a security group id (sg-...)", g)
		case !strings.HasPrefix(g, "sg-") && !sgNameRE.MatchString(g):
			// A group name (an aws:security_group's name): looked up at launch.
			add(field, "%q is neither a security group id (sg-...) nor a group name", g)
		case seen[g]:
			add(field, "%q given twice", g)
		}
		seen[g] = true
	}
	if b.Subnet != "" && !skip(b.Subnet) && !subnetRE.MatchString(b.Subnet) {
		add("subnet", "%q is not a subnet id (subnet-...)", b.Subnet)
	}
	if b.IAMProfile != "" && !skip(b.IAMProfile) && !profileRE.MatchString(b.IAMProfile) {
		add("iam_profile", "%q is not an instance profile name or ARN", b.IAMProfile)
	}
	for _, k := range slices.Sorted(maps.Keys(b.Tags)) {
		switch lk := strings.ToLower(k); {
		case k == "" || len(k) > 128:
			add("tags", "tag keys are 1 to 128 characters")
		case strings.HasPrefix(lk, "aws:") || strings.HasPrefix(lk, "kiln:"):
			add("tags."+k, "the aws: and kiln: prefixes are reserved")
		}
		if len(b.Tags[k]) > 256 {
			add("tags."+k, "tag values are at most 256 characters")
		}
	}
	if len(b.Tags) > MaxTags {
		add("tags", "at most %d tags", MaxTags)
	}
	for _, t := range []struct {
		field string
		d     time.Duration
	}{{"timeouts.script", b.Timeouts.Script}, {"timeouts.image", b.Timeouts.Image}} {
		if t.d < 0 || t.d > MaxTimeout {
			add(t.field, "must be more than 0 and at most %s", MaxTimeout)
		}
	}
	if b.DeprecateAfter < 0 || b.DeprecateAfter > MaxDeprecateAfter {
		add("deprecate_after", "must be more than 0 and at most 10 years (3650d)")
	} else if b.DeprecateAfter > 0 && b.DeprecateAfter < time.Minute {
		add("deprecate_after", "at least 1m: EC2 keeps deprecation times to the minute")
	}
	out = append(out, b.Tests.Validate(skip)...)
	home := b.Region
	if skip(home) {
		home = ""
	}
	return append(out, b.Distribution.Check(home, skip)...)
}

// validate checks a base: an image id, or an owner and a name pattern.
func (b Base) validate(skip func(string) bool) []Problem {
	p := func(field, format string, args ...any) Problem {
		return Problem{Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case b.ID != "" && (b.Owner != "" || b.Name != "" || b.MostRecent):
		return []Problem{p("base", "give either id, or owner and name (with most_recent), not both")}
	case b.ID != "":
		if !skip(b.ID) && !amiRE.MatchString(b.ID) {
			return []Problem{p("base.id", "%q is not an image id (ami-...)", b.ID)}
		}
		return nil
	case b.Owner == "" && b.Name == "":
		return []Problem{p("base", "give either id, or owner and name (with most_recent)")}
	}
	var out []Problem
	if b.Owner == "" {
		out = append(out, p("base.owner", "required with base.name"))
	} else if !skip(b.Owner) && !ownerRE.MatchString(b.Owner) {
		out = append(out, p("base.owner", "%q: want a 12-digit account id, self, amazon or aws-marketplace", b.Owner))
	}
	if b.Name == "" {
		out = append(out, p("base.name", "required with base.owner"))
	} else if !skip(b.Name) && (len(b.Name) > 128 || !amiPatternRE.MatchString(b.Name)) {
		out = append(out, p("base.name", "%q is not an image name pattern (AMI-name characters and * ?)", b.Name))
	}
	return out
}

// IsImageID reports whether s has the shape of an image id (ami- and 8 or
// 17 hex digits).
func IsImageID(s string) bool { return amiRE.MatchString(s) }
