package iampolicy

import (
	"slices"
	"testing"
)

func TestBakeryAccounts(t *testing.T) {
	byAccount := map[string][]BakeryProject{
		"":             {{Name: "web", Bake: []string{"ec2:RunInstances", "ec2:CreateImage"}}},
		"210987654321": {{Name: "web", Groups: []string{"autoscaling:CreateAutoScalingGroup", "ec2:DescribeImages"}}},
	}
	roles := []AccountRole{{Name: "210987654321", RoleARN: "arn:aws:iam::210987654321:role/kiln", ExternalID: "shop-7"}}
	list := BakeryAccounts(byAccount, roles, "123456789012")
	if len(list) != 2 || list[0].Account != "" || list[1].Account != "210987654321" || list[1].RoleARN != roles[0].RoleARN {
		t.Fatalf("BakeryAccounts() = %+v; want the bakery's, then the prod account's", list)
	}
	sids := func(d PolicyDocument) []string {
		var out []string
		for _, s := range d.Statement {
			out = append(out, s.Sid)
		}
		return out
	}
	last := list[0].Policy.Statement[len(list[0].Policy.Statement)-1]
	if last.Sid != "AssumeAccountRoles" || !slices.Equal(last.Resource, []string{roles[0].RoleARN}) {
		t.Errorf("bakery policy's last statement = %+v; want sts:AssumeRole on the role", last)
	}
	if slices.ContainsFunc(sids(list[0].Policy), func(s string) bool { return len(s) > 7 && s[:7] == "KilnEnv" }) {
		t.Errorf("bakery policy has the prod environment's statements: %v", sids(list[0].Policy))
	}
	if !slices.Contains(sids(list[1].Policy), "KilnEnvCreateAutoScalingGroup") || slices.ContainsFunc(sids(list[1].Policy), func(s string) bool { return len(s) > 8 && s[:8] == "KilnBake" }) {
		t.Errorf("prod policy = %v; want the group's statements and no bake's", sids(list[1].Policy))
	}
	tr := list[1].Trust
	if tr == nil || tr.Statement[0].Principal["AWS"] != "arn:aws:iam::123456789012:root" || tr.Statement[0].Condition["StringEquals"]["sts:ExternalId"][0] != "shop-7" {
		t.Errorf("prod trust = %+v", tr)
	}
}
