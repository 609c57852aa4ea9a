package awssim

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func TestStockImages(t *testing.T) {
	_, c := newTestSim(t, Options{})
	ctx := t.Context()
	tests := []struct {
		name  string
		in    ec2.DescribeImagesInput
		check func(imgs []types.Image) bool
	}{
		{"amazon al2023 x86", ec2.DescribeImagesInput{Owners: []string{"amazon"}, Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"al2023-ami-2023.*-x86_64"}}}},
			func(imgs []types.Image) bool { return len(imgs) == 4 }},
		{"owner id", ec2.DescribeImagesInput{Owners: []string{AmazonOwner}, Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"amzn2-*"}}}},
			func(imgs []types.Image) bool {
				return len(imgs) == 2 && aws.ToString(imgs[0].ImageOwnerAlias) == "amazon"
			}},
		{"self has none", ec2.DescribeImagesInput{Owners: []string{"self"}}, func(imgs []types.Image) bool { return len(imgs) == 0 }},
		{"arch filter", ec2.DescribeImagesInput{Owners: []string{"amazon"}, Filters: []types.Filter{{Name: aws.String("architecture"), Values: []string{"arm64"}}}},
			func(imgs []types.Image) bool { return len(imgs) == 8 }},
		{"available", ec2.DescribeImagesInput{Owners: []string{"amazon"}, Filters: []types.Filter{{Name: aws.String("state"), Values: []string{"available"}}}},
			func(imgs []types.Image) bool {
				return len(imgs) == 18 && imgs[0].State == types.ImageStateAvailable && len(imgs[0].BlockDeviceMappings) == 1 &&
					aws.ToString(imgs[0].BlockDeviceMappings[0].Ebs.SnapshotId) != "" && aws.ToString(imgs[0].CreationDate) != ""
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := c.DescribeImages(ctx, &tt.in)
			if err != nil || !tt.check(out.Images) {
				t.Fatalf("DescribeImages() = %d images, %v", len(out.Images), err)
			}
		})
	}
	// Paginator over the stock images.
	n := 0
	p := ec2.NewDescribeImagesPaginator(c, &ec2.DescribeImagesInput{Owners: []string{"amazon"}, MaxResults: aws.Int32(5)})
	for p.HasMorePages() {
		pg, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("DescribeImages page = %v", err)
		}
		n += len(pg.Images)
	}
	if n != 18 {
		t.Fatalf("paginated images = %d; want 18", n)
	}
	_, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{"ami-0123456789abcdef0"}})
	if errCode(err) != "InvalidAMIID.NotFound" {
		t.Errorf("DescribeImages(unknown) = %v; want InvalidAMIID.NotFound", err)
	}
	_, err = c.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{"ami-nope"}})
	if errCode(err) != "InvalidAMIID.Malformed" {
		t.Errorf("DescribeImages(malformed) = %v; want InvalidAMIID.Malformed", err)
	}
	_, err = c.DescribeImages(ctx, &ec2.DescribeImagesInput{Filters: []types.Filter{{Name: aws.String("colour"), Values: []string{"x"}}}})
	if errCode(err) != "InvalidParameterValue" {
		t.Errorf("DescribeImages(unknown filter) = %v; want InvalidParameterValue", err)
	}
}

