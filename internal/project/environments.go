package project

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"kiln/internal/awsapi"
	"kiln/internal/awsres"
	"kiln/internal/config"
	"kiln/internal/engine"
	"kiln/internal/store"
)

// Environment is one of a project's environments: its region, its
// kiln-managed Auto Scaling group, its configuration and how an image gets
// there (Promotion "auto" or "manual", Soak). A secret's Value is set only
// in a freshly parsed file; the store never keeps it.
type Environment = store.Environment

// Promotion rules.
const (
	PromoteAuto   = "auto"
	PromoteManual = "manual"
)

// Limits of environments.
const (
	maxEnvironments = 10
	maxConfigKeys   = 100
	maxEnvNameLen   = 32
	maxSoak         = 24 * time.Hour
)

var configKeyRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// environments decodes environments: a list of {name, region, group,
// config, promotion, soak}.
func (pp *projectParser) environments(n *yaml.Node, lines map[string]int) []Environment {
	if n.Kind != yaml.SequenceNode {
		pp.errorf(n.Line, "environments", "want a list of environments ({name: staging, group: {...}, ...})")
		return nil
	}
	if len(n.Content) > maxEnvironments {
		pp.errorf(n.Line, "environments", "at most %d environments", maxEnvironments)
	}
	var out []Environment
	seen := map[string]bool{}
	for i, c := range n.Content {
		prefix := fmt.Sprintf("environments[%d]", i)
		if c.Kind != yaml.MappingNode {
			pp.errorf(c.Line, prefix, "want {name: ..., group: {...}, config: {...}, promotion: auto|manual}")
			continue
		}
		e := Environment{Promotion: PromoteManual}
		if i == 0 {
			e.Promotion = PromoteAuto
		}
		local := map[string]int{}
		groupLines := map[string]int{}
		var alarms []string
		rollback := ""
		pp.fields(c, prefix+".", local, map[string]func(*yaml.Node){
			"alarms":    func(v *yaml.Node) { alarms = pp.strList(v, prefix+".alarms") },
			"rollback":  func(v *yaml.Node) { rollback = pp.str(v, prefix+".rollback") },
			"name":      func(v *yaml.Node) { e.Name = pp.str(v, prefix+".name") },
			"region":    func(v *yaml.Node) { e.Region = pp.str(v, prefix+".region") },
			"account":   func(v *yaml.Node) { e.Account = pp.envAccount(v, prefix+".account") },
			"group":     func(v *yaml.Node) { pp.envGroup(v, prefix+".group", &e.Group, groupLines) },
			"config":    func(v *yaml.Node) { e.Config = pp.envConfig(v, prefix+".config") },
			"promotion": func(v *yaml.Node) { e.Promotion = pp.str(v, prefix+".promotion") },
			"approval":  func(v *yaml.Node) { e.Approval = pp.str(v, prefix+".approval") },
			"soak": func(v *yaml.Node) {
				if d := pp.seconds(v, prefix+".soak", maxSoak); d > 0 {
					e.Soak = d
				}
			},
		})
		for k, l := range local {
			lines[k] = l
		}
		for k, l := range groupLines {
			lines[k] = l
		}
		at := func(field string) int {
			if l, ok := lines[prefix+"."+field]; ok {
				return l
			}
			return c.Line
		}
		pp.alarmGate(&e, prefix, alarms, rollback, at, local)
		switch {
		case e.Name == "":
			pp.errorf(c.Line, prefix+".name", "required")
		case len(e.Name) > maxEnvNameLen || !nameRe.MatchString(e.Name):
			pp.errorf(at("name"), prefix+".name", "%q: 1 to %d letters, digits, '.', '_' and '-' (it names SSM parameters and the group)", e.Name, maxEnvNameLen)
		case seen[e.Name]:
			pp.errorf(at("name"), prefix+".name", "%q given twice", e.Name)
		}
		seen[e.Name] = true
		if _, ok := local[prefix+".group"]; !ok {
			pp.errorf(c.Line, prefix+".group", "required: the environment's Auto Scaling group ({type, min, max, ...})")
		}
		switch e.Promotion {
		case PromoteAuto, PromoteManual:
		default:
			pp.errorf(at("promotion"), prefix+".promotion", "want auto or manual, not %q", e.Promotion)
		}
		pp.checkApproval(e, i, prefix, at) // approval.go
		if _, ok := local[prefix+".soak"]; ok && (i == 0 || e.Promotion != PromoteAuto) {
			pp.errorf(at("soak"), prefix+".soak", "only an auto promotion after a previous environment soaks")
		}
		if i > 0 && e.Promotion == PromoteAuto && e.Soak == 0 {
			if _, ok := local[prefix+".soak"]; !ok {
				pp.errorf(at("promotion"), prefix+".soak", "required with promotion: auto (how long %s must stay healthy first, e.g. 10m)", "the previous environment")
			}
		}
		out = append(out, e)
	}
	return out
}

