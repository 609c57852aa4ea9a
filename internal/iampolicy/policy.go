// Package iampolicy writes least-privilege IAM policies for what kiln
// calls: for a graph (Policy: the actions its AWS kinds declare, scoped by
// the graph's kiln:owner tag) and for the bakery (Bakery: bakes, copies,
// sharing, retention, environments, SSM and rollouts of a set of
// projects). It makes no AWS call; the simulator's Options.Policy
// enforces what it writes, so tests run kiln under it.
package iampolicy

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"

	"kiln/internal/awsapi"
)

// IAMActioner is implemented by every AWS kind: the IAM actions its
// CheckApply and Watch may call, given its fields (iam:PassRole only when an
// instance profile is set, say).
type IAMActioner interface {
	IAMActions() []string
}

// RolePasser is implemented by the AWS kinds that launch instances with an
// instance profile: the profiles (names or ARNs) they pass, so that the
// policy's iam:PassRole names their roles and no other.
type RolePasser interface {
	InstanceProfiles() []string
}

// PolicyDocument is an IAM policy.
type PolicyDocument struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// Statement is one statement of a PolicyDocument.
type Statement struct {
	Sid       string                         `json:"Sid,omitempty"`
	Effect    string                         `json:"Effect"`
	Action    []string                       `json:"Action"`
	Resource  []string                       `json:"Resource"`
	Condition map[string]map[string][]string `json:"Condition,omitempty"`
}

// scope is how the policy limits one action, by the resource types IAM
// authorizes it against (the service authorization reference's "resource
// types" of the action, as kiln calls it).
type scope struct {
	// owned: existing resources the action changes, allowed only while they
	// carry kiln:owner = the graph (aws:ResourceTag).
	owned []string
	// created: resources the action creates and tags in the same call,
	// allowed only when the request tags them kiln:owner = the graph
	// (aws:RequestTag).
	created []string
	// used: resources the action only refers to (the image, subnet and
	// security groups of a launch), allowed unconditioned, as AWS's own
	// RunInstances examples do: they are not kiln's to tag.
	used []string
	// ownedWith: owned types that apply only when the graph also calls the
	// key action (RunInstances on launch templates: only for a graph that
	// makes templates for Auto Scaling).
	ownedWith map[string][]string
	// read: read-only; allowed on "*" (AWS offers no resource-level
	// permission for most Describe calls).
	read bool
}

// scopes is the one table of how each action kiln calls is scoped. An
// action no row names gets scopeOf's default. ec2:CreateTags and
// iam:PassRole are built apart (tagging in a create call; the graph's
// roles).
//
// Resource types and condition keys are those of the IAM service
// authorization reference for EC2 and Auto Scaling. Auto Scaling checks
// ec2:RunInstances on the launch template when a group is created or
// updated with one (and launches with its service-linked role), so
// RunInstances also names kiln's own launch templates.
var scopes = map[string]scope{
	"ec2:RunInstances": {
		created:   []string{"instance", "volume"},
		used:      []string{"image", "subnet", "security-group", "network-interface", "key-pair"},
		ownedWith: map[string][]string{"ec2:CreateLaunchTemplate": {"launch-template"}},
	},
	"ec2:StartInstances":                       {owned: []string{"instance"}},
	"ec2:StopInstances":                        {owned: []string{"instance"}},
	"ec2:RebootInstances":                      {owned: []string{"instance"}},
	"ec2:TerminateInstances":                   {owned: []string{"instance"}},
	"ec2:ModifyInstanceAttribute":              {owned: []string{"instance"}, used: []string{"security-group"}},
	"ec2:GetConsoleOutput":                     {owned: []string{"instance"}},
	"ec2:AssociateIamInstanceProfile":          {owned: []string{"instance"}},
	"ec2:ReplaceIamInstanceProfileAssociation": {owned: []string{"instance"}},
	"ec2:DisassociateIamInstanceProfile":       {owned: []string{"instance"}},
	"ec2:CreateImage":                          {owned: []string{"instance"}, created: []string{"image", "snapshot"}},
	"ec2:DeregisterImage":                      {owned: []string{"image"}},
	"ec2:DeleteSnapshot":                       {owned: []string{"snapshot"}},
	"ec2:CreateLaunchTemplate":                 {created: []string{"launch-template"}},
	"ec2:CreateLaunchTemplateVersion":          {owned: []string{"launch-template"}},
	"ec2:ModifyLaunchTemplate":                 {owned: []string{"launch-template"}},
	"ec2:DeleteLaunchTemplate":                 {owned: []string{"launch-template"}},

	"autoscaling:CreateAutoScalingGroup":  {created: []string{"autoScalingGroup"}},
	"autoscaling:UpdateAutoScalingGroup":  {owned: []string{"autoScalingGroup"}},
	"autoscaling:DeleteAutoScalingGroup":  {owned: []string{"autoScalingGroup"}},
	"autoscaling:StartInstanceRefresh":    {owned: []string{"autoScalingGroup"}},
	"autoscaling:CancelInstanceRefresh":   {owned: []string{"autoScalingGroup"}},
	"autoscaling:RollbackInstanceRefresh": {owned: []string{"autoScalingGroup"}},
}