func TestCreateImage(t *testing.T) {
	s, c := newTestSim(t, Options{})
	ctx := t.Context()
	ami := baseImage(t, c)
	id := *run(t, c, &ec2.RunInstancesInput{ImageId: aws.String(ami)})[0].InstanceId
	_, err := c.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(id), Name: aws.String("web-1")})
	if errCode(err) != "IncorrectInstanceState" {
		t.Fatalf("CreateImage(pending) = %v; want IncorrectInstanceState", err)
	}
	s.Advance(time.Minute)
	img, err := c.CreateImage(ctx, &ec2.CreateImageInput{
		InstanceId: aws.String(id), Name: aws.String("web-1"), Description: aws.String("from a running instance"),
		TagSpecifications: []types.TagSpecification{
			{ResourceType: types.ResourceTypeImage, Tags: []types.Tag{{Key: aws.String("kiln:bake"), Value: aws.String("b1")}}},
			{ResourceType: types.ResourceTypeSnapshot, Tags: []types.Tag{{Key: aws.String("kiln:bake"), Value: aws.String("b1")}}},
		},
	})
	if err != nil {
		t.Fatalf("CreateImage(running) = %v", err)
	}
	imageID := *img.ImageId
	_, err = c.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(id), Name: aws.String("web-1")})
	if errCode(err) != "InvalidAMIName.Duplicate" {
		t.Fatalf("CreateImage(same name) = %v; want InvalidAMIName.Duplicate", err)
	}
	for _, name := range []string{"ab", "bad*name", string(make([]byte, 129))} {
		_, err = c.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(id), Name: aws.String(name)})
		if errCode(err) != "InvalidAMIName.Malformed" {
			t.Errorf("CreateImage(%q) = %v; want InvalidAMIName.Malformed", name, err)
		}
	}
	out, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}})
	if err != nil || len(out.Images) != 1 || out.Images[0].State != types.ImageStatePending {
		t.Fatalf("DescribeImages(self) = %v, %v; want one pending image", out, err)
	}
	im := out.Images[0]
	if aws.ToString(im.Name) != "web-1" || aws.ToString(im.OwnerId) != "123456789012" || aws.ToString(im.SourceInstanceId) != id {
		t.Errorf("image = %+v", im)
	}
	snapID := aws.ToString(im.BlockDeviceMappings[0].Ebs.SnapshotId)
	snaps, err := c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}})
	if err != nil || len(snaps.Snapshots) != 1 || aws.ToString(snaps.Snapshots[0].SnapshotId) != snapID || snaps.Snapshots[0].State != types.SnapshotStatePending {
		t.Fatalf("DescribeSnapshots(self) = %v, %v; want the image's pending snapshot", snaps, err)
	}
	s.Advance(3 * time.Minute)
	byTag, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}, Filters: []types.Filter{
		{Name: aws.String("tag:kiln:bake"), Values: []string{"b1"}}, {Name: aws.String("state"), Values: []string{"available"}}}})
	if err != nil || len(byTag.Images) != 1 {
		t.Fatalf("DescribeImages(tag, available) = %v, %v", byTag, err)
	}
	snaps, _ = c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{Filters: []types.Filter{{Name: aws.String("tag:kiln:bake"), Values: []string{"b1"}}}})
	if len(snaps.Snapshots) != 1 || snaps.Snapshots[0].State != types.SnapshotStateCompleted {
		t.Fatalf("snapshot after image = %+v; want completed and tagged", snaps.Snapshots)
	}
	// A new instance launches from the new image.
	run(t, c, &ec2.RunInstancesInput{ImageId: aws.String(imageID)})

	// Snapshots stay while an image uses them, and after it is deregistered.
	_, err = c.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(snapID)})
	if errCode(err) != "InvalidSnapshot.InUse" {
		t.Fatalf("DeleteSnapshot(in use) = %v; want InvalidSnapshot.InUse", err)
	}
	if _, err := c.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(imageID)}); err != nil {
		t.Fatalf("DeregisterImage() = %v", err)
	}
	_, err = c.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{imageID}})
	if errCode(err) != "InvalidAMIID.NotFound" {
		t.Fatalf("DescribeImages(deregistered) = %v; want InvalidAMIID.NotFound", err)
	}
	if _, err := c.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(imageID)}); errCode(err) != "InvalidAMIID.NotFound" {
		t.Fatalf("DeregisterImage(twice) = %v; want InvalidAMIID.NotFound", err)
	}
	if _, err := c.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(snapID)}); err != nil {
		t.Fatalf("DeleteSnapshot(after deregister) = %v", err)
	}
	if _, err := c.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(snapID)}); errCode(err) != "InvalidSnapshot.NotFound" {
		t.Fatalf("DeleteSnapshot(twice) = %v; want InvalidSnapshot.NotFound", err)
	}
	// The name is free again.
	s.Advance(time.Minute)
	if _, err := c.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(id), Name: aws.String("web-1"), NoReboot: aws.Bool(true)}); err != nil {
		t.Fatalf("CreateImage(reused name) = %v", err)
	}
}

func TestCreateImageFromStoppedAndFailure(t *testing.T) {
	s, c := newTestSim(t, Options{Consistency: time.Second})
	ctx := t.Context()
	ami := baseImage(t, c)
	id := *run(t, c, &ec2.RunInstancesInput{ImageId: aws.String(ami)})[0].InstanceId
	s.Advance(time.Minute)
	if _, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	s.Advance(time.Minute)
	s.FailNextImages(1)
	img, err := c.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(id), Name: aws.String("doomed")})
	if err != nil {
		t.Fatalf("CreateImage(stopped) = %v", err)
	}
	_, err = c.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{*img.ImageId}})
	if errCode(err) != "InvalidAMIID.NotFound" {
		t.Fatalf("DescribeImages(new id) = %v; want NotFound inside the consistency window", err)
	}
	if got := state(t, c, id); got != types.InstanceStateNameStopped {
		t.Fatalf("CreateImage on a stopped instance changed its state to %s", got)
	}
	s.Advance(5 * time.Minute)
	out, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{*img.ImageId}})
	if err != nil || out.Images[0].State != types.ImageStateFailed || out.Images[0].StateReason == nil {
		t.Fatalf("DescribeImages(failed) = %+v, %v; want failed with a reason", out, err)
	}
}

