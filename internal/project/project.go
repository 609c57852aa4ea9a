package project

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"kiln/internal/config"
	"kiln/internal/pipeline"

	"go.yaml.in/yaml/v3"

	"kiln/internal/store"
)

// Project is a validated project file.
type Project struct {
	Name string
	// Builder is what each bake is baked from and with: region, base,
	// type, script, the builder's network and profile, tags, timeouts and
	// distribution, checked by the rules aws:ami's follow too.
	pipeline.Builder
	Keep int // images to keep, ≥ 1
	// DisableFor, when set, makes retention disable an image this long
	// before deregistering it (pipeline.Keep).
	DisableFor time.Duration
	Branch     string // pushes to other branches are ignored; empty: the repository's default branch
	// Rollout, when set, is where a successful bake's image is rolled out
	// to, as the bake's last step.
	Rollout *RolloutTarget
	// Environments, in promotion order: a bake's image goes to the first.
	Environments []Environment
	// Notify is where the project's events are sent (notify:).
	Notify []NotifyTarget
	// CommitStatus, when set, is where a pushed bake's state is reported
	// (commit_status:).
	CommitStatus *CommitStatus
	// Secret is webhook_secret after ${ENV} expansion; empty when the file
	// gives none (Apply then keeps the stored one or generates one).
	Secret string
}

// RolloutTarget is a project's rollout target (the file's rollout:): the
// Auto Scaling group whose launch template gets each new image, and the
// instance refresh's preferences (nil and zero: aws:asg's defaults).
// Region "" is the project's.
type RolloutTarget = store.Rollout

// DefaultKeep is how many images a project keeps when its file says none.
const DefaultKeep = 5

// Limits on project fields.
const (
	// MaxNameLen leaves room in the 128-character AMI name for
	// "-<bake id>" (up to 20 digits).
	MaxNameLen = 100
	// MaxScriptLen leaves room for kiln's wrapper inside EC2's 16 KB
	// user-data limit.
	MaxScriptLen = pipeline.MaxScriptLen
	// MinSecretLen is the shortest webhook secret accepted from a file.
	MinSecretLen = 16
	maxTimeout   = pipeline.MaxTimeout
)

// Error is one problem in a project file.
type Error struct {
	File   string
	Line   int
	Column int    // 0: not known (known for YAML syntax errors)
	Field  string // dotted YAML path, e.g. "base.owner"; empty for the file as a whole
	Msg    string
}

