package awssim

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

const account = "123456789012"

// launchOne runs one instance (with profile, when given), steps it to
// running and returns its id.
func launchOne(t *testing.T, s *Sim, c *ec2.Client, profile *types.IamInstanceProfileSpecification) string {
	t.Helper()
	out, err := c.RunInstances(t.Context(), &ec2.RunInstancesInput{
		ImageId: aws.String(baseImage(t, c)), InstanceType: types.InstanceTypeT3Micro,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), IamInstanceProfile: profile,
	})
	if err != nil {
		t.Fatalf("RunInstances() = %v", err)
	}
	s.Advance(time.Minute)
	return aws.ToString(out.Instances[0].InstanceId)
}

// associations lists the instance's associations through the SDK.
func associations(t *testing.T, c *ec2.Client, id string) []types.IamInstanceProfileAssociation {
	t.Helper()
	out, err := c.DescribeIamInstanceProfileAssociations(t.Context(), &ec2.DescribeIamInstanceProfileAssociationsInput{
		Filters: []types.Filter{{Name: aws.String("instance-id"), Values: []string{id}}},
	})
	if err != nil {
		t.Fatalf("DescribeIamInstanceProfileAssociations() = %v", err)
	}
	return out.IamInstanceProfileAssociations
}

// profileOf is the instance profile ARN DescribeInstances reports.
func profileOf(t *testing.T, c *ec2.Client, id string) string {
	t.Helper()
	out, err := c.DescribeInstances(t.Context(), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatalf("DescribeInstances() = %v", err)
	}
	in := out.Reservations[0].Instances[0]
	if in.IamInstanceProfile == nil {
		return ""
	}
	if !strings.HasPrefix(aws.ToString(in.IamInstanceProfile.Id), "AIPA") {
		t.Errorf("profile id = %q; want AIPA...", aws.ToString(in.IamInstanceProfile.Id))
	}
	return aws.ToString(in.IamInstanceProfile.Arn)
}

func TestIamProfileAtLaunch(t *testing.T) {
	s, c := newTestSim(t, Options{})
	id := launchOne(t, s, c, &types.IamInstanceProfileSpecification{Name: aws.String("web")})
	as := associations(t, c, id)
	if len(as) != 1 {
		t.Fatalf("associations = %+v; want one", as)
	}
	a := as[0]
	wantArn := "arn:aws:iam::" + account + ":instance-profile/web"
	if !assocIDRE.MatchString(aws.ToString(a.AssociationId)) || aws.ToString(a.InstanceId) != id ||
		a.State != types.IamInstanceProfileAssociationStateAssociated || aws.ToString(a.IamInstanceProfile.Arn) != wantArn || a.Timestamp == nil {
		t.Errorf("association = %+v; want %s associated with %s", a, id, wantArn)
	}
	if got := profileOf(t, c, id); got != wantArn {
		t.Errorf("DescribeInstances profile = %q; want %q", got, wantArn)
	}
	if info, _ := s.Instance(id); info.IAMProfile != wantArn {
		t.Errorf("Instance().IAMProfile = %q; want %q", info.IAMProfile, wantArn)
	}
	// An ARN with a path is kept as given.
	pathArn := "arn:aws:iam::" + account + ":instance-profile/team/app/api"
	id2 := launchOne(t, s, c, &types.IamInstanceProfileSpecification{Arn: aws.String(pathArn)})
	if got := profileOf(t, c, id2); got != pathArn {
		t.Errorf("DescribeInstances profile = %q; want %q", got, pathArn)
	}
	// A name IAM would refuse is refused at launch.
	_, err := c.RunInstances(t.Context(), &ec2.RunInstancesInput{
		ImageId: aws.String(baseImage(t, c)), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		IamInstanceProfile: &types.IamInstanceProfileSpecification{Name: aws.String("no spaces")},
	})
	if got := errCode(err); got != "InvalidParameterValue" {
		t.Errorf("RunInstances(bad profile name) code = %q; want InvalidParameterValue", got)
	}
}