func TestSecurityGroups(t *testing.T) {
	_, c := newTestSim(t, Options{})
	ctx := t.Context()
	g, err := c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("web"), Description: aws.String("web"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSecurityGroup, Tags: []types.Tag{{Key: aws.String("kiln:owner"), Value: aws.String("shop")}}}}})
	if err != nil {
		t.Fatalf("CreateSecurityGroup() = %v", err)
	}
	if _, err := c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("web"), Description: aws.String("again")}); errCode(err) != "InvalidGroup.Duplicate" {
		t.Fatalf("CreateSecurityGroup(dup) = %v; want InvalidGroup.Duplicate", err)
	}
	tests := []struct {
		name string
		in   ec2.DescribeSecurityGroupsInput
		want int
	}{
		{"all", ec2.DescribeSecurityGroupsInput{}, 2},
		{"by id", ec2.DescribeSecurityGroupsInput{GroupIds: []string{*g.GroupId}}, 1},
		{"by name", ec2.DescribeSecurityGroupsInput{GroupNames: []string{"default"}}, 1},
		{"by tag", ec2.DescribeSecurityGroupsInput{Filters: []types.Filter{{Name: aws.String("tag:kiln:owner"), Values: []string{"shop"}}}}, 1},
		{"by name filter", ec2.DescribeSecurityGroupsInput{Filters: []types.Filter{{Name: aws.String("group-name"), Values: []string{"w*"}}}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := c.DescribeSecurityGroups(ctx, &tt.in)
			if err != nil || len(out.SecurityGroups) != tt.want {
				t.Fatalf("DescribeSecurityGroups() = %d, %v; want %d", len(out.SecurityGroups), err, tt.want)
			}
		})
	}
	_, err = c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{"sg-0123456789abcdef0"}})
	if errCode(err) != "InvalidGroup.NotFound" {
		t.Fatalf("DescribeSecurityGroups(unknown) = %v; want InvalidGroup.NotFound", err)
	}
}

func TestTags(t *testing.T) {
	s, c := newTestSim(t, Options{})
	ctx := t.Context()
	ami := baseImage(t, c)
	ins := run(t, c, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(6), MaxCount: aws.Int32(6)})
	var ids []string
	for _, in := range ins {
		ids = append(ids, *in.InstanceId)
	}
	tag := func(k, v string) types.Tag { return types.Tag{Key: aws.String(k), Value: aws.String(v)} }
	if _, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: ids, Tags: []types.Tag{tag("env", "prod"), tag("team", "web")}}); err != nil {
		t.Fatalf("CreateTags() = %v", err)
	}
	n := 0
	p := ec2.NewDescribeTagsPaginator(c, &ec2.DescribeTagsInput{MaxResults: aws.Int32(5), Filters: []types.Filter{{Name: aws.String("resource-type"), Values: []string{"instance"}}}})
	for p.HasMorePages() {
		pg, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("DescribeTags page = %v", err)
		}
		n += len(pg.Tags)
	}
	if n != 12 {
		t.Fatalf("DescribeTags(instances) = %d tags; want 12", n)
	}
	// DeleteTags: with a value only when it matches; without, any value.
	if _, err := c.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: ids[:1], Tags: []types.Tag{tag("env", "dev")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: ids[:2], Tags: []types.Tag{{Key: aws.String("team")}}}); err != nil {
		t.Fatal(err)
	}
	out, err := c.DescribeTags(ctx, &ec2.DescribeTagsInput{Filters: []types.Filter{{Name: aws.String("resource-id"), Values: []string{ids[0]}}}})
	if err != nil || len(out.Tags) != 1 || aws.ToString(out.Tags[0].Key) != "env" || out.Tags[0].ResourceType != types.ResourceTypeInstance {
		t.Fatalf("tags of %s = %+v, %v; want only env", ids[0], out.Tags, err)
	}
	tests := []struct {
		name string
		in   ec2.CreateTagsInput
		want string
	}{
		{"unknown instance", ec2.CreateTagsInput{Resources: []string{"i-0123456789abcdef0"}, Tags: []types.Tag{tag("a", "b")}}, "InvalidInstanceID.NotFound"},
		{"malformed", ec2.CreateTagsInput{Resources: []string{"i-zz"}, Tags: []types.Tag{tag("a", "b")}}, "InvalidInstanceID.Malformed"},
		{"unknown kind", ec2.CreateTagsInput{Resources: []string{"foo-12345678"}, Tags: []types.Tag{tag("a", "b")}}, "InvalidID"},
		{"reserved", ec2.CreateTagsInput{Resources: ids[:1], Tags: []types.Tag{tag("aws:cloudformation", "b")}}, "InvalidParameterValue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := c.CreateTags(ctx, &tt.in); errCode(err) != tt.want {
				t.Fatalf("CreateTags() = %v; want %s", err, tt.want)
			}
		})
	}
	many := make([]types.Tag, 51)
	for i := range many {
		many[i] = tag("k"+itoa(i), "v")
	}
	if _, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: ids[:1], Tags: many}); errCode(err) != "TagLimitExceeded" {
		t.Fatalf("CreateTags(51) = %v; want TagLimitExceeded", err)
	}
	if s.Calls("CreateTags") != 6 {
		t.Fatalf("Calls(CreateTags) = %d; want 6", s.Calls("CreateTags"))
	}
}
