package awssim

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
)

// Authorization: with Options.Policy set, every request is authorized
// against that one identity policy before it runs, as IAM authorizes a
// caller with a single identity-based policy: each resource the action
// names (as the IAM service authorization reference lists them for the
// action), with the resource's current tags (aws:ResourceTag/KEY) and the
// tags the request puts on it (aws:RequestTag/KEY, aws:TagKeys), and the
// extra actions AWS checks besides (ec2:CreateTags for TagSpecifications,
// with ec2:CreateAction; iam:PassRole for an instance profile, with
// iam:PassedToService; ec2:RunInstances on the launch template of an Auto
// Scaling group). SSM's parameter calls are authorized on each
// parameter's ARN. Actions that authzTables does not list, and reads, are
// authorized against "*". A denial is EC2's UnauthorizedOperation, or
// AccessDenied (HTTP 403) from the other services, naming the action and
// the resource.
//
// There is no IAM: a profile's role is taken to have the profile's name.

// authzCheck is one IAM action on one resource that a request needs.
type authzCheck struct {
	action   string // "ec2:RunInstances"
	resource string // an ARN, or "*"
	ctx      authzContext
}

// authzer lists the checks one action needs besides the action on "*";
// s.mu is held. It reads the request only as far as authorization needs:
// a malformed request gets its error from the action afterwards.
type authzer func(s *Sim, r *request) []authzCheck

// authzTables are, per service (its name is its IAM prefix), the actions
// that name resources. An action not listed is authorized on "*".
var authzTables = map[string]map[string]authzer{
	"ec2": {
		"RunInstances":                         (*Sim).authzRunInstances,
		"StartInstances":                       idsAuthz("InstanceId"),
		"StopInstances":                        idsAuthz("InstanceId"),
		"RebootInstances":                      idsAuthz("InstanceId"),
		"TerminateInstances":                   idsAuthz("InstanceId"),
		"GetConsoleOutput":                     idsAuthz("InstanceId"),
		"ModifyInstanceAttribute":              (*Sim).authzModifyInstanceAttribute,
		"CreateTags":                           (*Sim).authzTags,
		"DeleteTags":                           (*Sim).authzTags,
		"CreateImage":                          (*Sim).authzCreateImage,
		"DeregisterImage":                      idsAuthz("ImageId"),
		"EnableImageDeprecation":               idsAuthz("ImageId"),
		"DisableImageDeprecation":              idsAuthz("ImageId"),
		"DisableImage":                         idsAuthz("ImageId"),
		"EnableImage":                          idsAuthz("ImageId"),
		"DeleteSnapshot":                       idsAuthz("SnapshotId"),
		"AssociateIamInstanceProfile":          (*Sim).authzAssociation,
		"ReplaceIamInstanceProfileAssociation": (*Sim).authzAssociation,
		"DisassociateIamInstanceProfile":       (*Sim).authzAssociation,
		"CreateLaunchTemplate":                 (*Sim).authzCreateLaunchTemplate,
		"CreateLaunchTemplateVersion":          (*Sim).authzTemplate,
		"ModifyLaunchTemplate":                 (*Sim).authzTemplate,
		"DeleteLaunchTemplate":                 (*Sim).authzTemplate,
		"DeleteSecurityGroup":                  idsAuthz("GroupId"),
	},
	"ssm": {
		"PutParameter":     (*Sim).authzParameters,
		"GetParameter":     (*Sim).authzParameters,
		"GetParameters":    (*Sim).authzParameters,
		"DeleteParameter":  (*Sim).authzParameters,
		"DeleteParameters": (*Sim).authzParameters,
	},
	"sts": {
		"AssumeRole": func(_ *Sim, r *request) []authzCheck { // on the role (sts.go)
			return []authzCheck{{action: "sts:AssumeRole", resource: r.str("RoleArn"), ctx: authzContext{}}}
		},
	},
	"autoscaling": {
		"CreateAutoScalingGroup":  (*Sim).authzCreateGroup,
		"UpdateAutoScalingGroup":  groupAuthz("LaunchTemplate"),
		"DeleteAutoScalingGroup":  groupAuthz(""),
		"StartInstanceRefresh":    groupAuthz("DesiredConfiguration.LaunchTemplate"),
		"CancelInstanceRefresh":   groupAuthz(""),
		"RollbackInstanceRefresh": groupAuthz(""),
	},
}

