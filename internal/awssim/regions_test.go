package awssim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// regionSim is a manual-clock simulator with a client per region.
type regionSim struct {
	sim *Sim
	url string
}

func newRegionSim(t *testing.T) *regionSim {
	t.Helper()
	s := New(Options{ManualClock: true, TimeScale: 1})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &regionSim{sim: s, url: srv.URL}
}

func (rs *regionSim) client(region string) *ec2.Client {
	return ec2.NewFromConfig(ClientConfig(rs.url, region), func(o *ec2.Options) { o.RetryMaxAttempts = 1 })
}

// ownImage bakes an available image of the account in c's region.
func ownImage(t *testing.T, s *Sim, c *ec2.Client, name string) string {
	t.Helper()
	ctx := t.Context()
	id := launchOne(t, s, c, nil)
	img, err := c.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(id), Name: aws.String(name),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeImage, Tags: []types.Tag{{Key: aws.String("app"), Value: aws.String("web")}}}}})
	if err != nil {
		t.Fatalf("CreateImage() = %v", err)
	}
	s.Advance(5 * time.Minute)
	return aws.ToString(img.ImageId)
}

func TestRegionsAreSeparateWorlds(t *testing.T) {
	rs := newRegionSim(t)
	ctx := t.Context()
	east, west := rs.client("us-east-1"), rs.client("us-west-2")
	stock := func(c *ec2.Client) map[string]string {
		out, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"}})
		if err != nil {
			t.Fatalf("DescribeImages() = %v", err)
		}
		m := map[string]string{}
		for _, im := range out.Images {
			m[aws.ToString(im.Name)] = aws.ToString(im.ImageId)
		}
		return m
	}
	e, w := stock(east), stock(west)
	if len(e) != 18 || len(w) != 18 {
		t.Fatalf("stock images: %d east, %d west; want 18 each", len(e), len(w))
	}
	for name, id := range e {
		if w[name] == "" || w[name] == id {
			t.Errorf("stock image %s: east %s, west %s; want the same name with another id", name, id, w[name])
		}
	}
	// An instance launched in the west is not in the east.
	id := launchOne(t, rs.sim.mustRegion(t, "us-west-2"), west, nil)
	if _, err := east.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}); errCode(err) != "InvalidInstanceID.NotFound" {
		t.Errorf("east DescribeInstances(west instance) = %v; want InvalidInstanceID.NotFound", err)
	}
	if _, ok := rs.sim.Instance(id); ok {
		t.Errorf("home world lists the west instance")
	}
	if in, ok := rs.sim.mustRegion(t, "us-west-2").Instance(id); !ok || in.State != StateRunning {
		t.Errorf("west world: instance %s = %+v; want running", id, in)
	}
	// Calls are counted on the home world, for every region.
	if n := rs.sim.Calls("RunInstances"); n != 1 {
		t.Errorf("Calls(RunInstances) = %d; want 1", n)
	}
	// A region AWS does not have is refused.
	if _, err := rs.client("xx-nowhere-1").DescribeImages(ctx, &ec2.DescribeImagesInput{}); errCode(err) != "AuthFailure" {
		t.Errorf("DescribeImages in xx-nowhere-1 = %v; want AuthFailure", err)
	}
	if got := rs.sim.Regions(); strings.Join(got, ",") != "us-east-1,us-west-2" {
		t.Errorf("Regions() = %v", got)
	}
	// The control API of one region.
	resp, err := http.Get(rs.url + "/_sim/regions/us-west-2/instances")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list []InstanceInfo
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || len(list) != 1 || list[0].ID != id {
		t.Errorf("GET /_sim/regions/us-west-2/instances = %v, %v; want [%s]", list, err, id)
	}
}

