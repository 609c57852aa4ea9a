package awssim

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

const (
	prodAccount  = "210987654321"
	stageAccount = "333333333333"
)

// accountSim is a manual-clock simulator with the starting account and two
// more; the kiln role of the staging account requires an external id.
func accountSim(t *testing.T) (*Sim, string) {
	t.Helper()
	s := New(Options{ManualClock: true, TimeScale: 1, Accounts: []string{prodAccount, stageAccount},
		Roles:       []string{"deploy"},
		ExternalIDs: map[string]string{"arn:aws:iam::" + stageAccount + ":role/kiln": "shop-7"}})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv.URL
}

// assumed is a config whose credentials come from assuming role (cached,
// as kiln uses them).
func assumed(url, region, role, externalID string) aws.Config {
	cfg := ClientConfig(url, region)
	stsc := sts.NewFromConfig(ClientConfig(url, region))
	cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(stsc, role, func(o *stscreds.AssumeRoleOptions) {
		o.RoleSessionName = "kiln-test"
		if externalID != "" {
			o.ExternalID = aws.String(externalID)
		}
	}))
	return cfg
}

func ec2Of(cfg aws.Config) *ec2.Client {
	return ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.RetryMaxAttempts = 1 })
}

func TestAccountsAreSeparateWorlds(t *testing.T) {
	s, url := accountSim(t)
	ctx := t.Context()
	home := sts.NewFromConfig(ClientConfig(url))
	id, err := home.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("GetCallerIdentity() = %v", err)
	}
	if aws.ToString(id.Account) != "123456789012" || aws.ToString(id.Arn) != "arn:aws:iam::123456789012:user/kiln-sim" {
		t.Errorf("GetCallerIdentity() = %s %s; want the starting account's user", aws.ToString(id.Account), aws.ToString(id.Arn))
	}

	prodCfg := assumed(url, "us-west-2", "arn:aws:iam::"+prodAccount+":role/kiln", "")
	pid, err := sts.NewFromConfig(prodCfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("GetCallerIdentity(assumed) = %v", err)
	}
	if aws.ToString(pid.Account) != prodAccount || aws.ToString(pid.Arn) != "arn:aws:sts::"+prodAccount+":assumed-role/kiln/kiln-test" ||
		!strings.HasPrefix(aws.ToString(pid.UserId), "AROA") || !strings.HasSuffix(aws.ToString(pid.UserId), ":kiln-test") {
		t.Errorf("GetCallerIdentity(assumed) = %s %s %s; want the prod account's kiln role session", aws.ToString(pid.Account), aws.ToString(pid.Arn), aws.ToString(pid.UserId))
	}

	prod, err := s.Account(prodAccount)
	if err != nil {
		t.Fatal(err)
	}
	prodWest, err := prod.Region("us-west-2")
	if err != nil {
		t.Fatal(err)
	}
	inst := launchOne(t, s, ec2Of(prodCfg), nil)
	if _, ok := prodWest.Instance(inst); !ok {
		t.Errorf("instance %s is not in the prod account's us-west-2", inst)
	}
	west, _ := s.Region("us-west-2")
	if _, ok := west.Instance(inst); ok {
		t.Errorf("instance %s is in the starting account's us-west-2 too", inst)
	}
	if _, err := ec2Of(ClientConfig(url, "us-west-2")).DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{inst}}); errCode(err) != "InvalidInstanceID.NotFound" {
		t.Errorf("starting account DescribeInstances(prod instance) = %v; want InvalidInstanceID.NotFound", err)
	}
	out, err := ec2Of(prodCfg).DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{inst}})
	if err != nil || aws.ToString(out.Reservations[0].OwnerId) != prodAccount {
		t.Errorf("prod DescribeInstances() = %v; want its instance, owned by %s", err, prodAccount)
	}
	if got := s.Accounts(); strings.Join(got, ",") != "123456789012,"+prodAccount+","+stageAccount {
		t.Errorf("Accounts() = %v", got)
	}
}

