package awssim

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The conformance tests drive every action the simulator serves through
// two independent serializers of the AWS wire protocols: the aws CLI
// (botocore, Python) here, and aws-sdk-go-v2 in conformance_sdk_test.go.
// Each runs a scenario against a simulator of its own, and then every
// action of every service must have been served at least once (the
// simulator's own call counters say so): an action added to a service's
// table without a step in both scenarios fails them.

// cli runs the aws CLI against one simulator, signing for one region
// (us-east-1, the home world, unless in says otherwise).
type cli struct {
	t      *testing.T
	url    string
	env    []string
	region string
}

// in is c signing for region, which picks that region's world.
func (c *cli) in(region string) *cli {
	c2 := *c
	c2.region = region
	return &c2
}

// newCLI starts a simulator over HTTP and returns it with a CLI pointed
// at it. Without the aws CLI the test is skipped, unless CI is set.
func newCLI(t *testing.T) (*Sim, *cli) {
	t.Helper()
	if _, err := exec.LookPath("aws"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("the aws CLI is not installed, and CI is set")
		}
		t.Skip("the aws CLI is not installed")
	}
	s := New(Options{}) // immediate transitions: the CLI is slow enough
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	home := t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv) // none of the machine's AWS settings
		}
	}
	env = append(env,
		"AWS_ACCESS_KEY_ID=AKIAKILNSIMULATOR00", "AWS_SECRET_ACCESS_KEY=kiln-simulator-secret",
		"AWS_DEFAULT_REGION=us-east-1", "AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE="+filepath.Join(home, "config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(home, "credentials"),
		"AWS_PAGER=", "AWS_MAX_ATTEMPTS=1", "HOME="+home)
	return s, &cli{t: t, url: srv.URL, env: env, region: "us-east-1"}
}