// tagCreators are the create calls whose TagSpecifications need
// ec2:CreateTags, conditioned on ec2:CreateAction; the types they tag are
// their scope's created.
var tagCreators = []string{"ec2:RunInstances", "ec2:CreateImage", "ec2:CreateLaunchTemplate"}

// retagged are the resource types kiln tags again after their creation
// (an instance's tags, an image's and its snapshots', a launch template's
// rollout failure): ec2:CreateTags on them only while they are kiln's.
var retagged = []string{"instance", "image", "snapshot", "launch-template"}

// scopeOf is the row of scopes for action, or a default for an action no
// row names, so that a new kind's calls still get a working policy:
// Describe, Get and List calls are read-only on "*"; for anything else ok
// is false, and Policy allows it on "*" in a statement whose Sid says it is
// not scoped yet.
func scopeOf(action string) (scope, bool) {
	if s, ok := scopes[action]; ok {
		return s, true
	}
	_, name, _ := strings.Cut(action, ":")
	for _, p := range []string{"Describe", "Get", "List"} {
		if strings.HasPrefix(name, p) {
			return scope{read: true}, true
		}
	}
	return scope{}, false
}

// arnPatterns are the ARNs of each resource type, any region, account and
// id. Images and snapshots have no account in their ARN.
var arnPatterns = map[string]string{
	"instance":          "arn:aws:ec2:*:*:instance/*",
	"volume":            "arn:aws:ec2:*:*:volume/*",
	"image":             "arn:aws:ec2:*::image/*",
	"snapshot":          "arn:aws:ec2:*::snapshot/*",
	"subnet":            "arn:aws:ec2:*:*:subnet/*",
	"security-group":    "arn:aws:ec2:*:*:security-group/*",
	"network-interface": "arn:aws:ec2:*:*:network-interface/*",
	"key-pair":          "arn:aws:ec2:*:*:key-pair/*",
	"launch-template":   "arn:aws:ec2:*:*:launch-template/*",
	"autoScalingGroup":  "arn:aws:autoscaling:*:*:autoScalingGroup:*:autoScalingGroupName/*",
}

// RoleARN is the role an instance profile passes, as an ARN pattern for
// iam:PassRole. kiln assumes the profile and its role share their name
// (and path), as the console and most tools create them: a profile name
// gives arn:aws:iam::*:role/NAME, an instance-profile ARN the role ARN of
// the same account, path and name. A profile that is a reference not yet
// resolved (${...}) gives any role.
func RoleARN(profile string) string {
	switch {
	case strings.Contains(profile, "${"):
		return "arn:aws:iam::*:role/*"
	case strings.HasPrefix(profile, "arn:"):
		parts := strings.SplitN(profile, ":", 6)
		if len(parts) == 6 && strings.HasPrefix(parts[5], "instance-profile/") {
			return strings.Join(parts[:5], ":") + ":role/" + strings.TrimPrefix(parts[5], "instance-profile/")
		}
		return "arn:aws:iam::*:role/*"
	}
	return "arn:aws:iam::*:role/" + profile
}

