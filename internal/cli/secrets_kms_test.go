package cli

import (
	"bytes"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"kiln/internal/awssim"
	"kiln/internal/store"
)

// TestRotateKeyKMS: kiln secrets rotate-key moves the webhook secrets from
// a key file to an AWS KMS key (the simulator's, through the standard AWS
// configuration) and back to a new key file; at each step the database
// files never hold the secret, the stored value names the key it is
// sealed under, and a keyring without that key cannot read it.
func TestRotateKeyKMS(t *testing.T) {
	sim := awssim.New(awssim.Options{})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	dir := t.TempDir()
	t.Setenv("AWS_ENDPOINT_URL", srv.URL)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", awssim.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", awssim.SecretAccessKey)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "no-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "no-credentials"))
	t.Setenv("KILN_SECRET_KEY", "")
	t.Setenv("KILN_KMS_KEY_ID", "")
	t.Setenv("KILN_DB", "")
	key, err := kms.NewFromConfig(awssim.ClientConfig(srv.URL)).CreateKey(t.Context(), &kms.CreateKeyInput{Description: aws.String("kiln")})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(key.KeyMetadata.Arn)

	db := filepath.Join(dir, "kiln.db")
	const secret = "kms-rotation-hook-secret-0123"
	st, err := store.Open(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutProject(t.Context(), store.Project{Name: "web", Region: "us-east-1", BaseID: "ami-1", Type: "t3.micro",
		Script: "true", Keep: 5}, secret); err != nil {
		t.Fatal(err)
	}
	st.Close()
	oldKey, newKey := filepath.Join(dir, "old.key"), filepath.Join(dir, "new.key")
	os.WriteFile(oldKey, []byte(strings.Repeat("07", 32)+"\n"), 0o600)
	os.WriteFile(newKey, []byte(strings.Repeat("0a", 32)+"\n"), 0o600)

	run := func(args ...string) (int, string) {
		t.Helper()
		var out bytes.Buffer
		code := Main(append([]string{"secrets", "rotate-key", "--db", db}, args...), &out, &out)
		return code, out.String()
	}
	stored := func() string {
		t.Helper()
		st, err := store.Open(t.Context(), db)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		var v string
		if err := st.DB().QueryRowContext(t.Context(), `SELECT webhook_secret FROM projects WHERE name = 'web'`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	inFiles := func() bool {
		t.Helper()
		files, _ := filepath.Glob(db + "*")
		for _, f := range files {
			if data, _ := os.ReadFile(f); bytes.Contains(data, []byte(secret)) {
				return true
			}
		}
		return false
	}
	sealedUnder := regexp.MustCompile(`^1 secrets re-sealed under key (\S+)\n$`)
	step := func(what string, args ...string) string {
		t.Helper()
		code, out := run(args...)
		m := sealedUnder.FindStringSubmatch(out)
		if code != 0 || m == nil {
			t.Fatalf("%s: rotate-key %v = %d %q; want 1 re-sealed", what, args, code, out)
		}
		if v := stored(); !strings.HasPrefix(v, "kiln:v1:"+m[1]+":") {
			t.Errorf("%s: stored %q; want sealed under %s", what, v, m[1])
		}
		if inFiles() {
			t.Errorf("%s: the database files hold the secret in clear text", what)
		}
		return m[1]
	}

	step("clear → file", "--secret-key-file", oldKey)
	id := step("file → KMS", "--kms-key-id", arn, "--old-secret-key-file", oldKey)
	if !strings.HasPrefix(id, "kms-") || sim.Calls("GenerateDataKey") != 1 {
		t.Errorf("key %s, %d GenerateDataKey calls; want a kms- key and one data key", id, sim.Calls("GenerateDataKey"))
	}
	if code, out := run("--secret-key-file", oldKey); code == 0 || !strings.Contains(out, "sealed under a key this server does not have") {
		t.Errorf("rotate-key with the file key only after the move to KMS = %d %q; want the secret unreadable", code, out)
	}
	t.Setenv("KILN_KMS_KEY_ID", aws.ToString(key.KeyMetadata.KeyId))
	if code, out := run(); code != 0 || !strings.Contains(out, "0 secrets re-sealed under key "+id) {
		t.Errorf("rotate-key with KILN_KMS_KEY_ID = %d %q; want nothing to re-seal", code, out)
	}
	step("KMS → file", "--secret-key-file", newKey, "--old-kms-key-id", arn)
	if code, out := run("--kms-key-id", arn, "--secret-key-file", newKey); code != 1 || !strings.Contains(out, "give one") {
		t.Errorf("rotate-key with two new keys = %d %q; want a usage error", code, out)
	}
	t.Setenv("KILN_SECRET_KEY", strings.Repeat("0a", 32))
	if code, out := run(); code != 1 || !strings.Contains(out, "KILN_KMS_KEY_ID and KILN_SECRET_KEY are both set") {
		t.Errorf("rotate-key with both variables = %d %q; want a usage error", code, out)
	}
	t.Setenv("KILN_SECRET_KEY", "")
	if code, out := run("--kms-key-id", "0000aaaa-12ab-34cd-56ef-1234567890ab"); code == 0 || !strings.Contains(out, "NotFoundException") {
		t.Errorf("rotate-key with an unknown KMS key = %d %q; want KMS's NotFoundException", code, out)
	}
}
