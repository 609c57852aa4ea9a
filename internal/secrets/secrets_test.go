package secrets

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestSealOpenRotate(t *testing.T) {
	oldKey, newKey := bytes.Repeat([]byte{1}, KeySize), bytes.Repeat([]byte{2}, KeySize)
	old, err := NewKeyring(oldKey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := old.Seal("s3cret-webhook")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(v, "s3cret") || !Sealed(v) || !old.Primary(v) {
		t.Fatalf("Seal() = %q; want a sealed value without the clear text", v)
	}
	if v2, _ := old.Seal("s3cret-webhook"); v2 == v {
		t.Error("two seals of one value are equal; want fresh data keys and nonces")
	}
	if got, err := old.Open(v); err != nil || got != "s3cret-webhook" {
		t.Errorf("Open() = %q, %v", got, err)
	}
	// Clear text from before encryption reads as it is.
	if got, err := old.Open("legacy"); err != nil || got != "legacy" || Sealed("legacy") {
		t.Errorf("Open(clear text) = %q, %v", got, err)
	}
	// During a rotation the new keyring reads the old values; alone, the
	// new key does not.
	both, _ := NewKeyring(newKey, oldKey)
	if got, err := both.Open(v); err != nil || got != "s3cret-webhook" || both.Primary(v) {
		t.Errorf("rotating keyring: Open() = %q, %v; Primary = %v", got, err, both.Primary(v))
	}
	only, _ := NewKeyring(newKey)
	if _, err := only.Open(v); !errors.Is(err, ErrNoKey) {
		t.Errorf("Open() with another key = %v; want ErrNoKey", err)
	}
	// Tampering is detected.
	bad := v[:len(v)-2] + "AA"
	if _, err := old.Open(bad); err == nil {
		t.Error("Open(tampered) = nil error")
	}
}

func TestParseKey(t *testing.T) {
	hexKey := strings.Repeat("ab", 32)
	if k, err := ParseKey(" " + hexKey + "\n"); err != nil || len(k) != KeySize {
		t.Errorf("ParseKey(hex) = %v, %v", k, err)
	}
	if k, err := ParseKey("q83vq83vq83vq83vq83vq83vq83vq83vq83vq83vq80="); err != nil || len(k) != KeySize {
		t.Errorf("ParseKey(base64) = %v, %v", k, err)
	}
	for _, bad := range []string{"", "short", strings.Repeat("ab", 16)} {
		if _, err := ParseKey(bad); err == nil || !strings.Contains(err.Error(), "openssl rand -hex 32") {
			t.Errorf("ParseKey(%q) = %v; want an error saying how to make one", bad, err)
		}
	}
}
