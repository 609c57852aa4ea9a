package cli

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"

	"kiln/internal/awsapi"
	"kiln/internal/awssim"
)

// TestAdopt: for each kind kiln adopts, things made by hand (no kiln
// tags) are adopted with --tag; the printed graph, written to a file,
// plans with nothing to change (exit 0), in YAML and in HCL; the aws CLI
// sees the tags (records: the TXT ownership record). Adopting them again
// for another graph is refused, naming the owner, and changes nothing.
func TestAdopt(t *testing.T) {
	sim := awssim.New(awssim.Options{TimeScale: 0.001})
	ctx := t.Context()
	go func() { _ = sim.Run(ctx) }()
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	env := map[string]string{
		"AWS_ENDPOINT_URL": srv.URL, "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
		"AWS_ACCESS_KEY_ID": awssim.AccessKeyID, "AWS_SECRET_ACCESS_KEY": awssim.SecretAccessKey,
		"AWS_CONFIG_FILE": os.DevNull, "AWS_SHARED_CREDENTIALS_FILE": os.DevNull, "AWS_EC2_METADATA_DISABLED": "true",
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	cfg := awssim.ClientConfig(srv.URL)
	ec := ec2.NewFromConfig(cfg)
	r53 := route53.NewFromConfig(cfg)

	// The estate, made by hand.
	launched, err := ec.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId: aws.String("ami-000f627752e462816"), InstanceType: "t3.micro", MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance, Tags: awsapi.Tags(map[string]string{"Name": "web", "team": "shop"})}},
	})
	if err != nil {
		t.Fatal(err)
	}
	instance := aws.ToString(launched.Instances[0].InstanceId)
	lt, err := ec.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("web"), LaunchTemplateData: &ec2types.RequestLaunchTemplateData{
		ImageId: aws.String("ami-000f627752e462816"), InstanceType: "t3.micro", UserData: aws.String(base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\necho hi\n")))}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := autoscaling.NewFromConfig(cfg).CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String("web-asg"), MinSize: aws.Int32(1), MaxSize: aws.Int32(2), DesiredCapacity: aws.Int32(1),
		VPCZoneIdentifier: launched.Instances[0].SubnetId,
		LaunchTemplate:    &astypes.LaunchTemplateSpecification{LaunchTemplateId: lt.LaunchTemplate.LaunchTemplateId, Version: aws.String("1")},
	}); err != nil {
		t.Fatal(err)
	}
	blob := append([]byte{0, 0, 0, 11}, "ssh-ed25519"...)
	blob = append(blob, 0, 0, 0, 32)
	blob = append(blob, bytes.Repeat([]byte{7}, 32)...)
	if _, err := ec.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{KeyName: aws.String("ops"),
		PublicKeyMaterial: []byte("ssh-ed25519 " + base64.StdEncoding.EncodeToString(blob) + " ops@laptop")}); err != nil {
		t.Fatal(err)
	}
	sg, err := ec.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("ssh"), Description: aws.String("ssh from the office")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ec.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: sg.GroupId, IpPermissions: []ec2types.IpPermission{{
		IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22), IpRanges: []ec2types.IpRange{{CidrIp: aws.String("10.0.0.0/8")}}}}}); err != nil {
		t.Fatal(err)
	}
	zone, err := r53.CreateHostedZone(ctx, &route53.CreateHostedZoneInput{Name: aws.String("adopt.example.com"), CallerReference: aws.String("by-hand"),
		HostedZoneConfig: &r53types.HostedZoneConfig{Comment: aws.String("made by hand")}})
	if err != nil {
		t.Fatal(err)
	}
	zoneID := strings.TrimPrefix(aws.ToString(zone.HostedZone.Id), "/hostedzone/")
	rr := func(name string, typ r53types.RRType, vals ...string) r53types.Change {
		rs := &r53types.ResourceRecordSet{Name: aws.String(name), Type: typ, TTL: aws.Int64(120)}
		for _, v := range vals {
			rs.ResourceRecords = append(rs.ResourceRecords, r53types.ResourceRecord{Value: aws.String(v)})
		}
		return r53types.Change{Action: r53types.ChangeActionCreate, ResourceRecordSet: rs}
	}
	if _, err := r53.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: aws.String(zoneID), ChangeBatch: &r53types.ChangeBatch{Changes: []r53types.Change{
		rr("www.adopt.example.com", r53types.RRTypeA, "10.0.0.1", "10.0.0.2"),
		rr("adopt.example.com", r53types.RRTypeTxt, `"v=spf1 -all"`),
	}}}); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	kiln := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(ctx, args, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	for _, tt := range []struct {
		kind   string
		args   []string
		format string
	}{
		{"aws:ec2", []string{"--filter", "tag:team=shop"}, "yaml"},
		{"aws:asg", []string{"--id", "web-asg"}, "hcl"},
		{"aws:key_pair", []string{"--filter", "key-name=ops"}, "hcl"},
		{"aws:security_group", []string{"--id", aws.ToString(sg.GroupId)}, "yaml"},
		{"aws:route53_zone", []string{"--filter", "name=adopt.example.com"}, "hcl"},
		{"aws:route53_record", []string{"--filter", "zone=adopt.example.com"}, "yaml"},
	} {
		t.Run(tt.kind, func(t *testing.T) {
			graph := "adopt-" + strings.TrimPrefix(tt.kind, "aws:")
			code, stdout, stderr := kiln(append([]string{"adopt", tt.kind, "--graph", graph, "--tag", "--format", tt.format}, tt.args...)...)
			if code != 0 {
				t.Fatalf("kiln adopt %s = %d: %s", tt.kind, code, stderr)
			}
			t.Logf("adopted:\n%s", stdout)
			file := filepath.Join(dir, graph+"."+tt.format)
			if err := os.WriteFile(file, []byte(stdout), 0o644); err != nil {
				t.Fatal(err)
			}
			if code, stdout, stderr := kiln("plan", file); code != 0 {
				t.Errorf("kiln plan of the adopted blocks = %d; want 0 (nothing to change)\n%s%s", code, stdout, stderr)
			}
			// Another graph cannot take them.
			code, stdout, stderr = kiln(append([]string{"adopt", tt.kind, "--graph", "thief", "--tag"}, tt.args...)...)
			if code != 1 || !strings.Contains(stderr, `graph "`+graph+`" owns it`) || stdout != "" {
				t.Errorf("kiln adopt for another graph = %d: %s%s; want refused, naming %s", code, stdout, stderr, graph)
			}
		})
	}

	// The aws CLI, a second client, sees what adopt wrote.
	if _, err := exec.LookPath("aws"); err != nil {
		t.Skip("the aws CLI is not installed: second-client check skipped")
	}
	awsCLI := func(out any, args ...string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, "aws", append([]string{"--output", "json"}, args...)...)
		cmd.Env = os.Environ()
		b, err := cmd.Output()
		if err != nil {
			t.Fatalf("aws %s: %v", strings.Join(args, " "), err)
		}
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatal(err)
		}
	}
	var tags struct {
		Tags []struct{ ResourceId, Key, Value string }
	}
	awsCLI(&tags, "ec2", "describe-tags", "--filters", "Name=key,Values=kiln:resource")
	got := map[string]string{}
	for _, tg := range tags.Tags {
		got[tg.ResourceId] = tg.Value
	}
	if got[instance] != "aws:ec2/web" || got[aws.ToString(sg.GroupId)] != "aws:security_group/ssh" {
		t.Errorf("aws ec2 describe-tags kiln:resource = %v; want the instance and the group adopted", got)
	}
	var ztags struct {
		ResourceTagSet struct{ Tags []struct{ Key, Value string } }
	}
	awsCLI(&ztags, "route53", "list-tags-for-resource", "--resource-type", "hostedzone", "--resource-id", zoneID)
	if !strings.Contains(fmtTags(ztags.ResourceTagSet.Tags), "kiln:owner=adopt-route53_zone") {
		t.Errorf("aws route53 list-tags-for-resource = %v; want kiln:owner", ztags.ResourceTagSet.Tags)
	}
	var sets struct {
		ResourceRecordSets []struct {
			Name, Type      string
			ResourceRecords []struct{ Value string }
		}
	}
	awsCLI(&sets, "route53", "list-resource-record-sets", "--hosted-zone-id", zoneID)
	owners := map[string]string{}
	for _, rs := range sets.ResourceRecordSets {
		if strings.HasPrefix(rs.Name, "kiln-") && len(rs.ResourceRecords) == 1 {
			owners[rs.Name] = rs.ResourceRecords[0].Value
		}
	}
	if owners["kiln-a.www.adopt.example.com."] != `"kiln:owner=adopt-route53_record,kiln:resource=aws:route53_record/www-a"` ||
		owners["kiln-txt.adopt.example.com."] == "" || len(owners) != 2 {
		t.Errorf("ownership records = %v; want one beside each adopted record", owners)
	}
}

func fmtTags(tags []struct{ Key, Value string }) string {
	var b strings.Builder
	for _, t := range tags {
		b.WriteString(t.Key + "=" + t.Value + " ")
	}
	return b.String()
}
