package awssim

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// post sends a raw Query request and returns the status and body.
func post(t testing.TB, s *Sim, form string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body)
}

func TestProtocolErrors(t *testing.T) {
	s, _ := newTestSim(t, Options{})
	tests := []struct {
		name, form string
		status     int
		want       string
	}{
		{"unknown action", "Action=Frobnicate&Version=2016-11-15", 400, "<Code>InvalidAction</Code>"},
		{"no action", "Version=2016-11-15", 400, "<Code>MissingAction</Code>"},
		{"no version", "Action=DescribeInstances", 400, "<Code>MissingParameter</Code>"},
		{"bad escape", "Action=DescribeInstances&Version=2016-11-15&X=%zz", 400, "MalformedQueryString"},
		{"asg unknown", "Action=Frobnicate&Version=2011-01-01", 400, "<ErrorResponse xmlns=\"http://autoscaling.amazonaws.com/doc/2011-01-01/\"><Error><Type>Sender</Type><Code>InvalidAction</Code>"},
		{"run no counts", "Action=RunInstances&Version=2016-11-15&ImageId=ami-12345678", 400, "<Code>MissingParameter</Code>"},
		{"run bad count", "Action=RunInstances&Version=2016-11-15&ImageId=ami-12345678&MinCount=x&MaxCount=1", 400, "<Code>InvalidParameterValue</Code>"},
		{"run malformed ami", "Action=RunInstances&Version=2016-11-15&ImageId=foo&MinCount=1&MaxCount=1", 400, "<Code>InvalidAMIID.Malformed</Code>"},
		{"run bad user data", "Action=RunInstances&Version=2016-11-15&ImageId=ami-12345678&MinCount=1&MaxCount=1&UserData=%%%", 400, "MalformedQueryString"},
		{"run bad base64", "Action=RunInstances&Version=2016-11-15&ImageId=ami-12345678&MinCount=1&MaxCount=1&UserData=***", 400, "<Code>InvalidParameterValue</Code>"},
		{"stop none", "Action=StopInstances&Version=2016-11-15", 400, "<Code>MissingParameter</Code>"},
		{"describe malformed id", "Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-xyz", 400, "<Code>InvalidInstanceID.Malformed</Code>"},
		{"bad token", "Action=DescribeInstances&Version=2016-11-15&NextToken=zzz&MaxResults=5", 400, "<Code>InvalidPaginationToken</Code>"},
		{"dry run", "Action=DescribeInstances&Version=2016-11-15&DryRun=true", 412, "<Code>DryRunOperation</Code>"},
		{"filter without name", "Action=DescribeInstances&Version=2016-11-15&Filter.1.Value.1=x", 400, "<Code>InvalidParameterValue</Code>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := post(t, s, tt.form)
			if status != tt.status || !strings.Contains(body, tt.want) {
				t.Fatalf("POST %s = %d %s; want %d with %s", tt.form, status, body, tt.status, tt.want)
			}
		})
	}
	// A GET with a query string works too, as for the CLI's older signers.
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/?Action=DescribeInstances&Version=2016-11-15", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>`) {
		t.Fatalf("GET DescribeInstances = %d %s", rec.Code, rec.Body.String())
	}
}

func TestAutoScalingRouting(t *testing.T) {
	s := New(Options{})
	srv := httptest.NewServer(s)
	defer srv.Close()
	ac := autoscaling.NewFromConfig(ClientConfig(srv.URL), func(o *autoscaling.Options) { o.RetryMaxAttempts = 1 })
	_, err := ac.DescribeAutoScalingGroups(t.Context(), &autoscaling.DescribeAutoScalingGroupsInput{})
	if _, ok := autoscalingActions["DescribeAutoScalingGroups"]; ok {
		if err != nil {
			t.Fatalf("DescribeAutoScalingGroups() = %v", err)
		}
		return
	}
	if got := errCode(err); got != "InvalidAction" {
		t.Fatalf("DescribeAutoScalingGroups() code = %q; want InvalidAction (routed to the Auto Scaling table)", got)
	}
}