func (s *Sim) mustRegion(t *testing.T, region string) *Sim {
	t.Helper()
	w, err := s.Region(region)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestCopyImage(t *testing.T) {
	rs := newRegionSim(t)
	ctx := t.Context()
	east, west := rs.client("us-east-1"), rs.client("us-west-2")
	src := ownImage(t, rs.sim, east, "web-1")
	in := &ec2.CopyImageInput{SourceRegion: aws.String("us-east-1"), SourceImageId: aws.String(src), Name: aws.String("web-1"),
		ClientToken: aws.String("tok-1"), CopyImageTags: aws.Bool(true),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeImage, Tags: []types.Tag{{Key: aws.String("kiln:copy-of"), Value: aws.String(src)}}}}}
	out, err := west.CopyImage(ctx, in)
	if err != nil {
		t.Fatalf("CopyImage() = %v", err)
	}
	cp := aws.ToString(out.ImageId)
	// Idempotent by token; another parameter with the same token is a mismatch.
	again, err := west.CopyImage(ctx, in)
	if err != nil || aws.ToString(again.ImageId) != cp {
		t.Fatalf("CopyImage(same token) = %v, %v; want %s", again, err, cp)
	}
	other := *in
	other.Description = aws.String("other")
	if _, err := west.CopyImage(ctx, &other); errCode(err) != "IdempotentParameterMismatch" {
		t.Errorf("CopyImage(same token, other params) = %v; want IdempotentParameterMismatch", err)
	}
	describe := func(c *ec2.Client, id string) (types.Image, error) {
		out, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}})
		if err != nil {
			return types.Image{}, err
		}
		return out.Images[0], nil
	}
	img, err := describe(west, cp)
	if err != nil || img.State != types.ImageStatePending {
		t.Fatalf("copy right after CopyImage: %v, %v; want pending", img.State, err)
	}
	// The copy is not in the source region, and the source is not in the destination.
	if _, err := describe(east, cp); errCode(err) != "InvalidAMIID.NotFound" {
		t.Errorf("east DescribeImages(copy) = %v; want InvalidAMIID.NotFound", err)
	}
	if _, err := west.CopyImage(ctx, &ec2.CopyImageInput{SourceRegion: aws.String("us-west-2"), SourceImageId: aws.String(src), Name: aws.String("x-1")}); errCode(err) != "InvalidAMIID.NotFound" {
		t.Errorf("CopyImage(source in the wrong region) = %v; want InvalidAMIID.NotFound", err)
	}
	rs.sim.Advance(10 * time.Minute)
	img, err = describe(west, cp)
	if err != nil || img.State != types.ImageStateAvailable {
		t.Fatalf("copy after 10 min: %v, %v; want available", img.State, err)
	}
	tags := map[string]string{}
	for _, tg := range img.Tags {
		tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	if tags["app"] != "web" || tags["kiln:copy-of"] != src {
		t.Errorf("copy tags = %v; want app=web (copied) and kiln:copy-of", tags)
	}
	snap := aws.ToString(img.BlockDeviceMappings[0].Ebs.SnapshotId)
	srcImg, _ := describe(east, src)
	if snap == "" || snap == aws.ToString(srcImg.BlockDeviceMappings[0].Ebs.SnapshotId) {
		t.Errorf("copy snapshot %q; want a new one", snap)
	}
	if n := rs.sim.Calls("CopyImage"); n != 4 {
		t.Errorf("Calls(CopyImage) = %d; want 4", n)
	}

	// Encrypted, with and without a key; a key needs Encrypted.
	enc, err := west.CopyImage(ctx, &ec2.CopyImageInput{SourceRegion: aws.String("us-east-1"), SourceImageId: aws.String(src), Name: aws.String("web-1-enc"),
		Encrypted: aws.Bool(true), KmsKeyId: aws.String("alias/kiln")})
	if err != nil {
		t.Fatalf("CopyImage(encrypted) = %v", err)
	}
	rs.sim.Advance(10 * time.Minute)
	img, _ = describe(west, aws.ToString(enc.ImageId))
	if e := img.BlockDeviceMappings[0].Ebs; !aws.ToBool(e.Encrypted) || aws.ToString(e.KmsKeyId) != "alias/kiln" {
		t.Errorf("encrypted copy: encrypted %v key %q", aws.ToBool(e.Encrypted), aws.ToString(e.KmsKeyId))
	}
	for _, tt := range []struct {
		name string
		in   ec2.CopyImageInput
		want string
	}{
		{"key without encrypted", ec2.CopyImageInput{SourceRegion: aws.String("us-east-1"), SourceImageId: aws.String(src), Name: aws.String("n-1"), KmsKeyId: aws.String("alias/kiln")}, "InvalidParameterDependency"},
		{"bad key", ec2.CopyImageInput{SourceRegion: aws.String("us-east-1"), SourceImageId: aws.String(src), Name: aws.String("n-1"), Encrypted: aws.Bool(true), KmsKeyId: aws.String("nope")}, "InvalidParameterValue"},
		{"duplicate name", ec2.CopyImageInput{SourceRegion: aws.String("us-east-1"), SourceImageId: aws.String(src), Name: aws.String("web-1")}, "InvalidAMIName.Duplicate"},
		{"unknown source region", ec2.CopyImageInput{SourceRegion: aws.String("xx-nowhere-1"), SourceImageId: aws.String(src), Name: aws.String("n-1")}, "InvalidParameterValue"},
		{"malformed id", ec2.CopyImageInput{SourceRegion: aws.String("us-east-1"), SourceImageId: aws.String("ami-x"), Name: aws.String("n-1")}, "InvalidAMIID.Malformed"},
	} {
		if _, err := west.CopyImage(ctx, &tt.in); errCode(err) != tt.want {
			t.Errorf("CopyImage(%s) = %v; want %s", tt.name, err, tt.want)
		}
	}

	// A failing copy ends failed with a reason.
	rs.sim.mustRegion(t, "eu-west-1").FailNextImages(1)
	eu := rs.client("eu-west-1")
	bad, err := eu.CopyImage(ctx, &ec2.CopyImageInput{SourceRegion: aws.String("us-east-1"), SourceImageId: aws.String(src), Name: aws.String("web-1")})
	if err != nil {
		t.Fatal(err)
	}
	rs.sim.Advance(10 * time.Minute)
	img, _ = describe(eu, aws.ToString(bad.ImageId))
	if img.State != types.ImageStateFailed || img.StateReason == nil {
		t.Errorf("failing copy = %v; want failed with a reason", img.State)
	}
}

