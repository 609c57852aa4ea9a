package awssim

import (
	"cmp"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// AWS KMS, the part a secrets store uses (AWS JSON 1.1, jsonproto.go:
// X-Amz-Target TrentService.ACTION; errors {"__type", "message"}):
// CreateKey, DescribeKey, Encrypt, Decrypt and GenerateDataKey, for
// symmetric encryption keys. Each key is a random 256-bit secret held by
// the simulator; a ciphertext is real AES-GCM under it, with the
// encryption context as additional data, and names its key (as KMS's own
// blobs do), so Decrypt needs no KeyId. Keys are per region: another
// region's world does not know them. A key is named by its id, its ARN,
// or "alias/..." is refused (no aliases yet).

var kmsMatch, kmsDecode = jsonTarget("TrentService")

var kmsService = &service{
	name:    "kms",
	match:   kmsMatch,
	decode:  kmsDecode,
	proto:   awsJSON{version: "1.1", namespace: "com.amazonaws.kms"},
	actions: kmsActions,
}

// kmsActions is the KMS API, one line per action.
var kmsActions = map[string]action{
	"CreateKey":       (*Sim).kmsCreateKey,
	"DescribeKey":     (*Sim).kmsDescribeKey,
	"Encrypt":         (*Sim).kmsEncrypt,
	"Decrypt":         (*Sim).kmsDecrypt,
	"GenerateDataKey": (*Sim).kmsGenerateDataKey,
}

// kmsState is a region's keys, guarded by Sim.mu.
type kmsState struct {
	keys map[string]*kmsKey // by key id
}

type kmsKey struct {
	id, description string
	created         time.Time
	aead            cipher.AEAD // under the key's secret, which never leaves the simulator
}

// kmsMetadata is the KeyMetadata shape of the answers.
type kmsMetadata struct {
	AWSAccountId          string   `json:"AWSAccountId"`
	KeyId                 string   `json:"KeyId"`
	Arn                   string   `json:"Arn"`
	CreationDate          float64  `json:"CreationDate"`
	Enabled               bool     `json:"Enabled"`
	Description           string   `json:"Description"`
	KeyUsage              string   `json:"KeyUsage"`
	KeyState              string   `json:"KeyState"`
	Origin                string   `json:"Origin"`
	KeyManager            string   `json:"KeyManager"`
	CustomerMasterKeySpec string   `json:"CustomerMasterKeySpec"`
	KeySpec               string   `json:"KeySpec"`
	EncryptionAlgorithms  []string `json:"EncryptionAlgorithms"`
	MultiRegion           bool     `json:"MultiRegion"`
}

const (
	kmsSymmetric    = "SYMMETRIC_DEFAULT"
	kmsMaxPlaintext = 4096
	kmsBlobVersion  = 1
)

func (s *Sim) kmsARN(id string) string {
	return "arn:aws:kms:" + s.opts.Region + ":" + s.opts.Account + ":key/" + id
}

func (s *Sim) kmsMeta(k *kmsKey) kmsMetadata {
	return kmsMetadata{
		AWSAccountId: s.opts.Account, KeyId: k.id, Arn: s.kmsARN(k.id), CreationDate: float64(k.created.UnixMilli()) / 1000,
		Enabled: true, Description: k.description, KeyUsage: "ENCRYPT_DECRYPT", KeyState: "Enabled", Origin: "AWS_KMS",
		KeyManager: "CUSTOMER", CustomerMasterKeySpec: kmsSymmetric, KeySpec: kmsSymmetric,
		EncryptionAlgorithms: []string{kmsSymmetric},
	}
}

// kmsUUID is a random key id in the UUID form KMS uses.
func kmsUUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func (s *Sim) kmsCreateKey(r *request) (any, error) {
	var in struct {
		Description, KeyUsage, KeySpec, CustomerMasterKeySpec, Origin string
		MultiRegion                                                   bool
	}
	if err := r.input(&in); err != nil {
		return nil, err
	}
	switch {
	case in.KeyUsage != "" && in.KeyUsage != "ENCRYPT_DECRYPT":
		return nil, apiErr("UnsupportedOperationException", "kiln's simulator serves ENCRYPT_DECRYPT keys only.")
	case cmp.Or(in.KeySpec, in.CustomerMasterKeySpec, kmsSymmetric) != kmsSymmetric:
		return nil, apiErr("UnsupportedOperationException", "kiln's simulator serves SYMMETRIC_DEFAULT keys only.")
	case in.Origin != "" && in.Origin != "AWS_KMS":
		return nil, apiErr("UnsupportedOperationException", "kiln's simulator serves keys of origin AWS_KMS only.")
	case len(in.Description) > 8192:
		return nil, apiErr("ValidationException", "1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 8192")
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	block, err := aes.NewCipher(secret)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	now := s.lock()
	defer s.mu.Unlock()
	if s.kms.keys == nil {
		s.kms.keys = map[string]*kmsKey{}
	}
	k := &kmsKey{id: kmsUUID(), description: in.Description, created: now, aead: aead}
	s.kms.keys[k.id] = k
	return map[string]any{"KeyMetadata": s.kmsMeta(k)}, nil
}

// kmsKeyLocked finds the key named by ref (id or ARN); s.mu is held.
func (s *Sim) kmsKeyLocked(ref string) (*kmsKey, error) {
	if ref == "" {
		return nil, apiErr("ValidationException", "1 validation error detected: Value null at 'keyId' failed to satisfy constraint: Member must not be null")
	}
	if strings.HasPrefix(ref, "alias/") || strings.Contains(ref, ":alias/") {
		return nil, apiErr("NotFoundException", "Alias %s is not found.", ref)
	}
	id := ref
	if strings.HasPrefix(ref, "arn:") {
		prefix := "arn:aws:kms:" + s.opts.Region + ":" + s.opts.Account + ":key/"
		if !strings.HasPrefix(ref, prefix) {
			return nil, apiErr("NotFoundException", "Key '%s' does not exist", ref)
		}
		id = strings.TrimPrefix(ref, prefix)
	}
	k := s.kms.keys[id]
	if k == nil {
		return nil, apiErr("NotFoundException", "Key '%s' does not exist", s.kmsARN(id))
	}
	return k, nil
}

func (s *Sim) kmsDescribeKey(r *request) (any, error) {
	var in struct{ KeyId string }
	if err := r.input(&in); err != nil {
		return nil, err
	}
	s.lock()
	defer s.mu.Unlock()
	k, err := s.kmsKeyLocked(in.KeyId)
	if err != nil {
		return nil, err
	}
	return map[string]any{"KeyMetadata": s.kmsMeta(k)}, nil
}

// kmsContext is an encryption context as AES-GCM's additional data: its
// pairs sorted by key, so that the same context in any order matches.
func kmsContext(ctx map[string]string) []byte {
	var b []byte
	for _, k := range slices.Sorted(maps.Keys(ctx)) {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(ctx[k])))
		b = append(b, ctx[k]...)
	}
	return b
}