func TestRunInstancesErrors(t *testing.T) {
	_, c := newTestSim(t, Options{InstanceLimit: 3})
	ami := baseImage(t, c)
	tests := []struct {
		name string
		in   ec2.RunInstancesInput
		want string
	}{
		{"unknown ami", ec2.RunInstancesInput{ImageId: aws.String("ami-0123456789abcdef0")}, "InvalidAMIID.NotFound"},
		{"malformed ami", ec2.RunInstancesInput{ImageId: aws.String("ami-xyz")}, "InvalidAMIID.Malformed"},
		{"bad type", ec2.RunInstancesInput{ImageId: aws.String(ami), InstanceType: "t9.huge"}, "InvalidParameterValue"},
		{"min > max", ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(3), MaxCount: aws.Int32(2)}, "InvalidParameterValue"},
		{"unknown subnet", ec2.RunInstancesInput{ImageId: aws.String(ami), SubnetId: aws.String("subnet-0123456789abcdef0")}, "InvalidSubnetID.NotFound"},
		{"unknown group", ec2.RunInstancesInput{ImageId: aws.String(ami), SecurityGroupIds: []string{"sg-0123456789abcdef0"}}, "InvalidGroup.NotFound"},
		{"bad shutdown", ec2.RunInstancesInput{ImageId: aws.String(ami), InstanceInitiatedShutdownBehavior: "explode"}, "InvalidParameterValue"},
		{"limit", ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(4), MaxCount: aws.Int32(4)}, "InstanceLimitExceeded"},
		{"aws tag", ec2.RunInstancesInput{ImageId: aws.String(ami), TagSpecifications: []types.TagSpecification{{ResourceType: "instance", Tags: []types.Tag{{Key: aws.String("aws:x"), Value: aws.String("y")}}}}}, "InvalidParameterValue"},
		{"bad tag type", ec2.RunInstancesInput{ImageId: aws.String(ami), TagSpecifications: []types.TagSpecification{{ResourceType: "image", Tags: []types.Tag{{Key: aws.String("x"), Value: aws.String("y")}}}}}, "InvalidParameterValue"},
		{"long token", ec2.RunInstancesInput{ImageId: aws.String(ami), ClientToken: aws.String(strings.Repeat("x", 65))}, "InvalidParameterValue"},
		{"bad zone", ec2.RunInstancesInput{ImageId: aws.String(ami), Placement: &types.Placement{AvailabilityZone: aws.String("eu-west-9z")}}, "InvalidParameterValue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			if in.MinCount == nil {
				in.MinCount, in.MaxCount = aws.Int32(1), aws.Int32(1)
			}
			_, err := c.RunInstances(t.Context(), &in)
			if got := errCode(err); got != tt.want {
				t.Fatalf("RunInstances() code = %q; want %q", got, tt.want)
			}
		})
	}
	// A zone picks its default subnet.
	out, err := c.RunInstances(t.Context(), &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		Placement: &types.Placement{AvailabilityZone: aws.String("us-east-1c")}, DisableApiStop: aws.Bool(true)})
	if err != nil || aws.ToString(out.Instances[0].Placement.AvailabilityZone) != "us-east-1c" {
		t.Fatalf("RunInstances(zone c) = %v, %v; want us-east-1c", out, err)
	}
	if _, err := c.TerminateInstances(t.Context(), &ec2.TerminateInstancesInput{InstanceIds: []string{*out.Instances[0].InstanceId}}); err != nil {
		t.Fatal(err)
	}
	// MinCount ≤ room < MaxCount launches what fits.
	out, err = c.RunInstances(t.Context(), &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(10)})
	if err != nil || len(out.Instances) != 3 {
		t.Fatalf("RunInstances(1..10, limit 3) = %d instances, %v; want 3", len(out.Instances), err)
	}
}

