package secrets

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// KMSAPI is the part of AWS KMS a KMS master key calls; *kms.Client
// satisfies it.
type KMSAPI interface {
	DescribeKey(ctx context.Context, in *kms.DescribeKeyInput, opts ...func(*kms.Options)) (*kms.DescribeKeyOutput, error)
	GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, opts ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error)
	Decrypt(ctx context.Context, in *kms.DecryptInput, opts ...func(*kms.Options)) (*kms.DecryptOutput, error)
}

// kmsTimeout bounds one KMS call of Seal or Open.
const kmsTimeout = 30 * time.Second

// kmsCacheSize bounds the data keys a KMSKey keeps unwrapped, so that a
// secret read again (each webhook reads its project's) costs no KMS call.
const kmsCacheSize = 4096

// KMSKey is a master key held by AWS KMS: data keys come from
// GenerateDataKey and are unwrapped by Decrypt, with the key's id in kiln
// as the encryption context. Its id in sealed values is "kms-" and the
// first 8 bytes of the SHA-256 of the key's ARN, hex.
type KMSKey struct {
	api KMSAPI
	arn string
	id  string

	mu    sync.Mutex
	cache map[string][]byte // wrapped data key → data key
}

// NewKMSKey finds the KMS key named keyID (a key id, ARN, alias name or
// alias ARN) with DescribeKey; it fails when KMS does not know it or
// kiln may not describe it.
func NewKMSKey(ctx context.Context, api KMSAPI, keyID string) (*KMSKey, error) {
	out, err := api.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyID)})
	if err != nil {
		return nil, fmt.Errorf("kms key %q: %w", keyID, err)
	}
	arn := aws.ToString(out.KeyMetadata.Arn)
	if !out.KeyMetadata.Enabled {
		return nil, fmt.Errorf("kms key %q (%s) is %s, not enabled", keyID, arn, out.KeyMetadata.KeyState)
	}
	sum := sha256.Sum256([]byte(arn))
	return &KMSKey{api: api, arn: arn, id: "kms-" + hex.EncodeToString(sum[:8]), cache: map[string][]byte{}}, nil
}

// ID names the key in sealed values.
func (k *KMSKey) ID() string { return k.id }

// ARN is the key's ARN.
func (k *KMSKey) ARN() string { return k.arn }

func (k *KMSKey) masterKey() (key, error) { return key{id: k.id, kms: k}, nil }

func (k *KMSKey) context(id string) map[string]string { return map[string]string{"kiln-key": id} }

// generate returns a new data key and its wrapped form.
func (k *KMSKey) generate(id string) (dk, wrapped []byte, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), kmsTimeout)
	defer cancel()
	out, err := k.api.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(k.arn),
		KeySpec: kmstypes.DataKeySpecAes256, EncryptionContext: k.context(id)})
	if err != nil {
		return nil, nil, fmt.Errorf("kms generate data key: %w", err)
	}
	if len(out.Plaintext) != KeySize {
		return nil, nil, fmt.Errorf("kms generate data key: got %d bytes, want %d", len(out.Plaintext), KeySize)
	}
	k.remember(out.CiphertextBlob, out.Plaintext)
	return out.Plaintext, out.CiphertextBlob, nil
}

// unwrap returns the data key of wrapped.
func (k *KMSKey) unwrap(id string, wrapped []byte) ([]byte, error) {
	k.mu.Lock()
	dk, ok := k.cache[string(wrapped)]
	k.mu.Unlock()
	if ok {
		return dk, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), kmsTimeout)
	defer cancel()
	out, err := k.api.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: wrapped, KeyId: aws.String(k.arn), EncryptionContext: k.context(id)})
	if err != nil {
		return nil, fmt.Errorf("kms decrypt: %w", err)
	}
	k.remember(wrapped, out.Plaintext)
	return out.Plaintext, nil
}

func (k *KMSKey) remember(wrapped, dk []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.cache) >= kmsCacheSize {
		clear(k.cache)
	}
	k.cache[string(wrapped)] = dk
}