// kmsSeal encrypts plain under k: version, key id, nonce, ciphertext.
func kmsSeal(k *kmsKey, plain []byte, ctx map[string]string) []byte {
	blob := append([]byte{kmsBlobVersion, byte(len(k.id))}, k.id...)
	nonce := make([]byte, k.aead.NonceSize())
	rand.Read(nonce)
	blob = append(blob, nonce...)
	return k.aead.Seal(blob, nonce, plain, append([]byte(k.id), kmsContext(ctx)...))
}

func kmsAlgorithm(alg string) error {
	if alg != "" && alg != kmsSymmetric {
		return apiErr("InvalidKeyUsageException", "The encryption algorithm %s is not supported by the key.", alg)
	}
	return nil
}

func (s *Sim) kmsEncrypt(r *request) (any, error) {
	var in struct {
		KeyId               string
		Plaintext           []byte
		EncryptionContext   map[string]string
		EncryptionAlgorithm string
	}
	if err := r.input(&in); err != nil {
		return nil, err
	}
	if len(in.Plaintext) == 0 || len(in.Plaintext) > kmsMaxPlaintext {
		return nil, apiErr("ValidationException", "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length between 1 and %d", kmsMaxPlaintext)
	}
	if err := kmsAlgorithm(in.EncryptionAlgorithm); err != nil {
		return nil, err
	}
	s.lock()
	defer s.mu.Unlock()
	k, err := s.kmsKeyLocked(in.KeyId)
	if err != nil {
		return nil, err
	}
	return map[string]any{"CiphertextBlob": kmsSeal(k, in.Plaintext, in.EncryptionContext), "KeyId": s.kmsARN(k.id),
		"EncryptionAlgorithm": kmsSymmetric}, nil
}