// Error reads `web.yaml:4: base.owner: must be set with base.name`, or
// `web.yaml:4:7: ...` when the column is known.
func (e *Error) Error() string {
	at := fmt.Sprintf("%s:%d", e.File, e.Line)
	if e.Column > 0 {
		at += fmt.Sprintf(":%d", e.Column)
	}
	if e.Field == "" {
		return fmt.Sprintf("%s: %s", at, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", at, e.Field, e.Msg)
}

// Errors is every problem found in one project file, in line order.
type Errors []*Error

// Error returns one problem per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

var (
	nameRe    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	regionRe  = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
	envRe     = regexp.MustCompile(`\$\{([^}]*)\}`)
	envNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// projectParser collects problems while it walks the YAML nodes.
type projectParser struct {
	file   string
	errs   Errors
	getenv func(string) string
}

func (pp *projectParser) errorf(line int, field, format string, args ...any) {
	pp.errs = append(pp.errs, &Error{File: pp.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// Parse decodes and validates a project file. file names it in
// errors; getenv (os.Getenv in production; nil means no variables) expands
// ${VAR} in webhook_secret. Decoding is strict: an unknown or repeated key
// is an error. On failure the error is a Errors holding every problem
// found, in line order.
func Parse(file string, data []byte, getenv func(string) string) (*Project, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	pp := &projectParser{file: file, getenv: getenv}
	p := pp.parse(data)
	if len(pp.errs) > 0 {
		slices.SortStableFunc(pp.errs, func(a, b *Error) int { return cmp.Compare(a.Line, b.Line) })
		return nil, pp.errs
	}
	return p, nil
}

func (pp *projectParser) parse(data []byte) *Project {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			pp.errorf(1, "", "%s", strings.TrimPrefix(err.Error(), "yaml: "))
			return nil
		}
		syn := config.SyntaxOf(data, err)
		if syn.Msg == "empty file" {
			syn.Msg = "empty project file"
		}
		pp.errs = append(pp.errs, &Error{File: pp.file, Line: syn.Line, Column: syn.Column, Msg: syn.Msg})
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		pp.errorf(extra.Line, "", "only one YAML document is allowed")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		pp.errorf(root.Line, "", "a project file is a mapping of fields (name, region, base, ...)")
		return nil
	}

	p := &Project{Keep: DefaultKeep, Builder: pipeline.Builder{Timeouts: pipeline.Timeouts{Script: pipeline.DefaultScriptTimeout, Image: pipeline.DefaultImageTimeout}}}
	lines := map[string]int{}
	set := map[string]func(*yaml.Node){
		"name":            func(n *yaml.Node) { p.Name = pp.str(n, "name") },
		"region":          func(n *yaml.Node) { p.Region = pp.str(n, "region") },
		"base":            func(n *yaml.Node) { pp.base(n, &p.Base, lines) },
		"type":            func(n *yaml.Node) { p.Type = pp.str(n, "type") },
		"script":          func(n *yaml.Node) { p.Script = pp.str(n, "script") },
		"security_groups": func(n *yaml.Node) { p.SecurityGroups = pp.strList(n, "security_groups") },
		"subnet":          func(n *yaml.Node) { p.Subnet = pp.str(n, "subnet") },
		"iam_profile":     func(n *yaml.Node) { p.IAMProfile = pp.str(n, "iam_profile") },
		"tags":            func(n *yaml.Node) { p.Tags = pp.strMap(n, "tags", lines) },
		"keep": func(n *yaml.Node) {
			if v, ok := pp.integer(n, "keep"); ok {
				p.Keep = v
			}
		},
		"deprecate_after": func(n *yaml.Node) { p.DeprecateAfter = pp.age(n, "deprecate_after") },
		"disable_for":     func(n *yaml.Node) { p.DisableFor = pp.age(n, "disable_for") },
		"branch":          func(n *yaml.Node) { p.Branch = pp.str(n, "branch") },
		"timeouts":        func(n *yaml.Node) { pp.timeouts(n, &p.Timeouts, lines) },
		"webhook_secret":  func(n *yaml.Node) { p.Secret = pp.secret(n) },
		"rollout":         func(n *yaml.Node) { p.Rollout = pp.rollout(n, lines) },
		"environments":    func(n *yaml.Node) { p.Environments = pp.environments(n, lines) },
		"notify":          func(n *yaml.Node) { p.Notify = pp.notifyTargets(n, lines) },
		"commit_status":   func(n *yaml.Node) { p.CommitStatus = pp.commitStatus(n, lines) },
		"tests":           func(n *yaml.Node) { p.Tests = pp.tests(n, lines) }, // tests.go
	}
	maps.Copy(set, pp.distributionFields(&p.Distribution)) // distribution.go
	pp.fields(root, "", lines, set)
	pp.validate(p, root.Line, lines)
	return p
}

// fields walks mapping n, calling set for each known key and reporting
// unknown and repeated keys. lines records each key's line by dotted path.
func (pp *projectParser) fields(n *yaml.Node, prefix string, lines map[string]int, set map[string]func(*yaml.Node)) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			pp.errorf(k.Line, strings.TrimSuffix(prefix, "."), "keys must be plain names")
			continue
		}
		path := prefix + k.Value
		if _, seen := lines[path]; seen {
			pp.errorf(k.Line, path, "given twice")
			continue
		}
		lines[path] = k.Line
		f, ok := set[k.Value]
		if !ok {
			pp.errorf(k.Line, "", "unknown field %q", path)
			continue
		}
		f(v)
	}
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

func (pp *projectParser) str(n *yaml.Node, field string) string {
	if isNull(n) {
		return ""
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!bool" {
		pp.errorf(n.Line, field, "want a string")
		return ""
	}
	return n.Value
}

func (pp *projectParser) integer(n *yaml.Node, field string) (int, bool) {
	var v int
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&v) != nil {
		pp.errorf(n.Line, field, "want a whole number")
		return 0, false
	}
	return v, true
}

func (pp *projectParser) boolean(n *yaml.Node, field string) bool {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		pp.errorf(n.Line, field, "want true or false")
		return false
	}
	var b bool
	if err := n.Decode(&b); err != nil {
		pp.errorf(n.Line, field, "want true or false")
	}
	return b
}

