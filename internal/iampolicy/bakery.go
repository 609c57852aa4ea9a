package iampolicy

import (
	"encoding/json"
	"slices"

	"kiln/internal/awsapi"
	"kiln/internal/pipeline"
)

// BakeryProject is what one project makes kiln serve call in AWS, as
// Bakery needs it (package project derives it from a project file).
type BakeryProject struct {
	Name string
	// Bake are the actions of its bakes: the builder, the image, its
	// copies and sharing, retention, and the sweeper's terminations; on
	// resources tagged kiln:project = Name.
	Bake []string
	// Groups are the actions of its environments' Auto Scaling groups
	// (aws:asg's, promotions included); on resources tagged kiln:owner =
	// Name.
	Groups []string
	// Profiles are the instance profiles it passes: the builder's and the
	// groups'.
	Profiles []string
	// Rollouts are the Auto Scaling groups, not kiln's, that its bakes roll
	// out to (rollout:), and Rollout the actions of those rollouts.
	Rollouts []string
	Rollout  []string
	// Parameters are the SSM parameter paths its environments' secrets
	// live under (/kiln/NAME/ENV/*), and SSM the actions on them.
	Parameters []string
	SSM        []string
	// Read are read-only actions it needs besides (say the credential
	// check's sts:GetCallerIdentity).
	Read []string
}

// Sids of the statements only Bakery writes.
const (
	SidBakeryRollout = "KilnRolloutTarget"
	SidBakerySSM     = "KilnSecrets"
)

// Bakery returns the least-privilege policy for kiln serve with projects:
//
//   - read-only actions on "*";
//   - a bake's builder, image and snapshots created only when the request
//     tags them kiln:project = one of the projects, and changed (tagged,
//     terminated, deregistered, deleted) only while they carry it
//     (statements KilnBake...);
//   - the environments' groups and launch templates created only tagged
//     kiln:owner = one of the projects that has environments, and changed
//     only while they carry it (KilnEnv...), as a graph's aws:asg;
//   - the rollout targets (rollout:), groups kiln does not own, by their
//     names (KilnRolloutTarget);
//   - the environments' secrets, the SSM parameters under /kiln/PROJECT/
//     (KilnSecrets);
//   - iam:PassRole only for the roles of the builders' and groups'
//     instance profiles, passed to EC2;
//   - any other action on "*", under SidNotScoped.
func Bakery(projects ...BakeryProject) PolicyDocument {
	var names, owners, bake, groups, profiles, rollouts, rollout, params, ssm, read []string
	for _, p := range projects {
		names = append(names, p.Name)
		if len(p.Groups) > 0 {
			owners = append(owners, p.Name)
		}
		bake = append(bake, p.Bake...)
		groups = append(groups, p.Groups...)
		profiles = append(profiles, p.Profiles...)
		rollouts = append(rollouts, p.Rollouts...)
		rollout = append(rollout, p.Rollout...)
		params = append(params, p.Parameters...)
		ssm = append(ssm, p.SSM...)
		read = append(read, p.Read...)
	}
	names, bake, groups, read = sorted(names), sorted(bake), sorted(groups), sorted(read)
	doc := PolicyDocument{Version: "2012-10-17", Statement: []Statement{}}
	bs := scopeActions("KilnBake", bake, map[string][]string{pipeline.TagProject: names})
	var gs scoped
	if len(groups) > 0 {
		gs = scopeActions("KilnEnv", groups, map[string][]string{awsapi.TagOwner: sorted(owners)})
	}
	var rs scoped
	if len(rollouts) > 0 {
		rs = scopeActions("", sorted(rollout), nil) // only to tell reads from changes
	}
	read = sorted(slices.Concat(read, bs.read, gs.read, rs.read))
	if len(read) > 0 {
		doc.Statement = append(doc.Statement, Statement{Sid: SidRead, Effect: "Allow", Action: read, Resource: []string{"*"}})
	}
	doc.Statement = append(doc.Statement, bs.statements...)
	doc.Statement = append(doc.Statement, gs.statements...)
	if len(rollouts) > 0 {
		doc.Statement = append(doc.Statement, rolloutTargets(sorted(rollouts), sorted(rollout))...)
	}
	if len(params) > 0 && len(ssm) > 0 {
		res := make([]string, 0, len(params))
		for _, p := range sorted(params) {
			res = append(res, "arn:aws:ssm:*:*:parameter"+p)
		}
		doc.Statement = append(doc.Statement, Statement{Sid: SidBakerySSM, Effect: "Allow", Action: sorted(ssm), Resource: res})
	}
	if slices.Contains(bake, "iam:PassRole") || slices.Contains(groups, "iam:PassRole") {
		doc.Statement = append(doc.Statement, passRole(profiles))
	}
	if unscoped := sorted(slices.Concat(bs.unscoped, gs.unscoped, rs.unscoped)); len(unscoped) > 0 {
		doc.Statement = append(doc.Statement, Statement{Sid: SidNotScoped, Effect: "Allow", Action: unscoped, Resource: []string{"*"}})
	}
	return doc
}

// rolloutTargets allows a rollout's changes on the named groups, which
// kiln does not own, and on launch templates: a target group's template
// is not kiln's either and is known by id only at run time.
func rolloutTargets(groups, acts []string) []Statement {
	var onGroups, onTemplates []string
	for _, a := range acts {
		if a == "ec2:CreateTags" { // a failed rollout marks the template
			onTemplates = append(onTemplates, a)
			continue
		}
		s, ok := scopeOf(a)
		if !ok || s.read {
			continue
		}
		switch {
		case slices.Contains(s.owned, "autoScalingGroup"):
			onGroups = append(onGroups, a)
		case slices.Contains(s.owned, "launch-template") || len(s.ownedWith) > 0:
			onTemplates = append(onTemplates, a)
		}
	}
	var out []Statement
	if len(onGroups) > 0 {
		res := make([]string, 0, len(groups))
		for _, g := range groups {
			res = append(res, "arn:aws:autoscaling:*:*:autoScalingGroup:*:autoScalingGroupName/"+g)
		}
		out = append(out, Statement{Sid: SidBakeryRollout, Effect: "Allow", Action: onGroups, Resource: res})
	}
	if len(onTemplates) > 0 {
		out = append(out, Statement{Sid: SidBakeryRollout + "Template", Effect: "Allow", Action: onTemplates,
			Resource: []string{arnPatterns["launch-template"]}})
	}
	return out
}

// BakeryJSON is Bakery as indented JSON with a trailing newline.
func BakeryJSON(projects ...BakeryProject) []byte {
	b, _ := json.MarshalIndent(Bakery(projects...), "", "  ")
	return append(b, '\n')
}
