package awsapi

import (
	"cmp"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"kiln/internal/engine"
)

func TestLaunchErrorClass(t *testing.T) {
	run := func(code string) error {
		return &smithy.OperationError{ServiceID: "EC2", OperationName: "RunInstances", Err: &smithy.GenericAPIError{Code: code}}
	}
	tests := []struct {
		err  error
		want ErrorClass
	}{
		{nil, ClassReturned},
		{errors.New("plain"), ClassReturned},
		{run("SomethingNew"), ClassReturned},
		{run("VcpuLimitExceeded"), ClassReturned},
		{run("InstanceLimitExceeded"), ClassReturned},
		{run("InvalidAMIID.NotFound"), ClassPermanent},
		{run("InvalidAMIID.Malformed"), ClassPermanent},
		{run("InvalidParameterValue"), ClassPermanent},
		{run("InvalidParameterCombination"), ClassPermanent},
		{run("InvalidSubnetID.NotFound"), ClassPermanent},
		{run("InvalidGroup.NotFound"), ClassPermanent},
		{run("InvalidKeyPair.NotFound"), ClassPermanent},
		{run("InvalidInstanceType"), ClassPermanent},
		{run("InvalidUserData.Malformed"), ClassPermanent},
		{run("UnauthorizedOperation"), ClassPermanent},
		{run("RequestLimitExceeded"), ClassRetried},
		{run("InternalError"), ClassRetried},
		{run("InsufficientInstanceCapacity"), ClassRetried},
		{run("IdempotentParameterMismatch"), ClassDone},
	}
	for _, tt := range tests {
		name := "nil"
		if tt.err != nil {
			name = cmp.Or(Code(tt.err), tt.err.Error())
		}
		t.Run(name, func(t *testing.T) {
			if got := LaunchErrorClass(tt.err); got != tt.want {
				t.Errorf("LaunchErrorClass() = %v; want %v", got, tt.want)
			}
			permanent := tt.err != nil && engine.IsPermanent(Classify(tt.err, PermanentLaunchCodes()...))
			if permanent != (tt.want == ClassPermanent) {
				t.Errorf("Classify(PermanentLaunchCodes) permanent = %v; want %v", permanent, !permanent)
			}
		})
	}
}

func TestClientToken(t *testing.T) {
	a := ClientToken("kiln-", "graph", "aws:ec2/web", "")
	if a != ClientToken("kiln-", "graph", "aws:ec2/web", "") {
		t.Errorf("ClientToken() differs between calls with the same parts")
	}
	if len(a) > 64 || !strings.HasPrefix(a, "kiln-") {
		t.Errorf("ClientToken() = %q; want ≤ 64 characters starting kiln-", a)
	}
	for _, other := range []string{
		ClientToken("kiln-", "graph", "aws:ec2/web", "i-1"),
		ClientToken("kiln-", "graph", "aws:ec2/we", "b"), // parts are separated
	} {
		if other == a {
			t.Errorf("ClientToken() = %q for other parts too", a)
		}
	}
}

func TestLaunch(t *testing.T) {
	h, sim := simHub(t)
	img, err := h.EC2().DescribeImages(t.Context(), &ec2.DescribeImagesInput{Owners: []string{"amazon"}})
	if err != nil || len(img.Images) == 0 {
		t.Fatalf("DescribeImages = %v", err)
	}
	tags := Tags(map[string]string{TagOwner: "g", TagResource: "aws:ec2/web"})
	l := Launch{Token: ClientToken("test-", "web"), Image: aws.ToString(img.Images[0].ImageId), Type: "t3.micro",
		UserData: "#!/bin/sh\necho hi\n", Shutdown: types.ShutdownBehaviorStop, Tags: tags}
	owned := func() []string {
		out, err := h.EC2().DescribeInstances(t.Context(), &ec2.DescribeInstancesInput{Filters: []types.Filter{
			{Name: aws.String("tag:" + TagResource), Values: []string{"aws:ec2/web"}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range out.Reservations {
			for _, in := range r.Instances {
				ids = append(ids, aws.ToString(in.InstanceId))
			}
		}
		return ids
	}

	first, err := h.Launch(t.Context(), h.EC2(), l)
	if err != nil {
		t.Fatalf("Launch() error = %v", err)
	}
	id := aws.ToString(first.InstanceId)
	if TagValue(first.Tags, TagResource) != "aws:ec2/web" {
		t.Errorf("Launch() tags = %v; want the launch's tags", first.Tags)
	}

	t.Run("same token", func(t *testing.T) {
		again, err := h.Launch(t.Context(), h.EC2(), l)
		if err != nil || aws.ToString(again.InstanceId) != id {
			t.Fatalf("Launch() again = %s, %v; want %s", aws.ToString(again.InstanceId), err, id)
		}
		if got := owned(); !slices.Equal(got, []string{id}) {
			t.Errorf("instances = %v; want only %s", got, id)
		}
	})

	t.Run("same token, other parameters", func(t *testing.T) {
		// An earlier process launched with an older spec: already done.
		changed := l
		changed.Type = "t3.small"
		sim.ResetCalls()
		again, err := h.Launch(t.Context(), h.EC2(), changed)
		if err != nil || aws.ToString(again.InstanceId) != id {
			t.Fatalf("Launch() with other parameters = %s, %v; want the token's %s", aws.ToString(again.InstanceId), err, id)
		}
		if n := sim.Calls("RunInstances"); n != 1 {
			t.Errorf("RunInstances calls = %d; want 1 (IdempotentParameterMismatch is not retried)", n)
		}
		if got := owned(); !slices.Equal(got, []string{id}) {
			t.Errorf("instances = %v; want only %s", got, id)
		}
	})

	t.Run("invalid parameter", func(t *testing.T) {
		bad := l
		bad.Token, bad.Type = ClientToken("test-", "bad"), "t9.huge"
		sim.ResetCalls()
		_, err := h.Launch(t.Context(), h.EC2(), bad)
		if !engine.IsPermanent(err) || Code(err) != "InvalidParameterValue" {
			t.Fatalf("Launch() error = %v; want permanent InvalidParameterValue", err)
		}
		if n := sim.Calls("RunInstances"); n != 1 {
			t.Errorf("RunInstances calls = %d; want 1 (a permanent error is not retried)", n)
		}
	})

	t.Run("bad token", func(t *testing.T) {
		bad := l
		bad.Token = strings.Repeat("x", 65)
		sim.ResetCalls()
		if _, err := h.Launch(t.Context(), h.EC2(), bad); !engine.IsPermanent(err) {
			t.Fatalf("Launch() error = %v; want permanent", err)
		}
		if n := sim.Calls("RunInstances"); n != 0 {
			t.Errorf("RunInstances calls = %d; want 0", n)
		}
	})
}