func (pp *projectParser) duration(n *yaml.Node, field string) (time.Duration, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		pp.errorf(n.Line, field, "want a duration such as 30m or 1h30m")
		return 0, false
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		pp.errorf(n.Line, field, "want a duration such as 30m or 1h30m, not %q", n.Value)
		return 0, false
	}
	if d <= 0 || d > maxTimeout {
		pp.errorf(n.Line, field, "must be more than 0 and at most %s", maxTimeout)
		return 0, false
	}
	return d, true
}

// age reads an image age: "30d", "2w" or a Go duration (pipeline.ParseAge).
func (pp *projectParser) age(n *yaml.Node, field string) time.Duration {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		pp.errorf(n.Line, field, "want a duration such as 30d, 2w or 36h")
		return 0
	}
	d, err := pipeline.ParseAge(n.Value)
	if err != nil {
		pp.errorf(n.Line, field, "%v", err)
		return 0
	}
	return d
}

func (pp *projectParser) strList(n *yaml.Node, field string) []string {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		pp.errorf(n.Line, field, "want a list of strings")
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for i, c := range n.Content {
		out = append(out, pp.str(c, fmt.Sprintf("%s[%d]", field, i)))
	}
	return out
}

// strMap decodes a mapping of strings, recording each key's line in
// lines as field.KEY; Validate checks the keys and values.
func (pp *projectParser) strMap(n *yaml.Node, field string, lines map[string]int) map[string]string {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		pp.errorf(n.Line, field, "want a mapping of strings")
		return nil
	}
	out := make(map[string]string, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := pp.str(k, field)
		if _, dup := out[key]; dup {
			pp.errorf(k.Line, field+"."+key, "given twice")
			continue
		}
		out[key] = pp.str(v, field+"."+key)
		lines[field+"."+key] = k.Line
	}
	return out
}

func (pp *projectParser) base(n *yaml.Node, b *pipeline.Base, lines map[string]int) {
	if n.Kind != yaml.MappingNode {
		pp.errorf(n.Line, "base", "want {id: ami-...} or {owner: ..., name: ..., most_recent: true}")
		return
	}
	pp.fields(n, "base.", lines, map[string]func(*yaml.Node){
		"id":          func(v *yaml.Node) { b.ID = pp.str(v, "base.id") },
		"owner":       func(v *yaml.Node) { b.Owner = pp.str(v, "base.owner") },
		"name":        func(v *yaml.Node) { b.Name = pp.str(v, "base.name") },
		"most_recent": func(v *yaml.Node) { b.MostRecent = pp.boolean(v, "base.most_recent") },
	})
}

func (pp *projectParser) timeouts(n *yaml.Node, t *pipeline.Timeouts, lines map[string]int) {
	if n.Kind != yaml.MappingNode {
		pp.errorf(n.Line, "timeouts", "want {script: 30m, image: 60m}")
		return
	}
	pp.fields(n, "timeouts.", lines, map[string]func(*yaml.Node){
		"script": func(v *yaml.Node) {
			if d, ok := pp.duration(v, "timeouts.script"); ok {
				t.Script = d
			}
		},
		"image": func(v *yaml.Node) {
			if d, ok := pp.duration(v, "timeouts.image"); ok {
				t.Image = d
			}
		},
	})
}

// Limits of a rollout target, as Auto Scaling's instance refresh has them.
const (
	maxGroupLen        = 255
	maxAlarms          = 10
	maxCheckpointDelay = 48 * time.Hour
	maxWarmup          = 48 * time.Hour
)

// rollout decodes rollout: {group: NAME, region: ..., min_healthy_percent,
// warmup, checkpoints, checkpoint_delay, skip_matching, auto_rollback,
// alarms}; null is no target.
func (pp *projectParser) rollout(n *yaml.Node, lines map[string]int) *RolloutTarget {
	return pp.rolloutPrefs(n, "rollout", lines, true)
}

