package awsres

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

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