// Sids of the statements Policy writes, in their order.
const (
	SidRead        = "KilnRead"
	SidTagOnCreate = "KilnTagOnCreate"
	SidPassRole    = "KilnPassRole"
	SidNotScoped   = "KilnNotScopedYet"
)

// Policy returns the least-privilege policy for a graph named graph whose
// resources are the given values (values that are not IAMActioners, such
// as local kinds, add nothing): exactly the actions they declare, scoped
// by kiln's ownership tag (kiln:owner = graph) as AWS recommends for
// attribute-based access control:
//
//   - read-only actions on "*";
//   - creating calls only when the request tags what they create
//     kiln:owner = graph (aws:RequestTag), and ec2:CreateTags in a create
//     call only (ec2:CreateAction);
//   - what a launch only uses (image, subnet, security groups, network
//     interface, key pair) in its own statement;
//   - changes to existing resources only while they carry kiln:owner =
//     graph (aws:ResourceTag), ec2:CreateTags included;
//   - iam:PassRole only for the roles of the graph's instance profiles,
//     and only to EC2 (iam:PassedToService);
//   - any other action on "*", under SidNotScoped.
//
// A graph with nothing to allow yields a document with no statements
// (which IAM refuses: see the CLI's iam-policy).
func Policy(graph string, resources ...any) PolicyDocument {
	var acts, profiles []string
	for _, r := range resources {
		if a, ok := r.(IAMActioner); ok {
			acts = append(acts, a.IAMActions()...)
		}
		if p, ok := r.(RolePasser); ok {
			profiles = append(profiles, p.InstanceProfiles()...)
		}
	}
	acts = sorted(acts)
	sc := scopeActions("Kiln", acts, map[string][]string{awsapi.TagOwner: {graph}})
	doc := PolicyDocument{Version: "2012-10-17", Statement: []Statement{}}
	if len(sc.read) > 0 {
		doc.Statement = append(doc.Statement, Statement{Sid: SidRead, Effect: "Allow", Action: sc.read, Resource: []string{"*"}})
	}
	doc.Statement = append(doc.Statement, sc.statements...)
	if slices.Contains(acts, "iam:PassRole") {
		doc.Statement = append(doc.Statement, passRole(profiles))
	}
	if len(sc.unscoped) > 0 {
		doc.Statement = append(doc.Statement, Statement{Sid: SidNotScoped, Effect: "Allow", Action: sc.unscoped, Resource: []string{"*"}})
	}
	return doc
}

func sorted(acts []string) []string {
	acts = slices.Clone(acts)
	slices.Sort(acts)
	return slices.Compact(acts)
}

// scoped is what scopeActions makes of a set of actions.
type scoped struct {
	read, unscoped []string    // the read-only actions; those no row scopes
	statements     []Statement // creating, tagging, using, and changing owned resources
}

