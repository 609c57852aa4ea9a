package awssim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"

	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"
)

// awsCLI runs the aws CLI against the simulator at url with dummy
// credentials and no shared configuration: a second client, with a
// serializer and parser of its own (botocore's), besides the Go SDK.
func awsCLI(t *testing.T, url string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "aws", append([]string{"--endpoint-url", url, "--output", "json"}, args...)...)
	cmd.Env = append(os.Environ(),
		"AWS_ACCESS_KEY_ID="+AccessKeyID, "AWS_SECRET_ACCESS_KEY="+SecretAccessKey,
		"AWS_DEFAULT_REGION=us-east-1", "AWS_REGION=us-east-1",
		"AWS_CONFIG_FILE="+os.DevNull, "AWS_SHARED_CREDENTIALS_FILE="+os.DevNull,
		"AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER=", "AWS_MAX_ATTEMPTS=1",
	)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

func TestRoute53WithTheAWSCLI(t *testing.T) {
	if _, err := exec.LookPath("aws"); err != nil {
		t.Skip("the aws CLI is not installed")
	}
	s := New(Options{ManualClock: true, TimeScale: 1})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	cli := func(args ...string) map[string]any {
		t.Helper()
		out, stderr, err := awsCLI(t, srv.URL, args...)
		if err != nil {
			t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		var v map[string]any
		if out != "" {
			if err := json.Unmarshal([]byte(out), &v); err != nil {
				t.Fatalf("aws %s: output %q: %v", strings.Join(args, " "), out, err)
			}
		}
		return v
	}
	fails := func(want string, args ...string) {
		t.Helper()
		_, stderr, err := awsCLI(t, srv.URL, args...)
		if err == nil || !strings.Contains(stderr, want) {
			t.Errorf("aws %s = %v, %q; want a failure with %q", strings.Join(args, " "), err, stderr, want)
		}
	}

	z := cli("route53", "create-hosted-zone", "--name", "cli.example", "--caller-reference", "cli-1", "--hosted-zone-config", "Comment=made by the CLI")
	zone := z["HostedZone"].(map[string]any)
	id := zone["Id"].(string)
	if zone["Name"] != "cli.example." || z["ChangeInfo"].(map[string]any)["Status"] != "PENDING" {
		t.Errorf("create-hosted-zone = %v", z)
	}
	batch := func(action, value string) string {
		return fmt.Sprintf(`{"Comment":"by hand","Changes":[{"Action":%q,"ResourceRecordSet":{"Name":"www.cli.example","Type":"A","TTL":60,"ResourceRecords":[{"Value":%q}]}}]}`, action, value)
	}
	ch := cli("route53", "change-resource-record-sets", "--hosted-zone-id", id, "--change-batch", batch("UPSERT", "10.0.0.1"))
	changeID := ch["ChangeInfo"].(map[string]any)["Id"].(string)
	if st := cli("route53", "get-change", "--id", changeID)["ChangeInfo"].(map[string]any)["Status"]; st != "PENDING" {
		t.Errorf("get-change at once = %v; want PENDING", st)
	}
	s.Advance(s.opts.Durations.DNSChange)
	if st := cli("route53", "get-change", "--id", changeID)["ChangeInfo"].(map[string]any)["Status"]; st != "INSYNC" {
		t.Errorf("get-change later = %v; want INSYNC", st)
	}

	// Route 53's own errors, as the CLI shows them.
	fails("InvalidChangeBatch", "route53", "change-resource-record-sets", "--hosted-zone-id", id, "--change-batch", batch("CREATE", "10.0.0.2"))
	fails("ARRDATAIllegalIPv4Address", "route53", "change-resource-record-sets", "--hosted-zone-id", id, "--change-batch", batch("UPSERT", "not-an-ip"))
	fails("HostedZoneNotEmpty", "route53", "delete-hosted-zone", "--id", id)
	fails("NoSuchHostedZone", "route53", "get-hosted-zone", "--id", "ZNOSUCHZONE0000000000")

	// The CLI pages through 400 more records by itself (NextRecordName/Type).
	var changes []r53types.Change
	for i := range 400 {
		changes = append(changes, aRecord(r53types.ChangeActionCreate, fmt.Sprintf("h%03d.cli.example", i), 300, "10.1.0.1"))
	}
	sdk := newSDKRoute53(srv.URL)
	if _, err := change(t, sdk, id, changes...); err != nil {
		t.Fatal(err)
	}
	s.ResetCalls()
	recs := cli("route53", "list-resource-record-sets", "--hosted-zone-id", id)["ResourceRecordSets"].([]any)
	if len(recs) != 403 || s.Calls("ListResourceRecordSets") != 2 {
		t.Errorf("list-resource-record-sets = %d records in %d calls; want 403 (SOA, NS, www and 400) in 2", len(recs), s.Calls("ListResourceRecordSets"))
	}
	resp, err := http.Get(srv.URL + "/_sim/route53/zones/" + strings.TrimPrefix(id, "/hostedzone/"))
	if err != nil {
		t.Fatal(err)
	}
	var zi ZoneInfo
	if err := json.NewDecoder(resp.Body).Decode(&zi); err != nil || zi.Count != 403 || zi.Records[402].Name != "www.cli.example." || zi.Records[402].Values[0] != "10.0.0.1" {
		t.Errorf("GET /_sim/route53/zones/ID = %+v, %v; want 403 records, www last", zi.Count, err)
	}
	resp.Body.Close()
	byName := cli("route53", "list-hosted-zones-by-name", "--dns-name", "cli.example")["HostedZones"].([]any)
	if len(byName) != 1 || byName[0].(map[string]any)["Config"].(map[string]any)["Comment"] != "made by the CLI" {
		t.Errorf("list-hosted-zones-by-name = %v", byName)
	}
}