func TestRunInstancesFields(t *testing.T) {
	s, c := newTestSim(t, Options{})
	ctx := t.Context()
	ami := baseImage(t, c)
	sg, err := c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("web"), Description: aws.String("web servers")})
	if err != nil {
		t.Fatalf("CreateSecurityGroup() = %v", err)
	}
	subnets := s.DefaultSubnets()
	ins := run(t, c, &ec2.RunInstancesInput{
		ImageId: aws.String(ami), InstanceType: types.InstanceTypeT3Small, MinCount: aws.Int32(2), MaxCount: aws.Int32(2),
		SubnetId: aws.String(subnets[1]), SecurityGroupIds: []string{*sg.GroupId}, KeyName: aws.String("ops"),
		IamInstanceProfile:                &types.IamInstanceProfileSpecification{Name: aws.String("builder")},
		UserData:                          aws.String(base64.StdEncoding.EncodeToString([]byte("hello"))),
		InstanceInitiatedShutdownBehavior: types.ShutdownBehaviorTerminate,
	})
	if len(ins) != 2 {
		t.Fatalf("RunInstances(2) = %d instances", len(ins))
	}
	in := ins[1]
	checks := []struct{ name, got, want string }{
		{"type", string(in.InstanceType), "t3.small"},
		{"subnet", aws.ToString(in.SubnetId), subnets[1]},
		{"zone", aws.ToString(in.Placement.AvailabilityZone), "us-east-1b"},
		{"key", aws.ToString(in.KeyName), "ops"},
		{"group", aws.ToString(in.SecurityGroups[0].GroupId), *sg.GroupId},
		{"group name", aws.ToString(in.SecurityGroups[0].GroupName), "web"},
		{"profile", aws.ToString(in.IamInstanceProfile.Arn), "arn:aws:iam::123456789012:instance-profile/builder"},
		{"launch index", fmt.Sprint(aws.ToInt32(in.AmiLaunchIndex)), "1"},
		{"image", aws.ToString(in.ImageId), ami},
		{"arch", string(in.Architecture), "x86_64"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("instance %s = %q; want %q", ch.name, ch.got, ch.want)
		}
	}
	if aws.ToString(ins[0].InstanceId) == aws.ToString(ins[1].InstanceId) || aws.ToString(ins[0].PrivateIpAddress) == aws.ToString(ins[1].PrivateIpAddress) {
		t.Errorf("two instances share an id or ip")
	}
	s.Advance(time.Minute)
	d, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{*in.InstanceId}})
	if err != nil {
		t.Fatalf("DescribeInstances() = %v", err)
	}
	got := d.Reservations[0].Instances[0]
	if aws.ToString(got.PublicIpAddress) == "" || aws.ToString(got.PublicDnsName) == "" {
		t.Errorf("running instance has no public ip/dns")
	}
	if aws.ToString(d.Reservations[0].OwnerId) != "123456789012" || aws.ToString(d.Reservations[0].ReservationId) == "" {
		t.Errorf("reservation owner/id = %v/%v", d.Reservations[0].OwnerId, d.Reservations[0].ReservationId)
	}
	attr, err := c.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{InstanceId: in.InstanceId, Attribute: types.InstanceAttributeNameUserData})
	if err != nil {
		t.Fatalf("DescribeInstanceAttribute(userData) = %v", err)
	}
	if ud, _ := base64.StdEncoding.DecodeString(aws.ToString(attr.UserData.Value)); string(ud) != "hello" {
		t.Errorf("userData = %q; want hello", ud)
	}
	attr, err = c.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{InstanceId: in.InstanceId, Attribute: types.InstanceAttributeNameInstanceInitiatedShutdownBehavior})
	if err != nil || aws.ToString(attr.InstanceInitiatedShutdownBehavior.Value) != "terminate" {
		t.Errorf("shutdown behavior = %v, %v; want terminate", attr, err)
	}
}