func TestIamProfileAssociateReplaceDisassociate(t *testing.T) {
	s, c := newTestSim(t, Options{})
	ctx := t.Context()
	id := launchOne(t, s, c, nil)
	if as := associations(t, c, id); len(as) != 0 {
		t.Fatalf("associations of an instance launched without a profile = %+v; want none", as)
	}
	if got := profileOf(t, c, id); got != "" {
		t.Fatalf("DescribeInstances profile = %q; want none", got)
	}

	// Associate: associating at first, associated a little later.
	out, err := c.AssociateIamInstanceProfile(ctx, &ec2.AssociateIamInstanceProfileInput{
		InstanceId: aws.String(id), IamInstanceProfile: &types.IamInstanceProfileSpecification{Name: aws.String("web")},
	})
	if err != nil {
		t.Fatalf("AssociateIamInstanceProfile() = %v", err)
	}
	first := out.IamInstanceProfileAssociation
	if first.State != types.IamInstanceProfileAssociationStateAssociating || aws.ToString(first.InstanceId) != id ||
		!strings.HasPrefix(aws.ToString(first.AssociationId), "iip-assoc-") {
		t.Errorf("AssociateIamInstanceProfile() = %+v; want an associating iip-assoc- for %s", first, id)
	}
	if got, want := profileOf(t, c, id), "arn:aws:iam::"+account+":instance-profile/web"; got != want {
		t.Errorf("DescribeInstances profile = %q; want %q", got, want)
	}
	s.Advance(time.Minute)
	if as := associations(t, c, id); len(as) != 1 || as[0].State != types.IamInstanceProfileAssociationStateAssociated {
		t.Errorf("associations after a minute = %+v; want one associated", as)
	}
	// A second association is refused.
	_, err = c.AssociateIamInstanceProfile(ctx, &ec2.AssociateIamInstanceProfileInput{
		InstanceId: aws.String(id), IamInstanceProfile: &types.IamInstanceProfileSpecification{Name: aws.String("other")},
	})
	if got := errCode(err); got != "IncorrectState" {
		t.Errorf("second AssociateIamInstanceProfile() code = %q; want IncorrectState", got)
	}

	// Replace: a new association id with the new profile; the old id is gone.
	newArn := "arn:aws:iam::" + account + ":instance-profile/ops/admin"
	rep, err := c.ReplaceIamInstanceProfileAssociation(ctx, &ec2.ReplaceIamInstanceProfileAssociationInput{
		AssociationId: first.AssociationId, IamInstanceProfile: &types.IamInstanceProfileSpecification{Arn: aws.String(newArn)},
	})
	if err != nil {
		t.Fatalf("ReplaceIamInstanceProfileAssociation() = %v", err)
	}
	second := rep.IamInstanceProfileAssociation
	if aws.ToString(second.AssociationId) == aws.ToString(first.AssociationId) || aws.ToString(second.IamInstanceProfile.Arn) != newArn ||
		second.State != types.IamInstanceProfileAssociationStateAssociating {
		t.Errorf("ReplaceIamInstanceProfileAssociation() = %+v; want a new associating association with %s", second, newArn)
	}
	if got := profileOf(t, c, id); got != newArn {
		t.Errorf("DescribeInstances profile after replace = %q; want %q", got, newArn)
	}
	if as := associations(t, c, id); len(as) != 1 || aws.ToString(as[0].AssociationId) != aws.ToString(second.AssociationId) {
		t.Errorf("associations after replace = %+v; want only %s", as, aws.ToString(second.AssociationId))
	}
	_, err = c.DescribeIamInstanceProfileAssociations(ctx, &ec2.DescribeIamInstanceProfileAssociationsInput{AssociationIds: []string{aws.ToString(first.AssociationId)}})
	if got := errCode(err); got != "InvalidAssociationID.NotFound" {
		t.Errorf("Describe of the replaced association code = %q; want InvalidAssociationID.NotFound", got)
	}

	// Replace needs a running instance.
	if err := s.StopInstance(id); err != nil {
		t.Fatal(err)
	}
	s.Advance(time.Minute)
	_, err = c.ReplaceIamInstanceProfileAssociation(ctx, &ec2.ReplaceIamInstanceProfileAssociationInput{
		AssociationId: second.AssociationId, IamInstanceProfile: &types.IamInstanceProfileSpecification{Name: aws.String("web")},
	})
	if got := errCode(err); got != "IncorrectState" {
		t.Errorf("ReplaceIamInstanceProfileAssociation() on a stopped instance code = %q; want IncorrectState", got)
	}

	// Disassociate (works on a stopped instance): disassociating, then gone;
	// no new association until it is gone.
	dis, err := c.DisassociateIamInstanceProfile(ctx, &ec2.DisassociateIamInstanceProfileInput{AssociationId: second.AssociationId})
	if err != nil {
		t.Fatalf("DisassociateIamInstanceProfile() = %v", err)
	}
	if dis.IamInstanceProfileAssociation.State != types.IamInstanceProfileAssociationStateDisassociating {
		t.Errorf("DisassociateIamInstanceProfile() state = %s; want disassociating", dis.IamInstanceProfileAssociation.State)
	}
	if got := profileOf(t, c, id); got != "" {
		t.Errorf("DescribeInstances profile while disassociating = %q; want none", got)
	}
	_, err = c.AssociateIamInstanceProfile(ctx, &ec2.AssociateIamInstanceProfileInput{
		InstanceId: aws.String(id), IamInstanceProfile: &types.IamInstanceProfileSpecification{Name: aws.String("web")},
	})
	if got := errCode(err); got != "IncorrectState" {
		t.Errorf("AssociateIamInstanceProfile() while disassociating code = %q; want IncorrectState", got)
	}
	_, err = c.DisassociateIamInstanceProfile(ctx, &ec2.DisassociateIamInstanceProfileInput{AssociationId: second.AssociationId})
	if got := errCode(err); got != "IncorrectState" {
		t.Errorf("second DisassociateIamInstanceProfile() code = %q; want IncorrectState", got)
	}
	s.Advance(time.Minute)
	if as := associations(t, c, id); len(as) != 0 {
		t.Errorf("associations after disassociation = %+v; want none", as)
	}
	if _, err := c.AssociateIamInstanceProfile(ctx, &ec2.AssociateIamInstanceProfileInput{
		InstanceId: aws.String(id), IamInstanceProfile: &types.IamInstanceProfileSpecification{Name: aws.String("web")},
	}); err != nil {
		t.Errorf("AssociateIamInstanceProfile() on a stopped instance = %v", err)
	}

	// Termination ends the association.
	if err := s.TerminateInstance(id); err != nil {
		t.Fatal(err)
	}
	s.Advance(time.Minute)
	if as := associations(t, c, id); len(as) != 0 {
		t.Errorf("associations of a terminated instance = %+v; want none", as)
	}
}

