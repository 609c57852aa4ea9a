package cli

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"kiln/internal/awsapi"
	"kiln/internal/awssim"
)

const (
	prodAccountID = "210987654321"
	prodRoleARN   = "arn:aws:iam::" + prodAccountID + ":role/kiln"
)

// accountsEnv starts a simulator with a prod account besides the starting
// one (its kiln role requires the external id shop-7) and points kiln at it.
func accountsEnv(t *testing.T) (*awssim.Sim, string) {
	t.Helper()
	sim := awssim.New(awssim.Options{TimeScale: 0.001, Accounts: []string{prodAccountID},
		ExternalIDs: map[string]string{prodRoleARN: "shop-7"}})
	go func() { _ = sim.Run(t.Context()) }()
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL": srv.URL, "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
		"AWS_ACCESS_KEY_ID": awssim.AccessKeyID, "AWS_SECRET_ACCESS_KEY": awssim.SecretAccessKey,
		"AWS_CONFIG_FILE": os.DevNull, "AWS_SHARED_CREDENTIALS_FILE": os.DevNull, "AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}
	return sim, srv.URL
}

// stockImage is the id of a stock Amazon Linux image in region (the same
// in every account, as AWS's public images are).
func stockImage(t *testing.T, url, region string) string {
	t.Helper()
	c := ec2.NewFromConfig(awssim.ClientConfig(url, region))
	out, err := c.DescribeImages(t.Context(), &ec2.DescribeImagesInput{Owners: []string{"amazon"}})
	if err != nil || len(out.Images) == 0 {
		t.Fatalf("DescribeImages(%s) = %v", region, err)
	}
	for _, im := range out.Images {
		if strings.HasSuffix(aws.ToString(im.Name), "x86_64") {
			return aws.ToString(im.ImageId)
		}
	}
	t.Fatalf("no x86_64 stock image in %s", region)
	return ""
}

// liveIn lists the kiln:resource of the live instances of graph in one
// account's region.
func liveIn(t *testing.T, sim *awssim.Sim, account, region, graph string) []string {
	t.Helper()
	acct, err := sim.Account(account)
	if err != nil {
		t.Fatal(err)
	}
	w, err := acct.Region(region)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, in := range w.Instances() {
		if in.Tags[awsapi.TagOwner] == graph && in.State != "terminated" && in.State != "shutting-down" {
			out = append(out, in.Tags[awsapi.TagResource])
		}
	}
	slices.Sort(out)
	return out
}

