package awssim

import (
	"context"
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

func TestDescribeInstanceTypes(t *testing.T) {
	_, c := newTestSim(t, Options{})
	ctx := t.Context()
	out, err := c.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{
		InstanceTypes: []types.InstanceType{types.InstanceTypeT4gSmall, types.InstanceTypeT3Micro, types.InstanceTypeM5Large, types.InstanceTypeT2Micro},
	})
	if err != nil {
		t.Fatalf("DescribeInstanceTypes() = %v", err)
	}
	type info struct {
		archs []types.ArchitectureType
		vcpus int32
		mib   int64
	}
	want := map[types.InstanceType]info{
		types.InstanceTypeT3Micro:  {[]types.ArchitectureType{"x86_64"}, 2, 1024},
		types.InstanceTypeT4gSmall: {[]types.ArchitectureType{"arm64"}, 2, 2048},
		types.InstanceTypeM5Large:  {[]types.ArchitectureType{"x86_64"}, 2, 8192},
		types.InstanceTypeT2Micro:  {[]types.ArchitectureType{"i386", "x86_64"}, 2, 1024},
	}
	if len(out.InstanceTypes) != len(want) {
		t.Fatalf("DescribeInstanceTypes() = %d types; want %d", len(out.InstanceTypes), len(want))
	}
	for _, it := range out.InstanceTypes {
		w := want[it.InstanceType]
		got := info{it.ProcessorInfo.SupportedArchitectures, aws.ToInt32(it.VCpuInfo.DefaultVCpus), aws.ToInt64(it.MemoryInfo.SizeInMiB)}
		if !slices.Equal(got.archs, w.archs) || got.vcpus != w.vcpus || got.mib != w.mib {
			t.Errorf("%s = %+v; want %+v", it.InstanceType, got, w)
		}
	}

	// Unknown types are named, all of them.
	_, err = c.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: []types.InstanceType{"t9.huge", "t3.micro", "m5.nano"}})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "InvalidInstanceType" || ae.ErrorMessage() != "The following supplied instance types do not exist: [t9.huge, m5.nano]" {
		t.Errorf("DescribeInstanceTypes(unknown) = %v; want InvalidInstanceType naming t9.huge and m5.nano", err)
	}

	// Every type, by filter, over pages: the paginator sees each once.
	var arm []string
	p := ec2.NewDescribeInstanceTypesPaginator(c, &ec2.DescribeInstanceTypesInput{
		MaxResults: aws.Int32(5),
		Filters:    []types.Filter{{Name: aws.String("processor-info.supported-architecture"), Values: []string{"arm64"}}},
	})
	pages := 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("NextPage() = %v", err)
		}
		pages++
		for _, it := range page.InstanceTypes {
			if it.ProcessorInfo.SupportedArchitectures[0] != "arm64" {
				t.Errorf("%s: %v; want arm64 only", it.InstanceType, it.ProcessorInfo.SupportedArchitectures)
			}
			arm = append(arm, string(it.InstanceType))
		}
	}
	if pages < 2 || !slices.Contains(arm, "t4g.micro") || !slices.Contains(arm, "m7g.2xlarge") || slices.Contains(arm, "t3.micro") {
		t.Errorf("arm64 types over %d pages = %v; want several pages with t4g.micro and m7g.2xlarge, no t3.micro", pages, arm)
	}
	if _, err := c.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{Filters: []types.Filter{{Name: aws.String("colour"), Values: []string{"red"}}}}); errCode(err) != "InvalidParameterValue" {
		t.Errorf("DescribeInstanceTypes(bad filter) = %q; want InvalidParameterValue", errCode(err))
	}
}

// armImage returns the newest stock al2023 arm64 image id.
func armImage(t testing.TB, c *ec2.Client) string {
	t.Helper()
	out, err := c.DescribeImages(context.Background(), &ec2.DescribeImagesInput{
		Owners:  []string{"amazon"},
		Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"al2023-ami-2023.*-arm64"}}, {Name: aws.String("architecture"), Values: []string{"arm64"}}},
	})
	if err != nil || len(out.Images) == 0 {
		t.Fatalf("DescribeImages(arm64) = %v, %v", out, err)
	}
	return aws.ToString(out.Images[0].ImageId)
}