func TestShareImageAndSnapshots(t *testing.T) {
	rs := newRegionSim(t)
	ctx := t.Context()
	east := rs.client("us-east-1")
	id := ownImage(t, rs.sim, east, "web-1")
	_, err := east.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(id),
		LaunchPermission: &types.LaunchPermissionModifications{Add: []types.LaunchPermission{
			{UserId: aws.String("210987654321")},
			{OrganizationArn: aws.String("arn:aws:organizations::123456789012:organization/o-abcdefghij")},
			{OrganizationalUnitArn: aws.String("arn:aws:organizations::123456789012:ou/o-abcdefghij/ou-ab12-cdefgh34")},
		}}})
	if err != nil {
		t.Fatalf("ModifyImageAttribute(add) = %v", err)
	}
	// The flat form, and adding twice keeps one entry.
	if _, err := east.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(id), Attribute: aws.String("launchPermission"),
		OperationType: types.OperationTypeAdd, UserIds: []string{"210987654321", "111122223333"}}); err != nil {
		t.Fatalf("ModifyImageAttribute(flat) = %v", err)
	}
	attr, err := east.DescribeImageAttribute(ctx, &ec2.DescribeImageAttributeInput{ImageId: aws.String(id), Attribute: types.ImageAttributeNameLaunchPermission})
	if err != nil || len(attr.LaunchPermissions) != 4 {
		t.Fatalf("DescribeImageAttribute = %+v, %v; want 4 permissions", attr, err)
	}
	if _, err := east.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(id),
		LaunchPermission: &types.LaunchPermissionModifications{Remove: []types.LaunchPermission{{UserId: aws.String("111122223333")}}}}); err != nil {
		t.Fatal(err)
	}
	attr, _ = east.DescribeImageAttribute(ctx, &ec2.DescribeImageAttributeInput{ImageId: aws.String(id), Attribute: types.ImageAttributeNameLaunchPermission})
	if len(attr.LaunchPermissions) != 3 {
		t.Errorf("after remove: %d permissions; want 3", len(attr.LaunchPermissions))
	}
	// Sharing is per region: the west knows nothing of the east's image.
	if _, err := rs.client("us-west-2").DescribeImageAttribute(ctx, &ec2.DescribeImageAttributeInput{ImageId: aws.String(id), Attribute: types.ImageAttributeNameLaunchPermission}); errCode(err) != "InvalidAMIID.NotFound" {
		t.Errorf("west DescribeImageAttribute(east image) = %v; want InvalidAMIID.NotFound", err)
	}
	img, _ := east.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}})
	snap := aws.ToString(img.Images[0].BlockDeviceMappings[0].Ebs.SnapshotId)
	if _, err := east.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: aws.String(snap), Attribute: types.SnapshotAttributeNameCreateVolumePermission,
		CreateVolumePermission: &types.CreateVolumePermissionModifications{Add: []types.CreateVolumePermission{{UserId: aws.String("210987654321")}}}}); err != nil {
		t.Fatalf("ModifySnapshotAttribute = %v", err)
	}
	sa, err := east.DescribeSnapshotAttribute(ctx, &ec2.DescribeSnapshotAttributeInput{SnapshotId: aws.String(snap), Attribute: types.SnapshotAttributeNameCreateVolumePermission})
	if err != nil || len(sa.CreateVolumePermissions) != 1 || aws.ToString(sa.CreateVolumePermissions[0].UserId) != "210987654321" {
		t.Fatalf("DescribeSnapshotAttribute = %+v, %v", sa, err)
	}
	// Errors.
	stockID := baseImage(t, east)
	for _, tt := range []struct {
		name string
		call func() error
		want string
	}{
		{"bad account", func() error {
			_, err := east.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(id), LaunchPermission: &types.LaunchPermissionModifications{Add: []types.LaunchPermission{{UserId: aws.String("12")}}}})
			return err
		}, "InvalidAMIAttributeItemValue"},
		{"bad group", func() error {
			_, err := east.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(id), LaunchPermission: &types.LaunchPermissionModifications{Add: []types.LaunchPermission{{Group: types.PermissionGroup("some")}}}})
			return err
		}, "InvalidAMIAttributeItemValue"},
		{"not the owner", func() error {
			_, err := east.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(stockID), LaunchPermission: &types.LaunchPermissionModifications{Add: []types.LaunchPermission{{UserId: aws.String("210987654321")}}}})
			return err
		}, "AuthFailure"},
		{"unknown attribute", func() error {
			_, err := east.DescribeImageAttribute(ctx, &ec2.DescribeImageAttributeInput{ImageId: aws.String(id), Attribute: types.ImageAttributeName("colour")})
			return err
		}, "InvalidParameterValue"},
		{"unknown image", func() error {
			_, err := east.DescribeImageAttribute(ctx, &ec2.DescribeImageAttributeInput{ImageId: aws.String("ami-0123456789abcdef0"), Attribute: types.ImageAttributeNameLaunchPermission})
			return err
		}, "InvalidAMIID.NotFound"},
		{"nothing to change", func() error {
			_, err := east.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(id), Attribute: aws.String("launchPermission")})
			return err
		}, "MissingParameter"},
		{"unknown snapshot", func() error {
			_, err := east.DescribeSnapshotAttribute(ctx, &ec2.DescribeSnapshotAttributeInput{SnapshotId: aws.String("snap-0123456789abcdef0"), Attribute: types.SnapshotAttributeNameCreateVolumePermission})
			return err
		}, "InvalidSnapshot.NotFound"},
		{"bad snapshot account", func() error {
			_, err := east.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: aws.String(snap), OperationType: types.OperationTypeAdd, UserIds: []string{"x"}})
			return err
		}, "InvalidParameterValue"},
	} {
		if got := errCode(tt.call()); got != tt.want {
			t.Errorf("%s: %s; want %s", tt.name, got, tt.want)
		}
	}
	// Public: group all.
	if _, err := east.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(id), LaunchPermission: &types.LaunchPermissionModifications{Add: []types.LaunchPermission{{Group: types.PermissionGroupAll}}}}); err != nil {
		t.Fatal(err)
	}
	img, _ = east.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}})
	if !aws.ToBool(img.Images[0].Public) {
		t.Errorf("image with group all is not public")
	}
	// A snapshot under the AWS managed key cannot be shared.
	enc, err := east.CopyImage(ctx, &ec2.CopyImageInput{SourceRegion: aws.String("us-east-1"), SourceImageId: aws.String(id), Name: aws.String("web-1-enc"), Encrypted: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	rs.sim.Advance(10 * time.Minute)
	img, _ = east.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{aws.ToString(enc.ImageId)}})
	encSnap := img.Images[0].BlockDeviceMappings[0].Ebs.SnapshotId
	if _, err := east.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: encSnap, OperationType: types.OperationTypeAdd, UserIds: []string{"210987654321"}}); errCode(err) != "InvalidParameter" {
		t.Errorf("share a snapshot under the AWS managed key = %v; want InvalidParameter", err)
	}
}