// envGroup decodes an environment's group: aws:asg's settings (no image:
// promotions set it) plus its name.
func (pp *projectParser) envGroup(n *yaml.Node, prefix string, g *store.EnvGroup, lines map[string]int) {
	if n.Kind != yaml.MappingNode {
		pp.errorf(n.Line, prefix, "want {type: t3.micro, min: 1, max: 2, ...}")
		return
	}
	num := func(field string, dst *int) func(*yaml.Node) {
		return func(v *yaml.Node) {
			if x, ok := pp.integer(v, prefix+"."+field); ok {
				*dst = x
			}
		}
	}
	pp.fields(n, prefix+".", lines, map[string]func(*yaml.Node){
		"name":            func(v *yaml.Node) { g.Name = pp.str(v, prefix+".name") },
		"type":            func(v *yaml.Node) { g.Type = pp.str(v, prefix+".type") },
		"min":             num("min", &g.Min),
		"max":             num("max", &g.Max),
		"desired":         func(v *yaml.Node) { d := 0; num("desired", &d)(v); g.Desired = &d },
		"subnets":         func(v *yaml.Node) { g.Subnets = pp.strList(v, prefix+".subnets") },
		"security_groups": func(v *yaml.Node) { g.SecurityGroups = pp.strList(v, prefix+".security_groups") },
		"iam_profile":     func(v *yaml.Node) { g.IAMProfile = pp.str(v, prefix+".iam_profile") },
		"user_data":       func(v *yaml.Node) { g.UserData = pp.str(v, prefix+".user_data") },
		"rollout": func(v *yaml.Node) {
			if r := pp.rolloutPrefs(v, prefix+".rollout", lines, false); r != nil {
				g.Rollout = *r
			}
		},
	})
}