func (s *Sim) kmsDecrypt(r *request) (any, error) {
	var in struct {
		KeyId               string
		CiphertextBlob      []byte
		EncryptionContext   map[string]string
		EncryptionAlgorithm string
	}
	if err := r.input(&in); err != nil {
		return nil, err
	}
	if len(in.CiphertextBlob) == 0 || len(in.CiphertextBlob) > 6144 {
		return nil, apiErr("ValidationException", "1 validation error detected: Value at 'ciphertextBlob' failed to satisfy constraint: Member must have length between 1 and 6144")
	}
	if err := kmsAlgorithm(in.EncryptionAlgorithm); err != nil {
		return nil, err
	}
	invalid := &APIError{Status: 400, Code: "InvalidCiphertextException", Message: "The ciphertext is invalid, or was not encrypted with this encryption context."}
	blob := in.CiphertextBlob
	if len(blob) < 2 || blob[0] != kmsBlobVersion || len(blob) < 2+int(blob[1]) {
		return nil, invalid
	}
	id := string(blob[2 : 2+int(blob[1])])
	rest := blob[2+int(blob[1]):]
	s.lock()
	defer s.mu.Unlock()
	k := s.kms.keys[id]
	if k == nil {
		return nil, invalid // a key of another region or account: the blob means nothing here
	}
	if in.KeyId != "" {
		want, err := s.kmsKeyLocked(in.KeyId)
		if err != nil {
			return nil, err
		}
		if want != k {
			return nil, &APIError{Status: 400, Code: "IncorrectKeyException", Message: "The key ID in the request does not identify a CMK that can perform this operation."}
		}
	}
	n := k.aead.NonceSize()
	if len(rest) < n {
		return nil, invalid
	}
	plain, err := k.aead.Open(nil, rest[:n], rest[n:], append([]byte(k.id), kmsContext(in.EncryptionContext)...))
	if err != nil {
		return nil, invalid // tampered, or another encryption context
	}
	return map[string]any{"Plaintext": plain, "KeyId": s.kmsARN(k.id), "EncryptionAlgorithm": kmsSymmetric}, nil
}

func (s *Sim) kmsGenerateDataKey(r *request) (any, error) {
	var in struct {
		KeyId             string
		KeySpec           string
		NumberOfBytes     *int
		EncryptionContext map[string]string
	}
	if err := r.input(&in); err != nil {
		return nil, err
	}
	var size int
	switch {
	case in.KeySpec != "" && in.NumberOfBytes != nil:
		return nil, apiErr("ValidationException", "Please specify either number of bytes or key spec.")
	case in.KeySpec == "AES_256":
		size = 32
	case in.KeySpec == "AES_128":
		size = 16
	case in.KeySpec != "":
		return nil, apiErr("ValidationException", "1 validation error detected: Value '%s' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]", in.KeySpec)
	case in.NumberOfBytes == nil:
		return nil, apiErr("ValidationException", "Please specify either number of bytes or key spec.")
	case *in.NumberOfBytes < 1 || *in.NumberOfBytes > 1024:
		return nil, apiErr("ValidationException", "1 validation error detected: Value '%d' at 'numberOfBytes' failed to satisfy constraint: Member must have value between 1 and 1024", *in.NumberOfBytes)
	default:
		size = *in.NumberOfBytes
	}
	s.lock()
	defer s.mu.Unlock()
	k, err := s.kmsKeyLocked(in.KeyId)
	if err != nil {
		return nil, err
	}
	plain := make([]byte, size)
	rand.Read(plain)
	return map[string]any{"CiphertextBlob": kmsSeal(k, plain, in.EncryptionContext), "Plaintext": plain,
		"KeyId": s.kmsARN(k.id)}, nil
}
