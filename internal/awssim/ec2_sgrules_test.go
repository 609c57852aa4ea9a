package awssim

import (
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

func tcp(port int32, cidr string) types.IpPermission {
	return types.IpPermission{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(port), ToPort: aws.Int32(port), IpRanges: []types.IpRange{{CidrIp: aws.String(cidr)}}}
}

func TestSecurityGroupRules(t *testing.T) {
	_, c := newTestSim(t, Options{})
	ctx := t.Context()
	g, err := c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("web"), Description: aws.String("web servers")})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(g.GroupId)
	rules := func() []types.SecurityGroupRule {
		t.Helper()
		out, err := c.DescribeSecurityGroupRules(ctx, &ec2.DescribeSecurityGroupRulesInput{Filters: []types.Filter{{Name: aws.String("group-id"), Values: []string{id}}}})
		if err != nil {
			t.Fatalf("DescribeSecurityGroupRules() = %v", err)
		}
		return out.SecurityGroupRules
	}
	// A new group allows all egress, nothing in.
	if rs := rules(); len(rs) != 1 || !aws.ToBool(rs[0].IsEgress) || aws.ToString(rs[0].IpProtocol) != "-1" || aws.ToString(rs[0].CidrIpv4) != "0.0.0.0/0" {
		t.Fatalf("rules of a new group = %+v; want the one egress rule to 0.0.0.0/0", rs)
	}

	// Two peers in one permission are two rules.
	ssh := tcp(22, "10.0.0.0/8")
	ssh.IpRanges = append(ssh.IpRanges, types.IpRange{CidrIp: aws.String("192.168.1.7/24"), Description: aws.String("office")})
	out, err := c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: aws.String(id), IpPermissions: []types.IpPermission{ssh, tcp(443, "0.0.0.0/0")}})
	if err != nil || !aws.ToBool(out.Return) || len(out.SecurityGroupRules) != 3 {
		t.Fatalf("AuthorizeSecurityGroupIngress() = %+v, %v; want 3 rules", out, err)
	}
	if got := aws.ToString(out.SecurityGroupRules[1].CidrIpv4); got != "192.168.1.0/24" {
		t.Errorf("CIDR = %s; want it masked to 192.168.1.0/24", got)
	}

	// A duplicate fails the whole call with EC2's message; nothing is added.
	_, err = c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: aws.String(id), IpPermissions: []types.IpPermission{tcp(80, "0.0.0.0/0"), tcp(443, "0.0.0.0/0")}})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "InvalidPermission.Duplicate" || ae.ErrorMessage() != `the specified rule "peer: 0.0.0.0/0, TCP, from port: 443, to port: 443, ALLOW" already exists` {
		t.Fatalf("AuthorizeSecurityGroupIngress(duplicate) = %v; want InvalidPermission.Duplicate naming the rule", err)
	}
	_, err = c.AuthorizeSecurityGroupEgress(ctx, &ec2.AuthorizeSecurityGroupEgressInput{GroupId: aws.String(id), IpPermissions: []types.IpPermission{{IpProtocol: aws.String("-1"), IpRanges: []types.IpRange{{CidrIp: aws.String("0.0.0.0/0")}}}}})
	if !errors.As(err, &ae) || ae.ErrorMessage() != `the specified rule "peer: 0.0.0.0/0, ALL, ALLOW" already exists` {
		t.Errorf("AuthorizeSecurityGroupEgress(the default rule) = %v; want InvalidPermission.Duplicate", err)
	}
	if n := len(rules()); n != 4 {
		t.Fatalf("rules after refused calls = %d; want 4", n)
	}

	// DescribeSecurityGroups folds the rules into permissions.
	dg, err := c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	sg := dg.SecurityGroups[0]
	if len(sg.IpPermissions) != 2 || len(sg.IpPermissions[0].IpRanges) != 2 || aws.ToString(sg.IpPermissions[0].IpRanges[1].Description) != "office" ||
		len(sg.IpPermissionsEgress) != 1 || sg.IpPermissionsEgress[0].FromPort != nil {
		t.Errorf("DescribeSecurityGroups() permissions = %+v / %+v; want 22 (two ranges) and 443 in, all out", sg.IpPermissions, sg.IpPermissionsEgress)
	}

	// Another group as the peer; a missing one is InvalidGroup.NotFound.
	other, _ := c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("lb"), Description: aws.String("load balancers")})
	fromLB := types.IpPermission{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(8080), ToPort: aws.Int32(8080), UserIdGroupPairs: []types.UserIdGroupPair{{GroupId: other.GroupId}}}
	if _, err := c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: aws.String(id), IpPermissions: []types.IpPermission{fromLB}}); err != nil {
		t.Fatalf("AuthorizeSecurityGroupIngress(group peer) = %v", err)
	}
	ghost := fromLB
	ghost.UserIdGroupPairs = []types.UserIdGroupPair{{GroupId: aws.String("sg-0123456789abcdef0")}}
	if _, err := c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: aws.String(id), IpPermissions: []types.IpPermission{ghost}}); errCode(err) != "InvalidGroup.NotFound" {
		t.Errorf("AuthorizeSecurityGroupIngress(missing peer) = %q; want InvalidGroup.NotFound", errCode(err))
	}
	// The referenced group cannot go while the rule names it.
	if _, err := c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: other.GroupId}); errCode(err) != "DependencyViolation" {
		t.Errorf("DeleteSecurityGroup(referenced) = %q; want DependencyViolation", errCode(err))
	}

	// Bad input.
	for _, tt := range []struct {
		name string
		p    types.IpPermission
		code string
	}{
		{"protocol", types.IpPermission{IpProtocol: aws.String("tcpx"), IpRanges: []types.IpRange{{CidrIp: aws.String("0.0.0.0/0")}}}, "InvalidParameterValue"},
		{"no ports", types.IpPermission{IpProtocol: aws.String("tcp"), IpRanges: []types.IpRange{{CidrIp: aws.String("0.0.0.0/0")}}}, "InvalidParameterValue"},
		{"cidr", tcp(22, "10.0.0.0/33"), "InvalidParameterValue"},
		{"no peer", types.IpPermission{IpProtocol: aws.String("-1")}, "InvalidParameterValue"},
	} {
		if _, err := c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: aws.String(id), IpPermissions: []types.IpPermission{tt.p}}); errCode(err) != tt.code {
			t.Errorf("AuthorizeSecurityGroupIngress(bad %s) = %q; want %s", tt.name, errCode(err), tt.code)
		}
	}

	// Revoke by properties (an unknown one is listed, no error, in the
	// default VPC) and by id.
	rv, err := c.RevokeSecurityGroupIngress(ctx, &ec2.RevokeSecurityGroupIngressInput{GroupId: aws.String(id), IpPermissions: []types.IpPermission{tcp(443, "0.0.0.0/0"), tcp(444, "0.0.0.0/0")}})
	if err != nil || !aws.ToBool(rv.Return) || len(rv.RevokedSecurityGroupRules) != 1 || len(rv.UnknownIpPermissions) != 1 || aws.ToInt32(rv.UnknownIpPermissions[0].FromPort) != 444 {
		t.Fatalf("RevokeSecurityGroupIngress() = %+v, %v; want 443 revoked, 444 unknown", rv, err)
	}
	var egressID string
	for _, r := range rules() {
		if aws.ToBool(r.IsEgress) {
			egressID = aws.ToString(r.SecurityGroupRuleId)
		}
	}
	if _, err := c.RevokeSecurityGroupEgress(ctx, &ec2.RevokeSecurityGroupEgressInput{GroupId: aws.String(id), SecurityGroupRuleIds: []string{egressID}}); err != nil {
		t.Fatalf("RevokeSecurityGroupEgress(id) = %v", err)
	}
	if _, err := c.RevokeSecurityGroupEgress(ctx, &ec2.RevokeSecurityGroupEgressInput{GroupId: aws.String(id), SecurityGroupRuleIds: []string{egressID}}); errCode(err) != "InvalidSecurityGroupRuleId.NotFound" {
		t.Errorf("RevokeSecurityGroupEgress(gone id) = %q; want InvalidSecurityGroupRuleId.NotFound", errCode(err))
	}
	if n := len(rules()); n != 3 {
		t.Errorf("rules after the revokes = %d; want 3 (22 twice, 8080)", n)
	}

	// The default group allows all ingress from itself.
	def, err := c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupNames: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	in := def.SecurityGroups[0].IpPermissions
	if len(in) != 1 || len(in[0].UserIdGroupPairs) != 1 || aws.ToString(in[0].UserIdGroupPairs[0].GroupId) != aws.ToString(def.SecurityGroups[0].GroupId) {
		t.Errorf("default group ingress = %+v; want all traffic from itself", in)
	}
}
