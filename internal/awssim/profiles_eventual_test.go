package awssim

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"
)

// TestEventualProfileOtherKinds: under the eventual profile a new security
// group and key pair answer NotFound to reads and a new Route 53 record is
// not listed, until their window (at most NotFound) is over.
func TestEventualProfileOtherKinds(t *testing.T) {
	s, c, url := faultSim(t, &Profile{Seed: 7, Eventual: &EventualFaults{NotFound: 2 * time.Second}}, 1)
	ctx := t.Context()
	sg, err := c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("web"), Description: aws.String("web")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("ops")}); err != nil {
		t.Fatal(err)
	}
	r53 := route53.NewFromConfig(ClientConfig(url), func(o *route53.Options) { o.RetryMaxAttempts = 1 })
	zone, err := r53.CreateHostedZone(ctx, &route53.CreateHostedZoneInput{Name: aws.String("example.com"), CallerReference: aws.String("z1")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r53.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: zone.HostedZone.Id,
		ChangeBatch: &r53types.ChangeBatch{Changes: []r53types.Change{{Action: r53types.ChangeActionCreate, ResourceRecordSet: &r53types.ResourceRecordSet{
			Name: aws.String("www.example.com"), Type: r53types.RRTypeA, TTL: aws.Int64(60),
			ResourceRecords: []r53types.ResourceRecord{{Value: aws.String("192.0.2.1")}}}}}}}); err != nil {
		t.Fatal(err)
	}
	records := func() int {
		out, err := r53.ListResourceRecordSets(ctx, &route53.ListResourceRecordSetsInput{HostedZoneId: zone.HostedZone.Id,
			StartRecordName: aws.String("www.example.com"), StartRecordType: r53types.RRTypeA})
		if err != nil {
			t.Fatalf("ListResourceRecordSets() = %v", err)
		}
		n := 0
		for _, rs := range out.ResourceRecordSets {
			if aws.ToString(rs.Name) == "www.example.com." {
				n++
			}
		}
		return n
	}
	check := func(when string, want bool) {
		t.Helper()
		_, err := c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{aws.ToString(sg.GroupId)}})
		if got := errCode(err) != "InvalidGroup.NotFound"; got != want {
			t.Errorf("%s: DescribeSecurityGroups() = %v; want found %v", when, err, want)
		}
		_, err = c.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{KeyNames: []string{"ops"}})
		if got := errCode(err) != "InvalidKeyPair.NotFound"; got != want {
			t.Errorf("%s: DescribeKeyPairs() = %v; want found %v", when, err, want)
		}
		if got := records() == 1; got != want {
			t.Errorf("%s: www.example.com listed %v; want %v", when, got, want)
		}
	}
	check("right after the creates", false)
	s.Advance(2 * time.Second) // the window is at most 2 s
	check("after the window", true)
	if st := s.FaultStats(); st.NotYet != 3 {
		t.Errorf("FaultStats().NotYet = %d; want 3 windows", st.NotYet)
	}
}