func TestIamProfileErrors(t *testing.T) {
	s, c := newTestSim(t, Options{})
	id := launchOne(t, s, c, nil)
	missing := "iip-assoc-0123456789abcdef0"
	web := &types.IamInstanceProfileSpecification{Name: aws.String("web")}
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"associate unknown instance", func() error {
			_, err := c.AssociateIamInstanceProfile(t.Context(), &ec2.AssociateIamInstanceProfileInput{InstanceId: aws.String("i-0123456789abcdef0"), IamInstanceProfile: web})
			return err
		}, "InvalidInstanceID.NotFound"},
		{"associate malformed instance", func() error {
			_, err := c.AssociateIamInstanceProfile(t.Context(), &ec2.AssociateIamInstanceProfileInput{InstanceId: aws.String("web-1"), IamInstanceProfile: web})
			return err
		}, "InvalidInstanceID.Malformed"},
		{"associate bad arn", func() error {
			_, err := c.AssociateIamInstanceProfile(t.Context(), &ec2.AssociateIamInstanceProfileInput{InstanceId: aws.String(id),
				IamInstanceProfile: &types.IamInstanceProfileSpecification{Arn: aws.String("arn:aws:iam::123:role/web")}})
			return err
		}, "InvalidParameterValue"},
		{"associate no profile", func() error {
			_, err := c.AssociateIamInstanceProfile(t.Context(), &ec2.AssociateIamInstanceProfileInput{InstanceId: aws.String(id), IamInstanceProfile: &types.IamInstanceProfileSpecification{}})
			return err
		}, "MissingParameter"},
		{"replace unknown", func() error {
			_, err := c.ReplaceIamInstanceProfileAssociation(t.Context(), &ec2.ReplaceIamInstanceProfileAssociationInput{AssociationId: aws.String(missing), IamInstanceProfile: web})
			return err
		}, "InvalidAssociationID.NotFound"},
		{"replace malformed", func() error {
			_, err := c.ReplaceIamInstanceProfileAssociation(t.Context(), &ec2.ReplaceIamInstanceProfileAssociationInput{AssociationId: aws.String(id), IamInstanceProfile: web})
			return err
		}, "InvalidParameterValue"},
		{"disassociate unknown", func() error {
			_, err := c.DisassociateIamInstanceProfile(t.Context(), &ec2.DisassociateIamInstanceProfileInput{AssociationId: aws.String(missing)})
			return err
		}, "InvalidAssociationID.NotFound"},
		{"describe unknown", func() error {
			_, err := c.DescribeIamInstanceProfileAssociations(t.Context(), &ec2.DescribeIamInstanceProfileAssociationsInput{AssociationIds: []string{missing}})
			return err
		}, "InvalidAssociationID.NotFound"},
		{"describe bad filter", func() error {
			_, err := c.DescribeIamInstanceProfileAssociations(t.Context(), &ec2.DescribeIamInstanceProfileAssociationsInput{
				Filters: []types.Filter{{Name: aws.String("profile-name"), Values: []string{"web"}}}})
			return err
		}, "InvalidParameterValue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errCode(tt.call()); got != tt.want {
				t.Errorf("code = %q; want %q", got, tt.want)
			}
		})
	}
}

