package ec2sim

import (
	"encoding/base64"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// TestConformanceSDK is TestConformanceCLI's scenario through
// aws-sdk-go-v2: every action of every service, served at least once.
func TestConformanceSDK(t *testing.T) {
	t.Parallel()
	s := New(Options{})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c := ec2.NewFromConfig(ClientConfig(srv.URL), func(o *ec2.Options) { o.RetryMaxAttempts = 1 })
	as := autoscaling.NewFromConfig(ClientConfig(srv.URL), func(o *autoscaling.Options) { o.RetryMaxAttempts = 1 })
	ctx := t.Context()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	wantCode := func(what string, err error, code string) string {
		t.Helper()
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != code {
			t.Fatalf("%s = %v; want %s", what, err, code)
		}
		return ae.ErrorMessage()
	}

	// Instance types and images.
	it, err := c.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: []types.InstanceType{"t3.micro", "t4g.small"}})
	must("DescribeInstanceTypes", err)
	if len(it.InstanceTypes) != 2 || aws.ToInt32(it.InstanceTypes[0].VCpuInfo.DefaultVCpus) != 2 {
		t.Fatalf("DescribeInstanceTypes = %+v", it.InstanceTypes)
	}
	ami, arm := baseImage(t, c), armImage(t, c)

	// The default VPC and its subnets.
	vpcs, err := c.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{})
	must("DescribeVpcs", err)
	sns, err := c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: []types.Filter{{Name: aws.String("vpc-id"), Values: []string{aws.ToString(vpcs.Vpcs[0].VpcId)}}}})
	must("DescribeSubnets", err)
	subnet := aws.ToString(sns.Subnets[0].SubnetId)

	// Key pairs.
	_, err = c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("made"), KeyType: types.KeyTypeRsa})
	must("CreateKeyPair", err)
	line, _ := testPublicKey()
	_, err = c.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{KeyName: aws.String("ops"), PublicKeyMaterial: []byte(line)})
	must("ImportKeyPair", err)
	kps, err := c.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{})
	must("DescribeKeyPairs", err)
	if len(kps.KeyPairs) != 2 {
		t.Errorf("DescribeKeyPairs = %d; want 2", len(kps.KeyPairs))
	}
	_, err = c.DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{KeyName: aws.String("made")})
	must("DeleteKeyPair", err)

	// Security groups and their rules.
	sg, err := c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("web"), Description: aws.String("web servers")})
	must("CreateSecurityGroup", err)
	ssh := []types.IpPermission{tcp(22, "10.0.0.0/8")}
	_, err = c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: sg.GroupId, IpPermissions: ssh})
	must("AuthorizeSecurityGroupIngress", err)
	_, err = c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: sg.GroupId, IpPermissions: ssh})
	if msg := wantCode("AuthorizeSecurityGroupIngress(again)", err, "InvalidPermission.Duplicate"); msg != `the specified rule "peer: 10.0.0.0/8, TCP, from port: 22, to port: 22, ALLOW" already exists` {
		t.Errorf("duplicate rule message = %q", msg)
	}
	_, err = c.AuthorizeSecurityGroupEgress(ctx, &ec2.AuthorizeSecurityGroupEgressInput{GroupId: sg.GroupId, IpPermissions: []types.IpPermission{tcp(443, "0.0.0.0/0")}})
	must("AuthorizeSecurityGroupEgress", err)
	_, err = c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{aws.ToString(sg.GroupId)}})
	must("DescribeSecurityGroups", err)
	rules, err := c.DescribeSecurityGroupRules(ctx, &ec2.DescribeSecurityGroupRulesInput{Filters: []types.Filter{{Name: aws.String("group-id"), Values: []string{aws.ToString(sg.GroupId)}}}})
	must("DescribeSecurityGroupRules", err)
	var egressAll string
	for _, r := range rules.SecurityGroupRules {
		if aws.ToBool(r.IsEgress) && aws.ToString(r.IpProtocol) == "-1" {
			egressAll = aws.ToString(r.SecurityGroupRuleId)
		}
	}
	_, err = c.RevokeSecurityGroupIngress(ctx, &ec2.RevokeSecurityGroupIngressInput{GroupId: sg.GroupId, IpPermissions: ssh})
	must("RevokeSecurityGroupIngress", err)
	_, err = c.RevokeSecurityGroupEgress(ctx, &ec2.RevokeSecurityGroupEgressInput{GroupId: sg.GroupId, SecurityGroupRuleIds: []string{egressAll}})
	must("RevokeSecurityGroupEgress", err)

	// Instances.
	one := func(in *ec2.RunInstancesInput) *ec2.RunInstancesInput {
		in.MinCount, in.MaxCount = aws.Int32(1), aws.Int32(1)
		return in
	}
	_, err = c.RunInstances(ctx, one(&ec2.RunInstancesInput{ImageId: aws.String(arm), InstanceType: "t3.micro"}))
	if msg := wantCode("RunInstances(arm64 on t3.micro)", err, "InvalidParameterValue"); msg != archMessage {
		t.Errorf("architecture message = %q", msg)
	}
	run, err := c.RunInstances(ctx, one(&ec2.RunInstancesInput{ImageId: aws.String(ami), InstanceType: "t3.micro", SecurityGroupIds: []string{aws.ToString(sg.GroupId)},
		SubnetId: aws.String(subnet), KeyName: aws.String("ops"), UserData: aws.String(base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\necho hello from the sdk\n")))}))
	must("RunInstances", err)
	id := aws.ToString(run.Instances[0].InstanceId)
	ids := []string{id}
	_, err = c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids})
	must("DescribeInstances", err)
	_, err = c.DescribeInstanceStatus(ctx, &ec2.DescribeInstanceStatusInput{InstanceIds: ids, IncludeAllInstances: aws.Bool(true)})
	must("DescribeInstanceStatus", err)
	team := []types.Tag{{Key: aws.String("team"), Value: aws.String("web")}}
	_, err = c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: ids, Tags: team})
	must("CreateTags", err)
	_, err = c.DescribeTags(ctx, &ec2.DescribeTagsInput{Filters: []types.Filter{{Name: aws.String("resource-id"), Values: ids}}})
	must("DescribeTags", err)
	_, err = c.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: ids, Tags: team})
	must("DeleteTags", err)
	con, err := c.GetConsoleOutput(ctx, &ec2.GetConsoleOutputInput{InstanceId: aws.String(id), Latest: aws.Bool(true)})
	must("GetConsoleOutput", err)
	if out, _ := base64.StdEncoding.DecodeString(aws.ToString(con.Output)); !strings.Contains(string(out), "hello from the sdk") {
		t.Errorf("GetConsoleOutput = %q", out)
	}
	_, err = c.RebootInstances(ctx, &ec2.RebootInstancesInput{InstanceIds: ids})
	must("RebootInstances", err)
	a1, err := c.AssociateIamInstanceProfile(ctx, &ec2.AssociateIamInstanceProfileInput{InstanceId: aws.String(id), IamInstanceProfile: &types.IamInstanceProfileSpecification{Name: aws.String("web")}})
	must("AssociateIamInstanceProfile", err)
	_, err = c.DescribeIamInstanceProfileAssociations(ctx, &ec2.DescribeIamInstanceProfileAssociationsInput{AssociationIds: []string{aws.ToString(a1.IamInstanceProfileAssociation.AssociationId)}})
	must("DescribeIamInstanceProfileAssociations", err)
	a2, err := c.ReplaceIamInstanceProfileAssociation(ctx, &ec2.ReplaceIamInstanceProfileAssociationInput{AssociationId: a1.IamInstanceProfileAssociation.AssociationId,
		IamInstanceProfile: &types.IamInstanceProfileSpecification{Name: aws.String("web2")}})
	must("ReplaceIamInstanceProfileAssociation", err)
	_, err = c.DisassociateIamInstanceProfile(ctx, &ec2.DisassociateIamInstanceProfileInput{AssociationId: a2.IamInstanceProfileAssociation.AssociationId})
	must("DisassociateIamInstanceProfile", err)
	_, err = c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: ids})
	must("StopInstances", err)
	_, err = c.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(id), InstanceType: &types.AttributeValue{Value: aws.String("t3.small")}})
	must("ModifyInstanceAttribute", err)
	attr, err := c.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{InstanceId: aws.String(id), Attribute: types.InstanceAttributeNameInstanceType})
	must("DescribeInstanceAttribute", err)
	if aws.ToString(attr.InstanceType.Value) != "t3.small" {
		t.Errorf("DescribeInstanceAttribute = %s", aws.ToString(attr.InstanceType.Value))
	}
	_, err = c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: ids})
	must("StartInstances", err)

	// Images and snapshots.
	img, err := c.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(id), Name: aws.String("sdk-image")})
	must("CreateImage", err)
	snaps, err := c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}})
	must("DescribeSnapshots", err)
	_, err = c.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: img.ImageId})
	must("DeregisterImage", err)
	_, err = c.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: snaps.Snapshots[0].SnapshotId})
	must("DeleteSnapshot", err)

	// Launch templates and an Auto Scaling group.
	lt, err := c.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("web"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: aws.String(ami), InstanceType: "t3.micro"}})
	must("CreateLaunchTemplate", err)
	ltID := lt.LaunchTemplate.LaunchTemplateId
	_, err = c.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{LaunchTemplateId: ltID, SourceVersion: aws.String("1"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{InstanceType: "t3.small"}})
	must("CreateLaunchTemplateVersion", err)
	_, err = c.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{LaunchTemplateIds: []string{aws.ToString(ltID)}})
	must("DescribeLaunchTemplates", err)
	_, err = c.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: ltID, Versions: []string{"$Latest"}})
	must("DescribeLaunchTemplateVersions", err)
	_, err = c.ModifyLaunchTemplate(ctx, &ec2.ModifyLaunchTemplateInput{LaunchTemplateId: ltID, DefaultVersion: aws.String("2")})
	must("ModifyLaunchTemplate", err)
	group := aws.String("web")
	_, err = as.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: group, MinSize: aws.Int32(1), MaxSize: aws.Int32(3),
		LaunchTemplate: &astypes.LaunchTemplateSpecification{LaunchTemplateId: ltID, Version: aws.String("1")}, VPCZoneIdentifier: aws.String(subnet)})
	must("CreateAutoScalingGroup", err)
	_, err = as.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{AutoScalingGroupName: group, DesiredCapacity: aws.Int32(2)})
	must("UpdateAutoScalingGroup", err)
	_, err = as.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"web"}})
	must("DescribeAutoScalingGroups", err)
	_, err = as.StartInstanceRefresh(ctx, &autoscaling.StartInstanceRefreshInput{AutoScalingGroupName: group,
		DesiredConfiguration: &astypes.DesiredConfiguration{LaunchTemplate: &astypes.LaunchTemplateSpecification{LaunchTemplateId: ltID, Version: aws.String("2")}},
		Preferences:          &astypes.RefreshPreferences{MinHealthyPercentage: aws.Int32(50), InstanceWarmup: aws.Int32(0)}})
	must("StartInstanceRefresh", err)
	_, err = as.DescribeInstanceRefreshes(ctx, &autoscaling.DescribeInstanceRefreshesInput{AutoScalingGroupName: group})
	must("DescribeInstanceRefreshes", err)
	// Whichever still applies: success, or the service's error for a
	// refresh already over.
	_, err = as.CancelInstanceRefresh(ctx, &autoscaling.CancelInstanceRefreshInput{AutoScalingGroupName: group})
	if err != nil && errCode(err) != "ActiveInstanceRefreshNotFound" {
		t.Errorf("CancelInstanceRefresh = %v", err)
	}
	_, err = as.RollbackInstanceRefresh(ctx, &autoscaling.RollbackInstanceRefreshInput{AutoScalingGroupName: group})
	if err != nil && errCode(err) != "ActiveInstanceRefreshNotFound" && errCode(err) != "IrreversibleInstanceRefresh" {
		t.Errorf("RollbackInstanceRefresh = %v", err)
	}
	_, err = as.DeleteAutoScalingGroup(ctx, &autoscaling.DeleteAutoScalingGroupInput{AutoScalingGroupName: group, ForceDelete: aws.Bool(true)})
	must("DeleteAutoScalingGroup", err)
	_, err = c.DeleteLaunchTemplate(ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateId: ltID})
	must("DeleteLaunchTemplate", err)

	// The end: the instance goes, then its group.
	_, err = c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids})
	must("TerminateInstances", err)
	_, err = c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: sg.GroupId})
	must("DeleteSecurityGroup", err)

	wantAllServed(t, s, "SDK")
}