func TestClientToken(t *testing.T) {
	s, c := newTestSim(t, Options{})
	ctx := t.Context()
	ami := baseImage(t, c)
	in := func(typ types.InstanceType) *ec2.RunInstancesInput {
		return &ec2.RunInstancesInput{ImageId: aws.String(ami), InstanceType: typ, MinCount: aws.Int32(1), MaxCount: aws.Int32(1), ClientToken: aws.String("bake-42")}
	}
	a, err := c.RunInstances(ctx, in(types.InstanceTypeT3Micro))
	if err != nil {
		t.Fatalf("RunInstances() = %v", err)
	}
	s.Advance(time.Minute)
	b, err := c.RunInstances(ctx, in(types.InstanceTypeT3Micro))
	if err != nil {
		t.Fatalf("RunInstances(same token) = %v", err)
	}
	if *a.Instances[0].InstanceId != *b.Instances[0].InstanceId || *a.ReservationId != *b.ReservationId {
		t.Fatalf("same token launched %s then %s; want the same instance", *a.Instances[0].InstanceId, *b.Instances[0].InstanceId)
	}
	if b.Instances[0].State.Name != types.InstanceStateNameRunning {
		t.Errorf("repeat shows state %s; want the current state running", b.Instances[0].State.Name)
	}
	if n := len(s.Instances()); n != 1 {
		t.Fatalf("instances = %d; want 1", n)
	}
	_, err = c.RunInstances(ctx, in(types.InstanceTypeT3Large))
	if got := errCode(err); got != "IdempotentParameterMismatch" {
		t.Fatalf("RunInstances(same token, other type) = %q; want IdempotentParameterMismatch", got)
	}
	d, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []types.Filter{{Name: aws.String("client-token"), Values: []string{"bake-42"}}}})
	if err != nil || len(d.Reservations) != 1 {
		t.Fatalf("DescribeInstances(client-token) = %v, %v", d, err)
	}
}

func TestIncorrectInstanceState(t *testing.T) {
	s, c := newTestSim(t, Options{})
	ctx := t.Context()
	ami := baseImage(t, c)
	id := *run(t, c, &ec2.RunInstancesInput{ImageId: aws.String(ami)})[0].InstanceId
	ids := []string{id}
	// pending: cannot stop or reboot; start is a no-op.
	if _, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: ids}); errCode(err) != "IncorrectInstanceState" {
		t.Errorf("StopInstances(pending) = %v; want IncorrectInstanceState", err)
	}
	if _, err := c.RebootInstances(ctx, &ec2.RebootInstancesInput{InstanceIds: ids}); errCode(err) != "IncorrectInstanceState" {
		t.Errorf("RebootInstances(pending) = %v; want IncorrectInstanceState", err)
	}
	if _, err := c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: ids}); err != nil {
		t.Errorf("StartInstances(pending) = %v; want no-op", err)
	}
	s.Advance(time.Minute)
	if _, err := c.RebootInstances(ctx, &ec2.RebootInstancesInput{InstanceIds: ids}); err != nil {
		t.Errorf("RebootInstances(running) = %v", err)
	}
	_, err := c.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(id), InstanceType: &types.AttributeValue{Value: aws.String("t3.large")}})
	if errCode(err) != "IncorrectInstanceState" {
		t.Errorf("ModifyInstanceAttribute(running) = %v; want IncorrectInstanceState", err)
	}
	if _, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: ids}); err != nil {
		t.Fatalf("StopInstances() = %v", err)
	}
	if _, err := c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: ids}); errCode(err) != "IncorrectInstanceState" {
		t.Errorf("StartInstances(stopping) = %v; want IncorrectInstanceState", err)
	}
	s.Advance(time.Minute)
	for _, m := range []struct {
		name string
		in   ec2.ModifyInstanceAttributeInput
	}{
		{"type", ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(id), InstanceType: &types.AttributeValue{Value: aws.String("t3.large")}}},
		{"user data", ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(id), UserData: &types.SecureBlobAttributeValue{Value: []byte("#!/bin/sh\necho hi\n")}}},
	} {
		if _, err := c.ModifyInstanceAttribute(ctx, &m.in); err != nil {
			t.Errorf("ModifyInstanceAttribute(stopped, %s) = %v", m.name, err)
		}
	}
	attr, err := c.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{InstanceId: aws.String(id), Attribute: types.InstanceAttributeNameInstanceType})
	if err != nil || aws.ToString(attr.InstanceType.Value) != "t3.large" {
		t.Errorf("instanceType = %v, %v; want t3.large", attr, err)
	}
	attr, err = c.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{InstanceId: aws.String(id), Attribute: types.InstanceAttributeNameUserData})
	if ud, _ := base64.StdEncoding.DecodeString(aws.ToString(attr.UserData.Value)); err != nil || string(ud) != "#!/bin/sh\necho hi\n" {
		t.Errorf("userData = %q, %v", ud, err)
	}
	if _, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids}); err != nil {
		t.Fatalf("TerminateInstances() = %v", err)
	}
	s.Advance(time.Minute)
	if _, err := c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: ids}); errCode(err) != "IncorrectInstanceState" {
		t.Errorf("StartInstances(terminated) = %v; want IncorrectInstanceState", err)
	}
	if _, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: ids}); errCode(err) != "IncorrectInstanceState" {
		t.Errorf("StopInstances(terminated) = %v; want IncorrectInstanceState", err)
	}
	if _, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids}); err != nil {
		t.Errorf("TerminateInstances(terminated) = %v; want idempotent", err)
	}
	_, err = c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{"i-0123456789abcdef0", "i-0123456789abcdef1"}})
	if errCode(err) != "InvalidInstanceID.NotFound" {
		t.Errorf("TerminateInstances(unknown) = %v; want InvalidInstanceID.NotFound", err)
	}
	_, err = c.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{InstanceId: aws.String(id), Attribute: "bogus"})
	if errCode(err) != "InvalidParameterValue" {
		t.Errorf("DescribeInstanceAttribute(bogus) = %v; want InvalidParameterValue", err)
	}
}

