package secrets_test

import (
	"bytes"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"kiln/internal/awssim"
	"kiln/internal/secrets"
)

// TestKMSKeyring seals under a KMS key of the simulator (over HTTP, the
// real SDK): the value names the KMS key, opens again, costs one
// GenerateDataKey per seal and no Decrypt for a data key it has seen; a
// keyring with the KMS key and a local key reads values of both (a
// rotation either way), and one without the KMS key cannot read them.
func TestKMSKeyring(t *testing.T) {
	ctx := t.Context()
	sim := awssim.New(awssim.Options{})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	api := kms.NewFromConfig(awssim.ClientConfig(srv.URL), func(o *kms.Options) { o.RetryMaxAttempts = 1 })
	created, err := api.CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := secrets.NewKMSKey(ctx, api, "0000aaaa-12ab-34cd-56ef-1234567890ab"); err == nil || !strings.Contains(err.Error(), "NotFoundException") {
		t.Errorf("NewKMSKey(unknown) = %v; want KMS's NotFoundException", err)
	}
	kk, err := secrets.NewKMSKey(ctx, api, aws.ToString(created.KeyMetadata.KeyId))
	if err != nil {
		t.Fatal(err)
	}
	if kk.ARN() != aws.ToString(created.KeyMetadata.Arn) || !strings.HasPrefix(kk.ID(), "kms-") || len(kk.ID()) != 4+16 {
		t.Errorf("KMS key = %s %s", kk.ARN(), kk.ID())
	}
	ring, err := secrets.NewKeyringOf(kk)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := ring.Seal("hook-secret-under-kms")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sealed, "kiln:v1:"+kk.ID()+":") || strings.Contains(sealed, "hook-secret") || !ring.Primary(sealed) {
		t.Errorf("Seal() = %q; want sealed under %s", sealed, kk.ID())
	}
	if got, err := ring.Open(sealed); err != nil || got != "hook-secret-under-kms" {
		t.Errorf("Open() = %q, %v", got, err)
	}
	if g, d := sim.Calls("GenerateDataKey"), sim.Calls("Decrypt"); g != 1 || d != 0 {
		t.Errorf("KMS calls: GenerateDataKey %d, Decrypt %d; want 1 and 0 (the data key is known)", g, d)
	}
	// A server started afresh unwraps the data key with KMS once.
	kk2, _ := secrets.NewKMSKey(ctx, api, aws.ToString(created.KeyMetadata.Arn))
	fresh, _ := secrets.NewKeyringOf(kk2)
	for range 3 {
		if got, err := fresh.Open(sealed); err != nil || got != "hook-secret-under-kms" {
			t.Fatalf("Open() with a fresh key = %q, %v", got, err)
		}
	}
	if d := sim.Calls("Decrypt"); d != 1 {
		t.Errorf("Decrypt calls = %d; want 1", d)
	}

	// Rotation both ways: file → KMS and KMS → file.
	local := bytes.Repeat([]byte{7}, secrets.KeySize)
	fileRing, _ := secrets.NewKeyring(local)
	fileSealed, _ := fileRing.Seal("sealed-under-a-file-key")
	toKMS, err := secrets.NewKeyringOf(kk, secrets.LocalKey(local))
	if err != nil {
		t.Fatal(err)
	}
	toFile, _ := secrets.NewKeyringOf(secrets.LocalKey(local), kk)
	for _, ring := range []*secrets.Keyring{toKMS, toFile} {
		for v, want := range map[string]string{sealed: "hook-secret-under-kms", fileSealed: "sealed-under-a-file-key"} {
			if got, err := ring.Open(v); err != nil || got != want {
				t.Errorf("Open() during a rotation = %q, %v; want %q", got, err, want)
			}
		}
	}
	if toKMS.Primary(fileSealed) || !toKMS.Primary(sealed) || toFile.Primary(sealed) {
		t.Error("Primary() does not tell what a rotation has to re-seal")
	}
	if _, err := fileRing.Open(sealed); !errors.Is(err, secrets.ErrNoKey) {
		t.Errorf("Open() without the KMS key = %v; want ErrNoKey", err)
	}
}
