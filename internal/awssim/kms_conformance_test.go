package awssim

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// conformKMSCLI is the KMS step of TestConformanceCLI: the aws CLI
// (botocore's serializers) makes and describes a key and encrypts a file
// under it; the Go SDK decrypts that blob and makes a data key, which the
// CLI decrypts.
func conformKMSCLI(t *testing.T, c *cli) {
	t.Helper()
	created := c.ok("kms", "create-key", "--description", "from the cli")
	id, arn := created.str("KeyMetadata.KeyId"), created.str("KeyMetadata.Arn")
	if created.str("KeyMetadata.KeyState") != "Enabled" || arn != "arn:aws:kms:us-east-1:123456789012:key/"+id {
		t.Fatalf("kms create-key = %v", created.v)
	}
	if d := c.ok("kms", "describe-key", "--key-id", arn); d.str("KeyMetadata.KeyId") != id || d.str("KeyMetadata.Description") != "from the cli" {
		t.Errorf("kms describe-key = %v", d.v)
	}
	plain := filepath.Join(t.TempDir(), "plain.txt")
	if err := os.WriteFile(plain, []byte("a secret of the cli"), 0o600); err != nil {
		t.Fatal(err)
	}
	enc := c.ok("kms", "encrypt", "--key-id", id, "--plaintext", "fileb://"+plain, "--encryption-context", "purpose=cli")
	blob, err := base64.StdEncoding.DecodeString(enc.str("CiphertextBlob"))
	if err != nil || enc.str("KeyId") != arn {
		t.Fatalf("kms encrypt = %v (%v)", enc.v, err)
	}
	sdk := kms.NewFromConfig(ClientConfig(c.url), func(o *kms.Options) { o.RetryMaxAttempts = 1 })
	dec, err := sdk.Decrypt(t.Context(), &kms.DecryptInput{CiphertextBlob: blob, EncryptionContext: map[string]string{"purpose": "cli"}})
	if err != nil || string(dec.Plaintext) != "a secret of the cli" {
		t.Fatalf("SDK Decrypt of the CLI's blob = %v", err)
	}
	c.fails("InvalidCiphertextException", "kms", "decrypt", "--ciphertext-blob", "fileb://"+plain)
	dk, err := sdk.GenerateDataKey(t.Context(), &kms.GenerateDataKeyInput{KeyId: aws.String(arn), KeySpec: kmstypes.DataKeySpecAes128})
	if err != nil {
		t.Fatal(err)
	}
	ct := filepath.Join(t.TempDir(), "key.blob")
	if err := os.WriteFile(ct, dk.CiphertextBlob, 0o600); err != nil {
		t.Fatal(err)
	}
	out := c.ok("kms", "decrypt", "--ciphertext-blob", "fileb://"+ct)
	if got, _ := base64.StdEncoding.DecodeString(out.str("Plaintext")); !bytes.Equal(got, dk.Plaintext) || out.str("KeyId") != arn {
		t.Errorf("kms decrypt of the SDK's data key = %v; want %x", out.v, dk.Plaintext)
	}
	if g := c.ok("kms", "generate-data-key", "--key-id", id, "--number-of-bytes", "48"); len(g.str("Plaintext")) != 64 || g.str("CiphertextBlob") == "" {
		t.Errorf("kms generate-data-key = %v; want 48 bytes (64 base64 characters) and a blob", g.v)
	}
}

// conformKMSSDK is the KMS step of TestConformanceSDK: a key made and
// described, a data key generated and decrypted back, a value encrypted
// and decrypted.
func conformKMSSDK(t *testing.T, url string) {
	t.Helper()
	ctx := t.Context()
	c := kms.NewFromConfig(ClientConfig(url), func(o *kms.Options) { o.RetryMaxAttempts = 1 })
	k, err := c.CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(k.KeyMetadata.Arn)
	if d, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: k.KeyMetadata.KeyId}); err != nil || aws.ToString(d.KeyMetadata.Arn) != arn {
		t.Fatalf("DescribeKey = %v", err)
	}
	dk, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(arn), KeySpec: kmstypes.DataKeySpecAes256})
	if err != nil {
		t.Fatal(err)
	}
	back, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob})
	if err != nil || !bytes.Equal(back.Plaintext, dk.Plaintext) {
		t.Errorf("Decrypt(GenerateDataKey) = %v; want the data key", err)
	}
	enc, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(arn), Plaintext: []byte("s3cret")})
	if err != nil {
		t.Fatal(err)
	}
	if dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, KeyId: aws.String(arn)}); err != nil || string(dec.Plaintext) != "s3cret" {
		t.Errorf("Decrypt(Encrypt(s3cret)) = %v", err)
	}
}

// TestKMSConformanceCLI runs the CLI scenario's KMS step alone.
func TestKMSConformanceCLI(t *testing.T) {
	t.Parallel()
	_, c := newCLI(t)
	conformKMSCLI(t, c)
}
