package awsres

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/engine"
)

// edKey is an OpenSSH ed25519 public key line whose 32 key bytes are all b.
func edKey(b byte) string {
	blob := []byte{0, 0, 0, 11}
	blob = append(blob, "ssh-ed25519"...)
	blob = append(blob, 0, 0, 0, 32)
	for range 32 {
		blob = append(blob, b)
	}
	return "ssh-ed25519 " + base64.StdEncoding.EncodeToString(blob) + " ops@laptop"
}

func (w *world) keyPair(name string, mod func(*KeyPair)) *KeyPair {
	r := NewKeyPair(w.hubs)
	if mod != nil {
		mod(r)
	}
	_ = r.Init(engine.Env{Graph: graph, ID: "aws:key_pair/" + name, Kind: "aws:key_pair", Name: name, Log: testLog})
	return r
}

func TestKeyPairConverges(t *testing.T) {
	w := newWorld(t, worldOpts{})
	file := filepath.Join(t.TempDir(), "id_ed25519.pub")
	if err := os.WriteFile(file, []byte(edKey(1)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := w.keyPair("deploy", func(r *KeyPair) { r.PublicKeyFile = file })
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	ok, err := r.CheckApply(t.Context(), false)
	if ok || err != nil || len(r.Changes()) != 1 || !strings.HasPrefix(r.Changes()[0], "import key pair deploy (") {
		t.Fatalf("CheckApply(apply=false) = %v, %v, %q; want the import planned", ok, err, r.Changes())
	}
	ok, err = r.CheckApply(t.Context(), true)
	if ok || err != nil {
		t.Fatalf("CheckApply() = %v, %v; want an import", ok, err)
	}
	out := r.Outputs()
	if out["key_name"] != "deploy" || !strings.HasPrefix(out["key_pair_id"], "key-") || out["fingerprint"] == "" {
		t.Errorf("Outputs() = %v", out)
	}
	if ok, err := r.CheckApply(t.Context(), true); !ok || err != nil {
		t.Errorf("second CheckApply() = %v, %v; want converged", ok, err)
	}

	// A new key replaces the pair kiln imported.
	if err := os.WriteFile(file, []byte(edKey(2)), 0o600); err != nil {
		t.Fatal(err)
	}
	if ok, err := r.CheckApply(t.Context(), true); ok || err != nil {
		t.Fatalf("CheckApply(new key) = %v, %v; want a replacement", ok, err)
	}
	if r.Outputs()["fingerprint"] == out["fingerprint"] || w.sim.Calls("DeleteKeyPair") != 1 {
		t.Errorf("fingerprint %s -> %s, %d deletes; want a new one, one delete", out["fingerprint"], r.Outputs()["fingerprint"], w.sim.Calls("DeleteKeyPair"))
	}

	// An instance launches with it.
	inst := w.instance("app", func(i *Instance) { i.KeyName = r.Outputs()["key_name"] })
	checkApply(t, inst)
	if l := w.live("app"); len(l) != 1 || l[0].KeyName != "deploy" {
		t.Errorf("instance = %+v; want key deploy", l)
	}

	// A pair kiln did not import: adopted when the key is the same, an
	// error when it is another.
	if _, err := w.client.ImportKeyPair(t.Context(), &ec2.ImportKeyPairInput{KeyName: aws.String("ops"), PublicKeyMaterial: []byte(edKey(3))}); err != nil {
		t.Fatal(err)
	}
	same := w.keyPair("ops", func(r *KeyPair) { r.PublicKey = edKey(3) })
	if ok, err := same.CheckApply(t.Context(), true); ok || err != nil || w.sim.Calls("CreateTags") != 1 {
		t.Errorf("CheckApply(same key, not kiln's) = %v, %v; want it tagged", ok, err)
	}
	if _, err := w.client.ImportKeyPair(t.Context(), &ec2.ImportKeyPairInput{KeyName: aws.String("root"), PublicKeyMaterial: []byte(edKey(4))}); err != nil {
		t.Fatal(err)
	}
	other := w.keyPair("root", func(r *KeyPair) { r.PublicKey = edKey(5) })
	if _, err := other.CheckApply(t.Context(), true); !engine.IsPermanent(err) || !strings.Contains(err.Error(), "kiln did not import") {
		t.Errorf("CheckApply(another key, not kiln's) = %v; want a permanent error", err)
	}
}

// rsaKey is a new RSA key: its OpenSSH public key line, and the key.
func rsaKey(t *testing.T) (line string, key *rsa.PrivateKey) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	var b []byte
	str := func(s []byte) { b = binary.BigEndian.AppendUint32(b, uint32(len(s))); b = append(b, s...) }
	str([]byte("ssh-rsa"))
	str(big.NewInt(int64(k.E)).Bytes())
	str(append([]byte{0}, k.N.Bytes()...))
	return "ssh-rsa " + base64.StdEncoding.EncodeToString(b) + " ops@laptop", k
}

// TestKeyPairRSAConvergesOnce imports an RSA key, then checks it as a new
// process would: EC2's fingerprint of an imported RSA key (the MD5 of the
// DER public key) is the one kiln computes, so the check is clean and
// nothing is imported again.
func TestKeyPairRSAConvergesOnce(t *testing.T) {
	w := newWorld(t, worldOpts{})
	line, k := rsaKey(t)
	r := w.keyPair("deploy", func(r *KeyPair) { r.PublicKey = line })
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	if ok, err := r.CheckApply(t.Context(), true); ok || err != nil {
		t.Fatalf("CheckApply() = %v, %v; want an import", ok, err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	sum := md5.Sum(der)
	if fp := strings.ReplaceAll(r.Outputs()["fingerprint"], ":", ""); fp != hex.EncodeToString(sum[:]) {
		t.Errorf("fingerprint = %s; want the MD5 of the DER public key %x", r.Outputs()["fingerprint"], sum)
	}
	again := w.keyPair("deploy", func(r *KeyPair) { r.PublicKey = line })
	if ok, err := again.CheckApply(t.Context(), false); !ok || err != nil || len(again.Changes()) != 0 {
		t.Errorf("CheckApply(apply=false) after the import = %v, %v, %q; want clean", ok, err, again.Changes())
	}
	if ok, err := again.CheckApply(t.Context(), true); !ok || err != nil {
		t.Errorf("CheckApply() after the import = %v, %v; want converged", ok, err)
	}
	if i, d := w.sim.Calls("ImportKeyPair"), w.sim.Calls("DeleteKeyPair"); i != 1 || d != 0 {
		t.Errorf("ImportKeyPair %d, DeleteKeyPair %d calls; want 1 and 0", i, d)
	}
}

// TestKeyPairFingerprintForms: EC2 may pad an ED25519 fingerprint with '='
// or not, and a pair EC2 created has a fingerprint of its private key:
// kiln sees the same key in each case.
func TestKeyPairFingerprintForms(t *testing.T) {
	line := edKey(7)
	_, blob, err := parseSSHPublicKey(line)
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := keyFingerprint("ed25519", blob)
	for _, tt := range []struct {
		name string
		kp   types.KeyPairInfo
		want bool
	}{
		{"padded", types.KeyPairInfo{KeyFingerprint: aws.String(fp)}, true},
		{"unpadded", types.KeyPairInfo{KeyFingerprint: aws.String(strings.TrimRight(fp, "="))}, true},
		{"other key", types.KeyPairInfo{KeyFingerprint: aws.String("AAAA" + fp[4:])}, false},
		{"created, same public key", types.KeyPairInfo{KeyFingerprint: aws.String("12:34"), PublicKey: aws.String(line)}, true},
		{"created, other public key", types.KeyPairInfo{KeyFingerprint: aws.String("12:34"), PublicKey: aws.String(edKey(8))}, false},
	} {
		if got := holds(&tt.kp, fp, blob); got != tt.want {
			t.Errorf("holds(%s) = %v; want %v", tt.name, got, tt.want)
		}
	}
	if !sameFingerprint("AB:cd", "ab:CD") || sameFingerprint("abc=", "ABC") {
		t.Errorf("sameFingerprint: hex is case-blind, base64 is not")
	}
}

func TestKeyPairValidate(t *testing.T) {
	for _, tt := range []struct {
		key, file string
		want      string
	}{
		{"", "", "public_key: required"},
		{edKey(1), "x.pub", "public_key_file: not with public_key"},
		{"ssh-dss AAAA", "", `key type "ssh-dss"`},
		{"ssh-rsa bm90", "", "not a ssh-rsa key"},
	} {
		r := &KeyPair{PublicKey: tt.key, PublicKeyFile: tt.file}
		if err := r.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate(public_key %q, public_key_file %q) = %v; want %q", tt.key, tt.file, err, tt.want)
		}
	}
}