func TestAssumeRoleRefusals(t *testing.T) {
	_, url := accountSim(t)
	ctx := t.Context()
	home := sts.NewFromConfig(ClientConfig(url), func(o *sts.Options) { o.RetryMaxAttempts = 1 })
	const user = "arn:aws:iam::123456789012:user/kiln-sim"
	for _, tc := range []struct {
		name, role, ext string
		seconds         int32
		code, msg       string
	}{
		{"unknown role", "arn:aws:iam::" + prodAccount + ":role/admin", "", 0, "AccessDenied",
			"User: " + user + " is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::" + prodAccount + ":role/admin"},
		{"unknown account", "arn:aws:iam::444444444444:role/kiln", "", 0, "AccessDenied",
			"User: " + user + " is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::444444444444:role/kiln"},
		{"missing external id", "arn:aws:iam::" + stageAccount + ":role/kiln", "", 0, "AccessDenied", "not authorized to perform: sts:AssumeRole"},
		{"wrong external id", "arn:aws:iam::" + stageAccount + ":role/kiln", "shop-8", 0, "AccessDenied", "not authorized to perform: sts:AssumeRole"},
		{"too long", "arn:aws:iam::" + prodAccount + ":role/kiln", "", 7200, "ValidationError", "exceeds the MaxSessionDuration"},
		{"too short", "arn:aws:iam::" + prodAccount + ":role/kiln", "", 600, "ValidationError", "greater than or equal to 900"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := &sts.AssumeRoleInput{RoleArn: aws.String(tc.role), RoleSessionName: aws.String("kiln")}
			if tc.ext != "" {
				in.ExternalId = aws.String(tc.ext)
			}
			if tc.seconds != 0 {
				in.DurationSeconds = aws.Int32(tc.seconds)
			}
			_, err := home.AssumeRole(ctx, in)
			var ae smithy.APIError
			if !errors.As(err, &ae) || ae.ErrorCode() != tc.code || !strings.Contains(ae.ErrorMessage(), tc.msg) {
				t.Errorf("AssumeRole() = %v; want %s with %q", err, tc.code, tc.msg)
			}
		})
	}
	// The right external id, another role the accounts have, a shorter session.
	for _, role := range []string{"arn:aws:iam::" + stageAccount + ":role/kiln", "arn:aws:iam::" + prodAccount + ":role/deploy"} {
		out, err := home.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(role), RoleSessionName: aws.String("kiln"),
			ExternalId: aws.String("shop-7"), DurationSeconds: aws.Int32(900)})
		if err != nil {
			t.Fatalf("AssumeRole(%s) = %v", role, err)
		}
		c := out.Credentials
		left := time.Until(aws.ToTime(c.Expiration))
		if !strings.HasPrefix(aws.ToString(c.AccessKeyId), "ASIA") || aws.ToString(c.SessionToken) == "" || left < 14*time.Minute || left > 15*time.Minute {
			t.Errorf("AssumeRole(%s) credentials = %s, expiring in %v; want an ASIA key with a token for 15 minutes", role, aws.ToString(c.AccessKeyId), left)
		}
	}
	// A session in the prod account may not chain into another account:
	// the roles trust the starting account only.
	prodCfg := assumed(url, "us-east-1", "arn:aws:iam::"+prodAccount+":role/kiln", "")
	_, err := sts.NewFromConfig(prodCfg).AssumeRole(ctx, &sts.AssumeRoleInput{
		RoleArn: aws.String("arn:aws:iam::" + stageAccount + ":role/deploy"), RoleSessionName: aws.String("hop")})
	if want := "User: arn:aws:sts::" + prodAccount + ":assumed-role/kiln/kiln-test is not authorized"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("chained AssumeRole() = %v; want AccessDenied naming %q", err, want)
	}
	// Temporary credentials the simulator never issued are refused.
	bad := ClientConfig(url)
	bad.Credentials = aws.NewCredentialsCache(stubCreds{aws.Credentials{AccessKeyID: "ASIAFORGEDFORGED0000", SecretAccessKey: "x", SessionToken: "y"}})
	if _, err := ec2Of(bad).DescribeInstances(ctx, &ec2.DescribeInstancesInput{}); errCode(err) != "AuthFailure" {
		t.Errorf("DescribeInstances(forged session) = %v; want AuthFailure", err)
	}
}

type stubCreds struct{ c aws.Credentials }

func (s stubCreds) Retrieve(context.Context) (aws.Credentials, error) { return s.c, nil }

