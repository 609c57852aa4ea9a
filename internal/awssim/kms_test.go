package awssim_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"kiln/internal/awssim"
)

func newKMS(t *testing.T) (*kms.Client, string) {
	t.Helper()
	sim := awssim.New(awssim.Options{})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return kms.NewFromConfig(awssim.ClientConfig(srv.URL), func(o *kms.Options) { o.RetryMaxAttempts = 1 }), srv.URL
}

// TestKMSEnvelope: a key is created and described; GenerateDataKey gives
// a data key and its blob, which Decrypt turns back into the same key
// (with the same encryption context only, named by ARN or not at all);
// Encrypt and Decrypt round-trip; a tampered blob, another context,
// another key and another region's world are refused with KMS's codes.
func TestKMSEnvelope(t *testing.T) {
	ctx := t.Context()
	c, url := newKMS(t)
	created, err := c.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("kiln secrets")})
	if err != nil {
		t.Fatal(err)
	}
	md := created.KeyMetadata
	id, arn := aws.ToString(md.KeyId), aws.ToString(md.Arn)
	if arn != "arn:aws:kms:us-east-1:123456789012:key/"+id || !md.Enabled || md.KeyState != kmstypes.KeyStateEnabled ||
		md.KeyUsage != kmstypes.KeyUsageTypeEncryptDecrypt || md.KeySpec != kmstypes.KeySpecSymmetricDefault || md.CreationDate == nil {
		t.Fatalf("CreateKey() = %+v", md)
	}
	for _, ref := range []string{id, arn} {
		d, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(ref)})
		if err != nil || aws.ToString(d.KeyMetadata.Arn) != arn || aws.ToString(d.KeyMetadata.Description) != "kiln secrets" {
			t.Errorf("DescribeKey(%s) = %+v, %v", ref, d, err)
		}
	}
	if _, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("1234abcd-12ab-34cd-56ef-1234567890ab")}); code(err) != "NotFoundException" {
		t.Errorf("DescribeKey(unknown) = %v; want NotFoundException", err)
	}

	ec := map[string]string{"kiln:key": "k1", "purpose": "test"}
	dk, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(id), KeySpec: kmstypes.DataKeySpecAes256, EncryptionContext: ec})
	if err != nil {
		t.Fatal(err)
	}
	if len(dk.Plaintext) != 32 || len(dk.CiphertextBlob) == 0 || aws.ToString(dk.KeyId) != arn || bytes.Contains(dk.CiphertextBlob, dk.Plaintext) {
		t.Fatalf("GenerateDataKey() = %d-byte key, blob %x, key %s", len(dk.Plaintext), dk.CiphertextBlob, aws.ToString(dk.KeyId))
	}
	for _, ref := range []*string{nil, aws.String(arn)} {
		out, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob, KeyId: ref,
			EncryptionContext: map[string]string{"purpose": "test", "kiln:key": "k1"}})
		if err != nil || !bytes.Equal(out.Plaintext, dk.Plaintext) || aws.ToString(out.KeyId) != arn {
			t.Errorf("Decrypt(KeyId %v) = %+v, %v; want the data key back", aws.ToString(ref), out, err)
		}
	}
	if _, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: map[string]string{"purpose": "other", "kiln:key": "k1"}}); code(err) != "InvalidCiphertextException" {
		t.Errorf("Decrypt with another context = %v; want InvalidCiphertextException", err)
	}
	bad := bytes.Clone(dk.CiphertextBlob)
	bad[len(bad)-1] ^= 1
	if _, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: bad, EncryptionContext: ec}); code(err) != "InvalidCiphertextException" {
		t.Errorf("Decrypt of a tampered blob = %v; want InvalidCiphertextException", err)
	}
	other, err := c.CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob, KeyId: other.KeyMetadata.KeyId, EncryptionContext: ec}); code(err) != "IncorrectKeyException" {
		t.Errorf("Decrypt naming another key = %v; want IncorrectKeyException", err)
	}
	if _, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(id)}); code(err) != "ValidationException" {
		t.Errorf("GenerateDataKey without a size = %v; want ValidationException", err)
	}
	n, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(id), NumberOfBytes: aws.Int32(64)})
	if err != nil || len(n.Plaintext) != 64 {
		t.Errorf("GenerateDataKey(64 bytes) = %v", err)
	}

	enc, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(arn), Plaintext: []byte("hunter2")})
	if err != nil || enc.EncryptionAlgorithm != kmstypes.EncryptionAlgorithmSpecSymmetricDefault {
		t.Fatalf("Encrypt() = %+v, %v", enc, err)
	}
	dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	if err != nil || string(dec.Plaintext) != "hunter2" {
		t.Errorf("Decrypt(Encrypt(hunter2)) = %+v, %v", dec, err)
	}
	if _, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(id), Plaintext: make([]byte, 4097)}); code(err) != "ValidationException" {
		t.Errorf("Encrypt of 4097 bytes = %v; want ValidationException", err)
	}

	// Keys are per region: eu-west-1 knows neither the key nor its blobs.
	cfg := awssim.ClientConfig(url)
	cfg.Region = "eu-west-1"
	eu := kms.NewFromConfig(cfg, func(o *kms.Options) { o.RetryMaxAttempts = 1 })
	if _, err := eu.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)}); code(err) != "NotFoundException" {
		t.Errorf("DescribeKey in another region = %v; want NotFoundException", err)
	}
	if _, err := eu.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob}); code(err) != "InvalidCiphertextException" {
		t.Errorf("Decrypt in another region = %v; want InvalidCiphertextException", err)
	}
}

