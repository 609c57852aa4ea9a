package awssim

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
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
	r53 := newSDKRoute53(srv.URL)
	q := sqs.NewFromConfig(ClientConfig(srv.URL), func(o *sqs.Options) { o.RetryMaxAttempts = 1 })
	eb := eventbridge.NewFromConfig(ClientConfig(srv.URL), func(o *eventbridge.Options) { o.RetryMaxAttempts = 1 })
	ps := ssm.NewFromConfig(ClientConfig(srv.URL), func(o *ssm.Options) { o.RetryMaxAttempts = 1 })
	west := ec2.NewFromConfig(ClientConfig(srv.URL, "us-west-2"), func(o *ec2.Options) { o.RetryMaxAttempts = 1 }) // signs for us-west-2: that world
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
	if len(snaps.Snapshots) != 1 {
		t.Fatalf("DescribeSnapshots = %d snapshots; want 1", len(snaps.Snapshots))
	}
	// Shared with another account: the image's launch permission and its
	// snapshot's create-volume permission list it.
	const other = "210987654321"
	_, err = c.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: img.ImageId,
		LaunchPermission: &types.LaunchPermissionModifications{Add: []types.LaunchPermission{{UserId: aws.String(other)}}}})
	must("ModifyImageAttribute", err)
	ia, err := c.DescribeImageAttribute(ctx, &ec2.DescribeImageAttributeInput{ImageId: img.ImageId, Attribute: types.ImageAttributeNameLaunchPermission})
	must("DescribeImageAttribute", err)
	if aws.ToString(ia.ImageId) != aws.ToString(img.ImageId) || len(ia.LaunchPermissions) != 1 || aws.ToString(ia.LaunchPermissions[0].UserId) != other {
		t.Errorf("DescribeImageAttribute = %+v; want launch permission for %s", ia.LaunchPermissions, other)
	}
	snap := snaps.Snapshots[0].SnapshotId
	_, err = c.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: snap, Attribute: types.SnapshotAttributeNameCreateVolumePermission,
		CreateVolumePermission: &types.CreateVolumePermissionModifications{Add: []types.CreateVolumePermission{{UserId: aws.String(other)}}}})
	must("ModifySnapshotAttribute", err)
	sa, err := c.DescribeSnapshotAttribute(ctx, &ec2.DescribeSnapshotAttributeInput{SnapshotId: snap, Attribute: types.SnapshotAttributeNameCreateVolumePermission})
	must("DescribeSnapshotAttribute", err)
	if aws.ToString(sa.SnapshotId) != aws.ToString(snap) || len(sa.CreateVolumePermissions) != 1 || aws.ToString(sa.CreateVolumePermissions[0].UserId) != other {
		t.Errorf("DescribeSnapshotAttribute = %+v; want create-volume permission for %s", sa.CreateVolumePermissions, other)
	}
	// Copied to us-west-2: the call goes to the destination region, and
	// the copy is a new image of that world, available, with the name; the
	// home world does not have it.
	cp, err := west.CopyImage(ctx, &ec2.CopyImageInput{SourceRegion: aws.String("us-east-1"), SourceImageId: img.ImageId, Name: aws.String("sdk-image")})
	must("CopyImage", err)
	if id := aws.ToString(cp.ImageId); !strings.HasPrefix(id, "ami-") || id == aws.ToString(img.ImageId) {
		t.Fatalf("CopyImage = %q; want a new image id, not %s", id, aws.ToString(img.ImageId))
	}
	wi, err := west.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{aws.ToString(cp.ImageId)}})
	must("DescribeImages(us-west-2, the copy)", err)
	if len(wi.Images) != 1 || wi.Images[0].State != types.ImageStateAvailable || aws.ToString(wi.Images[0].Name) != "sdk-image" ||
		aws.ToString(wi.Images[0].BlockDeviceMappings[0].Ebs.SnapshotId) == aws.ToString(snap) {
		t.Errorf("DescribeImages(us-west-2, the copy) = %+v; want sdk-image available, on a snapshot of its own", wi.Images)
	}
	_, err = c.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{aws.ToString(cp.ImageId)}})
	wantCode("DescribeImages(us-east-1, the copy)", err, "InvalidAMIID.NotFound")
	// Deprecated and disabled, then undone.
	at := time.Now().UTC().Add(90 * 24 * time.Hour).Truncate(time.Minute)
	_, err = c.EnableImageDeprecation(ctx, &ec2.EnableImageDeprecationInput{ImageId: img.ImageId, DeprecateAt: aws.Time(at.Add(20 * time.Second))})
	must("EnableImageDeprecation", err)
	di, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{aws.ToString(img.ImageId)}})
	must("DescribeImages(deprecation)", err)
	if got := aws.ToString(di.Images[0].DeprecationTime); got != at.Format("2006-01-02T15:04:05.000Z") {
		t.Errorf("DescribeImages DeprecationTime = %q; want %s", got, at.Format("2006-01-02T15:04:05.000Z"))
	}
	_, err = c.EnableImageDeprecation(ctx, &ec2.EnableImageDeprecationInput{ImageId: img.ImageId, DeprecateAt: aws.Time(time.Now().Add(-time.Hour))})
	wantCode("EnableImageDeprecation(in the past)", err, "InvalidParameterValue")
	_, err = c.DisableImageDeprecation(ctx, &ec2.DisableImageDeprecationInput{ImageId: img.ImageId})
	must("DisableImageDeprecation", err)
	_, err = c.DisableImage(ctx, &ec2.DisableImageInput{ImageId: img.ImageId})
	must("DisableImage", err)
	_, err = c.DisableImage(ctx, &ec2.DisableImageInput{ImageId: img.ImageId})
	wantCode("DisableImage(again)", err, "IncorrectState")
	self, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}})
	must("DescribeImages(self)", err)
	withDisabled, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}, IncludeDisabled: aws.Bool(true)})
	must("DescribeImages(self, IncludeDisabled)", err)
	if len(self.Images) != 0 || len(withDisabled.Images) != 1 || withDisabled.Images[0].State != types.ImageStateDisabled || withDisabled.Images[0].DeprecationTime != nil {
		t.Errorf("DescribeImages(self) = %d images, with IncludeDisabled %+v; want none, then the image disabled without a deprecation time", len(self.Images), withDisabled.Images)
	}
	_, err = c.EnableImage(ctx, &ec2.EnableImageInput{ImageId: img.ImageId})
	must("EnableImage", err)
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
	_, err = as.CreateOrUpdateTags(ctx, &autoscaling.CreateOrUpdateTagsInput{Tags: []astypes.Tag{{ResourceId: group, ResourceType: aws.String("auto-scaling-group"),
		Key: aws.String("team"), Value: aws.String("web"), PropagateAtLaunch: aws.Bool(true)}}})
	must("CreateOrUpdateTags", err)
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

	js := func(v any) string { b, _ := json.Marshal(v); return string(b) } // SDK values, pointers followed

	// Route 53: a zone, its comment, the instance's address as a record
	// (the change PENDING, then INSYNC: immediate transitions fall due by
	// the next call), the record deleted and the zone with it.
	zone, err := r53.CreateHostedZone(ctx, &route53.CreateHostedZoneInput{Name: aws.String("conform.example"), CallerReference: aws.String("sdk-conformance"),
		HostedZoneConfig: &r53types.HostedZoneConfig{Comment: aws.String("made by the SDK")}})
	must("CreateHostedZone", err)
	zoneID := zone.HostedZone.Id
	if !strings.HasPrefix(aws.ToString(zoneID), "/hostedzone/Z") || aws.ToString(zone.HostedZone.Name) != "conform.example." ||
		zone.ChangeInfo.Status != r53types.ChangeStatusPending || len(zone.DelegationSet.NameServers) != 4 {
		t.Fatalf("CreateHostedZone = %s, %s", js(zone.HostedZone), js(zone.ChangeInfo))
	}
	gz, err := r53.GetHostedZone(ctx, &route53.GetHostedZoneInput{Id: zoneID})
	must("GetHostedZone", err)
	if aws.ToString(gz.HostedZone.Config.Comment) != "made by the SDK" || aws.ToInt64(gz.HostedZone.ResourceRecordSetCount) != 2 ||
		gz.DelegationSet.NameServers[0] != zone.DelegationSet.NameServers[0] {
		t.Errorf("GetHostedZone = %s", js(gz.HostedZone))
	}
	uz, err := r53.UpdateHostedZoneComment(ctx, &route53.UpdateHostedZoneCommentInput{Id: zoneID, Comment: aws.String("conformance")})
	must("UpdateHostedZoneComment", err)
	if aws.ToString(uz.HostedZone.Config.Comment) != "conformance" {
		t.Errorf("UpdateHostedZoneComment = %s", js(uz.HostedZone.Config))
	}
	bare := strings.TrimPrefix(aws.ToString(zoneID), "/hostedzone/")
	_, err = r53.ChangeTagsForResource(ctx, &route53.ChangeTagsForResourceInput{ResourceType: r53types.TagResourceTypeHostedzone, ResourceId: aws.String(bare),
		AddTags: []r53types.Tag{{Key: aws.String("team"), Value: aws.String("dns")}}})
	must("ChangeTagsForResource", err)
	zt, err := r53.ListTagsForResource(ctx, &route53.ListTagsForResourceInput{ResourceType: r53types.TagResourceTypeHostedzone, ResourceId: aws.String(bare)})
	must("ListTagsForResource", err)
	if len(zt.ResourceTagSet.Tags) != 1 || aws.ToString(zt.ResourceTagSet.Tags[0].Value) != "dns" {
		t.Errorf("ListTagsForResource = %s", js(zt.ResourceTagSet))
	}
	zts, err := r53.ListTagsForResources(ctx, &route53.ListTagsForResourcesInput{ResourceType: r53types.TagResourceTypeHostedzone, ResourceIds: []string{bare}})
	must("ListTagsForResources", err)
	if len(zts.ResourceTagSets) != 1 || aws.ToString(zts.ResourceTagSets[0].ResourceId) != bare {
		t.Errorf("ListTagsForResources = %s", js(zts.ResourceTagSets))
	}
	lz, err := r53.ListHostedZones(ctx, &route53.ListHostedZonesInput{})
	must("ListHostedZones", err)
	if len(lz.HostedZones) != 1 || aws.ToString(lz.HostedZones[0].Id) != aws.ToString(zoneID) {
		t.Errorf("ListHostedZones = %s", js(lz.HostedZones))
	}
	bz, err := r53.ListHostedZonesByName(ctx, &route53.ListHostedZonesByNameInput{DNSName: aws.String("conform.example")})
	must("ListHostedZonesByName", err)
	if len(bz.HostedZones) == 0 || aws.ToString(bz.HostedZones[0].Id) != aws.ToString(zoneID) || aws.ToString(bz.HostedZones[0].Config.Comment) != "conformance" {
		t.Errorf("ListHostedZonesByName = %s", js(bz.HostedZones))
	}
	ip := aws.ToString(run.Instances[0].PrivateIpAddress)
	record := func(action r53types.ChangeAction) *route53.ChangeResourceRecordSetsInput {
		ch := aRecord(action, "web.conform.example", 60, ip)
		return &route53.ChangeResourceRecordSetsInput{HostedZoneId: zoneID, ChangeBatch: &r53types.ChangeBatch{Comment: aws.String("the instance"), Changes: []r53types.Change{ch}}}
	}
	ch, err := r53.ChangeResourceRecordSets(ctx, record(r53types.ChangeActionCreate))
	must("ChangeResourceRecordSets(CREATE)", err)
	if ch.ChangeInfo.Status != r53types.ChangeStatusPending || aws.ToString(ch.ChangeInfo.Comment) != "the instance" {
		t.Errorf("ChangeResourceRecordSets = %s", js(ch.ChangeInfo))
	}
	gc, err := r53.GetChange(ctx, &route53.GetChangeInput{Id: ch.ChangeInfo.Id})
	must("GetChange", err)
	if gc.ChangeInfo.Status != r53types.ChangeStatusInsync || aws.ToString(gc.ChangeInfo.Id) != aws.ToString(ch.ChangeInfo.Id) {
		t.Errorf("GetChange = %s", js(gc.ChangeInfo))
	}
	recs, err := r53.ListResourceRecordSets(ctx, &route53.ListResourceRecordSetsInput{HostedZoneId: zoneID})
	must("ListResourceRecordSets", err)
	if rs := recs.ResourceRecordSets; ip == "" || len(rs) != 3 || aws.ToString(rs[2].Name) != "web.conform.example." || rs[2].Type != r53types.RRTypeA ||
		aws.ToInt64(rs[2].TTL) != 60 || aws.ToString(rs[2].ResourceRecords[0].Value) != ip { // the apex's NS and SOA first
		t.Errorf("ListResourceRecordSets = %s; want web.conform.example. A %s last", js(rs), ip)
	}
	_, err = r53.ChangeResourceRecordSets(ctx, record(r53types.ChangeActionDelete))
	must("ChangeResourceRecordSets(DELETE)", err)
	dz, err := r53.DeleteHostedZone(ctx, &route53.DeleteHostedZoneInput{Id: zoneID})
	must("DeleteHostedZone", err)
	if !strings.HasPrefix(aws.ToString(dz.ChangeInfo.Id), "/change/C") || dz.ChangeInfo.Status != r53types.ChangeStatusPending {
		t.Errorf("DeleteHostedZone = %s", js(dz.ChangeInfo))
	}

	// SQS and EventBridge: a queue EventBridge may send to, and a rule
	// that puts the instance's termination into it.
	cq, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("events"), Attributes: map[string]string{"VisibilityTimeout": "60"}})
	must("CreateQueue", err)
	qurl := cq.QueueUrl
	if u := aws.ToString(qurl); !strings.HasPrefix(u, "http://") || !strings.HasSuffix(u, "/123456789012/events") {
		t.Fatalf("CreateQueue = %q", u)
	}
	gu, err := q.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("events")})
	must("GetQueueUrl", err)
	if aws.ToString(gu.QueueUrl) != aws.ToString(qurl) {
		t.Errorf("GetQueueUrl = %q; want %q", aws.ToString(gu.QueueUrl), aws.ToString(qurl))
	}
	qa, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: qurl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn, sqstypes.QueueAttributeNameVisibilityTimeout}})
	must("GetQueueAttributes", err)
	qarn := qa.Attributes["QueueArn"]
	if qarn != "arn:aws:sqs:us-east-1:123456789012:events" || qa.Attributes["VisibilityTimeout"] != "60" {
		t.Errorf("GetQueueAttributes = %v", qa.Attributes)
	}
	pattern := `{"source":["aws.ec2"],"detail-type":["` + DetailInstanceState + `"],"detail":{"instance-id":["` + id + `"],"state":["shutting-down","terminated"]}}`
	rule := aws.String("terminations")
	pr, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: rule, EventPattern: aws.String(pattern), Description: aws.String("the instance's end")})
	must("PutRule", err)
	ruleArn := aws.ToString(pr.RuleArn)
	if ruleArn != "arn:aws:events:us-east-1:123456789012:rule/terminations" {
		t.Errorf("PutRule = %q", ruleArn)
	}
	dr, err := eb.DescribeRule(ctx, &eventbridge.DescribeRuleInput{Name: rule})
	must("DescribeRule", err)
	if aws.ToString(dr.Arn) != ruleArn || dr.State != ebtypes.RuleStateEnabled || aws.ToString(dr.EventPattern) != pattern || aws.ToString(dr.Description) != "the instance's end" {
		t.Errorf("DescribeRule = %s", js(dr))
	}
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"events.amazonaws.com"},` +
		`"Action":"sqs:SendMessage","Resource":"` + qarn + `","Condition":{"ArnEquals":{"aws:SourceArn":"` + ruleArn + `"}}}]}`
	_, err = q.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: qurl, Attributes: map[string]string{"Policy": policy}})
	must("SetQueueAttributes", err)
	pt, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: rule, Targets: []ebtypes.Target{{Id: aws.String("queue"), Arn: aws.String(qarn)}}})
	must("PutTargets", err)
	if pt.FailedEntryCount != 0 {
		t.Errorf("PutTargets = %s", js(pt.FailedEntries))
	}
	lt2, err := eb.ListTargetsByRule(ctx, &eventbridge.ListTargetsByRuleInput{Rule: rule})
	must("ListTargetsByRule", err)
	if len(lt2.Targets) != 1 || aws.ToString(lt2.Targets[0].Id) != "queue" || aws.ToString(lt2.Targets[0].Arn) != qarn {
		t.Errorf("ListTargetsByRule = %s", js(lt2.Targets))
	}
	// A message of our own, there and back (the SDK checks the MD5s).
	const body = "hello from the sdk"
	sent, err := q.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: qurl, MessageBody: aws.String(body)})
	must("SendMessage", err)
	got, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: qurl, WaitTimeSeconds: 1,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll}})
	must("ReceiveMessage", err)
	if len(got.Messages) != 1 || aws.ToString(got.Messages[0].Body) != body || aws.ToString(got.Messages[0].MessageId) != aws.ToString(sent.MessageId) ||
		got.Messages[0].Attributes["ApproximateReceiveCount"] != "1" {
		t.Fatalf("ReceiveMessage = %s", js(got.Messages))
	}
	_, err = q.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: qurl, ReceiptHandle: got.Messages[0].ReceiptHandle})
	must("DeleteMessage", err)

	// The end: the instance goes, then its group.
	_, err = c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids})
	must("TerminateInstances", err)
	_, err = c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: sg.GroupId})
	must("DeleteSecurityGroup", err)

	// Its termination reached the queue through the rule: shutting-down,
	// then terminated. One deleted in a batch with a handle SQS never
	// gave; the purge takes the other, still in flight.
	evs, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: qurl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
	must("ReceiveMessage(events)", err)
	for i, state := range []string{"shutting-down", "terminated"} {
		var ev struct {
			DetailType string            `json:"detail-type"`
			Detail     map[string]string `json:"detail"`
		}
		if len(evs.Messages) != 2 || json.Unmarshal([]byte(aws.ToString(evs.Messages[i].Body)), &ev) != nil ||
			ev.DetailType != DetailInstanceState || ev.Detail["instance-id"] != id || ev.Detail["state"] != state {
			t.Fatalf("ReceiveMessage(events) = %s; want %s's shutting-down and terminated", js(evs.Messages), id)
		}
	}
	bd, err := q.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: qurl, Entries: []sqstypes.DeleteMessageBatchRequestEntry{
		{Id: aws.String("first"), ReceiptHandle: evs.Messages[0].ReceiptHandle}, {Id: aws.String("bogus"), ReceiptHandle: aws.String("not-a-handle")}}})
	must("DeleteMessageBatch", err)
	if len(bd.Successful) != 1 || aws.ToString(bd.Successful[0].Id) != "first" || len(bd.Failed) != 1 || aws.ToString(bd.Failed[0].Id) != "bogus" ||
		aws.ToString(bd.Failed[0].Code) != "ReceiptHandleIsInvalid" || !bd.Failed[0].SenderFault {
		t.Errorf("DeleteMessageBatch = %s, %s", js(bd.Successful), js(bd.Failed))
	}
	_, err = q.PurgeQueue(ctx, &sqs.PurgeQueueInput{QueueUrl: qurl})
	must("PurgeQueue", err)
	after, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: qurl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll}})
	must("GetQueueAttributes(after the purge)", err)
	if after.Attributes["ApproximateNumberOfMessages"] != "0" || after.Attributes["ApproximateNumberOfMessagesNotVisible"] != "0" ||
		!strings.Contains(after.Attributes["Policy"], ruleArn) {
		t.Errorf("GetQueueAttributes after the purge = %v", after.Attributes)
	}

	// SSM Parameter Store: a String overwritten (its version goes up), a
	// SecureString (ciphertext unless decrypted), one a level deeper; read
	// by name, by names and by path, then deleted.
	put := func(name, value string, typ ssmtypes.ParameterType, overwrite bool) int64 {
		t.Helper()
		out, err := ps.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(name), Value: aws.String(value), Type: typ, Overwrite: aws.Bool(overwrite)})
		must("PutParameter("+name+")", err)
		return out.Version
	}
	if v := put("/conform/app/greeting", "hello", ssmtypes.ParameterTypeString, false); v != 1 {
		t.Errorf("PutParameter = version %d; want 1", v)
	}
	if v := put("/conform/app/greeting", "hello again", "", true); v != 2 {
		t.Errorf("PutParameter(overwrite) = version %d; want 2", v)
	}
	put("/conform/app/password", "s3cret", ssmtypes.ParameterTypeSecureString, false)
	put("/conform/app/db/host", "db.internal", ssmtypes.ParameterTypeString, false)
	gp, err := ps.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/conform/app/password")})
	must("GetParameter", err)
	if v := aws.ToString(gp.Parameter.Value); gp.Parameter.Type != ssmtypes.ParameterTypeSecureString || v == "" || strings.Contains(v, "s3cret") {
		t.Errorf("GetParameter(SecureString) = %s; want ciphertext", js(gp.Parameter))
	}
	gp, err = ps.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/conform/app/password"), WithDecryption: aws.Bool(true)})
	must("GetParameter(WithDecryption)", err)
	if aws.ToString(gp.Parameter.Value) != "s3cret" || aws.ToString(gp.Parameter.ARN) != "arn:aws:ssm:us-east-1:123456789012:parameter/conform/app/password" {
		t.Errorf("GetParameter(WithDecryption) = %s", js(gp.Parameter))
	}
	gps, err := ps.GetParameters(ctx, &ssm.GetParametersInput{Names: []string{"/conform/app/greeting", "/conform/nope"}})
	must("GetParameters", err)
	if len(gps.Parameters) != 1 || aws.ToString(gps.Parameters[0].Value) != "hello again" || gps.Parameters[0].Version != 2 ||
		len(gps.InvalidParameters) != 1 || gps.InvalidParameters[0] != "/conform/nope" {
		t.Errorf("GetParameters = %s, invalid %v; want greeting at version 2, /conform/nope invalid", js(gps.Parameters), gps.InvalidParameters)
	}
	bp, err := ps.GetParametersByPath(ctx, &ssm.GetParametersByPathInput{Path: aws.String("/conform/app"), WithDecryption: aws.Bool(true)})
	must("GetParametersByPath", err)
	if p := bp.Parameters; len(p) != 2 || aws.ToString(p[0].Name) != "/conform/app/greeting" || aws.ToString(p[1].Name) != "/conform/app/password" ||
		aws.ToString(p[1].Value) != "s3cret" || bp.NextToken != nil {
		t.Errorf("GetParametersByPath = %s; want greeting and password (not db/host, a level deeper)", js(p))
	}
	_, err = ps.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String("/conform/app/greeting")})
	must("DeleteParameter", err)
	dp, err := ps.DeleteParameters(ctx, &ssm.DeleteParametersInput{Names: []string{"/conform/app/password", "/conform/app/db/host", "/conform/app/greeting"}})
	must("DeleteParameters", err)
	if len(dp.DeletedParameters) != 2 || len(dp.InvalidParameters) != 1 || dp.InvalidParameters[0] != "/conform/app/greeting" {
		t.Errorf("DeleteParameters = deleted %v, invalid %v; want two deleted, greeting (already gone) invalid", dp.DeletedParameters, dp.InvalidParameters)
	}
	bp, err = ps.GetParametersByPath(ctx, &ssm.GetParametersByPathInput{Path: aws.String("/conform"), Recursive: aws.Bool(true)})
	must("GetParametersByPath(after the deletes)", err)
	if len(bp.Parameters) != 0 {
		t.Errorf("GetParametersByPath after the deletes = %s; want none", js(bp.Parameters))
	}

	// CloudWatch alarms (Smithy RPC v2 CBOR: the protocol the SDK speaks).
	cw := cloudwatch.NewFromConfig(ClientConfig(srv.URL), func(o *cloudwatch.Options) { o.RetryMaxAttempts = 1 })
	_, err = cw.PutMetricAlarm(ctx, &cloudwatch.PutMetricAlarmInput{AlarmName: aws.String("conform-5xx"), MetricName: aws.String("5XXError"),
		Namespace: aws.String("AWS/ApplicationELB"), Statistic: cwtypes.StatisticSum, Period: aws.Int32(60), EvaluationPeriods: aws.Int32(1),
		Threshold: aws.Float64(5), ComparisonOperator: cwtypes.ComparisonOperatorGreaterThanThreshold})
	must("PutMetricAlarm", err)
	_, err = cw.SetAlarmState(ctx, &cloudwatch.SetAlarmStateInput{AlarmName: aws.String("conform-5xx"), StateValue: cwtypes.StateValueAlarm, StateReason: aws.String("conformance")})
	must("SetAlarmState", err)
	da, err := cw.DescribeAlarms(ctx, &cloudwatch.DescribeAlarmsInput{StateValue: cwtypes.StateValueAlarm})
	must("DescribeAlarms", err)
	if len(da.MetricAlarms) != 1 || aws.ToString(da.MetricAlarms[0].AlarmName) != "conform-5xx" || aws.ToString(da.MetricAlarms[0].StateReason) != "conformance" {
		t.Errorf("DescribeAlarms(ALARM) = %s; want conform-5xx", js(da.MetricAlarms))
	}
	_, err = cw.DeleteAlarms(ctx, &cloudwatch.DeleteAlarmsInput{AlarmNames: []string{"conform-5xx"}})
	must("DeleteAlarms", err)
	conformKMSSDK(t, srv.URL) // kms_conformance_test.go
	// STS: who the static credentials are, and a role assumed in the
	// starting account itself (accounts_test.go drives other accounts).
	st := sts.NewFromConfig(ClientConfig(srv.URL), func(o *sts.Options) { o.RetryMaxAttempts = 1 })
	who, err := st.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	must("GetCallerIdentity", err)
	if aws.ToString(who.Account) != "123456789012" {
		t.Errorf("GetCallerIdentity = %s; want account 123456789012", aws.ToString(who.Account))
	}
	ar, err := st.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::123456789012:role/kiln"), RoleSessionName: aws.String("conform")})
	must("AssumeRole", err)
	if aws.ToString(ar.AssumedRoleUser.Arn) != "arn:aws:sts::123456789012:assumed-role/kiln/conform" || ar.Credentials.Expiration == nil {
		t.Errorf("AssumeRole = %s", js(ar.AssumedRoleUser))
	}

	wantAllServed(t, s, "SDK")
}
