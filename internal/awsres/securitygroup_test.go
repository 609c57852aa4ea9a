package awsres

import (
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/engine"
)

func (w *world) securityGroup(name string, mod func(*SecurityGroup)) *SecurityGroup {
	r := NewSecurityGroup(w.hubs)
	if mod != nil {
		mod(r)
	}
	_ = r.Init(engine.Env{Graph: graph, ID: "aws:security_group/" + name, Kind: "aws:security_group", Name: name, Log: testLog})
	return r
}

// groupRules lists a group's rules as kiln's rule keys print them.
func (w *world) groupRules(t *testing.T, id string) []string {
	t.Helper()
	out, err := w.client.DescribeSecurityGroupRules(t.Context(), &ec2.DescribeSecurityGroupRulesInput{Filters: []types.Filter{{Name: aws.String("group-id"), Values: []string{id}}}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, sr := range out.SecurityGroupRules {
		k := ruleKey{egress: aws.ToBool(sr.IsEgress), protocol: aws.ToString(sr.IpProtocol), from: aws.ToInt32(sr.FromPort), to: aws.ToInt32(sr.ToPort),
			cidr4: aws.ToString(sr.CidrIpv4), cidr6: aws.ToString(sr.CidrIpv6)}
		if sr.ReferencedGroupInfo != nil {
			k.group = aws.ToString(sr.ReferencedGroupInfo.GroupId)
		}
		got = append(got, k.String())
	}
	slices.Sort(got)
	return got
}

func TestSecurityGroupConverges(t *testing.T) {
	w := newWorld(t, worldOpts{})
	lb := w.securityGroup("lb", func(r *SecurityGroup) {
		r.Ingress = []Rule{{Protocol: "tcp", Ports: "443", CIDRs: []string{"0.0.0.0/0", "::/0"}}}
	})
	if ok := checkSG(t, lb); ok {
		t.Fatal("first CheckApply(lb) = true; want a create")
	}
	lbID := lb.Outputs()["group_id"]
	web := w.securityGroup("web", func(r *SecurityGroup) {
		r.Description = "web servers"
		r.Ingress = []Rule{
			{Protocol: "tcp", Ports: "22", CIDRs: []string{"10.0.0.0/8"}, Description: "ssh"},
			{Protocol: "tcp", Ports: "8080-8081", Groups: []string{lbID}},
		}
		r.Egress = []Rule{{Protocol: "tcp", Ports: "443", CIDRs: []string{"0.0.0.0/0"}}}
	})

	// Plan first: it names every rule and changes nothing.
	ok, err := web.CheckApply(t.Context(), false)
	if ok || err != nil {
		t.Fatalf("CheckApply(apply=false) = %v, %v; want false, nil", ok, err)
	}
	wantPlan := []string{"create security group web", "authorize egress tcp 443 to 0.0.0.0/0", "authorize ingress tcp 22 from 10.0.0.0/8", "authorize ingress tcp 8080-8081 from " + lbID}
	if got := web.Changes(); !slices.Equal(got, wantPlan) {
		t.Errorf("Changes() = %q; want %q", got, wantPlan)
	}
	if n := w.sim.Calls("CreateSecurityGroup"); n != 1 {
		t.Fatalf("CreateSecurityGroup calls = %d after a plan; want 1 (lb's)", n)
	}

	if ok := checkSG(t, web); ok {
		t.Fatal("CheckApply(web) = true; want a create")
	}
	id := web.Outputs()["group_id"]
	want := []string{"egress tcp 443 to 0.0.0.0/0", "ingress tcp 22 from 10.0.0.0/8", "ingress tcp 8080-8081 from " + lbID}
	if got := w.groupRules(t, id); !slices.Equal(got, want) {
		t.Fatalf("rules = %q; want %q (EC2's default egress rule revoked)", got, want)
	}
	if !checkSG(t, web) {
		t.Error("second CheckApply() = false; want converged")
	}
	// lb's unset egress keeps EC2's default.
	if got := w.groupRules(t, lbID); !slices.Contains(got, "egress all traffic to 0.0.0.0/0") || len(got) != 3 {
		t.Errorf("lb rules = %q; want 443 from two ranges and the default egress", got)
	}

	// A rule added by hand is revoked; one revoked by hand is back.
	if _, err := w.client.AuthorizeSecurityGroupIngress(t.Context(), &ec2.AuthorizeSecurityGroupIngressInput{GroupId: aws.String(id),
		IpPermissions: []types.IpPermission{{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(3306), ToPort: aws.Int32(3306), IpRanges: []types.IpRange{{CidrIp: aws.String("0.0.0.0/0")}}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.client.RevokeSecurityGroupIngress(t.Context(), &ec2.RevokeSecurityGroupIngressInput{GroupId: aws.String(id),
		IpPermissions: []types.IpPermission{{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22), IpRanges: []types.IpRange{{CidrIp: aws.String("10.0.0.0/8")}}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := web.CheckApply(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	wantPlan = []string{"authorize ingress tcp 22 from 10.0.0.0/8", "revoke ingress tcp 3306 from 0.0.0.0/0 (not in the spec)"}
	if got := web.Changes(); !slices.Equal(got, wantPlan) {
		t.Errorf("Changes() after hand edits = %q; want %q", got, wantPlan)
	}
	if checkSG(t, web) {
		t.Error("CheckApply() after hand edits = true; want a repair")
	}
	if got := w.groupRules(t, id); !slices.Equal(got, want) {
		t.Errorf("rules after the repair = %q; want %q", got, want)
	}

	// A restarted kiln finds the group by its tags: nothing new.
	again := w.securityGroup("web", func(r *SecurityGroup) { r.Description, r.Ingress, r.Egress = web.Description, web.Ingress, web.Egress })
	if !checkSG(t, again) || again.Outputs()["group_id"] != id || w.sim.Calls("CreateSecurityGroup") != 2 {
		t.Errorf("a new resource for the same group: outputs %v, %d creates; want the same group, no create", again.Outputs(), w.sim.Calls("CreateSecurityGroup"))
	}
	// The description cannot change on a live group.
	again.Description = "other"
	if _, err := again.CheckApply(t.Context(), true); err == nil || !engine.IsPermanent(err) || !strings.Contains(err.Error(), `description is "web servers", spec wants "other"`) {
		t.Errorf("CheckApply(new description) = %v; want a permanent error naming both", err)
	}

	// An instance uses the group by reference.
	inst := w.instance("app", func(r *Instance) { r.SecurityGroups = []string{id} })
	checkApply(t, inst)
	out, err := w.client.DescribeInstances(t.Context(), &ec2.DescribeInstancesInput{Filters: []types.Filter{{Name: aws.String("instance.group-id"), Values: []string{id}}}})
	if err != nil || len(out.Reservations) != 1 {
		t.Errorf("DescribeInstances(instance.group-id=%s) = %+v, %v; want the instance", id, out, err)
	}
}

func checkSG(t *testing.T, r *SecurityGroup) bool {
	t.Helper()
	ok, err := r.CheckApply(t.Context(), true)
	if err != nil {
		t.Fatalf("CheckApply() error = %v", err)
	}
	return ok
}

func TestSecurityGroupValidate(t *testing.T) {
	tests := []struct {
		rules []Rule
		want  string
	}{
		{[]Rule{{Protocol: "tcp", CIDRs: []string{"0.0.0.0/0"}}}, "ingress[0].ports: required with tcp"},
		{[]Rule{{Protocol: "tcpx", Ports: "22", CIDRs: []string{"0.0.0.0/0"}}}, "ingress[0].protocol: want tcp, udp, icmp"},
		{[]Rule{{Protocol: "tcp", Ports: "90-80", CIDRs: []string{"0.0.0.0/0"}}}, "ingress[0].ports: want a port"},
		{[]Rule{{Protocol: "tcp", Ports: "22", CIDRs: []string{"10.0.0.0/33"}}}, "ingress[0].cidrs[0]: want a CIDR block"},
		{[]Rule{{Protocol: "tcp", Ports: "22"}}, "ingress[0]: needs at least one of cidrs, groups, prefix_lists"},
		{[]Rule{{Protocol: "all", Ports: "22", CIDRs: []string{"0.0.0.0/0"}}}, "ingress[0].ports: not with protocol all"},
		{[]Rule{{Protocol: "tcp", Ports: "22", Groups: []string{"web"}}}, "ingress[0].groups[0]: want a group id"},
	}
	for _, tt := range tests {
		err := (&SecurityGroup{Ingress: tt.rules}).Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate(%+v) = %v; want %q", tt.rules, err, tt.want)
		}
	}
	if err := (&SecurityGroup{Ingress: []Rule{{Protocol: "tcp", Ports: "22", Groups: []string{"${aws:security_group/lb.group_id}"}}}}).Validate(); err != nil {
		t.Errorf("Validate(reference) = %v; want nil", err)
	}
}