// rolloutPrefs decodes the instance-refresh preferences at field (and, for
// a target, its group and region).
func (pp *projectParser) rolloutPrefs(n *yaml.Node, field string, lines map[string]int, target bool) *RolloutTarget {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		if target {
			pp.errorf(n.Line, field, "want {group: NAME, ...}")
		} else {
			pp.errorf(n.Line, field, "want {min_healthy_percent: 90, warmup: 60s, ...}")
		}
		return nil
	}
	r := &RolloutTarget{}
	f := field + "."
	set := map[string]func(*yaml.Node){
		"min_healthy_percent": func(v *yaml.Node) {
			if m, ok := pp.integer(v, f+"min_healthy_percent"); ok {
				if m < 0 || m > 100 {
					pp.errorf(v.Line, f+"min_healthy_percent", "want 0 to 100, not %d", m)
				}
				r.MinHealthyPercent = &m
			}
		},
		"warmup": func(v *yaml.Node) { r.Warmup = pp.seconds(v, f+"warmup", maxWarmup) },
		"checkpoints": func(v *yaml.Node) {
			if v.Kind != yaml.SequenceNode {
				pp.errorf(v.Line, f+"checkpoints", "want a list of percentages")
				return
			}
			for i, c := range v.Content {
				pc, ok := pp.integer(c, fmt.Sprintf("%scheckpoints[%d]", f, i))
				if !ok {
					continue
				}
				if pc < 1 || pc > 100 || (len(r.Checkpoints) > 0 && pc <= r.Checkpoints[len(r.Checkpoints)-1]) {
					pp.errorf(c.Line, fmt.Sprintf("%scheckpoints[%d]", f, i), "want ascending percentages from 1 to 100")
				}
				r.Checkpoints = append(r.Checkpoints, pc)
			}
		},
		"checkpoint_delay": func(v *yaml.Node) {
			r.CheckpointDelay = pp.seconds(v, f+"checkpoint_delay", maxCheckpointDelay)
		},
		"skip_matching": func(v *yaml.Node) {
			b := pp.boolean(v, f+"skip_matching")
			r.SkipMatching = &b
		},
		"auto_rollback": func(v *yaml.Node) {
			b := pp.boolean(v, f+"auto_rollback")
			r.AutoRollback = &b
		},
		"alarms": func(v *yaml.Node) { r.Alarms = pp.strList(v, f+"alarms") },
	}
	if target {
		set["group"] = func(v *yaml.Node) { r.Group = pp.str(v, f+"group") }
		set["region"] = func(v *yaml.Node) { r.Region = pp.str(v, f+"region") }
	}
	pp.fields(n, f, lines, set)
	return r
}

// seconds is a duration in whole seconds, more than 0 and at most limit.
func (pp *projectParser) seconds(n *yaml.Node, field string, limit time.Duration) time.Duration {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		pp.errorf(n.Line, field, "want a duration such as 90s or 5m")
		return 0
	}
	d, err := time.ParseDuration(n.Value)
	switch {
	case err != nil:
		pp.errorf(n.Line, field, "want a duration such as 90s or 5m, not %q", n.Value)
		return 0
	case d <= 0 || d > limit || d%time.Second != 0:
		pp.errorf(n.Line, field, "want whole seconds, more than 0 and at most %s", limit)
		return 0
	}
	return d
}

// secret expands ${VAR} references in webhook_secret. An unset or empty
// variable is an error: silently using an empty secret would accept any
// delivery signed with "".
func (pp *projectParser) secret(n *yaml.Node) string {
	raw := pp.str(n, "webhook_secret")
	out, ok := pp.expand(raw, n.Line, "webhook_secret")
	if !ok {
		return ""
	}
	if raw != "" && len(out) < MinSecretLen {
		pp.errorf(n.Line, "webhook_secret", "must be at least %d characters", MinSecretLen)
	}
	return out
}