func (c *cli) cmd(args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(c.t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "aws", append([]string{"--endpoint-url", c.url, "--output", "json", "--region", c.region}, args...)...)
	cmd.Env = c.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// ok runs a command that must succeed and returns its JSON answer.
func (c *cli) ok(args ...string) jsonDoc {
	c.t.Helper()
	out, errOut, err := c.cmd(args...)
	if err != nil {
		c.t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	var doc any
	if strings.TrimSpace(out) != "" {
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			c.t.Fatalf("aws %s: not JSON: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return jsonDoc{doc}
}

// fails runs a command that must fail with code, and returns the CLI's
// message ("An error occurred (Code) when calling the X operation: ...").
func (c *cli) fails(code string, args ...string) string {
	c.t.Helper()
	_, errOut, err := c.cmd(args...)
	if err == nil || !strings.Contains(errOut, "An error occurred ("+code+")") {
		c.t.Fatalf("aws %s = %v, %q; want error %s", strings.Join(args, " "), err, errOut, code)
	}
	return strings.TrimSpace(errOut)
}

// jsonDoc reads paths like "Reservations.0.Instances.0.InstanceId".
type jsonDoc struct{ v any }

func (d jsonDoc) get(path string) any {
	v := d.v
	for _, p := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func (d jsonDoc) str(path string) string {
	s, _ := d.get(path).(string)
	return s
}

func (d jsonDoc) len(path string) int {
	l, _ := d.get(path).([]any)
	return len(l)
}

// wantAllServed fails for every action of every service that s has not
// served.
func wantAllServed(t *testing.T, s *Sim, via string) {
	t.Helper()
	for _, svc := range services {
		for _, a := range slices.Sorted(maps.Keys(svc.actions)) {
			if s.Calls(a) == 0 {
				t.Errorf("%s: action %s of %s was never served: add a step to the %s conformance scenario", via, a, svc.name, via)
			}
		}
	}
}

const cliArchMessage = "An error occurred (InvalidParameterValue) when calling the RunInstances operation: " + archMessage

func TestConformanceCLI(t *testing.T) {
	t.Parallel()
	s, c := newCLI(t)
	// Instance types and images.
	it := c.ok("ec2", "describe-instance-types", "--instance-types", "t3.micro", "t4g.small")
	if it.len("InstanceTypes") != 2 || it.get("InstanceTypes.0.VCpuInfo.DefaultVCpus") != 2.0 {
		t.Fatalf("describe-instance-types = %v", it.v)
	}
	c.fails("InvalidInstanceType", "ec2", "describe-instance-types", "--instance-types", "t9.huge")
	img := c.ok("ec2", "describe-images", "--owners", "amazon", "--filters", "Name=name,Values=al2023-ami-2023.9*-kernel-6.1-x86_64")
	ami := img.str("Images.0.ImageId")
	arm := c.ok("ec2", "describe-images", "--owners", "amazon", "--filters", "Name=name,Values=al2023-ami-2023.9*-kernel-6.1-arm64", "Name=architecture,Values=arm64").str("Images.0.ImageId")
	if ami == "" || arm == "" {
		t.Fatalf("describe-images: x86_64 %q, arm64 %q", ami, arm)
	}

	// The default VPC and its subnets.
	vpc := c.ok("ec2", "describe-vpcs", "--filters", "Name=is-default,Values=true")
	if vpc.get("Vpcs.0.IsDefault") != true {
		t.Fatalf("describe-vpcs = %v", vpc.v)
	}
	subnets := c.ok("ec2", "describe-subnets", "--filters", "Name=vpc-id,Values="+vpc.str("Vpcs.0.VpcId"))
	subnet := subnets.str("Subnets.0.SubnetId")
	if subnets.len("Subnets") != 6 {
		t.Errorf("describe-subnets = %d subnets; want 6", subnets.len("Subnets"))
	}

	// Key pairs.
	made := c.ok("ec2", "create-key-pair", "--key-name", "made", "--key-type", "ed25519")
	if !strings.HasPrefix(made.str("KeyMaterial"), "-----BEGIN OPENSSH PRIVATE KEY-----") {
		t.Errorf("create-key-pair material = %.40q", made.str("KeyMaterial"))
	}
	line, _ := testPublicKey()
	pub := filepath.Join(t.TempDir(), "id.pub")
	if err := os.WriteFile(pub, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.ok("ec2", "import-key-pair", "--key-name", "ops", "--public-key-material", "fileb://"+pub)
	if msg := c.fails("InvalidKeyPair.Duplicate", "ec2", "import-key-pair", "--key-name", "ops", "--public-key-material", "fileb://"+pub); !strings.HasSuffix(msg, "The keypair 'ops' already exists.") {
		t.Errorf("import-key-pair (again) = %q", msg)
	}
	if kp := c.ok("ec2", "describe-key-pairs"); kp.len("KeyPairs") != 2 {
		t.Errorf("describe-key-pairs = %v", kp.v)
	}
	c.ok("ec2", "delete-key-pair", "--key-name", "made")

	// Security groups and their rules.
	sg := c.ok("ec2", "create-security-group", "--group-name", "web", "--description", "web servers").str("GroupId")
	c.ok("ec2", "authorize-security-group-ingress", "--group-id", sg, "--protocol", "tcp", "--port", "22", "--cidr", "10.0.0.0/8")
	dup := c.fails("InvalidPermission.Duplicate", "ec2", "authorize-security-group-ingress", "--group-id", sg, "--protocol", "tcp", "--port", "22", "--cidr", "10.0.0.0/8")
	if want := `An error occurred (InvalidPermission.Duplicate) when calling the AuthorizeSecurityGroupIngress operation: the specified rule "peer: 10.0.0.0/8, TCP, from port: 22, to port: 22, ALLOW" already exists`; dup != want {
		t.Errorf("duplicate rule:\n got %s\nwant %s", dup, want)
	}
	c.ok("ec2", "authorize-security-group-egress", "--group-id", sg, "--ip-permissions", "IpProtocol=tcp,FromPort=443,ToPort=443,IpRanges=[{CidrIp=0.0.0.0/0,Description=https}]")
	groups := c.ok("ec2", "describe-security-groups", "--group-ids", sg)
	if groups.str("SecurityGroups.0.IpPermissions.0.IpRanges.0.CidrIp") != "10.0.0.0/8" || groups.len("SecurityGroups.0.IpPermissionsEgress") != 2 {
		t.Errorf("describe-security-groups = %v", groups.v)
	}
	rules := c.ok("ec2", "describe-security-group-rules", "--filters", "Name=group-id,Values="+sg)
	if rules.len("SecurityGroupRules") != 3 {
		t.Errorf("describe-security-group-rules = %v", rules.v)
	}
	var egressAll string
	for i := range rules.len("SecurityGroupRules") {
		p := "SecurityGroupRules." + strconv.Itoa(i)
		if rules.get(p+".IsEgress") == true && rules.str(p+".IpProtocol") == "-1" {
			egressAll = rules.str(p + ".SecurityGroupRuleId")
		}
	}
	c.ok("ec2", "revoke-security-group-ingress", "--group-id", sg, "--protocol", "tcp", "--port", "22", "--cidr", "10.0.0.0/8")
	c.ok("ec2", "revoke-security-group-egress", "--group-id", sg, "--security-group-rule-ids", egressAll)

	// Instances: the architecture check, then a launch and its life.
	if msg := c.fails("InvalidParameterValue", "ec2", "run-instances", "--image-id", arm, "--instance-type", "t3.micro", "--count", "1"); msg != cliArchMessage {
		t.Errorf("run-instances (arm64 on t3.micro):\n got %s\nwant %s", msg, cliArchMessage)
	}
	run := c.ok("ec2", "run-instances", "--image-id", ami, "--instance-type", "t3.micro", "--count", "1", "--security-group-ids", sg,
		"--subnet-id", subnet, "--key-name", "ops", "--user-data", "#!/bin/sh\necho hello from the cli",
		"--tag-specifications", "ResourceType=instance,Tags=[{Key=Name,Value=cli}]")
	id := run.str("Instances.0.InstanceId")
	if d := c.ok("ec2", "describe-instances", "--instance-ids", id); d.str("Reservations.0.Instances.0.State.Name") != "running" || d.str("Reservations.0.Instances.0.KeyName") != "ops" {
		t.Errorf("describe-instances = %v", d.v)
	}
	c.ok("ec2", "describe-instance-status", "--instance-ids", id, "--include-all-instances")
	c.ok("ec2", "create-tags", "--resources", id, "--tags", "Key=team,Value=web")
	if tags := c.ok("ec2", "describe-tags", "--filters", "Name=resource-id,Values="+id); tags.len("Tags") != 2 {
		t.Errorf("describe-tags = %v", tags.v)
	}
	c.ok("ec2", "delete-tags", "--resources", id, "--tags", "Key=team")
	if out := c.ok("ec2", "get-console-output", "--instance-id", id, "--latest"); !strings.Contains(out.str("Output"), "hello from the cli") {
		t.Errorf("get-console-output = %v", out.v)
	}
	c.ok("ec2", "reboot-instances", "--instance-ids", id)
	c.ok("ec2", "associate-iam-instance-profile", "--instance-id", id, "--iam-instance-profile", "Name=web")
	assoc := c.ok("ec2", "describe-iam-instance-profile-associations", "--filters", "Name=instance-id,Values="+id).str("IamInstanceProfileAssociations.0.AssociationId")
	assoc = c.ok("ec2", "replace-iam-instance-profile-association", "--association-id", assoc, "--iam-instance-profile", "Name=web2").str("IamInstanceProfileAssociation.AssociationId")
	c.ok("ec2", "disassociate-iam-instance-profile", "--association-id", assoc)
	c.ok("ec2", "stop-instances", "--instance-ids", id)
	c.ok("ec2", "modify-instance-attribute", "--instance-id", id, "--instance-type", "Value=t3.small")
	if a := c.ok("ec2", "describe-instance-attribute", "--instance-id", id, "--attribute", "instanceType"); a.str("InstanceType.Value") != "t3.small" {
		t.Errorf("describe-instance-attribute = %v", a.v)
	}
	c.ok("ec2", "start-instances", "--instance-ids", id)

	// Images and snapshots.
	image := c.ok("ec2", "create-image", "--instance-id", id, "--name", "cli-image").str("ImageId")
	snaps := c.ok("ec2", "describe-snapshots", "--owner-ids", "self")
	if snaps.len("Snapshots") != 1 {
		t.Fatalf("describe-snapshots = %v", snaps.v)
	}
	// Shared with another account: the image's launch permission and its
	// snapshot's create-volume permission list it.
	const other = "210987654321"
	c.ok("ec2", "modify-image-attribute", "--image-id", image, "--launch-permission", "Add=[{UserId="+other+"}]")
	if a := c.ok("ec2", "describe-image-attribute", "--image-id", image, "--attribute", "launchPermission"); a.str("ImageId") != image ||
		a.len("LaunchPermissions") != 1 || a.str("LaunchPermissions.0.UserId") != other {
		t.Errorf("describe-image-attribute = %v; want launch permission for %s", a.v, other)
	}
	snap := snaps.str("Snapshots.0.SnapshotId")
	c.ok("ec2", "modify-snapshot-attribute", "--snapshot-id", snap, "--attribute", "createVolumePermission", "--operation-type", "add", "--user-ids", other)
	if a := c.ok("ec2", "describe-snapshot-attribute", "--snapshot-id", snap, "--attribute", "createVolumePermission"); a.str("SnapshotId") != snap ||
		a.len("CreateVolumePermissions") != 1 || a.str("CreateVolumePermissions.0.UserId") != other {
		t.Errorf("describe-snapshot-attribute = %v; want create-volume permission for %s", a.v, other)
	}
	// Copied to us-west-2: the call goes to the destination region, and
	// the copy is a new image of that world, available, with the name.
	west := c.in("us-west-2")
	cp := west.ok("ec2", "copy-image", "--source-region", "us-east-1", "--source-image-id", image, "--name", "cli-image").str("ImageId")
	if !strings.HasPrefix(cp, "ami-") || cp == image {
		t.Fatalf("copy-image = %q; want a new image id, not %s", cp, image)
	}
	if d := west.ok("ec2", "describe-images", "--image-ids", cp); d.len("Images") != 1 || d.str("Images.0.State") != "available" ||
		d.str("Images.0.Name") != "cli-image" || d.str("Images.0.BlockDeviceMappings.0.Ebs.SnapshotId") == snap {
		t.Errorf("describe-images (us-west-2, the copy) = %v; want cli-image available, on a snapshot of its own", d.v)
	}
	// Deprecated and disabled, then undone: DescribeImages answers the
	// deprecation time (rounded to the minute) and the disabled state, and
	// lists a disabled image only with --include-disabled.
	at := time.Now().UTC().Add(90 * 24 * time.Hour).Truncate(time.Minute)
	c.ok("ec2", "enable-image-deprecation", "--image-id", image, "--deprecate-at", at.Add(10*time.Second).Format(time.RFC3339))
	if d := c.ok("ec2", "describe-images", "--image-ids", image); d.str("Images.0.DeprecationTime") != at.Format("2006-01-02T15:04:05.000Z") {
		t.Errorf("describe-images DeprecationTime = %q; want %s", d.str("Images.0.DeprecationTime"), at.Format("2006-01-02T15:04:05.000Z"))
	}
	c.ok("ec2", "disable-image-deprecation", "--image-id", image)
	c.ok("ec2", "disable-image", "--image-id", image)
	if d := c.ok("ec2", "describe-images", "--owners", "self"); d.len("Images") != 0 {
		t.Errorf("describe-images --owners self (one image, disabled) = %v; want none", d.v)
	}
	if d := c.ok("ec2", "describe-images", "--owners", "self", "--include-disabled"); d.len("Images") != 1 || d.str("Images.0.State") != "disabled" || d.get("Images.0.DeprecationTime") != nil {
		t.Errorf("describe-images --include-disabled = %v; want the image, disabled, no deprecation time", d.v)
	}
	c.fails("InvalidAMIID.Unavailable", "ec2", "run-instances", "--image-id", image, "--instance-type", "t3.micro")
	c.ok("ec2", "enable-image", "--image-id", image)
	if d := c.ok("ec2", "describe-images", "--owners", "self"); d.str("Images.0.State") != "available" {
		t.Errorf("describe-images after enable-image = %v; want available", d.v)
	}
	c.ok("ec2", "deregister-image", "--image-id", image)
	c.ok("ec2", "delete-snapshot", "--snapshot-id", snaps.str("Snapshots.0.SnapshotId"))

	// Launch templates and an Auto Scaling group.
	lt := c.ok("ec2", "create-launch-template", "--launch-template-name", "web",
		"--launch-template-data", `{"ImageId":"`+ami+`","InstanceType":"t3.micro"}`).str("LaunchTemplate.LaunchTemplateId")
	c.ok("ec2", "create-launch-template-version", "--launch-template-id", lt, "--source-version", "1", "--launch-template-data", `{"InstanceType":"t3.small"}`)
	if d := c.ok("ec2", "describe-launch-templates", "--launch-template-ids", lt); d.get("LaunchTemplates.0.LatestVersionNumber") != 2.0 {
		t.Errorf("describe-launch-templates = %v", d.v)
	}
	if d := c.ok("ec2", "describe-launch-template-versions", "--launch-template-id", lt, "--versions", "$Latest"); d.str("LaunchTemplateVersions.0.LaunchTemplateData.InstanceType") != "t3.small" {
		t.Errorf("describe-launch-template-versions = %v", d.v)
	}
	c.ok("ec2", "modify-launch-template", "--launch-template-id", lt, "--default-version", "2")
	c.ok("autoscaling", "create-auto-scaling-group", "--auto-scaling-group-name", "web", "--launch-template", "LaunchTemplateId="+lt+",Version=1",
		"--min-size", "1", "--max-size", "3", "--vpc-zone-identifier", subnet)
	c.ok("autoscaling", "update-auto-scaling-group", "--auto-scaling-group-name", "web", "--desired-capacity", "2")
	c.ok("autoscaling", "create-or-update-tags", "--tags", "ResourceId=web,ResourceType=auto-scaling-group,Key=team,Value=web,PropagateAtLaunch=true")
	if g := c.ok("autoscaling", "describe-auto-scaling-groups", "--auto-scaling-group-names", "web"); g.get("AutoScalingGroups.0.DesiredCapacity") != 2.0 {
		t.Errorf("describe-auto-scaling-groups = %v", g.v)
	}
	c.ok("autoscaling", "start-instance-refresh", "--auto-scaling-group-name", "web",
		"--desired-configuration", `{"LaunchTemplate":{"LaunchTemplateId":"`+lt+`","Version":"2"}}`, "--preferences", `{"MinHealthyPercentage":50,"InstanceWarmup":0}`)
	if r := c.ok("autoscaling", "describe-instance-refreshes", "--auto-scaling-group-name", "web"); r.len("InstanceRefreshes") != 1 {
		t.Errorf("describe-instance-refreshes = %v", r.v)
	}
	// Cancel or roll back: whichever still applies, the answer is the
	// service's (success, or its error for a refresh already over).
	for _, op := range []string{"cancel-instance-refresh", "rollback-instance-refresh"} {
		if _, errOut, err := c.cmd("autoscaling", op, "--auto-scaling-group-name", "web"); err != nil && !strings.Contains(errOut, "An error occurred (ActiveInstanceRefreshNotFound)") &&
			!strings.Contains(errOut, "An error occurred (IrreversibleInstanceRefresh)") {
			t.Errorf("aws autoscaling %s: %v %s", op, err, errOut)
		}
	}
	c.ok("autoscaling", "delete-auto-scaling-group", "--auto-scaling-group-name", "web", "--force-delete")
	c.ok("ec2", "delete-launch-template", "--launch-template-id", lt)

	// Route 53: a zone, its comment, the instance's address as a record
	// (the change PENDING, then INSYNC: immediate transitions fall due by
	// the next call), the record deleted and the zone with it.
	zone := c.ok("route53", "create-hosted-zone", "--name", "conform.example", "--caller-reference", "cli-conformance",
		"--hosted-zone-config", "Comment=made by the CLI")
	zoneID := zone.str("HostedZone.Id")
	if !strings.HasPrefix(zoneID, "/hostedzone/Z") || zone.str("HostedZone.Name") != "conform.example." ||
		zone.str("ChangeInfo.Status") != "PENDING" || zone.len("DelegationSet.NameServers") != 4 {
		t.Fatalf("create-hosted-zone = %v", zone.v)
	}
	if z := c.ok("route53", "get-hosted-zone", "--id", zoneID); z.str("HostedZone.Config.Comment") != "made by the CLI" ||
		z.get("HostedZone.ResourceRecordSetCount") != 2.0 || z.str("DelegationSet.NameServers.0") != zone.str("DelegationSet.NameServers.0") {
		t.Errorf("get-hosted-zone = %v", z.v)
	}
	if z := c.ok("route53", "update-hosted-zone-comment", "--id", zoneID, "--comment", "conformance"); z.str("HostedZone.Config.Comment") != "conformance" {
		t.Errorf("update-hosted-zone-comment = %v", z.v)
	}
	bare := strings.TrimPrefix(zoneID, "/hostedzone/")
	c.ok("route53", "change-tags-for-resource", "--resource-type", "hostedzone", "--resource-id", bare, "--add-tags", "Key=team,Value=dns")
	if tg := c.ok("route53", "list-tags-for-resource", "--resource-type", "hostedzone", "--resource-id", bare); tg.str("ResourceTagSet.Tags.0.Value") != "dns" {
		t.Errorf("list-tags-for-resource = %v", tg.v)
	}
	if tg := c.ok("route53", "list-tags-for-resources", "--resource-type", "hostedzone", "--resource-ids", bare); tg.str("ResourceTagSets.0.ResourceId") != bare {
		t.Errorf("list-tags-for-resources = %v", tg.v)
	}
	if l := c.ok("route53", "list-hosted-zones"); l.len("HostedZones") != 1 || l.str("HostedZones.0.Id") != zoneID {
		t.Errorf("list-hosted-zones = %v", l.v)
	}
	if l := c.ok("route53", "list-hosted-zones-by-name", "--dns-name", "conform.example"); l.str("HostedZones.0.Id") != zoneID ||
		l.str("HostedZones.0.Config.Comment") != "conformance" {
		t.Errorf("list-hosted-zones-by-name = %v", l.v)
	}
	ip := run.str("Instances.0.PrivateIpAddress")
	record := func(action string) string {
		return fmt.Sprintf(`{"Comment":"the instance","Changes":[{"Action":%q,"ResourceRecordSet":{"Name":"web.conform.example","Type":"A","TTL":60,"ResourceRecords":[{"Value":%q}]}}]}`, action, ip)
	}
	ch := c.ok("route53", "change-resource-record-sets", "--hosted-zone-id", zoneID, "--change-batch", record("CREATE"))
	if ch.str("ChangeInfo.Status") != "PENDING" || ch.str("ChangeInfo.Comment") != "the instance" {
		t.Errorf("change-resource-record-sets = %v", ch.v)
	}
	if g := c.ok("route53", "get-change", "--id", ch.str("ChangeInfo.Id")); g.str("ChangeInfo.Status") != "INSYNC" || g.str("ChangeInfo.Id") != ch.str("ChangeInfo.Id") {
		t.Errorf("get-change = %v", g.v)
	}
	recs := c.ok("route53", "list-resource-record-sets", "--hosted-zone-id", zoneID) // the apex's NS and SOA first
	if ip == "" || recs.len("ResourceRecordSets") != 3 || recs.str("ResourceRecordSets.2.Name") != "web.conform.example." ||
		recs.get("ResourceRecordSets.2.TTL") != 60.0 || recs.str("ResourceRecordSets.2.ResourceRecords.0.Value") != ip {
		t.Errorf("list-resource-record-sets = %v; want web.conform.example. A %s last", recs.v, ip)
	}
	c.ok("route53", "change-resource-record-sets", "--hosted-zone-id", zoneID, "--change-batch", record("DELETE"))
	if d := c.ok("route53", "delete-hosted-zone", "--id", zoneID); !strings.HasPrefix(d.str("ChangeInfo.Id"), "/change/C") || d.str("ChangeInfo.Status") != "PENDING" {
		t.Errorf("delete-hosted-zone = %v", d.v)
	}

	// SQS and EventBridge: a queue EventBridge may send to, and a rule
	// that puts the instance's termination into it.
	qurl := c.ok("sqs", "create-queue", "--queue-name", "events", "--attributes", "VisibilityTimeout=60").str("QueueUrl")
	if !strings.HasPrefix(qurl, "http://") || !strings.HasSuffix(qurl, "/123456789012/events") {
		t.Fatalf("create-queue = %q", qurl)
	}
	if u := c.ok("sqs", "get-queue-url", "--queue-name", "events").str("QueueUrl"); u != qurl {
		t.Errorf("get-queue-url = %q; want %q", u, qurl)
	}
	qa := c.ok("sqs", "get-queue-attributes", "--queue-url", qurl, "--attribute-names", "QueueArn", "VisibilityTimeout")
	qarn := qa.str("Attributes.QueueArn")
	if qarn != "arn:aws:sqs:us-east-1:123456789012:events" || qa.str("Attributes.VisibilityTimeout") != "60" {
		t.Errorf("get-queue-attributes = %v", qa.v)
	}
	pattern := `{"source":["aws.ec2"],"detail-type":["` + DetailInstanceState + `"],"detail":{"instance-id":["` + id + `"],"state":["shutting-down","terminated"]}}`
	ruleArn := c.ok("events", "put-rule", "--name", "terminations", "--event-pattern", pattern, "--description", "the instance's end").str("RuleArn")
	if ruleArn != "arn:aws:events:us-east-1:123456789012:rule/terminations" {
		t.Errorf("put-rule = %q", ruleArn)
	}
	if d := c.ok("events", "describe-rule", "--name", "terminations"); d.str("Arn") != ruleArn || d.str("State") != "ENABLED" ||
		d.str("EventPattern") != pattern || d.str("Description") != "the instance's end" {
		t.Errorf("describe-rule = %v", d.v)
	}
	policy, _ := json.Marshal(map[string]string{"Policy": `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"events.amazonaws.com"},` +
		`"Action":"sqs:SendMessage","Resource":"` + qarn + `","Condition":{"ArnEquals":{"aws:SourceArn":"` + ruleArn + `"}}}]}`})
	c.ok("sqs", "set-queue-attributes", "--queue-url", qurl, "--attributes", string(policy))
	if pt := c.ok("events", "put-targets", "--rule", "terminations", "--targets", `[{"Id":"queue","Arn":"`+qarn+`"}]`); pt.get("FailedEntryCount") != 0.0 {
		t.Errorf("put-targets = %v", pt.v)
	}
	if lt := c.ok("events", "list-targets-by-rule", "--rule", "terminations"); lt.len("Targets") != 1 || lt.str("Targets.0.Id") != "queue" || lt.str("Targets.0.Arn") != qarn {
		t.Errorf("list-targets-by-rule = %v", lt.v)
	}
	// A message of our own, there and back.
	const body = "hello from the cli"
	sum := md5.Sum([]byte(body))
	sent := c.ok("sqs", "send-message", "--queue-url", qurl, "--message-body", body)
	if sent.str("MD5OfMessageBody") != hex.EncodeToString(sum[:]) || sent.str("MessageId") == "" {
		t.Errorf("send-message = %v", sent.v)
	}
	got := c.ok("sqs", "receive-message", "--queue-url", qurl, "--wait-time-seconds", "1", "--attribute-names", "All")
	if got.len("Messages") != 1 || got.str("Messages.0.Body") != body || got.str("Messages.0.MessageId") != sent.str("MessageId") ||
		got.str("Messages.0.Attributes.ApproximateReceiveCount") != "1" {
		t.Fatalf("receive-message = %v", got.v)
	}
	c.ok("sqs", "delete-message", "--queue-url", qurl, "--receipt-handle", got.str("Messages.0.ReceiptHandle"))

	// The end: the instance goes, then its group.
	c.ok("ec2", "terminate-instances", "--instance-ids", id)
	c.ok("ec2", "delete-security-group", "--group-id", sg)

	// Its termination reached the queue through the rule: shutting-down,
	// then terminated. One deleted in a batch with a handle SQS never
	// gave; the purge takes the other, still in flight.
	evs := c.ok("sqs", "receive-message", "--queue-url", qurl, "--max-number-of-messages", "10", "--wait-time-seconds", "1")
	for i, state := range []string{"shutting-down", "terminated"} {
		var ev struct {
			DetailType string            `json:"detail-type"`
			Detail     map[string]string `json:"detail"`
		}
		if err := json.Unmarshal([]byte(evs.str("Messages."+strconv.Itoa(i)+".Body")), &ev); err != nil || evs.len("Messages") != 2 ||
			ev.DetailType != DetailInstanceState || ev.Detail["instance-id"] != id || ev.Detail["state"] != state {
			t.Fatalf("receive-message (events) = %v; want %s's shutting-down and terminated", evs.v, id)
		}
	}
	entries, _ := json.Marshal([]map[string]string{{"Id": "first", "ReceiptHandle": evs.str("Messages.0.ReceiptHandle")}, {"Id": "bogus", "ReceiptHandle": "not-a-handle"}})
	if b := c.ok("sqs", "delete-message-batch", "--queue-url", qurl, "--entries", string(entries)); b.len("Successful") != 1 || b.str("Successful.0.Id") != "first" ||
		b.len("Failed") != 1 || b.str("Failed.0.Id") != "bogus" || b.str("Failed.0.Code") != "ReceiptHandleIsInvalid" || b.get("Failed.0.SenderFault") != true {
		t.Errorf("delete-message-batch = %v", b.v)
	}
	c.ok("sqs", "purge-queue", "--queue-url", qurl)
	if a := c.ok("sqs", "get-queue-attributes", "--queue-url", qurl, "--attribute-names", "All"); a.str("Attributes.ApproximateNumberOfMessages") != "0" ||
		a.str("Attributes.ApproximateNumberOfMessagesNotVisible") != "0" || !strings.Contains(a.str("Attributes.Policy"), ruleArn) {
		t.Errorf("get-queue-attributes after the purge = %v", a.v)
	}

	// SSM Parameter Store: a String overwritten (its version goes up), a
	// SecureString (ciphertext unless decrypted), one a level deeper; read
	// by name, by names and by path, then deleted.
	if v := c.ok("ssm", "put-parameter", "--name", "/conform/app/greeting", "--value", "hello", "--type", "String"); v.get("Version") != 1.0 {
		t.Errorf("put-parameter = %v; want version 1", v.v)
	}
	if v := c.ok("ssm", "put-parameter", "--name", "/conform/app/greeting", "--value", "hello again", "--overwrite"); v.get("Version") != 2.0 {
		t.Errorf("put-parameter --overwrite = %v; want version 2", v.v)
	}
	c.ok("ssm", "put-parameter", "--name", "/conform/app/password", "--value", "s3cret", "--type", "SecureString")
	c.ok("ssm", "put-parameter", "--name", "/conform/app/db/host", "--value", "db.internal", "--type", "String")
	if g := c.ok("ssm", "get-parameter", "--name", "/conform/app/password"); g.str("Parameter.Type") != "SecureString" ||
		g.str("Parameter.Value") == "" || strings.Contains(g.str("Parameter.Value"), "s3cret") {
		t.Errorf("get-parameter (SecureString) = %v; want ciphertext", g.v)
	}
	if g := c.ok("ssm", "get-parameter", "--name", "/conform/app/password", "--with-decryption"); g.str("Parameter.Value") != "s3cret" ||
		g.str("Parameter.ARN") != "arn:aws:ssm:us-east-1:123456789012:parameter/conform/app/password" {
		t.Errorf("get-parameter --with-decryption = %v", g.v)
	}
	if g := c.ok("ssm", "get-parameters", "--names", "/conform/app/greeting", "/conform/nope"); g.len("Parameters") != 1 ||
		g.str("Parameters.0.Value") != "hello again" || g.get("Parameters.0.Version") != 2.0 ||
		g.len("InvalidParameters") != 1 || g.str("InvalidParameters.0") != "/conform/nope" {
		t.Errorf("get-parameters = %v; want greeting at version 2, /conform/nope invalid", g.v)
	}
	if p := c.ok("ssm", "get-parameters-by-path", "--path", "/conform/app", "--with-decryption"); p.len("Parameters") != 2 ||
		p.str("Parameters.0.Name") != "/conform/app/greeting" || p.str("Parameters.1.Name") != "/conform/app/password" || p.str("Parameters.1.Value") != "s3cret" {
		t.Errorf("get-parameters-by-path = %v; want greeting and password (not db/host, a level deeper)", p.v)
	}
	c.ok("ssm", "delete-parameter", "--name", "/conform/app/greeting")
	if d := c.ok("ssm", "delete-parameters", "--names", "/conform/app/password", "/conform/app/db/host", "/conform/app/greeting"); d.len("DeletedParameters") != 2 ||
		d.len("InvalidParameters") != 1 || d.str("InvalidParameters.0") != "/conform/app/greeting" {
		t.Errorf("delete-parameters = %v; want two deleted, greeting (already gone) invalid", d.v)
	}
	if p := c.ok("ssm", "get-parameters-by-path", "--path", "/conform", "--recursive"); p.len("Parameters") != 0 {
		t.Errorf("get-parameters-by-path after the deletes = %v; want none", p.v)
	}

	// CloudWatch alarms (AWS JSON 1.0: the protocol the CLI v1 picks).
	c.ok("cloudwatch", "put-metric-alarm", "--alarm-name", "conform-5xx", "--metric-name", "5XXError", "--namespace", "AWS/ApplicationELB",
		"--statistic", "Sum", "--period", "60", "--evaluation-periods", "1", "--threshold", "5", "--comparison-operator", "GreaterThanThreshold")
	c.ok("cloudwatch", "set-alarm-state", "--alarm-name", "conform-5xx", "--state-value", "ALARM", "--state-reason", "conformance")
	if d := c.ok("cloudwatch", "describe-alarms", "--state-value", "ALARM"); d.len("MetricAlarms") != 1 || d.str("MetricAlarms.0.AlarmName") != "conform-5xx" ||
		d.str("MetricAlarms.0.StateReason") != "conformance" {
		t.Errorf("describe-alarms --state-value ALARM = %v; want conform-5xx", d.v)
	}
	c.ok("cloudwatch", "delete-alarms", "--alarm-names", "conform-5xx")
	conformKMSCLI(t, c) // kms_conformance_test.go
	// STS.
	if who := c.ok("sts", "get-caller-identity"); who.str("Account") != "123456789012" {
		t.Errorf("sts get-caller-identity = %v", who.v)
	}
	if ar := c.ok("sts", "assume-role", "--role-arn", "arn:aws:iam::123456789012:role/kiln", "--role-session-name", "conform"); ar.str("AssumedRoleUser.Arn") != "arn:aws:sts::123456789012:assumed-role/kiln/conform" ||
		!strings.HasPrefix(ar.str("Credentials.AccessKeyId"), "ASIA") {
		t.Errorf("sts assume-role = %v", ar.v)
	}
	c.fails("AccessDenied", "sts", "assume-role", "--role-arn", "arn:aws:iam::123456789012:role/admin", "--role-session-name", "conform")

	wantAllServed(t, s, "CLI")
}