func TestDescribeInstancesFilters(t *testing.T) {
	s, c := newTestSim(t, Options{})
	ctx := t.Context()
	ami := baseImage(t, c)
	var ids []string
	for i := range 12 {
		tags := []types.Tag{{Key: aws.String("Name"), Value: aws.String(fmt.Sprintf("web-%02d", i))}, {Key: aws.String("kiln:owner"), Value: aws.String("shop")}}
		if i%3 == 0 {
			tags = append(tags, types.Tag{Key: aws.String("role"), Value: aws.String("db")})
		}
		in := run(t, c, &ec2.RunInstancesInput{ImageId: aws.String(ami), TagSpecifications: []types.TagSpecification{{ResourceType: "instance", Tags: tags}}})
		ids = append(ids, *in[0].InstanceId)
	}
	s.Advance(time.Minute)
	if _, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: ids[:2]}); err != nil {
		t.Fatal(err)
	}
	count := func(fs ...types.Filter) int {
		t.Helper()
		n := 0
		p := ec2.NewDescribeInstancesPaginator(c, &ec2.DescribeInstancesInput{Filters: fs, MaxResults: aws.Int32(5)})
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatalf("DescribeInstances(%v) = %v", fs, err)
			}
			for _, r := range out.Reservations {
				n += len(r.Instances)
			}
		}
		return n
	}
	f := func(name string, values ...string) types.Filter {
		return types.Filter{Name: aws.String(name), Values: values}
	}
	tests := []struct {
		name string
		fs   []types.Filter
		want int
	}{
		{"all", nil, 12},
		{"tag exact", []types.Filter{f("tag:Name", "web-03")}, 1},
		{"tag wildcard", []types.Filter{f("tag:Name", "web-0*")}, 10},
		{"tag ?", []types.Filter{f("tag:Name", "web-1?")}, 2},
		{"tag values OR", []types.Filter{f("tag:Name", "web-01", "web-02")}, 2},
		{"tag-key", []types.Filter{f("tag-key", "role")}, 4},
		{"filters AND", []types.Filter{f("tag:kiln:owner", "shop"), f("tag:role", "db")}, 4},
		{"state", []types.Filter{f("instance-state-name", "stopping")}, 2},
		{"state and tag", []types.Filter{f("instance-state-name", "running"), f("tag:role", "db")}, 3},
		{"image", []types.Filter{f("image-id", ami)}, 12},
		{"instance-id", []types.Filter{f("instance-id", ids[4], ids[5])}, 2},
		{"no match", []types.Filter{f("tag:Name", "nope")}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := count(tt.fs...); got != tt.want {
				t.Fatalf("DescribeInstances(%s) = %d instances; want %d", tt.name, got, tt.want)
			}
		})
	}
	_, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []types.Filter{f("flavour", "x")}})
	if errCode(err) != "InvalidParameterValue" {
		t.Errorf("DescribeInstances(unknown filter) = %v; want InvalidParameterValue", err)
	}
	_, err = c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids[:1], MaxResults: aws.Int32(5)})
	if errCode(err) != "InvalidParameterCombination" {
		t.Errorf("DescribeInstances(ids + MaxResults) = %v; want InvalidParameterCombination", err)
	}
	for _, m := range []int32{4, 1001} {
		_, err = c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(m)})
		if errCode(err) != "InvalidParameterValue" {
			t.Errorf("DescribeInstances(MaxResults %d) = %v; want InvalidParameterValue", m, err)
		}
	}
	// Filters also apply next to ids.
	d, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids[:4], Filters: []types.Filter{f("instance-state-name", "running")}})
	if err != nil || len(d.Reservations) != 2 {
		t.Errorf("DescribeInstances(ids + state) = %d reservations, %v; want 2", len(d.Reservations), err)
	}
}

