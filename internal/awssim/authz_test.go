package awssim

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// ownerPolicy is a tag-scoped policy in the shape kiln iam-policy writes.
const ownerPolicy = `{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "Read", "Effect": "Allow", "Action": ["ec2:Describe*", "autoscaling:Describe*"], "Resource": "*"},
    {"Sid": "Launch", "Effect": "Allow", "Action": "ec2:RunInstances",
     "Resource": ["arn:aws:ec2:*:*:instance/*", "arn:aws:ec2:*:*:volume/*"],
     "Condition": {"StringEquals": {"aws:RequestTag/kiln:owner": "shop"}}},
    {"Sid": "LaunchWith", "Effect": "Allow", "Action": "ec2:RunInstances",
     "Resource": ["arn:aws:ec2:*::image/*", "arn:aws:ec2:*:*:subnet/*", "arn:aws:ec2:*:*:security-group/*", "arn:aws:ec2:*:*:network-interface/*"]},
    {"Sid": "TagOnCreate", "Effect": "Allow", "Action": "ec2:CreateTags", "Resource": ["arn:aws:ec2:*:*:instance/*", "arn:aws:ec2:*:*:volume/*"],
     "Condition": {"StringEquals": {"ec2:CreateAction": "RunInstances", "aws:RequestTag/kiln:owner": "shop"}}},
    {"Sid": "Owned", "Effect": "Allow", "Action": ["ec2:StopInstances", "ec2:StartInstances", "ec2:Terminate*"],
     "Resource": "arn:aws:ec2:*:*:instance/*",
     "Condition": {"StringEquals": {"aws:ResourceTag/kiln:owner": "shop"}}},
    {"Sid": "PassRole", "Effect": "Allow", "Action": "iam:PassRole", "Resource": "arn:aws:iam::*:role/web",
     "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}},
    {"Sid": "Groups", "Effect": "Allow", "Action": "autoscaling:UpdateAutoScalingGroup", "Resource": "*",
     "Condition": {"StringEquals": {"aws:ResourceTag/kiln:owner": "shop"}}},
    {"Sid": "NoTerminateProd", "Effect": "Deny", "Action": "ec2:TerminateInstances", "Resource": "*",
     "Condition": {"StringEquals": {"aws:ResourceTag/env": "prod"}}}
  ]
}`