func kilnCmd(t *testing.T, args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// awsProfileCLI runs the aws CLI with an assumed-role profile of the prod
// account (role_arn + source_profile + external_id): a second client, with
// botocore's own STS call. AWS_ENDPOINT_URL reaches the credential
// provider's STS client; --endpoint-url alone would not.
func awsProfileCLI(t *testing.T, url, region string, args ...string) map[string]any {
	t.Helper()
	dir := t.TempDir()
	cfg, creds := filepath.Join(dir, "config"), filepath.Join(dir, "credentials")
	if err := os.WriteFile(creds, []byte("[base]\naws_access_key_id = "+awssim.AccessKeyID+"\naws_secret_access_key = "+awssim.SecretAccessKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte("[profile prod]\nrole_arn = "+prodRoleARN+"\nexternal_id = shop-7\nsource_profile = base\nregion = "+region+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), "aws", append([]string{"--profile", "prod", "--endpoint-url", url, "--output", "json"}, args...)...)
	for _, e := range os.Environ() {
		if k, _, _ := strings.Cut(e, "="); !strings.HasPrefix(k, "AWS_") && k != "HOME" {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.Env = append(cmd.Env, "HOME="+dir, "AWS_CONFIG_FILE="+cfg, "AWS_SHARED_CREDENTIALS_FILE="+creds, "AWS_ENDPOINT_URL="+url,
		"AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER=")
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("aws --profile prod %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(out.String()), &v); err != nil {
		t.Fatalf("aws %s: %v", strings.Join(args, " "), err)
	}
	return v
}

// TestAccountsGraph drives two accounts and two regions from one YAML
// graph: each instance lands in its account and region (checked by the
// simulator and by the aws CLI with an assumed-role profile); a removed
// resource of the prod account is pruned there; destroy empties both.
func TestAccountsGraph(t *testing.T) {
	sim, url := accountsEnv(t)
	east, west := stockImage(t, url, "us-east-1"), stockImage(t, url, "us-west-2")
	dir := t.TempDir()
	write := func(name, body string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	head := "name: fleet\naccounts:\n  prod: {role_arn: \"" + prodRoleARN + "\", external_id: shop-7, session_name: kiln-fleet}\n"
	inst := func(name, account, region, image string) string {
		s := "  - kind: aws:ec2\n    name: " + name + "\n    region: " + region + "\n    image: " + image + "\n    type: t3.micro\n"
		if account != "" {
			s += "    account: " + account + "\n"
		}
		return s
	}
	full := write("full.yaml", head+"resources:\n"+inst("shared-east", "", "us-east-1", east)+inst("shared-west", "", "us-west-2", west)+
		inst("prod-east", "prod", "us-east-1", east)+inst("prod-west", "prod", "us-west-2", west))
	if code, _, stderr := kilnCmd(t, "run", "--once", full); code != 0 {
		t.Fatalf("run --once = %d: %s", code, stderr)
	}
	for _, c := range []struct {
		account, region string
		want            []string
	}{
		{"123456789012", "us-east-1", []string{"aws:ec2/shared-east"}},
		{"123456789012", "us-west-2", []string{"aws:ec2/shared-west"}},
		{prodAccountID, "us-east-1", []string{"aws:ec2/prod-east"}},
		{prodAccountID, "us-west-2", []string{"aws:ec2/prod-west"}},
	} {
		if got := liveIn(t, sim, c.account, c.region, "fleet"); !slices.Equal(got, c.want) {
			t.Errorf("live in %s %s = %q; want %q", c.account, c.region, got, c.want)
		}
	}
	if _, err := exec.LookPath("aws"); err == nil {
		out := awsProfileCLI(t, url, "us-west-2", "ec2", "describe-instances", "--filters", "Name=tag:kiln:owner,Values=fleet",
			"--query", "{Ids: Reservations[].Instances[].Tags[?Key=='kiln:resource'].Value[], Owners: Reservations[].OwnerId}")
		if ids, _ := json.Marshal(out["Ids"]); string(ids) != `["aws:ec2/prod-west"]` || !strings.Contains(strings.Join(anyStrings(out["Owners"]), ","), prodAccountID) {
			t.Errorf("aws --profile prod (us-west-2) describe-instances = %v; want prod-west only, owned by %s", out, prodAccountID)
		}
	}
	// The plan names each orphan's account; prune removes it there.
	pruned := write("pruned.yaml", "prune: true\n"+head+"resources:\n"+inst("shared-east", "", "us-east-1", east)+inst("shared-west", "", "us-west-2", west)+
		inst("prod-east", "prod", "us-east-1", east))
	code, stdout, _ := kilnCmd(t, "plan", pruned)
	if code != 2 || !strings.Contains(stdout, "aws:ec2/prod-west") || !strings.Contains(stdout, "prod/us-west-2") {
		t.Errorf("plan with prune = %d\n%s; want prod-west to destroy, in prod/us-west-2", code, stdout)
	}
	if code, _, stderr := kilnCmd(t, "run", "--once", pruned); code != 0 {
		t.Fatalf("run --once with prune = %d: %s", code, stderr)
	}
	if got := liveIn(t, sim, prodAccountID, "us-west-2", "fleet"); len(got) != 0 {
		t.Errorf("prod us-west-2 after the prune = %q; want nothing", got)
	}
	if got := liveIn(t, sim, prodAccountID, "us-east-1", "fleet"); len(got) != 1 {
		t.Errorf("prod us-east-1 after the prune = %q; want prod-east", got)
	}
	if code, stdout, stderr := kilnCmd(t, "destroy", "--auto-approve", pruned); code != 0 {
		t.Fatalf("destroy = %d: %s%s", code, stdout, stderr)
	}
	for _, acct := range []string{"123456789012", prodAccountID} {
		for _, region := range []string{"us-east-1", "us-west-2"} {
			if got := liveIn(t, sim, acct, region, "fleet"); len(got) != 0 {
				t.Errorf("live in %s %s after destroy = %q; want nothing", acct, region, got)
			}
		}
	}
}

func anyStrings(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// TestAccountRoleRefused: a role that cannot be assumed fails the run
// with an error naming the account, the role and STS's reason; an
// account no one declared is a graph error with its line.
func TestAccountRoleRefused(t *testing.T) {
	_, url := accountsEnv(t)
	east := stockImage(t, url, "us-east-1")
	dir := t.TempDir()
	p := filepath.Join(dir, "bad.yaml")
	body := "name: fleet\naccounts:\n  prod: {role_arn: \"" + prodRoleARN + "\", external_id: wrong}\nresources:\n" +
		"  - kind: aws:ec2\n    name: web\n    image: " + east + "\n    type: t3.micro\n    account: prod\n"
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := kilnCmd(t, "run", "--once", p)
	for _, want := range []string{`account "prod"`, prodRoleARN, "AccessDenied", "is not authorized to perform: sts:AssumeRole"} {
		if code == 0 || !strings.Contains(stderr, want) {
			t.Errorf("run --once with a refused role = %d: %s; want a failure naming %q", code, stderr, want)
		}
	}
	undeclared := filepath.Join(dir, "undeclared.yaml")
	if err := os.WriteFile(undeclared, []byte("name: fleet\nresources:\n  - kind: aws:ec2\n    name: web\n    image: "+east+"\n    type: t3.micro\n    account: staging\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = kilnCmd(t, "validate", undeclared)
	if code == 0 || !strings.Contains(stderr, "undeclared.yaml:7") || !strings.Contains(stderr, `unknown account "staging"`) {
		t.Errorf("validate with an undeclared account = %d: %s; want the line and the name", code, stderr)
	}
}

// TestAccountsHCLForEach builds a fleet over accounts × regions from one
// HCL block (for_each over their product): each instance lands in its
// account and region.
func TestAccountsHCLForEach(t *testing.T) {
	sim, url := accountsEnv(t)
	east, west := stockImage(t, url, "us-east-1"), stockImage(t, url, "us-west-2")
	p := filepath.Join(t.TempDir(), "fleet.hcl")
	src := `graph = "fleet"

account "prod" {
  role_arn    = "` + prodRoleARN + `"
  external_id = "shop-7"
}

locals {
  images = { "us-east-1" = "` + east + `", "us-west-2" = "` + west + `" }
  placements = {
    for pair in setproduct(["", "prod"], ["us-east-1", "us-west-2"]) :
    "${pair[0] == "" ? "shared" : pair[0]}-${pair[1]}" => { account = pair[0], region = pair[1] }
  }
}

resource "aws:ec2" "web" {
  for_each = local.placements
  account  = each.value.account
  region   = each.value.region
  image    = local.images[each.value.region]
  type     = "t3.micro"
}
`
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := kilnCmd(t, "run", "--once", p); code != 0 {
		t.Fatalf("run --once = %d: %s", code, stderr)
	}
	for _, acct := range []string{"123456789012", prodAccountID} {
		for _, region := range []string{"us-east-1", "us-west-2"} {
			if got := liveIn(t, sim, acct, region, "fleet"); len(got) != 1 {
				t.Errorf("live in %s %s = %q; want one instance", acct, region, got)
			}
		}
	}
}

// TestAccountsDocExamples: the graphs of docs/accounts.md validate.
func TestAccountsDocExamples(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "docs", "accounts.md"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, lang := range []string{"yaml", "hcl"} {
		_, rest, ok := strings.Cut(string(b), "```"+lang+"\n")
		body, _, ok2 := strings.Cut(rest, "```")
		if !ok || !ok2 {
			t.Fatalf("docs/accounts.md has no %s example", lang)
		}
		p := filepath.Join(dir, "fleet."+lang)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if code, stdout, stderr := kilnCmd(t, "validate", p); code != 0 {
			t.Errorf("kiln validate (the %s example of docs/accounts.md) = %d: %s%s", lang, code, stdout, stderr)
		}
	}
}

// TestAccountsPolicy: kiln iam-policy prints one policy per account (the
// starting credentials' with sts:AssumeRole on the role) and the trust
// relationship the role needs; each account's policy, enforced by the
// simulator in that account, is enough to converge the graph.
func TestAccountsPolicy(t *testing.T) {
	sim, url := accountsEnv(t)
	east, west := stockImage(t, url, "us-east-1"), stockImage(t, url, "us-west-2")
	p := filepath.Join(t.TempDir(), "fleet.yaml")
	body := "name: fleet\naccounts:\n  prod: {role_arn: \"" + prodRoleARN + "\", external_id: shop-7}\nresources:\n" +
		"  - kind: aws:ec2\n    name: shared\n    image: " + east + "\n    type: t3.micro\n" +
		"  - kind: aws:ec2\n    name: prod\n    region: us-west-2\n    image: " + west + "\n    type: t3.micro\n    account: prod\n"
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := kilnCmd(t, "iam-policy", "--trusted-account", "123456789012", p)
	if code != 0 {
		t.Fatalf("iam-policy = %d: %s", code, stderr)
	}
	var list []struct {
		Account string          `json:"account"`
		RoleARN string          `json:"role_arn"`
		Policy  json.RawMessage `json:"policy"`
		Trust   struct {
			Statement []struct {
				Principal map[string]string
				Action    string
				Condition map[string]map[string][]string
			}
		} `json:"trust_relationship"`
	}
	if err := json.Unmarshal([]byte(stdout), &list); err != nil || len(list) != 2 {
		t.Fatalf("iam-policy = %v, %s; want a list of two accounts", err, stdout)
	}
	if list[0].Account != "" || !strings.Contains(string(list[0].Policy), `"sts:AssumeRole"`) || !strings.Contains(string(list[0].Policy), prodRoleARN) {
		t.Errorf("starting credentials' policy = %s; want sts:AssumeRole on %s", list[0].Policy, prodRoleARN)
	}
	tr := list[1].Trust.Statement
	if list[1].Account != "prod" || list[1].RoleARN != prodRoleARN || len(tr) != 1 || tr[0].Principal["AWS"] != "arn:aws:iam::123456789012:root" ||
		tr[0].Action != "sts:AssumeRole" || tr[0].Condition["StringEquals"]["sts:ExternalId"][0] != "shop-7" {
		t.Errorf("prod entry = %+v; want its role and a trust relationship for 123456789012 with the external id", list[1])
	}
	for i, acct := range []string{"123456789012", prodAccountID} {
		pol, err := awssim.ParsePolicy(list[i].Policy)
		if err != nil {
			t.Fatalf("policy of %s: %v", acct, err)
		}
		w, _ := sim.Account(acct)
		w.SetPolicy(pol)
	}
	if code, _, stderr := kilnCmd(t, "run", "--once", p); code != 0 {
		t.Fatalf("run --once under the printed policies = %d: %s", code, stderr)
	}
	if got := liveIn(t, sim, prodAccountID, "us-west-2", "fleet"); len(got) != 1 {
		t.Errorf("prod us-west-2 = %q; want the prod instance", got)
	}
}