func TestDescribeInstanceStatus(t *testing.T) {
	s, c := newTestSim(t, Options{})
	ctx := t.Context()
	ami := baseImage(t, c)
	ins := run(t, c, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(7), MaxCount: aws.Int32(7)})
	list := func(all bool) []types.InstanceStatus {
		var out []types.InstanceStatus
		p := ec2.NewDescribeInstanceStatusPaginator(c, &ec2.DescribeInstanceStatusInput{IncludeAllInstances: aws.Bool(all), MaxResults: aws.Int32(5)})
		for p.HasMorePages() {
			pg, err := p.NextPage(ctx)
			if err != nil {
				t.Fatalf("DescribeInstanceStatus() = %v", err)
			}
			out = append(out, pg.InstanceStatuses...)
		}
		return out
	}
	if got := len(list(false)); got != 0 {
		t.Fatalf("status of pending instances = %d; want 0 without IncludeAllInstances", got)
	}
	if got := len(list(true)); got != 7 {
		t.Fatalf("status with IncludeAllInstances = %d; want 7", got)
	}
	s.Advance(20 * time.Second)
	st := list(false)
	if len(st) != 7 || st[0].InstanceStatus.Status != types.SummaryStatusInitializing {
		t.Fatalf("status after boot = %d, %v; want 7 initializing", len(st), st[0].InstanceStatus.Status)
	}
	s.Advance(3 * time.Minute)
	st = list(false)
	if st[0].InstanceStatus.Status != types.SummaryStatusOk || st[0].SystemStatus.Status != types.SummaryStatusOk {
		t.Fatalf("status later = %v/%v; want ok", st[0].InstanceStatus.Status, st[0].SystemStatus.Status)
	}
	out, err := c.DescribeInstanceStatus(ctx, &ec2.DescribeInstanceStatusInput{InstanceIds: []string{*ins[0].InstanceId}})
	if err != nil || len(out.InstanceStatuses) != 1 || out.InstanceStatuses[0].InstanceState.Name != types.InstanceStateNameRunning {
		t.Fatalf("DescribeInstanceStatus(id) = %v, %v", out, err)
	}
}