// scopeActions scopes acts (sorted, unique) by owner, the tag whose
// values mark what the caller owns: the statements that create resources
// tagged so (aws:RequestTag), tag them in the create call only, use what
// a launch only refers to, and change resources already tagged so
// (aws:ResourceTag). Sids begin with prefix. iam:PassRole is left to the
// caller.
func scopeActions(prefix string, acts []string, owner map[string][]string) scoped {
	var sc scoped
	// condition kind → action → resource types
	groups := map[string]map[string][]string{"create": {}, "use": {}, "owned": {}}
	tagging := false
	for _, a := range acts {
		switch a {
		case "ec2:CreateTags":
			tagging = true
			continue
		case "iam:PassRole":
			continue
		}
		s, ok := scopeOf(a)
		switch {
		case !ok:
			sc.unscoped = append(sc.unscoped, a)
		case s.read:
			sc.read = append(sc.read, a)
		default:
			add := func(kind string, types []string) {
				if len(types) > 0 {
					groups[kind][a] = append(groups[kind][a], types...)
				}
			}
			add("create", s.created)
			add("use", s.used)
			add("owned", s.owned)
			for with, types := range s.ownedWith {
				if slices.Contains(acts, with) {
					add("owned", types)
				}
			}
		}
	}

	sc.statements = append(sc.statements, grouped(prefix+"Create", groups["create"], map[string]map[string][]string{
		"StringEquals": prefixed("aws:RequestTag/", owner)})...)
	if tagging {
		var types, creators []string
		for _, c := range tagCreators {
			if slices.Contains(acts, c) {
				types = append(types, scopes[c].created...)
				creators = append(creators, strings.TrimPrefix(c, "ec2:"))
			}
		}
		if len(creators) > 0 {
			cond := prefixed("aws:RequestTag/", owner)
			cond["ec2:CreateAction"] = creators
			sc.statements = append(sc.statements, Statement{Sid: prefix + "TagOnCreate", Effect: "Allow", Action: []string{"ec2:CreateTags"},
				Resource: arns(types), Condition: map[string]map[string][]string{"StringEquals": cond}})
		}
		// Retagging only the types the caller's calls create.
		var touched []string
		for _, types := range groups["create"] {
			touched = append(touched, types...)
		}
		var again []string
		for _, t := range retagged {
			if slices.Contains(touched, t) {
				again = append(again, t)
			}
		}
		if len(again) > 0 {
			groups["owned"]["ec2:CreateTags"] = again
		}
	}
	sc.statements = append(sc.statements, grouped(prefix+"Use", groups["use"], nil)...)
	sc.statements = append(sc.statements, grouped(prefix+"Owned", groups["owned"], map[string]map[string][]string{
		"StringEquals": prefixed("aws:ResourceTag/", owner)})...)
	return sc
}

// passRole is the iam:PassRole statement for the roles of profiles (any
// role when none is known), passed to EC2 only.
func passRole(profiles []string) Statement {
	roles := make([]string, 0, len(profiles))
	for _, p := range profiles {
		roles = append(roles, RoleARN(p))
	}
	slices.Sort(roles)
	roles = slices.Compact(roles)
	if len(roles) == 0 {
		roles = []string{"arn:aws:iam::*:role/*"}
	}
	return Statement{Sid: SidPassRole, Effect: "Allow", Action: []string{"iam:PassRole"},
		Resource:  roles,
		Condition: map[string]map[string][]string{"StringEquals": {"iam:PassedToService": {"ec2.amazonaws.com"}}}}
}

// grouped turns action → resource types into statements, one per set of
// resource types (actions on the same types share one), with the given
// condition. Sids are prefix and the types ("KilnOwnedInstance").
func grouped(prefix string, byAction map[string][]string, cond map[string]map[string][]string) []Statement {
	bySet := map[string][]string{}
	for a, types := range byAction {
		types = slices.Sorted(slices.Values(types))
		types = slices.Compact(types)
		key := strings.Join(types, ",")
		bySet[key] = append(bySet[key], a)
	}
	var out []Statement
	for _, key := range slices.Sorted(maps.Keys(bySet)) {
		types := strings.Split(key, ",")
		acts := bySet[key]
		slices.Sort(acts)
		sid := prefix
		for _, t := range types {
			sid += camel(t)
		}
		out = append(out, Statement{Sid: sid, Effect: "Allow", Action: acts, Resource: arns(types), Condition: cond})
	}
	return out
}

// camel is a resource type as part of a Sid: "security-group" → "SecurityGroup".
func camel(t string) string {
	var b strings.Builder
	for _, w := range strings.Split(t, "-") {
		if w != "" {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String()
}

func arns(types []string) []string {
	out := make([]string, 0, len(types))
	for _, t := range types {
		out = append(out, arnPatterns[t])
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func prefixed(prefix string, m map[string][]string) map[string][]string {
	out := make(map[string][]string, len(m))
	for k, v := range m {
		out[prefix+k] = v
	}
	return out
}

// PolicyJSON is Policy as indented JSON with a trailing newline.
func PolicyJSON(graph string, resources ...any) []byte {
	b, _ := json.MarshalIndent(Policy(graph, resources...), "", "  ")
	return append(b, '\n')
}
