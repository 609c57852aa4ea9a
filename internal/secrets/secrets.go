// Package secrets seals the secrets kiln keeps in its database (webhook
// secrets today) with AES-256-GCM envelope encryption: each value is
// encrypted with a data key of its own, and the data key with the master
// key (from --secret-key-file or KILN_SECRET_KEY, or an AWS KMS key:
// then KMS makes and unwraps the data keys, and the master key never
// leaves KMS). A sealed value names its
// master key by id, so a keyring holding the new key and the old ones reads
// everything during a rotation (kiln secrets rotate-key re-wraps the data
// keys under the new one).
//
// A sealed value reads "kiln:v1:KEYID:WRAPPED-DATA-KEY:CIPHERTEXT" (base64url
// parts; KEYID is the first 8 bytes of the key's SHA-256, hex). A value
// without the prefix is clear text written before encryption was turned
// on: Open returns it as it is, and Sealed reports it, for sealing.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

const prefix = "kiln:v1:"

// KeySize is the master key's size: AES-256.
const KeySize = 32

// Keyring seals with its first key and opens with any of them.
type Keyring struct {
	keys []key
}

// key is a master key: a local AES key (aead), or one held by AWS KMS.
type key struct {
	id   string
	aead cipher.AEAD
	kms  *KMSKey
}

// MasterKey is a key a Keyring seals or opens with: a LocalKey, or a
// *KMSKey.
type MasterKey interface {
	masterKey() (key, error)
}

// LocalKey is a master key held by kiln itself: KeySize bytes, from a key
// file or KILN_SECRET_KEY.
type LocalKey []byte

func (raw LocalKey) masterKey() (key, error) {
	if len(raw) != KeySize {
		return key{}, fmt.Errorf("secret key: want %d bytes, got %d", KeySize, len(raw))
	}
	aead, err := newAEAD(raw)
	if err != nil {
		return key{}, err
	}
	return key{id: KeyID(raw), aead: aead}, nil
}

// ErrNoKey is Open's answer for a value sealed under a key the keyring
// does not hold.
var ErrNoKey = errors.New("sealed under a key this server does not have")

// ParseKey reads a master key as written in a key file or KILN_SECRET_KEY:
// 32 bytes as 64 hex digits or as base64 (standard or URL, padded or not).
// Surrounding white space is ignored.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if b, err := hex.DecodeString(s); err == nil && len(b) == KeySize {
		return b, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == KeySize {
			return b, nil
		}
	}
	return nil, fmt.Errorf("secret key: want %d bytes as 64 hex digits or base64 (openssl rand -hex 32)", KeySize)
}

// ReadKeyFile reads a master key from file.
func ReadKeyFile(file string) ([]byte, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read secret key file: %w", err)
	}
	k, err := ParseKey(string(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return k, nil
}

// NewKeyring seals with primary and opens with primary and old, all
// local keys.
func NewKeyring(primary []byte, old ...[]byte) (*Keyring, error) {
	var olds []MasterKey
	for _, raw := range old {
		olds = append(olds, LocalKey(raw))
	}
	return NewKeyringOf(LocalKey(primary), olds...)
}

// NewKeyringOf seals with primary and opens with primary and old, each a
// local key or a KMS key.
func NewKeyringOf(primary MasterKey, old ...MasterKey) (*Keyring, error) {
	k := &Keyring{}
	for _, m := range append([]MasterKey{primary}, old...) {
		mk, err := m.masterKey()
		if err != nil {
			return nil, err
		}
		k.keys = append(k.keys, mk)
	}
	return k, nil
}

// PrimaryID names the key the keyring seals with.
func (k *Keyring) PrimaryID() string { return k.keys[0].id }

// KeyID names a master key in the values it seals.
func KeyID(raw []byte) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:8])
}

func newAEAD(raw []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// seal encrypts plain with aead under a random nonce: nonce || ciphertext.
func seal(aead cipher.AEAD, plain, ad []byte) []byte {
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce) // never fails
	return aead.Seal(nonce, nonce, plain, ad)
}

func open(aead cipher.AEAD, sealed, ad []byte) ([]byte, error) {
	n := aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("sealed value too short")
	}
	return aead.Open(nil, sealed[:n], sealed[n:], ad)
}

var b64 = base64.RawURLEncoding

// Seal encrypts plain under a new data key, wrapped by the primary key
// (for a KMS key: a data key from KMS GenerateDataKey, which blocks on
// KMS for at most kmsTimeout).
func (k *Keyring) Seal(plain string) (string, error) {
	primary := k.keys[0]
	var dk, wrapped []byte
	if primary.kms != nil {
		var err error
		if dk, wrapped, err = primary.kms.generate(primary.id); err != nil {
			return "", fmt.Errorf("seal secret: %w", err)
		}
	} else {
		dk = make([]byte, KeySize)
		rand.Read(dk) // never fails
		// The key id is authenticated with the wrapped data key, so a
		// value cannot be passed off as sealed under another key.
		wrapped = seal(primary.aead, dk, []byte(primary.id))
	}
	daead, err := newAEAD(dk)
	if err != nil {
		return "", err
	}
	ct := seal(daead, []byte(plain), nil)
	return prefix + primary.id + ":" + b64.EncodeToString(wrapped) + ":" + b64.EncodeToString(ct), nil
}

// Sealed reports whether v is a sealed value (not clear text).
func Sealed(v string) bool { return strings.HasPrefix(v, prefix) }

// Open returns the clear text of v; a value that is not sealed is returned
// as it is. ErrNoKey: v was sealed under a key the keyring lacks.
func (k *Keyring) Open(v string) (string, error) {
	if !Sealed(v) {
		return v, nil
	}
	parts := strings.Split(strings.TrimPrefix(v, prefix), ":")
	if len(parts) != 3 {
		return "", errors.New("open secret: malformed sealed value")
	}
	id := parts[0]
	for _, mk := range k.keys {
		if mk.id != id {
			continue
		}
		wrapped, err1 := b64.DecodeString(parts[1])
		ct, err2 := b64.DecodeString(parts[2])
		if err := errors.Join(err1, err2); err != nil {
			return "", fmt.Errorf("open secret: %w", err)
		}
		var dk []byte
		var err error
		if mk.kms != nil {
			dk, err = mk.kms.unwrap(id, wrapped)
		} else {
			dk, err = open(mk.aead, wrapped, []byte(id))
		}
		if err != nil {
			return "", fmt.Errorf("open secret: data key: %w", err)
		}
		daead, err := newAEAD(dk)
		if err != nil {
			return "", err
		}
		plain, err := open(daead, ct, nil)
		if err != nil {
			return "", fmt.Errorf("open secret: %w", err)
		}
		return string(plain), nil
	}
	return "", fmt.Errorf("open secret (key %s): %w", id, ErrNoKey)
}

// Primary reports whether v is sealed under the keyring's primary key:
// false for clear text and for values that a rotation still has to re-wrap.
func (k *Keyring) Primary(v string) bool {
	return strings.HasPrefix(v, prefix+k.keys[0].id+":")
}
