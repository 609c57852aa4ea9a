package iampolicy

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

type acts []string

func (a acts) IAMActions() []string { return a }

type profiled struct {
	acts
	profiles []string
}

func (p profiled) InstanceProfiles() []string { return p.profiles }

func statement(t *testing.T, doc PolicyDocument, sid string) Statement {
	t.Helper()
	for _, s := range doc.Statement {
		if s.Sid == sid {
			return s
		}
	}
	b, _ := json.MarshalIndent(doc, "", " ")
	t.Fatalf("no statement %s in %s", sid, b)
	return Statement{}
}

func TestPolicyScopes(t *testing.T) {
	doc := Policy("shop",
		acts{"ec2:RunInstances", "ec2:DescribeInstances", "ec2:StopInstances", "ec2:CreateTags", "ec2:TerminateInstances"},
		profiled{acts{"iam:PassRole", "ec2:DescribeInstances"}, []string{"web", "arn:aws:iam::111122223333:instance-profile/ops/batch"}},
		acts{"sqs:SendMessage", "route53:ListHostedZones"},
		"not an AWS kind")
	if doc.Version != "2012-10-17" {
		t.Errorf("Version = %s", doc.Version)
	}
	var sids []string
	for _, s := range doc.Statement {
		sids = append(sids, s.Sid)
		if s.Effect != "Allow" || len(s.Action) == 0 || len(s.Resource) == 0 {
			t.Errorf("statement %+v: want an Allow with actions and resources", s)
		}
	}
	want := []string{SidRead, "KilnCreateInstanceVolume", SidTagOnCreate, "KilnUseImageKeyPairNetworkInterfaceSecurityGroupSubnet",
		"KilnOwnedInstance", SidPassRole, SidNotScoped}
	if !slices.Equal(sids, want) {
		t.Errorf("statements = %v; want %v", sids, want)
	}

	read := statement(t, doc, SidRead)
	if got := strings.Join(read.Action, ","); got != "ec2:DescribeInstances,route53:ListHostedZones" || read.Resource[0] != "*" || read.Condition != nil {
		t.Errorf("read = %+v; want Describe/List, deduplicated, on *", read)
	}
	create := statement(t, doc, "KilnCreateInstanceVolume")
	if got := create.Condition["StringEquals"]["aws:RequestTag/kiln:owner"]; !slices.Equal(got, []string{"shop"}) {
		t.Errorf("launch condition = %v", create.Condition)
	}
	if !slices.Equal(create.Resource, []string{"arn:aws:ec2:*:*:instance/*", "arn:aws:ec2:*:*:volume/*"}) {
		t.Errorf("launch resources = %v", create.Resource)
	}
	tag := statement(t, doc, SidTagOnCreate)
	if got := tag.Condition["StringEquals"]["ec2:CreateAction"]; !slices.Equal(got, []string{"RunInstances"}) {
		t.Errorf("tag on create = %+v; want ec2:CreateAction RunInstances", tag)
	}
	owned := statement(t, doc, "KilnOwnedInstance")
	if got := strings.Join(owned.Action, ","); got != "ec2:CreateTags,ec2:StopInstances,ec2:TerminateInstances" {
		t.Errorf("owned actions = %s", got)
	}
	if got := owned.Condition["StringEquals"]["aws:ResourceTag/kiln:owner"]; !slices.Equal(got, []string{"shop"}) || !slices.Equal(owned.Resource, []string{"arn:aws:ec2:*:*:instance/*"}) {
		t.Errorf("owned = %+v", owned)
	}
	pass := statement(t, doc, SidPassRole)
	if !slices.Equal(pass.Resource, []string{"arn:aws:iam::*:role/web", "arn:aws:iam::111122223333:role/ops/batch"}) {
		t.Errorf("PassRole resources = %v; want the profiles' roles", pass.Resource)
	}
	if got := pass.Condition["StringEquals"]["iam:PassedToService"]; !slices.Equal(got, []string{"ec2.amazonaws.com"}) {
		t.Errorf("PassRole condition = %v", pass.Condition)
	}
	if ns := statement(t, doc, SidNotScoped); !slices.Equal(ns.Action, []string{"sqs:SendMessage"}) || ns.Resource[0] != "*" {
		t.Errorf("not scoped = %+v", ns)
	}

	if empty := Policy("g", "local kind"); len(empty.Statement) != 0 {
		t.Errorf("Policy of nothing = %+v", empty)
	}
}

func TestRoleARN(t *testing.T) {
	for in, want := range map[string]string{
		"web": "arn:aws:iam::*:role/web",
		"arn:aws:iam::111122223333:instance-profile/web":     "arn:aws:iam::111122223333:role/web",
		"arn:aws:iam::111122223333:instance-profile/a/b/web": "arn:aws:iam::111122223333:role/a/b/web",
		"${aws:ami/x.profile}":                               "arn:aws:iam::*:role/*",
		"arn:aws-cn:iam::111122223333:instance-profile/web":  "arn:aws-cn:iam::111122223333:role/web",
	} {
		if got := RoleARN(in); got != want {
			t.Errorf("RoleARN(%q) = %s; want %s", in, got, want)
		}
	}
}
