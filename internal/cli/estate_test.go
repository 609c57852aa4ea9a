package cli

import (
	"bytes"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"kiln/internal/awsapi"
	"kiln/internal/awssim"
)

// TestPruneAndDestroy drives the estate as an operator would, against
// the simulator over HTTP: a removed resource is listed as orphaned and
// left alone without prune; with prune the mass-prune guard refuses until
// --confirm-prune names the count; protect refuses a destroy; destroy
// removes everything the graph owns and nothing of another graph.
func TestPruneAndDestroy(t *testing.T) {
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
	dir := t.TempDir()
	write := func(name, head string, instances ...string) string {
		t.Helper()
		var b strings.Builder
		b.WriteString(head + "resources:\n")
		for _, in := range instances {
			fmt.Fprintf(&b, "  - kind: aws:ec2\n    name: %s\n    image: ami-000f627752e462816\n    type: t3.micro\n", in)
			if in == "db" && !strings.Contains(head, "# unprotected") {
				b.WriteString("    meta: {protect: true}\n")
			}
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	kiln := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(ctx, args, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	live := func(graph string) []string {
		var out []string
		for _, in := range sim.Instances() {
			if in.Tags[awsapi.TagOwner] == graph && in.State != "terminated" && in.State != "shutting-down" {
				out = append(out, in.Tags[awsapi.TagResource])
			}
		}
		slices.Sort(out)
		return out
	}
	all := []string{"aws:ec2/db", "aws:ec2/web-1", "aws:ec2/web-2", "aws:ec2/web-3", "aws:ec2/web-4", "aws:ec2/web-5"}

	full := write("full.yaml", "name: shop\n", "db", "web-1", "web-2", "web-3", "web-4", "web-5")
	other := write("other.yaml", "name: other\n", "web-1")
	for _, f := range []string{full, other} {
		if code, _, stderr := kiln("run", "--once", f); code != 0 {
			t.Fatalf("run --once %s = %d: %s", f, code, stderr)
		}
	}
	if got := live("shop"); !slices.Equal(got, all) {
		t.Fatalf("live = %q; want %q", got, all)
	}

	// Without prune: listed, counted, left alone.
	kept := write("kept.yaml", "name: shop\n", "db")
	code, stdout, stderr := kiln("plan", kept)
	if code != 0 || !strings.Contains(stdout, "? aws:ec2/web-2") || !strings.Contains(stdout, "orphaned (removed from the graph; set prune to destroy it)") ||
		!strings.Contains(stdout, "0 to destroy, 1 unchanged, 5 orphaned") {
		t.Fatalf("plan without prune = %d\n%s%s; want exit 0, five orphans listed and counted", code, stdout, stderr)
	}
	if code, _, stderr := kiln("run", "--once", kept); code != 0 {
		t.Fatalf("run --once without prune = %d: %s", code, stderr)
	}
	if got := live("shop"); !slices.Equal(got, all) {
		t.Fatalf("live after run without prune = %q; want all six left alone", got)
	}

	// With prune: five of six is past the guard.
	pruned := write("pruned.yaml", "name: shop\nprune: true\n", "db")
	code, stdout, _ = kiln("plan", pruned)
	if code != 2 || !strings.Contains(stdout, "  - aws:ec2/web-2") || !strings.Contains(stdout, "destroy (removed from the graph)") ||
		!strings.Contains(stdout, "5 to destroy") || !strings.Contains(stdout, "! run will not prune") {
		t.Fatalf("plan with prune = %d\n%s; want exit 2, five to destroy and the guard's refusal", code, stdout)
	}
	code, _, stderr = kiln("run", "--once", pruned)
	if code != 1 || !strings.Contains(stderr, "would destroy 5 of the 6 resources") || !strings.Contains(stderr, "--confirm-prune 5") {
		t.Fatalf("run --once with prune = %d: %s; want the guard to refuse, naming the count", code, stderr)
	}
	if got := live("shop"); !slices.Equal(got, all) {
		t.Fatalf("live after a refused prune = %q; want all six", got)
	}
	if code, _, stderr := kiln("run", "--once", "--confirm-prune", "4", pruned); code != 1 {
		t.Fatalf("run --confirm-prune 4 (not the count) = %d: %s; want refused", code, stderr)
	}
	if code, _, stderr := kiln("run", "--once", "--confirm-prune", "5", pruned); code != 0 {
		t.Fatalf("run --confirm-prune 5 = %d: %s", code, stderr)
	}
	if got := live("shop"); !slices.Equal(got, all[:1]) {
		t.Fatalf("live after the prune = %q; want %q", got, all[:1])
	}
	if code, stdout, _ := kiln("plan", pruned); code != 0 {
		t.Fatalf("plan after the prune = %d\n%s; want 0", code, stdout)
	}

	// Destroy: protect refuses; without a terminal --auto-approve is needed.
	code, _, stderr = kiln("destroy", "--auto-approve", pruned)
	if code != 1 || !strings.Contains(stderr, "aws:ec2/db: meta protect is set") {
		t.Fatalf("destroy of a protected resource = %d: %s; want refused, naming it", code, stderr)
	}
	// db carries the kiln:protect tag: a file that no longer lists it
	// still cannot destroy it (nor prune it); one that lists it without
	// protect can.
	gone := write("gone.yaml", "name: shop\nprune: true\n", "web-1")
	code, _, stderr = kiln("destroy", "--auto-approve", gone)
	if code != 1 || !strings.Contains(stderr, "aws:ec2/db: meta protect is set") {
		t.Fatalf("destroy of a protected resource the file no longer lists = %d: %s; want refused by its tag, naming it", code, stderr)
	}
	code, stdout, _ = kiln("plan", gone)
	if code != 2 || !strings.Contains(stdout, "aws:ec2/db carries the kiln:protect tag") {
		t.Fatalf("plan of a prune of a protected orphan = %d\n%s; want the refusal naming it", code, stdout)
	}
	if code, _, stderr := kiln("run", "--once", gone); code != 1 || !strings.Contains(stderr, "aws:ec2/db carries the kiln:protect tag") {
		t.Fatalf("run --once pruning a protected orphan = %d: %s; want refused, naming it", code, stderr)
	}
	if got := live("shop"); !slices.Equal(got, all[:1]) {
		t.Fatalf("live after a refused prune of a protected orphan = %q; want %q", got, all[:1])
	}
	unprotected := write("unprotected.yaml", "name: shop # unprotected\n", "db")
	code, stdout, _ = kiln("plan", "--destroy", unprotected)
	if code != 2 || !strings.Contains(stdout, "- aws:ec2/db") || !strings.Contains(stdout, "1 to destroy") {
		t.Fatalf("plan --destroy = %d\n%s; want db listed", code, stdout)
	}
	if code, _, stderr := kiln("destroy", unprotected); code != 1 || !strings.Contains(stderr, "--auto-approve") {
		t.Fatalf("destroy without a terminal = %d: %s; want a usage error naming --auto-approve", code, stderr)
	}
	if code, stdout, stderr := kiln("destroy", "--auto-approve", unprotected); code != 0 || !strings.Contains(stdout, "destroyed 1 resource") {
		t.Fatalf("destroy --auto-approve = %d: %s%s", code, stdout, stderr)
	}
	if got := live("shop"); len(got) != 0 {
		t.Errorf("live after destroy = %q; want none", got)
	}
	if got := live("other"); !slices.Equal(got, []string{"aws:ec2/web-1"}) {
		t.Errorf("the other graph's instances after destroy = %q; want untouched", got)
	}
	if code, stdout, _ := kiln("plan", "--destroy", unprotected); code != 0 || !strings.Contains(stdout, "0 to destroy") {
		t.Errorf("plan --destroy after destroy = %d\n%s; want 0", code, stdout)
	}
}