// TestCopyAndShareWithAWSCLI drives the same calls through the aws CLI, a
// second client with its own serializers and signer.
func TestCopyAndShareWithAWSCLI(t *testing.T) {
	if _, err := exec.LookPath("aws"); err != nil {
		t.Skip("aws CLI not installed")
	}
	rs := newRegionSim(t)
	src := ownImage(t, rs.sim, rs.client("us-east-1"), "web-1")
	home := t.TempDir()
	cli := func(region string, args ...string) (map[string]any, error) {
		cmd := exec.CommandContext(t.Context(), "aws", append([]string{"ec2", "--endpoint-url", rs.url, "--region", region, "--output", "json"}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+home, "AWS_ACCESS_KEY_ID="+AccessKeyID, "AWS_SECRET_ACCESS_KEY="+SecretAccessKey,
			"AWS_CONFIG_FILE="+home+"/none", "AWS_SHARED_CREDENTIALS_FILE="+home+"/none", "AWS_PAGER=")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, &cliError{err: err, stderr: stderr.String()}
		}
		m := map[string]any{}
		if len(bytes.TrimSpace(out)) > 0 {
			if err := json.Unmarshal(out, &m); err != nil {
				t.Fatalf("aws %v: %v: %s", args, err, out)
			}
		}
		return m, nil
	}
	out, err := cli("us-west-2", "copy-image", "--source-region", "us-east-1", "--source-image-id", src, "--name", "web-1", "--client-token", "cli-1", "--copy-image-tags")
	if err != nil {
		t.Fatalf("aws ec2 copy-image: %v", err)
	}
	cp, _ := out["ImageId"].(string)
	if out, err := cli("us-west-2", "copy-image", "--source-region", "us-east-1", "--source-image-id", src, "--name", "web-1", "--client-token", "cli-1", "--copy-image-tags"); err != nil || out["ImageId"] != cp {
		t.Fatalf("aws ec2 copy-image (same token) = %v, %v; want %s", out, err, cp)
	}
	rs.sim.Advance(10 * time.Minute)
	out, err = cli("us-west-2", "describe-images", "--image-ids", cp)
	if err != nil || !strings.Contains(jsonString(out), `"State":"available"`) || !strings.Contains(jsonString(out), `"Key":"app"`) {
		t.Fatalf("aws ec2 describe-images (west) = %s, %v", jsonString(out), err)
	}
	if _, err := cli("us-east-1", "describe-images", "--image-ids", cp); err == nil || !strings.Contains(err.Error(), "InvalidAMIID.NotFound") {
		t.Errorf("aws ec2 describe-images (east, the copy) = %v; want InvalidAMIID.NotFound", err)
	}
	if _, err := cli("us-west-2", "modify-image-attribute", "--image-id", cp, "--launch-permission", "Add=[{UserId=210987654321}]"); err != nil {
		t.Fatalf("aws ec2 modify-image-attribute: %v", err)
	}
	out, err = cli("us-west-2", "describe-image-attribute", "--image-id", cp, "--attribute", "launchPermission")
	if err != nil || !strings.Contains(jsonString(out), `"UserId":"210987654321"`) {
		t.Fatalf("aws ec2 describe-image-attribute = %s, %v", jsonString(out), err)
	}
	img, _ := cli("us-west-2", "describe-images", "--image-ids", cp)
	snap := between(jsonString(img), `"SnapshotId":"`, `"`)
	if _, err := cli("us-west-2", "modify-snapshot-attribute", "--snapshot-id", snap, "--attribute", "createVolumePermission", "--operation-type", "add", "--user-ids", "210987654321"); err != nil {
		t.Fatalf("aws ec2 modify-snapshot-attribute: %v", err)
	}
	out, err = cli("us-west-2", "describe-snapshot-attribute", "--snapshot-id", snap, "--attribute", "createVolumePermission")
	if err != nil || !strings.Contains(jsonString(out), `"UserId":"210987654321"`) {
		t.Fatalf("aws ec2 describe-snapshot-attribute = %s, %v", jsonString(out), err)
	}
}

type cliError struct {
	err    error
	stderr string
}

func (e *cliError) Error() string { return e.err.Error() + ": " + e.stderr }

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func between(s, from, to string) string {
	_, rest, _ := strings.Cut(s, from)
	v, _, _ := strings.Cut(rest, to)
	return v
}