const archMessage = "The architecture 'x86_64' of the specified instance type does not match the architecture 'arm64' of the specified AMI. " +
	"Specify an instance type and an AMI that have matching architectures, and try again. " +
	"You can use 'describe-instance-types' or 'describe-images' to discover the architecture of the instance type or AMI."

func TestArchitectureCheck(t *testing.T) {
	s := New(Options{ManualClock: true, TimeScale: 1})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c := ec2.NewFromConfig(ClientConfig(srv.URL), func(o *ec2.Options) { o.RetryMaxAttempts = 1 })
	as := autoscaling.NewFromConfig(ClientConfig(srv.URL), func(o *autoscaling.Options) { o.RetryMaxAttempts = 1 })
	ctx := t.Context()
	arm := armImage(t, c)
	run := func(image string, typ types.InstanceType, lt *types.LaunchTemplateSpecification) error {
		in := &ec2.RunInstancesInput{MinCount: aws.Int32(1), MaxCount: aws.Int32(1), LaunchTemplate: lt}
		if image != "" {
			in.ImageId = aws.String(image)
		}
		in.InstanceType = typ
		_, err := c.RunInstances(ctx, in)
		return err
	}
	var ae smithy.APIError
	if err := run(arm, types.InstanceTypeT3Micro, nil); !errors.As(err, &ae) || ae.ErrorCode() != "InvalidParameterValue" || ae.ErrorMessage() != archMessage {
		t.Fatalf("RunInstances(arm64 image, t3.micro) = %v; want InvalidParameterValue: %s", err, archMessage)
	}
	if n := len(s.Instances()); n != 0 {
		t.Fatalf("instances after a refused launch = %d; want 0", n)
	}
	if err := run(arm, types.InstanceTypeT4gMicro, nil); err != nil {
		t.Fatalf("RunInstances(arm64 image, t4g.micro) = %v", err)
	}
	// The x86_64 image on a Graviton type: the message names both the other way.
	if err := run(baseImage(t, c), types.InstanceTypeM6gLarge, nil); !errors.As(err, &ae) || ae.ErrorCode() != "InvalidParameterValue" ||
		!strings.HasPrefix(ae.ErrorMessage(), "The architecture 'arm64' of the specified instance type does not match the architecture 'x86_64' of the specified AMI. ") {
		t.Errorf("RunInstances(x86_64 image, m6g.large) = %v; want InvalidParameterValue naming arm64 and x86_64", err)
	}

	// A launch template whose image and type disagree: RunInstances says the
	// same, and Auto Scaling refuses the template as not fully formed.
	lt, err := c.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String("arm-on-x86"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: aws.String(arm), InstanceType: types.InstanceTypeT3Micro},
	})
	if err != nil {
		t.Fatalf("CreateLaunchTemplate() = %v (EC2 does not check a template's architecture)", err)
	}
	spec := &types.LaunchTemplateSpecification{LaunchTemplateId: lt.LaunchTemplate.LaunchTemplateId}
	if err := run("", "", spec); !errors.As(err, &ae) || ae.ErrorMessage() != archMessage {
		t.Errorf("RunInstances(template) = %v; want %s", err, archMessage)
	}
	_, err = as.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String("web"), MinSize: aws.Int32(1), MaxSize: aws.Int32(1),
		LaunchTemplate:    &astypes.LaunchTemplateSpecification{LaunchTemplateId: lt.LaunchTemplate.LaunchTemplateId},
		VPCZoneIdentifier: aws.String(s.DefaultSubnets()[0]),
	})
	if !errors.As(err, &ae) || ae.ErrorCode() != "ValidationError" || ae.ErrorMessage() != "You must use a valid fully-formed launch template. "+archMessage {
		t.Errorf("CreateAutoScalingGroup(template arm64 on t3.micro) = %v; want ValidationError: You must use a valid fully-formed launch template. %s", err, archMessage)
	}

	// A stopped instance cannot change to a type of another architecture.
	out, err := c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(arm), InstanceType: types.InstanceTypeT4gMicro, MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	s.Advance(time.Minute)
	if _, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	s.Advance(time.Minute)
	_, err = c.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(id), InstanceType: &types.AttributeValue{Value: aws.String("t3.micro")}})
	if !errors.As(err, &ae) || ae.ErrorMessage() != archMessage {
		t.Errorf("ModifyInstanceAttribute(t3.micro on arm64) = %v; want %s", err, archMessage)
	}
}