func TestImageSharedWithAnotherAccount(t *testing.T) {
	s, url := accountSim(t)
	ctx := t.Context()
	home := ec2Of(ClientConfig(url))
	img := ownImage(t, s, home, "web-1")
	prodCfg := assumed(url, "us-east-1", "arn:aws:iam::"+prodAccount+":role/kiln", "")
	prod := ec2Of(prodCfg)
	shared := func(c *ec2.Client, in *ec2.DescribeImagesInput) []string {
		t.Helper()
		out, err := c.DescribeImages(ctx, in)
		if err != nil {
			t.Fatalf("DescribeImages() = %v", err)
		}
		var ids []string
		for _, im := range out.Images {
			ids = append(ids, aws.ToString(im.ImageId))
		}
		return ids
	}
	self := &ec2.DescribeImagesInput{ExecutableUsers: []string{"self"}}
	if got := shared(prod, self); len(got) != 0 {
		t.Errorf("prod DescribeImages(executable by self) before sharing = %v; want none", got)
	}
	if _, err := prod.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(img), InstanceType: types.InstanceTypeT3Micro,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}); errCode(err) != "InvalidAMIID.NotFound" {
		t.Errorf("prod RunInstances(unshared image) = %v; want InvalidAMIID.NotFound", err)
	}
	if _, err := home.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(img),
		LaunchPermission: &types.LaunchPermissionModifications{Add: []types.LaunchPermission{{UserId: aws.String(prodAccount)}}}}); err != nil {
		t.Fatalf("ModifyImageAttribute() = %v", err)
	}
	if got := shared(prod, self); len(got) != 1 || got[0] != img {
		t.Errorf("prod DescribeImages(executable by self) = %v; want [%s]", got, img)
	}
	if got := shared(prod, &ec2.DescribeImagesInput{Owners: []string{"123456789012"}}); len(got) != 1 || got[0] != img {
		t.Errorf("prod DescribeImages(owner: the starting account) = %v; want [%s]", got, img)
	}
	if got := shared(prod, &ec2.DescribeImagesInput{Owners: []string{"self"}}); len(got) != 0 {
		t.Errorf("prod DescribeImages(owner self) = %v; want none (it owns no image)", got)
	}
	if got := shared(prod, &ec2.DescribeImagesInput{ImageIds: []string{img}}); len(got) != 1 {
		t.Errorf("prod DescribeImages(id) = %v; want [%s]", got, img)
	}
	if got := shared(home, self); len(got) != 0 {
		t.Errorf("owner DescribeImages(executable by self) = %v; want none (its own image is not shared with it)", got)
	}
	if got := shared(home, &ec2.DescribeImagesInput{ExecutableUsers: []string{prodAccount}}); len(got) != 1 || got[0] != img {
		t.Errorf("owner DescribeImages(executable by prod) = %v; want [%s]", got, img)
	}
	// The prod account launches it, in its own world.
	run, err := prod.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(img), InstanceType: types.InstanceTypeT3Micro,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	if err != nil {
		t.Fatalf("prod RunInstances(shared image) = %v", err)
	}
	pw, _ := s.Account(prodAccount)
	if in, ok := pw.Instance(aws.ToString(run.Instances[0].InstanceId)); !ok || in.ImageID != img {
		t.Errorf("prod instance = %+v, %v; want one from %s in the prod account", in, ok, img)
	}
	// Not in another region: sharing is per region.
	prodWest := ec2Of(assumed(url, "us-west-2", "arn:aws:iam::"+prodAccount+":role/kiln", ""))
	if got := shared(prodWest, self); len(got) != 0 {
		t.Errorf("prod us-west-2 DescribeImages(executable by self) = %v; want none", got)
	}
	// Deregistered, it is gone for the sharee too.
	if _, err := home.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(img)}); err != nil {
		t.Fatalf("DeregisterImage() = %v", err)
	}
	if got := shared(prod, self); len(got) != 0 {
		t.Errorf("prod DescribeImages(executable by self) after deregistration = %v; want none", got)
	}
}

