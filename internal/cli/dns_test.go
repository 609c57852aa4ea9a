package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"kiln/internal/awssim"
	"kiln/internal/engine"
)

// TestDNSDriftByHandWithTheAWSCLI: kiln keeps a record pointing at the
// instance it runs; an UPSERT made with the aws CLI (another client) is
// reported by plan (exit 2, the change spelled out) and put back by run.
func TestDNSDriftByHandWithTheAWSCLI(t *testing.T) {
	if _, err := exec.LookPath("aws"); err != nil {
		t.Skip("the aws CLI is not installed")
	}
	sim := awssim.New(awssim.Options{TimeScale: 0.001})
	ctx := t.Context()
	go func() { _ = sim.Run(ctx) }()
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL": srv.URL, "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
		"AWS_ACCESS_KEY_ID": awssim.AccessKeyID, "AWS_SECRET_ACCESS_KEY": awssim.SecretAccessKey,
		"AWS_CONFIG_FILE": os.DevNull, "AWS_SHARED_CREDENTIALS_FILE": os.DevNull, "AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}
	awsCLI := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, "aws", append([]string{"--output", "json"}, args...)...).Output()
		if err != nil {
			t.Fatalf("aws %s: %v", strings.Join(args, " "), err)
		}
		return string(out)
	}
	var zone struct{ HostedZone struct{ Id string } }
	if err := json.Unmarshal([]byte(awsCLI("route53", "create-hosted-zone", "--name", "shop.example", "--caller-reference", "ops")), &zone); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	graph := filepath.Join(dir, "dns.yaml")
	if err := os.WriteFile(graph, []byte(`name: dns
resources:
  - kind: aws:ec2
    name: web
    image: ami-000f627752e462816
    type: t3.micro
  - kind: aws:route53_record
    name: web
    zone: shop.example
    record: web.shop.example
    type: A
    ttl: 60
    values: ["${aws:ec2/web.private_ip}"]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	kiln := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(ctx, args, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	record := func() string {
		var out struct {
			ResourceRecordSets []struct {
				Name            string
				ResourceRecords []struct{ Value string }
			}
		}
		if err := json.Unmarshal([]byte(awsCLI("route53", "list-resource-record-sets", "--hosted-zone-id", zone.HostedZone.Id)), &out); err != nil {
			t.Fatal(err)
		}
		for _, rs := range out.ResourceRecordSets {
			if rs.Name == "web.shop.example." && len(rs.ResourceRecords) == 1 {
				return rs.ResourceRecords[0].Value
			}
		}
		return ""
	}

	if code, _, stderr := kiln("run", "--once", graph); code != 0 {
		t.Fatalf("kiln run --once = %d\n%s", code, stderr)
	}
	ip := ""
	for _, in := range sim.Instances() {
		ip = in.PrivateIP
	}
	if got := record(); ip == "" || got != ip {
		t.Fatalf("record = %q; want the instance's address %q", got, ip)
	}
	if code, stdout, stderr := kiln("plan", graph); code != 0 {
		t.Fatalf("kiln plan after run = %d; want 0\n%s%s", code, stdout, stderr)
	}

	awsCLI("route53", "change-resource-record-sets", "--hosted-zone-id", zone.HostedZone.Id, "--change-batch",
		`{"Changes":[{"Action":"UPSERT","ResourceRecordSet":{"Name":"web.shop.example","Type":"A","TTL":60,"ResourceRecords":[{"Value":"192.0.2.7"}]}}]}`)
	code, stdout, stderr := kiln("plan", graph)
	want := fmt.Sprintf("update record web.shop.example. A: [192.0.2.7] -> [%s]", ip)
	if code != ExitPending || !strings.Contains(stdout, "~ aws:route53_record/web") || !strings.Contains(stdout, want) {
		t.Fatalf("kiln plan after the UPSERT by hand = %d; want 2 and %q\n%s%s", code, want, stdout, stderr)
	}
	if code, _, stderr := kiln("run", "--once", graph); code != 0 {
		t.Fatalf("kiln run --once (repair) = %d\n%s", code, stderr)
	}
	if got := record(); got != ip {
		t.Errorf("record after the repair = %q; want %q", got, ip)
	}

	code, stdout, _ = kiln("iam-policy", graph)
	for _, act := range []string{"route53:ChangeResourceRecordSets", "route53:GetChange", "route53:ListHostedZonesByName", "route53:ListResourceRecordSets"} {
		if code != 0 || !strings.Contains(stdout, `"`+act+`"`) {
			t.Errorf("iam-policy = %d, lacks %s:\n%s", code, act, stdout)
		}
	}
}

func TestDNSValidate(t *testing.T) {
	graph := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(graph, []byte(`name: dns
resources:
  - kind: aws:route53_record
    name: www
    zone: shop.example
    record: www.shop.example
    type: A
    values: [www.elsewhere.example]
  - kind: aws:route53_record
    name: www-alias
    zone: shop.example
    record: www.shop.example
    type: CNAME
    values: [lb.elsewhere.example]
  - kind: aws:route53_zone
    name: shop.example
    vpc: vpc-0123
`), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"validate", graph}, &stdout, &stderr)
	for _, want := range []string{
		`bad.yaml:8: aws:route53_record "www": values[0]: "www.elsewhere.example" is not an IPv4 address`,
		`bad.yaml:13: aws:route53_record "www-alias": type: a CNAME cannot share its name with other records`,
		`bad.yaml:17: aws:route53_zone "shop.example": vpc: a zone with a VPC is private: set private: true`,
	} {
		if code != ExitError || !strings.Contains(stderr.String(), want) {
			t.Errorf("validate = %d; want 1 and %q\n%s", code, want, stderr.String())
		}
	}
}

// TestAutoWorkers: one worker per AWS resource beyond the default, so the
// records of a big zone wait for INSYNC together; local kinds do not count.
func TestAutoWorkers(t *testing.T) {
	graph := func(kind string, n int) *engine.Graph {
		specs := make([]*engine.Spec, n)
		for i := range specs {
			name := fmt.Sprintf("r%d", i)
			specs[i] = &engine.Spec{Kind: kind, Name: name, Hash: name,
				Build: func(engine.Lookup) (engine.Resource, string, error) { return nil, name, nil }}
		}
		g, err := engine.NewGraph("g", specs)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	for _, tc := range []struct {
		kind string
		n    int
		want int
	}{
		{"aws:route53_record", 10, defaultWorkers},
		{"aws:route53_record", 1000, 1000},
		{"aws:ec2", 10000, maxAutoWorkers},
		{"noop", 100000, defaultWorkers},
	} {
		if got := autoWorkers(graph(tc.kind, tc.n)); got != tc.want {
			t.Errorf("autoWorkers(%d %s) = %d; want %d", tc.n, tc.kind, got, tc.want)
		}
	}
}