// SetPolicy replaces the policy requests are authorized against (nil:
// none, everything is allowed), say to make "someone else's" resources
// in a test.
func (s *Sim) SetPolicy(p *Policy) { s.policy.Store(p) }

// authorize checks req against the policy (nil: everything is allowed)
// and answers the first denial. s is the world of the request's region,
// whose resources are checked; the policy and the counts are the home
// region's, as IAM is global.
func (s *Sim) authorize(svc *service, req *request) error {
	root := s.root()
	p := root.policy.Load()
	if p == nil || svc.name == "sts" && req.Action == "GetCallerIdentity" { // STS needs no permission for it
		return nil
	}
	action := svc.name + ":" + req.Action
	var checks []authzCheck
	if az := authzTables[svc.name][req.Action]; az != nil {
		s.lock()
		checks = az(s, req)
		s.mu.Unlock()
	}
	if len(checks) == 0 {
		checks = []authzCheck{{action: action, resource: "*", ctx: authzContext{}}}
	}
	for _, c := range checks {
		maps.Copy(c.ctx, s.globalContext())
		if d := p.decide(c.action, c.resource, c.ctx); d != allowed {
			root.authz.count(c.action, false)
			return s.denial(svc, c, d == explicitDeny)
		}
	}
	seen := map[string]bool{}
	for _, c := range checks {
		if !seen[c.action] {
			seen[c.action] = true
			root.authz.count(c.action, true)
		}
	}
	return nil
}

func (s *Sim) globalContext() authzContext {
	return authzContext{"aws:requestedregion": {s.opts.Region}}
}

// simPrincipal is the caller as the denial names it.
func (s *Sim) simPrincipal() string { return "arn:aws:iam::" + s.opts.Account + ":user/kiln-sim" }

// denial is the answer to a denied check, in the words AWS uses. EC2 adds
// an encoded authorization message; the simulator's is base64 (URL
// encoding) of JSON with the action, resource and context, not AWS's
// opaque one that only sts:DecodeAuthorizationMessage reads.
func (s *Sim) denial(svc *service, c authzCheck, explicit bool) error {
	why := fmt.Sprintf("because no identity-based policy allows the %s action", c.action)
	if explicit {
		why = "with an explicit deny in an identity-based policy"
	}
	msg := fmt.Sprintf("User: %s is not authorized to perform: %s on resource: %s %s", s.simPrincipal(), c.action, c.resource, why)
	if svc.name == "ec2" {
		enc, _ := json.Marshal(map[string]any{"allowed": false, "explicitDeny": explicit,
			"context": map[string]any{"action": c.action, "resource": c.resource, "conditions": c.ctx}})
		return &APIError{Status: http.StatusForbidden, Code: "UnauthorizedOperation",
			Message: "You are not authorized to perform this operation. " + msg + ". Encoded authorization failure message: " + base64.RawURLEncoding.EncodeToString(enc)}
	}
	return &APIError{Status: http.StatusForbidden, Code: "AccessDenied", Message: msg}
}

// authzStats counts, per IAM action, the requests that needed it and were
// allowed, and the checks denied.
type authzStats struct {
	mu              sync.Mutex
	allowed, denied map[string]int
}

func (a *authzStats) count(action string, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := &a.denied
	if ok {
		m = &a.allowed
	}
	if *m == nil {
		*m = map[string]int{}
	}
	(*m)[action]++
}