func mustPolicy(t *testing.T, doc string) *Policy {
	t.Helper()
	p, err := ParsePolicy([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func httpStatus(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func TestPolicyEnforced(t *testing.T) {
	sim, c := newTestSim(t, Options{Policy: mustPolicy(t, ownerPolicy)})
	ctx := context.Background()
	img := baseImage(t, c)
	tags := func(kv ...string) []types.TagSpecification {
		var ts []types.Tag
		for i := 0; i < len(kv); i += 2 {
			ts = append(ts, types.Tag{Key: aws.String(kv[i]), Value: aws.String(kv[i+1])})
		}
		return []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: ts}, {ResourceType: types.ResourceTypeVolume, Tags: ts}}
	}
	launch := func(specs []types.TagSpecification, profile string) (*ec2.RunInstancesOutput, error) {
		in := &ec2.RunInstancesInput{ImageId: aws.String(img), InstanceType: types.InstanceTypeT3Micro,
			MinCount: aws.Int32(1), MaxCount: aws.Int32(1), TagSpecifications: specs}
		if profile != "" {
			in.IamInstanceProfile = &types.IamInstanceProfileSpecification{Name: aws.String(profile)}
		}
		return c.RunInstances(ctx, in)
	}

	// A launch tagged kiln:owner=shop is allowed (with CreateTags on create).
	out, err := launch(tags("kiln:owner", "shop"), "web")
	if err != nil {
		t.Fatalf("tagged launch: %v", err)
	}
	ours := *out.Instances[0].InstanceId
	if n := sim.Authorized()["ec2:CreateTags"]; n != 1 {
		t.Errorf("Authorized()[ec2:CreateTags] = %d; want 1 (tags on create)", n)
	}
	if n := sim.Authorized()["iam:PassRole"]; n != 1 {
		t.Errorf("Authorized()[iam:PassRole] = %d; want 1", n)
	}

	// Untagged, another owner's tag, or another role: UnauthorizedOperation, 403.
	for name, try := range map[string]func() error{
		"untagged":    func() error { _, err := launch(nil, ""); return err },
		"other owner": func() error { _, err := launch(tags("kiln:owner", "other"), ""); return err },
		"other role":  func() error { _, err := launch(tags("kiln:owner", "shop"), "admin"); return err },
	} {
		err := try()
		if errCode(err) != "UnauthorizedOperation" || httpStatus(err) != 403 {
			t.Errorf("%s launch = %v (status %d); want UnauthorizedOperation, 403", name, err, httpStatus(err))
		}
	}
	_, err = launch(nil, "")
	if msg := err.Error(); !strings.Contains(msg, "You are not authorized to perform this operation. User: arn:aws:iam::123456789012:user/kiln-sim is not authorized to perform: ec2:RunInstances on resource: arn:aws:ec2:us-east-1:123456789012:instance/* because no identity-based policy allows the ec2:RunInstances action. Encoded authorization failure message: ") {
		t.Errorf("denial message = %s", msg)
	}

	// Someone else's instance (no kiln:owner) cannot be stopped; ours can.
	sim.SetPolicy(nil) // someone with other rights
	theirs := run(t, c, &ec2.RunInstancesInput{ImageId: aws.String(img), InstanceType: types.InstanceTypeT3Micro})[0].InstanceId
	sim.SetPolicy(mustPolicy(t, ownerPolicy))
	sim.Advance(30e9)
	if _, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{ours}}); err != nil {
		t.Errorf("stop ours: %v", err)
	}
	if _, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{ours, *theirs}}); errCode(err) != "UnauthorizedOperation" ||
		!strings.Contains(err.Error(), "instance/"+*theirs) {
		t.Errorf("stop theirs = %v; want UnauthorizedOperation naming %s", err, *theirs)
	}
	if st := state(t, c, *theirs); st != types.InstanceStateNameRunning {
		t.Errorf("their instance is %s after a denied stop; want running", st)
	}
	// A DryRun is authorized too: DryRunOperation only when allowed.
	if _, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{ours}, DryRun: aws.Bool(true)}); errCode(err) != "DryRunOperation" {
		t.Errorf("dry-run terminate ours = %v; want DryRunOperation", err)
	}
	// An explicit Deny wins over the Allow.
	sim.SetTags(ours, map[string]string{"env": "prod"})
	if _, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{ours}}); errCode(err) != "UnauthorizedOperation" ||
		!strings.Contains(err.Error(), "with an explicit deny in an identity-based policy") {
		t.Errorf("terminate prod = %v; want an explicit deny", err)
	}
	// Reads are on "*"; actions the policy does not name are denied.
	if _, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{}); err != nil {
		t.Errorf("describe: %v", err)
	}
	if _, err := c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("x"), Description: aws.String("x")}); errCode(err) != "UnauthorizedOperation" {
		t.Errorf("CreateSecurityGroup = %v; want UnauthorizedOperation", err)
	}
	if d := sim.Denied(); d["ec2:RunInstances"] < 3 || d["ec2:StopInstances"] != 1 || d["ec2:CreateSecurityGroup"] != 1 {
		t.Errorf("Denied() = %v", d)
	}

	// Auto Scaling answers AccessDenied.
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	as := autoscaling.NewFromConfig(ClientConfig(srv.URL), func(o *autoscaling.Options) { o.RetryMaxAttempts = 1 })
	_, err = as.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("g"),
		MinSize: aws.Int32(0), MaxSize: aws.Int32(1), LaunchTemplate: &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String("nope")}})
	if errCode(err) != "AccessDenied" || httpStatus(err) != 403 || !strings.Contains(err.Error(), "autoscaling:CreateAutoScalingGroup on resource: arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:*:autoScalingGroupName/g") {
		t.Errorf("CreateAutoScalingGroup = %v; want AccessDenied, 403, naming the group", err)
	}
}

