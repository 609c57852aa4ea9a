package project

import (
	"slices"
	"strings"

	"kiln/internal/awsres"
	"kiln/internal/iampolicy"
	"kiln/internal/pipeline"
	"kiln/internal/store"
)

// IAM is what the project makes kiln serve call in AWS, for kiln
// iam-policy --bakery: its bakes' actions (the pipeline's, the lookup of
// security groups by name only when the builder names one, the copies and
// sharing its distribution asks for), its environments' groups (aws:asg's
// actions for each group's settings), its rollout target's, its secrets'
// SSM calls, the reads of its environments' alarms, and the instance
// profiles it passes.
func (p *Project) IAM() iampolicy.BakeryProject {
	out := iampolicy.BakeryProject{Name: p.Name}
	byName := slices.ContainsFunc(p.SecurityGroups, func(g string) bool { return !strings.HasPrefix(g, "sg-") })
	out.Bake = slices.DeleteFunc(pipeline.IAMActions(), func(a string) bool { return a == "ec2:DescribeSecurityGroups" && !byName })
	out.Bake = append(out.Bake, pipeline.DistributionIAMActions(p.Distribution)...)
	out.Bake = append(out.Bake, pipeline.LifecycleIAMActions(p.DeprecateAfter > 0, p.DisableFor > 0)...)
	if p.IAMProfile != "" {
		out.Bake = append(out.Bake, "iam:PassRole")
		out.Profiles = append(out.Profiles, p.IAMProfile)
	}
	for _, e := range p.Environments {
		out.Groups = append(out.Groups, GroupResource(nil, p.Name, e, "ami-00000000").IAMActions()...)
		if e.Group.IAMProfile != "" {
			out.Profiles = append(out.Profiles, e.Group.IAMProfile)
		}
		if len(e.Group.Rollout.Alarms) > 0 && !slices.Contains(out.Read, "cloudwatch:DescribeAlarms") {
			// A promotion watches its environment's alarms.
			out.Read = append(out.Read, "cloudwatch:DescribeAlarms")
		}
		if slices.ContainsFunc(e.Config, func(c store.ConfigValue) bool { return c.Secret }) {
			out.SSM = []string{"ssm:DeleteParameter", "ssm:GetParameter", "ssm:PutParameter"}
			out.Parameters = []string{ParameterName(p.Name, "*", "*")}
		}
	}
	if len(out.Groups) > 0 {
		// Promotions check the image first; retention asks which images
		// the groups run.
		out.Groups = append(out.Groups, "ec2:DescribeImages")
	}
	if r := p.Rollout; r != nil {
		out.Rollouts = []string{r.Group}
		out.Rollout = awsres.RolloutIAMActions()
	}
	return out
}