// validate checks the decoded fields against each other and the AWS rules.
func (pp *projectParser) validate(p *Project, rootLine int, lines map[string]int) {
	at := func(field string) int {
		if l, ok := lines[field]; ok {
			return l
		}
		return rootLine
	}
	req := func(field, v string) bool {
		if _, ok := lines[field]; !ok {
			pp.errorf(rootLine, field, "required")
			return false
		}
		if v == "" {
			pp.errorf(at(field), field, "must not be empty")
			return false
		}
		return true
	}

	if req("name", p.Name) {
		switch {
		case len(p.Name) > MaxNameLen:
			pp.errorf(at("name"), "name", "at most %d characters", MaxNameLen)
		case !nameRe.MatchString(p.Name):
			pp.errorf(at("name"), "name", "%q: use letters, digits, '.', '_' and '-', starting with a letter or digit (it names images and URLs)", p.Name)
		}
	}
	// The builder's fields: the required ones here (missing or empty is
	// said once), their values by the rules aws:ami follows too.
	reported := map[string]bool{}
	reported["region"] = !req("region", p.Region)
	if _, ok := lines["base"]; !ok {
		pp.errorf(rootLine, "base", "required")
		reported["base"] = true
	}
	reported["type"] = !req("type", p.Type)
	reported["script"] = !req("script", p.Script)
	for _, pr := range p.Builder.Validate(nil) {
		top, _, _ := strings.Cut(pr.Field, ".")
		top, _, _ = strings.Cut(top, "[")
		if !reported[top] {
			pp.errorf(atField(pr.Field, lines, rootLine), pr.Field, "%s", pr.Msg)
		}
	}
	if _, ok := lines["keep"]; ok && p.Keep < 1 {
		pp.errorf(at("keep"), "keep", "must be at least 1")
	}
	if r := p.Rollout; r != nil {
		pp.validateRollout(r, at)
	}
	pp.validateEnvironments(p, at, lines)
	if p.Branch != "" {
		p.Branch = strings.TrimPrefix(p.Branch, "refs/heads/")
		if msg := CheckBranch(p.Branch); msg != "" {
			pp.errorf(at("branch"), "branch", "%q: %s", p.Branch, msg)
		}
	}
}

func (pp *projectParser) validateRollout(r *RolloutTarget, at func(string) int) {
	switch {
	case r.Group == "":
		pp.errorf(at("rollout"), "rollout.group", "required: the Auto Scaling group to roll the image out to")
	case len(r.Group) > maxGroupLen || strings.ContainsFunc(r.Group, func(c rune) bool { return c < ' ' || c == 0x7f }):
		pp.errorf(at("rollout.group"), "rollout.group", "%q is not an Auto Scaling group name (1 to %d characters)", r.Group, maxGroupLen)
	}
	if r.Region != "" && !regionRe.MatchString(r.Region) {
		pp.errorf(at("rollout.region"), "rollout.region", "%q is not a region name such as us-east-1", r.Region)
	}
	if r.CheckpointDelay != 0 && len(r.Checkpoints) == 0 {
		pp.errorf(at("rollout.checkpoint_delay"), "rollout.checkpoint_delay", "needs rollout.checkpoints")
	}
	if len(r.Alarms) > maxAlarms {
		pp.errorf(at("rollout.alarms"), "rollout.alarms", "at most %d alarms, got %d", maxAlarms, len(r.Alarms))
	}
	for i, a := range r.Alarms {
		if a == "" || len(a) > 255 {
			pp.errorf(at("rollout.alarms"), fmt.Sprintf("rollout.alarms[%d]", i), "alarm names are 1 to 255 characters")
		}
	}
}

// atField is the line of field, or of the nearest field that holds it
// ("security_groups[2]" is on the line of security_groups); root when
// none is in lines.
func atField(field string, lines map[string]int, root int) int {
	for {
		if l, ok := lines[field]; ok {
			return l
		}
		i := strings.LastIndexAny(field, ".[")
		if i < 0 {
			return root
		}
		field = field[:i]
	}
}

// CheckBranch applies the parts of git's ref-name rules that matter for a
// branch filter; it returns "" when name is fine.
func CheckBranch(name string) string {
	switch {
	case len(name) > 255:
		return "too long"
	case strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") || strings.Contains(name, "//"):
		return "not a branch name"
	case strings.Contains(name, "..") || strings.HasSuffix(name, ".lock") || strings.HasSuffix(name, "."):
		return "not a branch name"
	case strings.ContainsFunc(name, func(r rune) bool {
		return r <= ' ' || r == 0x7f || strings.ContainsRune("~^:?*[\\", r)
	}):
		return "not a branch name"
	}
	return ""
}