func TestPolicyConditions(t *testing.T) {
	stmt := func(cond string) *Policy {
		return mustPolicy(t, `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ec2:Create*","Resource":"arn:aws:ec2:*:*:instance/*","Condition":`+cond+`}}`)
	}
	ctx := func(kv ...string) authzContext {
		c := authzContext{}
		for i := 0; i < len(kv); i += 2 {
			c[strings.ToLower(kv[i])] = append(c[strings.ToLower(kv[i])], kv[i+1])
		}
		return c
	}
	const arn = "arn:aws:ec2:us-east-1:1:instance/i-1"
	for _, tt := range []struct {
		cond string
		ctx  authzContext
		want bool
	}{
		{`{"StringEquals":{"aws:ResourceTag/Owner":"a"}}`, ctx("aws:resourcetag/owner", "a"), true},
		{`{"StringEquals":{"aws:ResourceTag/owner":["b","a"]}}`, ctx("aws:ResourceTag/owner", "a"), true},
		{`{"StringEquals":{"aws:ResourceTag/owner":"a"}}`, ctx(), false},
		{`{"StringEqualsIfExists":{"aws:ResourceTag/owner":"a"}}`, ctx(), true},
		{`{"StringNotEquals":{"aws:ResourceTag/owner":"a"}}`, ctx(), true},
		{`{"StringNotEquals":{"aws:ResourceTag/owner":"a"}}`, ctx("aws:resourcetag/owner", "a"), false},
		{`{"StringLike":{"aws:ResourceTag/owner":"sh*"}}`, ctx("aws:resourcetag/owner", "shop"), true},
		{`{"ForAllValues:StringEquals":{"aws:TagKeys":["a","b"]}}`, ctx("aws:tagkeys", "a", "aws:tagkeys", "b"), true},
		{`{"ForAllValues:StringEquals":{"aws:TagKeys":["a"]}}`, ctx("aws:tagkeys", "a", "aws:tagkeys", "c"), false},
		{`{"ForAllValues:StringEquals":{"aws:TagKeys":["a"]}}`, ctx(), true},
		{`{"ForAnyValue:StringEquals":{"aws:TagKeys":["c"]}}`, ctx("aws:tagkeys", "a", "aws:tagkeys", "c"), true},
		{`{"ForAnyValue:StringEquals":{"aws:TagKeys":["c"]}}`, ctx(), false},
		{`{"StringEquals":{"aws:RequestTag/owner":"a","ec2:CreateAction":"RunInstances"}}`, ctx("aws:requesttag/owner", "a"), false},
	} {
		if got := stmt(tt.cond).decide("ec2:CreateTags", arn, tt.ctx) == allowed; got != tt.want {
			t.Errorf("%s with %v: allowed = %v; want %v", tt.cond, tt.ctx, got, tt.want)
		}
	}
	if stmt(`{}`).decide("ec2:RunInstances", arn, ctx()) == allowed {
		t.Error("ec2:Create* allowed ec2:RunInstances")
	}
	if stmt(`{}`).decide("EC2:createtags", "arn:aws:ec2:us-east-1:1:volume/v-1", ctx()) == allowed {
		t.Error("an instance/* resource allowed a volume")
	}
	if stmt(`{}`).decide("EC2:createtags", arn, ctx()) != allowed {
		t.Error("actions should match without case")
	}

	for doc, want := range map[string]string{
		`{"Version":"2012-10-17","Statement":[]}`: "Statement: want a statement",
		`{"Version":"2012-10-17","Statement":[{"Sid":"X","Effect":"Allow","NotAction":"ec2:*","Resource":"*"}]}`:                    `statement 1 (X): json: unknown field "NotAction"`,
		`{"Version":"2012-10-17","Statement":[{"Effect":"Permit","Action":"ec2:*","Resource":"*"}]}`:                                `statement 1: Effect "Permit"`,
		`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:*"}]}`:                                                "statement 1: Resource: missing",
		`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:*","Resource":"*","Condition":{"Bool":{}}}]}`:         `operator "Bool" is not supported`,
		`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:*","Resource":"*","Condition":{"X:StringLike":{}}}]}`: `operator "X:StringLike"`,
		`{"Statement":[]}`: `Version ""`,
	} {
		if _, err := ParsePolicy([]byte(doc)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParsePolicy(%s) = %v; want an error with %q", doc, err, want)
		}
	}
}

// TestPolicySSMParameters: SSM's parameter calls are authorized on the
// parameter's ARN, so a policy can confine a caller to one path.
func TestPolicySSMParameters(t *testing.T) {
	sim := New(Options{Policy: mustPolicy(t, `{"Version": "2012-10-17", "Statement": [
	  {"Effect": "Allow", "Action": ["ssm:PutParameter", "ssm:GetParameter", "ssm:DeleteParameter"],
	   "Resource": "arn:aws:ssm:*:*:parameter/kiln/web/*"}]}`)})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	c := ssm.NewFromConfig(ClientConfig(srv.URL), func(o *ssm.Options) { o.RetryMaxAttempts = 1 })
	ctx := t.Context()
	put := func(name string) error {
		_, err := c.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(name), Value: aws.String("v"), Type: ssmtypes.ParameterTypeSecureString})
		return err
	}
	if err := put("/kiln/web/staging/KEY"); err != nil {
		t.Errorf("PutParameter(/kiln/web/staging/KEY) = %v; want allowed", err)
	}
	if _, err := c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/kiln/web/staging/KEY"), WithDecryption: aws.Bool(true)}); err != nil {
		t.Errorf("GetParameter(/kiln/web/staging/KEY) = %v; want allowed", err)
	}
	for _, name := range []string{"/kiln/api/staging/KEY", "/other"} {
		if err := put(name); httpStatus(err) != 403 || !strings.Contains(err.Error(), "AccessDenied") {
			t.Errorf("PutParameter(%s) = %v; want AccessDenied", name, err)
		}
	}
	if _, err := c.DeleteParameters(ctx, &ssm.DeleteParametersInput{Names: []string{"/kiln/web/staging/KEY", "/kiln/api/x"}}); httpStatus(err) != 403 {
		t.Errorf("DeleteParameters naming another path = %v; want AccessDenied", err)
	}
	if d := sim.Denied(); d["ssm:PutParameter"] != 2 || d["ssm:DeleteParameters"] != 1 {
		t.Errorf("Denied() = %v", d)
	}
}