// The aws CLI (botocore's serializers) against the simulator's KMS: a
// key made with the CLI encrypts a file whose blob the Go SDK decrypts,
// and a data key made by the SDK is decrypted by the CLI.
func TestKMSWithAWSCLI(t *testing.T) {
	bin, err := exec.LookPath("aws")
	if err != nil {
		t.Skip("the aws CLI is not installed")
	}
	c, url := newKMS(t)
	dir := t.TempDir()
	cli := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"--endpoint-url", url, "--output", "json"}, args...)...)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+awssim.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+awssim.SecretAccessKey,
			"AWS_DEFAULT_REGION=us-east-1", "AWS_CONFIG_FILE="+filepath.Join(dir, "config"),
			"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "credentials"), "AWS_PAGER=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	var created struct{ KeyMetadata struct{ KeyId, Arn, KeyState string } }
	if err := json.Unmarshal([]byte(cli("kms", "create-key", "--description", "from the cli")), &created); err != nil ||
		created.KeyMetadata.KeyState != "Enabled" {
		t.Fatalf("create-key: %+v %v", created, err)
	}
	var described struct{ KeyMetadata struct{ Arn, Description string } }
	if err := json.Unmarshal([]byte(cli("kms", "describe-key", "--key-id", created.KeyMetadata.KeyId)), &described); err != nil ||
		described.KeyMetadata.Arn != created.KeyMetadata.Arn || described.KeyMetadata.Description != "from the cli" {
		t.Fatalf("describe-key: %+v %v", described, err)
	}
	plain := filepath.Join(dir, "plain.txt")
	if err := os.WriteFile(plain, []byte("a secret of the cli"), 0o600); err != nil {
		t.Fatal(err)
	}
	var enc struct{ CiphertextBlob, KeyId string }
	if err := json.Unmarshal([]byte(cli("kms", "encrypt", "--key-id", created.KeyMetadata.KeyId, "--plaintext", "fileb://"+plain,
		"--encryption-context", "purpose=cli")), &enc); err != nil || enc.KeyId != created.KeyMetadata.Arn {
		t.Fatalf("encrypt: %+v %v", enc, err)
	}
	blob, err := base64.StdEncoding.DecodeString(enc.CiphertextBlob)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := c.Decrypt(t.Context(), &kms.DecryptInput{CiphertextBlob: blob, EncryptionContext: map[string]string{"purpose": "cli"}})
	if err != nil || string(dec.Plaintext) != "a secret of the cli" {
		t.Fatalf("SDK Decrypt of the CLI's blob = %+v, %v", dec, err)
	}

	dk, err := c.GenerateDataKey(t.Context(), &kms.GenerateDataKeyInput{KeyId: aws.String(created.KeyMetadata.Arn), KeySpec: kmstypes.DataKeySpecAes128})
	if err != nil {
		t.Fatal(err)
	}
	ct := filepath.Join(dir, "key.blob")
	if err := os.WriteFile(ct, dk.CiphertextBlob, 0o600); err != nil {
		t.Fatal(err)
	}
	var out struct{ Plaintext, KeyId string }
	if err := json.Unmarshal([]byte(cli("kms", "decrypt", "--ciphertext-blob", "fileb://"+ct)), &out); err != nil {
		t.Fatal(err)
	}
	if got, _ := base64.StdEncoding.DecodeString(out.Plaintext); !bytes.Equal(got, dk.Plaintext) || out.KeyId != created.KeyMetadata.Arn {
		t.Errorf("CLI decrypt of the SDK's data key = %x (%s); want %x", got, out.KeyId, dk.Plaintext)
	}
}