// envConfig decodes config: KEY: value, or KEY: {value: ..., secret: true}.
// ${VAR} in a secret's value is read from the environment of whoever
// applies the file, so the secret need not be in the file.
func (pp *projectParser) envConfig(n *yaml.Node, prefix string) []store.ConfigValue {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		pp.errorf(n.Line, prefix, "want a mapping of KEY: value (or KEY: {value: ..., secret: true})")
		return nil
	}
	var out []store.ConfigValue
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := pp.str(k, prefix)
		field := prefix + "." + key
		if !configKeyRe.MatchString(key) {
			pp.errorf(k.Line, field, "keys are variable names (letters, digits and _, not starting with a digit)")
			continue
		}
		if slices.ContainsFunc(out, func(c store.ConfigValue) bool { return c.Key == key }) {
			pp.errorf(k.Line, field, "given twice")
			continue
		}
		cv := store.ConfigValue{Key: key}
		if v.Kind == yaml.MappingNode {
			var raw string
			seen := map[string]int{}
			pp.fields(v, field+".", seen, map[string]func(*yaml.Node){
				"value":  func(x *yaml.Node) { raw = pp.str(x, field+".value") },
				"secret": func(x *yaml.Node) { cv.Secret = pp.boolean(x, field+".secret") },
			})
			if _, ok := seen[field+".value"]; !ok {
				pp.errorf(v.Line, field+".value", "required")
			}
			cv.Value = raw
			if cv.Secret {
				var ok bool
				if cv.Value, ok = pp.expand(raw, v.Line, field+".value"); !ok {
					out = append(out, cv)
					continue
				}
			}
		} else if v.Kind == yaml.ScalarNode {
			if v.ShortTag() == "!!null" {
				pp.errorf(v.Line, field, "want a value")
				continue
			}
			cv.Value = v.Value // numbers and booleans as written
		} else {
			pp.errorf(v.Line, field, "want a value or {value: ..., secret: true}")
			continue
		}
		switch {
		case cv.Value == "" && cv.Secret:
			pp.errorf(v.Line, field, "a secret must not be empty")
		case cv.Secret && len(cv.Value) > 4096:
			pp.errorf(v.Line, field, "a secret is at most 4096 bytes (an SSM parameter)")
		case strings.ContainsAny(cv.Value, "\n\r\x00"):
			pp.errorf(v.Line, field, "one line: no newlines")
		}
		out = append(out, cv)
	}
	if len(out) > maxConfigKeys {
		pp.errorf(n.Line, prefix, "at most %d keys", maxConfigKeys)
	}
	slices.SortFunc(out, func(a, b store.ConfigValue) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// expand replaces ${VAR} in raw by the variable from the environment of
// whoever applies the file; an unset or empty one is an error (ok false).
func (pp *projectParser) expand(raw string, line int, field string) (string, bool) {
	var bad []string
	out := envRe.ReplaceAllStringFunc(raw, func(m string) string {
		name := m[2 : len(m)-1]
		if !envNameRe.MatchString(name) {
			bad = append(bad, fmt.Sprintf("%q is not a variable name", name))
			return ""
		}
		v := pp.getenv(name)
		if v == "" {
			bad = append(bad, fmt.Sprintf("environment variable %s is not set", name))
		}
		return v
	})
	for _, msg := range bad {
		pp.errorf(line, field, "%s", msg)
	}
	if len(bad) > 0 {
		return "", false
	}
	return out, true
}

// validateEnvironments checks the environments against the project and
// the group settings against aws:asg's rules.
func (pp *projectParser) validateEnvironments(p *Project, at func(string) int, lines map[string]int) {
	if len(p.Environments) > 0 && p.Rollout != nil {
		pp.errorf(at("rollout"), "rollout", "give environments or rollout, not both (an environment's group is its rollout target)")
	}
	groups := map[string]string{}
	for i := range p.Environments {
		e := &p.Environments[i]
		prefix := fmt.Sprintf("environments[%d]", i)
		if e.Region == "" {
			e.Region = p.Region
		} else if e.Region != p.Region && !slices.Contains(p.Distribution.CopyTo, e.Region) {
			pp.errorf(at(prefix+".region"), prefix+".region", "%q: images are baked in %s and copied to %v (copy_to): an environment runs in one of those", e.Region, p.Region, p.Distribution.CopyTo)
		}
		if e.Group.Name == "" && e.Name != "" {
			e.Group.Name = p.Name + "-" + e.Name
		}
		if other, dup := groups[e.Group.Name]; dup && e.Group.Name != "" && other != e.Name {
			pp.errorf(at(prefix+".group"), prefix+".group.name", "%q is also environment %s's group", e.Group.Name, other)
		}
		groups[e.Group.Name] = e.Name
		gl := func(field string) int {
			f := field
			if j := strings.IndexByte(f, '['); j >= 0 {
				f = f[:j]
			}
			return at(prefix + ".group." + f)
		}
		if len(e.Group.Name) > maxGroupLen {
			pp.errorf(gl("name"), prefix+".group.name", "at most %d characters", maxGroupLen)
		}
		if ud := e.Group.UserData; ud != "" {
			if !strings.HasPrefix(ud, "#!") {
				pp.errorf(gl("user_data"), prefix+".group.user_data", "must be a script starting with #! (kiln runs it after sourcing /etc/kiln/env)")
			}
			if slices.Contains(strings.Split(ud, "\n"), userDataEOF) {
				pp.errorf(gl("user_data"), prefix+".group.user_data", "must not hold a line %q", userDataEOF)
			}
		}
		hasSecret := slices.ContainsFunc(e.Config, func(c store.ConfigValue) bool { return c.Secret })
		if hasSecret && e.Group.IAMProfile == "" {
			pp.errorf(at(prefix+".config"), prefix+".group.iam_profile", "required with secrets: the instances read them from SSM with their instance profile")
		}
		if _, ok := lines[prefix+".group"]; !ok {
			continue
		}
		asg := GroupResource(nil, p.Name, *e, "ami-00000000")
		if err := asg.Validate(); err != nil {
			var fe *config.FieldError
			for _, one := range flatten(err) {
				if errors.As(one, &fe) {
					pp.errorf(gl(fe.Field), prefix+".group."+fe.Field, "%s", fe.Msg)
				}
			}
		}
		if len(UserData(p.Name, *e)) > awsapi.MaxUserData {
			pp.errorf(gl("user_data"), prefix+".group.user_data", "with the configuration, the user data is over EC2's %d bytes", awsapi.MaxUserData)
		}
	}
}

func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// GroupResource is env's group as an aws:asg resource running image
// (hubs nil: for Validate only).
func GroupResource(hubs *awsapi.Hubs, project string, e Environment, image string) *awsres.ASG {
	g := e.Group
	r := awsres.NewASG(hubs)
	r.Region, r.Image, r.Type, r.UserData = e.Region, image, g.Type, UserData(project, e)
	r.SecurityGroups, r.Subnets, r.IAMProfile = g.SecurityGroups, g.Subnets, g.IAMProfile
	r.Min, r.Max, r.Desired = g.Min, g.Max, g.Desired
	r.Rollout = awsres.Rollout{
		MinHealthyPercent: g.Rollout.MinHealthyPercent, Warmup: g.Rollout.Warmup,
		Checkpoints: g.Rollout.Checkpoints, CheckpointDelay: g.Rollout.CheckpointDelay,
		SkipMatching: g.Rollout.SkipMatching, AutoRollback: g.Rollout.AutoRollback, Alarms: g.Rollout.Alarms,
	}
	return r
}

// GroupEnv is the engine.Env of env's group as an aws:asg resource of
// project (its launch template is kiln-PROJECT-GROUP), with meta.
func GroupEnv(project string, e Environment, meta engine.Meta, log *slog.Logger) engine.Env {
	return engine.Env{Graph: project, ID: "bakery/" + project + "/" + e.Name, Kind: "aws:asg", Name: e.Group.Name,
		Meta: meta, Log: log.With("group", e.Group.Name)}
}

// ParameterName is the SSM parameter of a secret: /kiln/PROJECT/ENV/KEY.
func ParameterName(project, env, key string) string {
	return "/kiln/" + project + "/" + env + "/" + key
}

// EnvFile is where instances find their environment's configuration.
const EnvFile = "/etc/kiln/env"

const (
	envEOF      = "KILN_ENV"
	userDataEOF = "KILN_USER_DATA"
)

// UserData is what env's instances run at first boot: it writes
// /etc/kiln/env (plain values as shell assignments; each secret as a read
// of its pinned SSM parameter version with the instance profile, done when
// the file is sourced, so the value is never in the user data or the
// file), then sources it (exported) and runs the group's own user data.
// A changed value changes the user data, so the group gets a new
// launch-template version and a rollout.
func UserData(project string, e Environment) string {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	fmt.Fprintf(&b, "# kiln: project %s, environment %s; configuration in %s\n", project, e.Name, EnvFile)
	b.WriteString("mkdir -p /etc/kiln\n")
	fmt.Fprintf(&b, "cat > %s <<'%s'\n", EnvFile, envEOF)
	for _, c := range e.Config {
		if c.Secret {
			fmt.Fprintf(&b, "%s=\"$(aws ssm get-parameter --region %s --with-decryption --name %s:%d --query Parameter.Value --output text)\"\n",
				c.Key, e.Region, ParameterName(project, e.Name, c.Key), c.Version)
			continue
		}
		fmt.Fprintf(&b, "%s=%s\n", c.Key, shellQuote(c.Value))
	}
	b.WriteString(envEOF + "\n")
	fmt.Fprintf(&b, "chmod 600 %s\n", EnvFile)
	if e.Group.UserData != "" {
		fmt.Fprintf(&b, "cat > /etc/kiln/user-data <<'%s'\n%s", userDataEOF, e.Group.UserData)
		if !strings.HasSuffix(e.Group.UserData, "\n") {
			b.WriteString("\n")
		}
		b.WriteString(userDataEOF + "\nchmod 700 /etc/kiln/user-data\n")
		fmt.Fprintf(&b, "set -a\n. %s\nset +a\nexec /etc/kiln/user-data\n", EnvFile)
	}
	return b.String()
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Digest sums up what a rollout of env puts on its instances besides the
// image (group settings and configuration, secrets by parameter version):
// a promotion records it, and a different one means the configuration
// changed.
func Digest(e Environment) string {
	e.Project = ""
	e.Promotion, e.Soak, e.Approval = "", 0, ""
	e.Config = slices.Clone(e.Config)
	for i := range e.Config {
		if e.Config[i].Secret {
			e.Config[i].Value = ""
		}
	}
	b, _ := json.Marshal(e)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