func TestIamProfileDescribePages(t *testing.T) {
	s, c := newTestSim(t, Options{})
	const n = 7
	for range n {
		launchOne(t, s, c, &types.IamInstanceProfileSpecification{Name: aws.String("web")})
	}
	p := ec2.NewDescribeIamInstanceProfileAssociationsPaginator(c, &ec2.DescribeIamInstanceProfileAssociationsInput{
		MaxResults: aws.Int32(5),
		Filters:    []types.Filter{{Name: aws.String("state"), Values: []string{"associated"}}},
	})
	seen, pages := map[string]bool{}, 0
	for p.HasMorePages() {
		out, err := p.NextPage(t.Context())
		if err != nil {
			t.Fatalf("NextPage() = %v", err)
		}
		pages++
		for _, a := range out.IamInstanceProfileAssociations {
			seen[aws.ToString(a.AssociationId)] = true
		}
	}
	if len(seen) != n || pages != 2 {
		t.Errorf("%d associations in %d pages; want %d in 2", len(seen), pages, n)
	}
}

func TestSetInstanceProfileOutOfBand(t *testing.T) {
	s, c := newTestSim(t, Options{})
	id := launchOne(t, s, c, &types.IamInstanceProfileSpecification{Name: aws.String("web")})
	srv := httptest.NewServer(s)
	defer srv.Close()
	res, err := http.Post(srv.URL+"/_sim/instances/"+id+"/profile", "application/json", strings.NewReader(`{"profile":"intruder"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("POST profile = %d; want 200", res.StatusCode)
	}
	as := associations(t, c, id)
	if want := "arn:aws:iam::" + account + ":instance-profile/intruder"; len(as) != 1 || aws.ToString(as[0].IamInstanceProfile.Arn) != want {
		t.Errorf("associations = %+v; want one with %s", as, want)
	}
	if err := s.SetInstanceProfile(id, ""); err != nil {
		t.Fatal(err)
	}
	if got := profileOf(t, c, id); got != "" {
		t.Errorf("profile after removal = %q; want none", got)
	}
	if err := s.SetInstanceProfile("i-0123456789abcdef0", "web"); err == nil {
		t.Error("SetInstanceProfile(unknown instance) = nil; want ErrNotFound")
	}
}

func TestIamProfileThrottleBuckets(t *testing.T) {
	// The three writes share the mutating bucket (burst 50); the describe
	// takes the non-mutating one (burst 100). Failed calls spend tokens too.
	s, c := newTestSim(t, Options{Throttle: true})
	missing := aws.String("iip-assoc-0123456789abcdef0")
	for i := range 51 {
		_, err := c.DisassociateIamInstanceProfile(t.Context(), &ec2.DisassociateIamInstanceProfileInput{AssociationId: missing})
		want := "InvalidAssociationID.NotFound"
		if i == 50 {
			want = "RequestLimitExceeded"
		}
		if got := errCode(err); got != want {
			t.Fatalf("DisassociateIamInstanceProfile() call %d code = %q; want %q", i+1, got, want)
		}
	}
	for i := range 101 {
		_, err := c.DescribeIamInstanceProfileAssociations(t.Context(), &ec2.DescribeIamInstanceProfileAssociationsInput{})
		want := ""
		if i == 100 {
			want = "RequestLimitExceeded"
		}
		if got := errCode(err); got != want {
			t.Fatalf("DescribeIamInstanceProfileAssociations() call %d code = %q; want %q", i+1, got, want)
		}
	}
	if s.Throttled("DisassociateIamInstanceProfile") != 1 {
		t.Errorf("Throttled(DisassociateIamInstanceProfile) = %d; want 1", s.Throttled("DisassociateIamInstanceProfile"))
	}
}
