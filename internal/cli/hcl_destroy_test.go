package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"kiln/internal/awsapi"
)

// TestDestroyHCL: kiln plan --destroy and kiln destroy read an HCL graph
// directory (its variables and AWS data sources included) as run does,
// and destroy what it owns; --var on a YAML graph is a usage error.
func TestDestroyHCL(t *testing.T) {
	sim, _ := simEnv(t)
	dir := filepath.Join(t.TempDir(), "shop")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"main.hcl": `graph = "shop"
variable "n" {
  type    = number
  default = 1
}
`,
		"web.hcl": `data "aws:ami" "base" {
  owner       = "amazon"
  name        = "al2023-ami-2023.*-x86_64"
  most_recent = true
}
resource "aws:ec2" "web" {
  count = var.n
  image = data.aws_ami.base.image_id
  type  = "t3.micro"
}
`,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	kiln := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), args, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	live := func() []string {
		var out []string
		for _, in := range sim.Instances() {
			if in.Tags[awsapi.TagOwner] == "shop" && in.State != "terminated" && in.State != "shutting-down" {
				out = append(out, in.Tags[awsapi.TagResource])
			}
		}
		slices.Sort(out)
		return out
	}
	if code, _, stderr := kiln("run", "--once", "--var", "n=2", dir); code != 0 {
		t.Fatalf("run --once = %d: %s", code, stderr)
	}
	want := []string{"aws:ec2/web[0]", "aws:ec2/web[1]"}
	if got := live(); !slices.Equal(got, want) {
		t.Fatalf("live = %q; want %q", got, want)
	}
	// With n = 1 the graph lists web[0] only: destroy still takes both.
	code, stdout, stderr := kiln("plan", "--destroy", dir)
	if code != 2 || !strings.Contains(stdout, "- aws:ec2/web[0]") || !strings.Contains(stdout, "- aws:ec2/web[1]") || !strings.Contains(stdout, "2 to destroy") {
		t.Fatalf("plan --destroy = %d\n%s%s; want exit 2 and both instances listed", code, stdout, stderr)
	}
	if code, stdout, stderr := kiln("destroy", "--auto-approve", "--var", "n=1", dir); code != 0 || !strings.Contains(stdout, "destroyed 2 resources") {
		t.Fatalf("destroy --auto-approve = %d: %s%s", code, stdout, stderr)
	}
	if got := live(); len(got) != 0 {
		t.Errorf("live after destroy = %q; want none", got)
	}
	if code, stdout, _ := kiln("plan", "--destroy", filepath.Join(dir, "..", "shop")); code != 0 || !strings.Contains(stdout, "0 to destroy") {
		t.Errorf("plan --destroy after destroy = %d\n%s; want 0", code, stdout)
	}

	// A bad HCL graph is refused with its position; --var is for HCL.
	bad := filepath.Join(t.TempDir(), "bad.hcl")
	if err := os.WriteFile(bad, []byte("graph = \"shop\"\nresource \"aws:ec2\" \"x\" { nope = 1 }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := kiln("destroy", "--auto-approve", bad); code != 1 || !strings.Contains(stderr, "bad.hcl:2:") {
		t.Errorf("destroy of a bad graph = %d: %s; want 1 naming bad.hcl:2", code, stderr)
	}
	yaml := filepath.Join(t.TempDir(), "g.yaml")
	if err := os.WriteFile(yaml, []byte("name: g\nresources: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := kiln("destroy", "--auto-approve", "--var", "n=1", yaml); code != ExitError || !strings.Contains(stderr, "--var") {
		t.Errorf("destroy --var of a YAML graph = %d: %s; want a usage error", code, stderr)
	}
}