func TestConsoleOutput(t *testing.T) {
	s, c := newTestSim(t, Options{})
	ctx := t.Context()
	ami := baseImage(t, c)
	id := run(t, c, &ec2.RunInstancesInput{ImageId: aws.String(ami)})[0].InstanceId
	out, err := c.GetConsoleOutput(ctx, &ec2.GetConsoleOutputInput{InstanceId: id})
	if err != nil || out.Output != nil {
		t.Fatalf("GetConsoleOutput(pending) = %v, %v; want no output yet", out.Output, err)
	}
	s.Advance(15 * time.Second)
	if out, _ = c.GetConsoleOutput(ctx, &ec2.GetConsoleOutputInput{InstanceId: id}); out.Output != nil {
		t.Fatalf("console posted right at boot; want it after the console delay")
	}
	if out, _ = c.GetConsoleOutput(ctx, &ec2.GetConsoleOutputInput{InstanceId: id, Latest: aws.Bool(true)}); out.Output == nil {
		t.Fatalf("Latest console of a running instance is empty")
	}
	s.Advance(5 * time.Second)
	out, err = c.GetConsoleOutput(ctx, &ec2.GetConsoleOutputInput{InstanceId: id})
	if err != nil || out.Output == nil || out.Timestamp == nil {
		t.Fatalf("GetConsoleOutput(after delay) = %v, %v", out, err)
	}
	text, err := base64.StdEncoding.DecodeString(*out.Output)
	if err != nil || !strings.Contains(string(text), "Linux version") {
		t.Fatalf("console = %q, %v; want the boot banner", text, err)
	}
}

func TestEventualConsistency(t *testing.T) {
	s, c := newTestSim(t, Options{Consistency: 2 * time.Second})
	ctx := t.Context()
	ami := baseImage(t, c)
	id := *run(t, c, &ec2.RunInstancesInput{ImageId: aws.String(ami)})[0].InstanceId
	_, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if errCode(err) != "InvalidInstanceID.NotFound" {
		t.Fatalf("DescribeInstances(new id) = %v; want InvalidInstanceID.NotFound inside the window", err)
	}
	_, err = c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id}, Tags: []types.Tag{{Key: aws.String("a"), Value: aws.String("b")}}})
	if errCode(err) != "InvalidInstanceID.NotFound" {
		t.Fatalf("CreateTags(new id) = %v; want InvalidInstanceID.NotFound", err)
	}
	s.Advance(2 * time.Second)
	if got := state(t, c, id); got != types.InstanceStateNamePending {
		t.Fatalf("state after the window = %s; want pending", got)
	}
}

func TestOutOfBand(t *testing.T) {
	s, c := newTestSim(t, Options{})
	ami := baseImage(t, c)
	id := *run(t, c, &ec2.RunInstancesInput{ImageId: aws.String(ami)})[0].InstanceId
	s.Advance(time.Minute)
	if err := s.StopInstance(id); err != nil {
		t.Fatalf("StopInstance() = %v", err)
	}
	s.Advance(time.Minute)
	if got := state(t, c, id); got != types.InstanceStateNameStopped {
		t.Fatalf("state after a stop by hand = %s; want stopped", got)
	}
	if err := s.StopInstance(id); err == nil {
		t.Fatalf("StopInstance(stopped) = nil; want ErrState")
	}
	if err := s.SetTags(id, map[string]string{"Name": "renamed"}); err != nil {
		t.Fatalf("SetTags() = %v", err)
	}
	d, _ := c.DescribeInstances(t.Context(), &ec2.DescribeInstancesInput{Filters: []types.Filter{{Name: aws.String("tag:Name"), Values: []string{"renamed"}}}})
	if len(d.Reservations) != 1 {
		t.Fatalf("retagged instance not found by its new tag")
	}
	if err := s.StartInstance(id); err != nil {
		t.Fatalf("StartInstance() = %v", err)
	}
	if err := s.TerminateInstance(id); err != nil {
		t.Fatalf("TerminateInstance() = %v", err)
	}
	s.Advance(time.Minute)
	if got := state(t, c, id); got != types.InstanceStateNameTerminated {
		t.Fatalf("state = %s; want terminated", got)
	}
	if err := s.StopInstance("i-0000000000000000a"); err == nil {
		t.Fatalf("StopInstance(unknown) = nil")
	}
}