// Authorized returns, per IAM action ("ec2:RunInstances"), how many
// requests needed it and were allowed by Options.Policy: each request's
// own action and the ones AWS checks besides (ec2:CreateTags for tags on
// create, iam:PassRole, ...). Empty without a policy.
func (s *Sim) Authorized() map[string]int {
	s.authz.mu.Lock()
	defer s.authz.mu.Unlock()
	return maps.Clone(s.authz.allowed)
}

// Denied returns, per IAM action, how many requests Options.Policy denied
// (answered UnauthorizedOperation or AccessDenied).
func (s *Sim) Denied() map[string]int {
	s.authz.mu.Lock()
	defer s.authz.mu.Unlock()
	return maps.Clone(s.authz.denied)
}

// --- resources and their context ---------------------------------------

// arn is the ARN of an EC2 resource of type typ; images and snapshots
// have no account in theirs.
func (s *Sim) arn(typ, id string) string {
	acct := s.opts.Account
	if typ == "image" || typ == "snapshot" {
		acct = ""
	}
	return "arn:aws:ec2:" + s.opts.Region + ":" + acct + ":" + typ + "/" + id
}

// idTypes are the resource types of EC2 ids, by prefix.
var idTypes = map[string]string{
	"i": "instance", "ami": "image", "snap": "snapshot", "vol": "volume", "sg": "security-group",
	"subnet": "subnet", "lt": "launch-template", "eni": "network-interface", "vpc": "vpc",
}

// existing is the check of action on the resource with this id, with its
// current tags; s.mu is held.
func (s *Sim) existing(action, id string) authzCheck {
	prefix, _, _ := strings.Cut(id, "-")
	typ := idTypes[prefix]
	if typ == "" {
		typ = "resource"
	}
	return authzCheck{action: action, resource: s.arn(typ, id), ctx: resourceTags("ec2", s.tags.get(id))}
}

// resourceTags is the context of a resource carrying tags.
func resourceTags(service string, tags map[string]string) authzContext {
	ctx := authzContext{}
	for k, v := range tags {
		ctx[strings.ToLower("aws:ResourceTag/"+k)] = []string{v}
		ctx[strings.ToLower(service+":ResourceTag/"+k)] = []string{v}
	}
	return ctx
}

// requestTags is the context of a request putting tags on a resource.
func requestTags(tags []Tag) authzContext {
	ctx := authzContext{}
	keys := []string{}
	for _, t := range tags {
		ctx[strings.ToLower("aws:RequestTag/"+t.Key)] = []string{t.Value}
		keys = append(keys, t.Key)
	}
	if len(keys) > 0 {
		ctx["aws:tagkeys"] = keys
	}
	return ctx
}

// created is the check of a create call on the new resource of type typ,
// tagged with the request's specs of that type.
func (s *Sim) created(action, typ string, specs []tagSpec) authzCheck {
	var tags []Tag
	for _, sp := range specs {
		if sp.ResourceType == typ {
			tags = append(tags, sp.Tags...)
		}
	}
	return authzCheck{action: action, resource: s.arn(typ, "*"), ctx: requestTags(tags)}
}

// tagOnCreate is the ec2:CreateTags check of every type a create call
// tags with TagSpecifications.
func (s *Sim) tagOnCreate(createAction string, specs []tagSpec) []authzCheck {
	var out []authzCheck
	done := map[string]bool{}
	for _, sp := range specs {
		if done[sp.ResourceType] {
			continue
		}
		done[sp.ResourceType] = true
		c := s.created("ec2:CreateTags", sp.ResourceType, specs)
		c.ctx["ec2:createaction"] = []string{createAction}
		out = append(out, c)
	}
	return out
}

// passRole is the iam:PassRole check of an instance profile given by name
// or ARN (its role is taken to share the profile's name and path).
func (s *Sim) passRole(profile string) authzCheck {
	role := "arn:aws:iam::" + s.opts.Account + ":role/" + profile
	if head, rest, ok := strings.Cut(profile, ":instance-profile/"); ok && strings.HasPrefix(profile, "arn:") {
		role = head + ":role/" + rest
	}
	return authzCheck{action: "iam:PassRole", resource: role, ctx: authzContext{"iam:passedtoservice": {"ec2.amazonaws.com"}}}
}