// TestAccountsWithTheAWSCLI checks an assumed-role profile of the aws CLI
// (role_arn + source_profile): the CLI's own STS client must reach the
// simulator too. --endpoint-url applies to the command's client only (with
// it alone the CLI assumes the role at sts.REGION.amazonaws.com);
// AWS_ENDPOINT_URL (or endpoint_url in the profile) applies to every
// client, the credential provider's STS client included.
func TestAccountsWithTheAWSCLI(t *testing.T) {
	if _, err := exec.LookPath("aws"); err != nil {
		t.Skip("the aws CLI is not installed")
	}
	s, url := accountSim(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config")
	creds := filepath.Join(dir, "credentials")
	writeFile(t, creds, "[base]\naws_access_key_id = "+AccessKeyID+"\naws_secret_access_key = "+SecretAccessKey+"\n")
	writeFile(t, cfg, "[profile base]\nregion = us-east-1\n\n"+
		"[profile prod]\nrole_arn = arn:aws:iam::"+prodAccount+":role/kiln\nsource_profile = base\nregion = us-west-2\n\n"+
		"[profile stage]\nrole_arn = arn:aws:iam::"+stageAccount+":role/kiln\nexternal_id = shop-7\nsource_profile = base\nregion = us-east-1\n")
	cli := func(profile string, args ...string) (map[string]any, string, error) {
		cmd := exec.CommandContext(t.Context(), "aws", append([]string{"--profile", profile, "--endpoint-url", url, "--output", "json"}, args...)...)
		// HOME: the CLI caches assumed-role credentials under ~/.aws/cli/cache.
		cmd.Env = append(os.Environ(), "AWS_CONFIG_FILE="+cfg, "AWS_SHARED_CREDENTIALS_FILE="+creds, "AWS_ENDPOINT_URL="+url,
			"AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER=", "AWS_MAX_ATTEMPTS=1",
		)
		for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE", "HOME"} {
			cmd.Env = slices.DeleteFunc(cmd.Env, func(e string) bool { return strings.HasPrefix(e, k+"=") })
		}
		cmd.Env = append(cmd.Env, "HOME="+dir)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var v map[string]any
		if err == nil {
			if jerr := json.Unmarshal([]byte(out.String()), &v); jerr != nil {
				return nil, errb.String(), jerr
			}
		}
		return v, errb.String(), err
	}
	who, stderr, err := cli("prod", "sts", "get-caller-identity")
	if err != nil {
		t.Fatalf("aws --profile prod sts get-caller-identity: %v\n%s", err, stderr)
	}
	if who["Account"] != prodAccount || who["Arn"] != nil && !strings.HasPrefix(who["Arn"].(string), "arn:aws:sts::"+prodAccount+":assumed-role/kiln/") {
		t.Errorf("prod caller = %v; want an assumed kiln role in %s", who, prodAccount)
	}
	// An instance the SDK launched in prod's us-west-2 is what the CLI's
	// prod profile sees there, and only there.
	prodCfg := assumed(url, "us-west-2", "arn:aws:iam::"+prodAccount+":role/kiln", "")
	inst := launchOne(t, s, ec2Of(prodCfg), nil)
	out, stderr, err := cli("prod", "ec2", "describe-instances", "--instance-ids", inst)
	if err != nil {
		t.Fatalf("aws --profile prod ec2 describe-instances: %v\n%s", err, stderr)
	}
	res := out["Reservations"].([]any)
	if len(res) != 1 || res[0].(map[string]any)["OwnerId"] != prodAccount {
		t.Errorf("prod describe-instances = %v; want the instance, owned by %s", out, prodAccount)
	}
	if _, stderr, err := cli("stage", "ec2", "describe-instances", "--instance-ids", inst); err == nil || !strings.Contains(stderr, "InvalidInstanceID.NotFound") {
		t.Errorf("stage describe-instances(prod instance) = %v, %s; want InvalidInstanceID.NotFound", err, stderr)
	}
	if _, stderr, err := cli("base", "ec2", "describe-instances", "--region", "us-west-2", "--instance-ids", inst); err == nil || !strings.Contains(stderr, "InvalidInstanceID.NotFound") {
		t.Errorf("base describe-instances(prod instance) = %v, %s; want InvalidInstanceID.NotFound", err, stderr)
	}
	// A profile whose role cannot be assumed fails with STS's reason.
	writeFile(t, cfg, "[profile base]\nregion = us-east-1\n\n[profile nope]\nrole_arn = arn:aws:iam::"+prodAccount+":role/admin\nsource_profile = base\nregion = us-east-1\n")
	if _, stderr, err := cli("nope", "ec2", "describe-instances"); err == nil || !strings.Contains(stderr, "AccessDenied") ||
		!strings.Contains(stderr, "is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::"+prodAccount+":role/admin") {
		t.Errorf("aws --profile nope = %v, %s; want AccessDenied from STS", err, stderr)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