// GenerateSecret returns a new random webhook secret: 32 bytes from
// crypto/rand, base64url without padding (43 characters).
func GenerateSecret() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand crashes the program instead)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Record converts the project to its stored form (without the secret).
func (p *Project) Record() store.Project {
	return store.Project{
		Name: p.Name, Region: p.Region,
		BaseID: p.Base.ID, BaseOwner: p.Base.Owner, BaseName: p.Base.Name, BaseMostRecent: p.Base.MostRecent,
		Type: p.Type, Script: p.Script,
		SecurityGroups: slices.Clone(p.SecurityGroups), Subnet: p.Subnet, IAMProfile: p.IAMProfile,
		Tags: p.Tags, Keep: p.Keep, Branch: p.Branch,
		ScriptTimeout: p.Timeouts.Script, ImageTimeout: p.Timeouts.Image,
		DeprecateAfter: p.DeprecateAfter, DisableFor: p.DisableFor,
		Rollout: cloneRollout(p.Rollout),
	}
}

func cloneRollout(r *RolloutTarget) *RolloutTarget {
	if r == nil {
		return nil
	}
	c := *r
	c.Checkpoints, c.Alarms = slices.Clone(r.Checkpoints), slices.Clone(r.Alarms)
	return &c
}

// FromRecord converts a stored project back (Secret stays empty).
func FromRecord(r store.Project) *Project {
	return &Project{
		Name: r.Name,
		Builder: pipeline.Builder{
			Region:         r.Region,
			Base:           pipeline.Base{ID: r.BaseID, Owner: r.BaseOwner, Name: r.BaseName, MostRecent: r.BaseMostRecent},
			Type:           r.Type,
			Script:         r.Script,
			SecurityGroups: r.SecurityGroups, Subnet: r.Subnet, IAMProfile: r.IAMProfile,
			Tags:           r.Tags,
			Timeouts:       pipeline.Timeouts{Script: r.ScriptTimeout, Image: r.ImageTimeout},
			DeprecateAfter: r.DeprecateAfter,
		},
		Keep: r.Keep, DisableFor: r.DisableFor, Branch: r.Branch,
		Rollout: cloneRollout(r.Rollout),
	}
}

// Store is what Apply needs; *store.Store satisfies it.
type Store interface {
	PutProject(ctx context.Context, p store.Project, secret string) (created bool, err error)
	PutDistribution(ctx context.Context, project string, d store.Distribution) error
	PutNotifyTargets(ctx context.Context, project string, ts []store.NotifyTarget) error
	PutCommitStatus(ctx context.Context, project string, c *store.CommitStatus) error
	PutTests(ctx context.Context, project string, t *store.ImageTests) error
}

// Applied says what Apply did.
type Applied struct {
	Created bool
	// GeneratedSecret is set when kiln generated the webhook secret: show it
	// to the user once (it is never returned by list or show).
	GeneratedSecret string
}

// Apply stores p (with its notify: targets and commit_status:). The file's webhook secret, when given, replaces the
// stored one; without one an existing project keeps its secret and a new
// project gets a generated one, returned in Applied.GeneratedSecret.
func Apply(ctx context.Context, s Store, p *Project) (Applied, error) {
	created, err := s.PutProject(ctx, p.Record(), p.Secret)
	if errors.Is(err, store.ErrSecretRequired) {
		secret := GenerateSecret()
		created, err = s.PutProject(ctx, p.Record(), secret)
		if err == nil {
			err = putExtras(ctx, s, p)
		}
		if err == nil {
			return Applied{Created: created, GeneratedSecret: secret}, nil
		}
	}
	if err == nil {
		err = putExtras(ctx, s, p)
	}
	if err != nil {
		return Applied{}, fmt.Errorf("apply project %q: %w", p.Name, err)
	}
	return Applied{Created: created}, nil
}

// putExtras stores what lives beside the project's row: its distribution,
// notification targets and commit-status reporter.
func putExtras(ctx context.Context, s Store, p *Project) error {
	if err := s.PutDistribution(ctx, p.Name, DistributionRecord(p.Distribution)); err != nil {
		return err
	}
	if err := s.PutNotifyTargets(ctx, p.Name, p.Notify); err != nil {
		return err
	}
	if err := s.PutTests(ctx, p.Name, TestsRecord(p.Tests)); err != nil {
		return err
	}
	return s.PutCommitStatus(ctx, p.Name, p.CommitStatus)
}