// specsOf reads the request's TagSpecifications without judging them.
func specsOf(r *request) []tagSpec {
	specs, _ := r.tagSpecs("", func(string) error { return nil })
	return specs
}

// --- EC2 ---------------------------------------------------------------

func (s *Sim) authzRunInstances(r *request) []authzCheck {
	const act = "ec2:RunInstances"
	specs := specsOf(r)
	out := []authzCheck{
		s.created(act, "instance", specs),
		s.created(act, "volume", specs),
		s.created(act, "network-interface", specs),
	}
	if ref, ok := r.ltRefParam("LaunchTemplate"); ok {
		if lt, err := s.templateLocked(ref.id, ref.name); err == nil {
			out = append(out, s.existing(act, lt.id))
		}
	}
	if id := r.str("ImageId"); id != "" {
		out = append(out, s.existing(act, id))
	}
	subnet := r.str("SubnetId")
	if subnet == "" && len(s.subnets) > 0 {
		subnet = s.subnets[0].id
	}
	if subnet != "" {
		out = append(out, s.existing(act, subnet))
	}
	groups := r.list("SecurityGroupId")
	for _, n := range r.list("SecurityGroup") {
		if g := s.groupByNameLocked(n); g != nil {
			groups = append(groups, g.id)
		}
	}
	if len(groups) == 0 {
		groups = []string{s.defaultGroupID()}
	}
	for _, g := range groups {
		out = append(out, s.existing(act, g))
	}
	if k := r.str("KeyName"); k != "" {
		out = append(out, authzCheck{action: act, resource: s.arn("key-pair", k), ctx: authzContext{}})
	}
	out = append(out, s.tagOnCreate("RunInstances", specs)...)
	if p := r.str("IamInstanceProfile.Arn") + r.str("IamInstanceProfile.Name"); p != "" {
		out = append(out, s.passRole(p))
	}
	return out
}

// idsAuthz checks the action on each resource id in param or param.N.
func idsAuthz(param string) authzer {
	return func(s *Sim, r *request) []authzCheck {
		ids := r.list(param)
		if v := r.str(param); v != "" {
			ids = append(ids, v)
		}
		out := make([]authzCheck, 0, len(ids))
		for _, id := range ids {
			out = append(out, s.existing("ec2:"+r.Action, id))
		}
		return out
	}
}

func (s *Sim) authzModifyInstanceAttribute(r *request) []authzCheck {
	out := []authzCheck{s.existing("ec2:ModifyInstanceAttribute", r.str("InstanceId"))}
	for _, g := range r.list("GroupId") {
		out = append(out, s.existing("ec2:ModifyInstanceAttribute", g))
	}
	return out
}

// authzTags checks CreateTags and DeleteTags on each resource, with the
// tags (or, for DeleteTags, the keys) the request names.
func (s *Sim) authzTags(r *request) []authzCheck {
	tags := r.tagList("Tag")
	var out []authzCheck
	for _, id := range r.list("ResourceId") {
		c := s.existing("ec2:"+r.Action, id)
		maps.Copy(c.ctx, requestTags(tags))
		out = append(out, c)
	}
	return out
}

func (s *Sim) authzCreateImage(r *request) []authzCheck {
	const act = "ec2:CreateImage"
	specs := specsOf(r)
	out := []authzCheck{s.existing(act, r.str("InstanceId")), s.created(act, "image", specs), s.created(act, "snapshot", specs)}
	return append(out, s.tagOnCreate("CreateImage", specs)...)
}

