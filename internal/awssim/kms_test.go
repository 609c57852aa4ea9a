package awssim_test

import (
	"bytes"
	"net/http/httptest"
	"testing"

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
