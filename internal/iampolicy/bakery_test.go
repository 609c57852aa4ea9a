package iampolicy

import (
	"slices"
	"testing"
)

func TestBakeryScopes(t *testing.T) {
	doc := Bakery(
		BakeryProject{Name: "web",
			Bake:     []string{"ec2:RunInstances", "ec2:CreateTags", "ec2:TerminateInstances", "ec2:DescribeImages", "iam:PassRole"},
			Groups:   []string{"autoscaling:CreateAutoScalingGroup", "autoscaling:UpdateAutoScalingGroup", "ec2:DescribeImages"},
			Profiles: []string{"builder", "web-app"}, Parameters: []string{"/kiln/web/*/*"},
			SSM: []string{"ssm:PutParameter", "ssm:GetParameter"}},
		BakeryProject{Name: "api",
			Bake:     []string{"ec2:RunInstances", "ec2:CreateTags", "ec2:CopyImage"},
			Rollouts: []string{"api-fleet"}, Rollout: []string{"autoscaling:StartInstanceRefresh", "ec2:CreateLaunchTemplateVersion", "ec2:CreateTags", "autoscaling:DescribeAutoScalingGroups"}},
	)
	var sids []string
	for _, s := range doc.Statement {
		sids = append(sids, s.Sid)
	}
	want := []string{SidRead, "KilnBakeCreateInstanceVolume", "KilnBakeTagOnCreate", "KilnBakeUseImageKeyPairNetworkInterfaceSecurityGroupSubnet",
		"KilnBakeOwnedInstance", "KilnEnvCreateAutoScalingGroup", "KilnEnvOwnedAutoScalingGroup",
		SidBakeryRollout, SidBakeryRollout + "Template", SidBakerySSM, SidPassRole, SidNotScoped}
	if !slices.Equal(sids, want) {
		t.Fatalf("statements = %v; want %v", sids, want)
	}
	if got := statement(t, doc, SidRead).Action; !slices.Equal(got, []string{"autoscaling:DescribeAutoScalingGroups", "ec2:DescribeImages"}) {
		t.Errorf("read = %v", got)
	}
	create := statement(t, doc, "KilnBakeCreateInstanceVolume")
	if got := create.Condition["StringEquals"]["aws:RequestTag/kiln:project"]; !slices.Equal(got, []string{"api", "web"}) {
		t.Errorf("builder launch condition = %v; want kiln:project of both projects", create.Condition)
	}
	// Only the project with environments owns groups.
	env := statement(t, doc, "KilnEnvOwnedAutoScalingGroup")
	if got := env.Condition["StringEquals"]["aws:ResourceTag/kiln:owner"]; !slices.Equal(got, []string{"web"}) {
		t.Errorf("group condition = %v; want kiln:owner web", env.Condition)
	}
	target := statement(t, doc, SidBakeryRollout)
	if !slices.Equal(target.Action, []string{"autoscaling:StartInstanceRefresh"}) ||
		!slices.Equal(target.Resource, []string{"arn:aws:autoscaling:*:*:autoScalingGroup:*:autoScalingGroupName/api-fleet"}) {
		t.Errorf("rollout target = %+v", target)
	}
	if tpl := statement(t, doc, SidBakeryRollout+"Template"); !slices.Equal(tpl.Action, []string{"ec2:CreateLaunchTemplateVersion", "ec2:CreateTags"}) {
		t.Errorf("rollout template = %+v", tpl)
	}
	ssm := statement(t, doc, SidBakerySSM)
	if !slices.Equal(ssm.Action, []string{"ssm:GetParameter", "ssm:PutParameter"}) || !slices.Equal(ssm.Resource, []string{"arn:aws:ssm:*:*:parameter/kiln/web/*/*"}) {
		t.Errorf("secrets = %+v", ssm)
	}
	if pass := statement(t, doc, SidPassRole); !slices.Equal(pass.Resource, []string{"arn:aws:iam::*:role/builder", "arn:aws:iam::*:role/web-app"}) {
		t.Errorf("PassRole = %v", pass.Resource)
	}
	if ns := statement(t, doc, SidNotScoped); !slices.Equal(ns.Action, []string{"ec2:CopyImage"}) {
		t.Errorf("not scoped = %+v", ns)
	}
}