// authzAssociation checks an instance-profile association call on its
// instance (named, or the association's), and iam:PassRole for a profile.
func (s *Sim) authzAssociation(r *request) []authzCheck {
	id := r.str("InstanceId")
	if a, ok := s.assocs[r.str("AssociationId")]; ok {
		id = a.instanceID
	}
	out := []authzCheck{s.existing("ec2:"+r.Action, id)}
	if p := r.str("IamInstanceProfile.Arn") + r.str("IamInstanceProfile.Name"); p != "" {
		out = append(out, s.passRole(p))
	}
	return out
}

func (s *Sim) authzCreateLaunchTemplate(r *request) []authzCheck {
	specs := specsOf(r)
	return append([]authzCheck{s.created("ec2:CreateLaunchTemplate", "launch-template", specs)},
		s.tagOnCreate("CreateLaunchTemplate", specs)...)
}

// authzTemplate checks the action on the template named by
// LaunchTemplateId or LaunchTemplateName; an unknown one has no tags.
func (s *Sim) authzTemplate(r *request) []authzCheck {
	id := r.str("LaunchTemplateId")
	if lt, err := s.templateLocked(id, r.str("LaunchTemplateName")); err == nil {
		id = lt.id
	}
	return []authzCheck{s.existing("ec2:"+r.Action, id)}
}

// --- Auto Scaling ------------------------------------------------------

// groupARN is a group's ARN; a group not made yet has "*" for its id.
func (s *Sim) groupARN(name string) string {
	return "arn:aws:autoscaling:" + s.opts.Region + ":" + s.opts.Account + ":autoScalingGroup:*:autoScalingGroupName/" + name
}

// templateUse is the ec2:RunInstances check Auto Scaling makes of its
// caller on a group's launch template (prefix: the template parameter).
func (s *Sim) templateUse(r *request, prefix string) []authzCheck {
	if prefix == "" {
		return nil
	}
	ref, ok := r.ltRefParam(prefix)
	if !ok {
		return nil
	}
	lt, err := s.templateLocked(ref.id, ref.name)
	if err != nil {
		return nil // the action answers the bad template
	}
	return []authzCheck{s.existing("ec2:RunInstances", lt.id)}
}

func (s *Sim) authzCreateGroup(r *request) []authzCheck {
	var tags []Tag
	for _, p := range r.memberPrefixes("Tags") {
		tags = append(tags, Tag{Key: r.str(p + ".Key"), Value: r.str(p + ".Value")})
	}
	name := r.str("AutoScalingGroupName")
	out := []authzCheck{{action: "autoscaling:CreateAutoScalingGroup", resource: s.groupARN(name), ctx: requestTags(tags)}}
	return append(out, s.templateUse(r, "LaunchTemplate")...)
}

// groupAuthz checks the action on the named group with its tags, and the
// launch template it is given under ltPrefix ("": none).
func groupAuthz(ltPrefix string) authzer {
	return func(s *Sim, r *request) []authzCheck {
		name := r.str("AutoScalingGroupName")
		c := authzCheck{action: "autoscaling:" + r.Action, resource: s.groupARN(name), ctx: authzContext{}}
		if g, ok := s.asg.groups[name]; ok && !g.gone {
			tags := map[string]string{}
			for _, t := range g.tags {
				tags[t.key] = t.value
			}
			c.resource, c.ctx = g.arn, resourceTags("autoscaling", tags)
		}
		return append([]authzCheck{c}, s.templateUse(r, ltPrefix)...)
	}
}

// authzParameters checks an SSM parameter call on each parameter it names
// (Name, or Names), by the parameter's ARN.
func (s *Sim) authzParameters(r *request) []authzCheck {
	var in struct {
		Name  string
		Names []string
	}
	_ = json.Unmarshal(r.Body, &in) // a malformed body gets its error from the action
	if in.Name != "" {
		in.Names = append(in.Names, in.Name)
	}
	out := make([]authzCheck, 0, len(in.Names))
	for _, n := range in.Names {
		out = append(out, authzCheck{action: "ssm:" + r.Action, resource: s.ssmARN(n), ctx: authzContext{}})
	}
	return out
}
