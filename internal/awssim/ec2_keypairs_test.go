package awssim

import (
	"bytes"
	"crypto/ed25519"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// testPublicKey is an OpenSSH ed25519 public key line and its blob.
func testPublicKey() (line string, blob []byte) {
	pub := make(ed25519.PublicKey, ed25519.PublicKeySize)
	for i := range pub {
		pub[i] = byte(i)
	}
	b := []byte{0, 0, 0, 11}
	b = append(b, "ssh-ed25519"...)
	b = append(b, 0, 0, 0, 32)
	b = append(b, pub...)
	return "ssh-ed25519 " + base64.StdEncoding.EncodeToString(b) + " ops@laptop", b
}

func TestKeyPairs(t *testing.T) {
	_, c := newTestSim(t, Options{})
	ctx := t.Context()
	line, _ := testPublicKey()
	imp, err := c.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{KeyName: aws.String("ops"), PublicKeyMaterial: []byte(line),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeKeyPair, Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("ops")}}}}})
	if err != nil || !strings.HasPrefix(aws.ToString(imp.KeyPairId), "key-") || aws.ToString(imp.KeyFingerprint) == "" || len(imp.Tags) != 1 {
		t.Fatalf("ImportKeyPair() = %+v, %v", imp, err)
	}
	var ae smithy.APIError
	if _, err := c.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{KeyName: aws.String("ops"), PublicKeyMaterial: []byte(line)}); !errors.As(err, &ae) ||
		ae.ErrorCode() != "InvalidKeyPair.Duplicate" || ae.ErrorMessage() != "The keypair 'ops' already exists." {
		t.Errorf("ImportKeyPair(again) = %v; want InvalidKeyPair.Duplicate", err)
	}
	if _, err := c.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{KeyName: aws.String("bad"), PublicKeyMaterial: []byte("ssh-rsa bm90IGEga2V5")}); errCode(err) != "InvalidKey.Format" {
		t.Errorf("ImportKeyPair(garbage) = %q; want InvalidKey.Format", errCode(err))
	}

	for _, typ := range []types.KeyType{types.KeyTypeEd25519, types.KeyTypeRsa} {
		cr, err := c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("made-" + string(typ)), KeyType: typ})
		if err != nil {
			t.Fatalf("CreateKeyPair(%s) = %v", typ, err)
		}
		if m := aws.ToString(cr.KeyMaterial); !strings.HasPrefix(m, "-----BEGIN ") || !strings.HasSuffix(m, "PRIVATE KEY-----") {
			t.Errorf("CreateKeyPair(%s) material = %.40q...; want a PEM private key", typ, m)
		}
	}

	all, err := c.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{IncludePublicKey: aws.Bool(true)})
	if err != nil || len(all.KeyPairs) != 3 {
		t.Fatalf("DescribeKeyPairs() = %+v, %v; want 3", all, err)
	}
	if k := all.KeyPairs[0]; aws.ToString(k.KeyName) != "ops" || k.KeyType != types.KeyTypeEd25519 || !strings.HasPrefix(aws.ToString(k.PublicKey), "ssh-ed25519 ") || k.CreateTime == nil {
		t.Errorf("DescribeKeyPairs()[0] = %+v; want ops, ed25519, its public key", k)
	}
	byTag, err := c.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{Filters: []types.Filter{{Name: aws.String("tag:team"), Values: []string{"ops"}}}})
	if err != nil || len(byTag.KeyPairs) != 1 {
		t.Errorf("DescribeKeyPairs(tag:team=ops) = %+v, %v; want 1", byTag, err)
	}
	if _, err := c.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{KeyNames: []string{"nope"}}); !errors.As(err, &ae) ||
		ae.ErrorCode() != "InvalidKeyPair.NotFound" || ae.ErrorMessage() != "The key pair 'nope' does not exist" {
		t.Errorf("DescribeKeyPairs(nope) = %v; want InvalidKeyPair.NotFound", err)
	}
	if _, err := c.DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{KeyName: aws.String("ops")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{KeyName: aws.String("ops")}); err != nil {
		t.Errorf("DeleteKeyPair(gone name) = %v; want success, as EC2", err)
	}
	if out, _ := c.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{}); len(out.KeyPairs) != 2 {
		t.Errorf("key pairs after delete = %d; want 2", len(out.KeyPairs))
	}
}

// openssl runs openssl through sh with the pipeline cmd in dir and returns
// what it prints after "= " (or all of it, trimmed). Without openssl the
// test is skipped, unless CI is set.
func openssl(t *testing.T, dir, cmd string) string {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("openssl is not installed; CI must run the fingerprint comparison")
		}
		t.Skip("openssl is not installed")
	}
	c := exec.CommandContext(t.Context(), "sh", "-c", cmd)
	c.Dir = dir
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	s := strings.TrimSpace(string(out))
	if i := strings.LastIndex(s, "= "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

// sshLine is the OpenSSH public key line of an RSA or ed25519 key.
func sshLine(t *testing.T, pub any) string {
	t.Helper()
	var b bytes.Buffer
	switch k := pub.(type) {
	case *rsa.PublicKey:
		sshString(&b, []byte("ssh-rsa"))
		sshString(&b, big(k.E))
		sshString(&b, append([]byte{0}, k.N.Bytes()...))
		return "ssh-rsa " + base64.StdEncoding.EncodeToString(b.Bytes()) + " ops@laptop"
	case ed25519.PublicKey:
		sshString(&b, []byte("ssh-ed25519"))
		sshString(&b, k)
		return "ssh-ed25519 " + base64.StdEncoding.EncodeToString(b.Bytes()) + " ops@laptop"
	}
	t.Fatalf("sshLine(%T)", pub)
	return ""
}

// TestKeyFingerprintsMatchOpenSSL checks the fingerprints DescribeKeyPairs
// reports against openssl's, as the EC2 user guide computes them: imported
// RSA is the MD5 of the DER public key (not of the SSH blob), created RSA
// the SHA-1 of the PKCS#8 private key, ed25519 the base64 SHA-256.
func TestKeyFingerprintsMatchOpenSSL(t *testing.T) {
	_, c := newTestSim(t, Options{})
	ctx, dir := t.Context(), t.TempDir()
	fingerprint := func(name string) string {
		out, err := c.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{KeyNames: []string{name}})
		if err != nil || len(out.KeyPairs) != 1 {
			t.Fatalf("DescribeKeyPairs(%s) = %+v, %v", name, out, err)
		}
		return aws.ToString(out.KeyPairs[0].KeyFingerprint)
	}
	write := func(name string, der []byte, typ string) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	write("rsa.pem", der, "PRIVATE KEY")
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ = x509.MarshalPKCS8PrivateKey(edPriv)
	write("ed.pem", der, "PRIVATE KEY")
	for name, pub := range map[string]any{"imported-rsa": &rsaKey.PublicKey, "imported-ed": edPub} {
		if _, err := c.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{KeyName: aws.String(name), PublicKeyMaterial: []byte(sshLine(t, pub))}); err != nil {
			t.Fatalf("ImportKeyPair(%s) = %v", name, err)
		}
	}
	cr, err := c.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("created-rsa")})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "created.pem"), []byte(aws.ToString(cr.KeyMaterial)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct{ key, cmd string }{
		{"imported-rsa", "openssl pkey -in rsa.pem -pubout -outform DER | openssl md5 -c"},
		{"created-rsa", "openssl pkcs8 -in created.pem -inform PEM -outform DER -topk8 -nocrypt | openssl sha1 -c"},
		// The SSH blob of an ed25519 key is its type and its 32 key bytes,
		// which end the DER public key.
		{"imported-ed", `{ printf '\000\000\000\013ssh-ed25519\000\000\000\040'; openssl pkey -in ed.pem -pubout -outform DER | tail -c 32; } | openssl dgst -sha256 -binary | openssl base64`},
	} {
		want := openssl(t, dir, tt.cmd)
		if got := fingerprint(tt.key); got != want {
			t.Errorf("fingerprint of %s = %s; openssl (%s) says %s", tt.key, got, tt.cmd, want)
		}
	}
	// ssh-keygen -E md5 hashes the SSH blob: EC2 does not.
	line := sshLine(t, &rsaKey.PublicKey)
	blob, _ := base64.StdEncoding.DecodeString(strings.Fields(line)[1])
	if sum := md5.Sum(blob); colonHex(sum[:]) == fingerprint("imported-rsa") {
		t.Errorf("imported RSA fingerprint is the MD5 of the SSH blob; want the DER public key's")
	}
}

func TestDefaultVPCPerRegion(t *testing.T) {
	s := New(Options{ManualClock: true, TimeScale: 1})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	for _, region := range []string{"us-east-1", "eu-west-3"} {
		cfg := ClientConfig(srv.URL)
		cfg.Region = region
		c := ec2.NewFromConfig(cfg)
		vpcs, err := c.DescribeVpcs(t.Context(), &ec2.DescribeVpcsInput{Filters: []types.Filter{{Name: aws.String("is-default"), Values: []string{"true"}}}})
		if err != nil || len(vpcs.Vpcs) != 1 || !aws.ToBool(vpcs.Vpcs[0].IsDefault) || aws.ToString(vpcs.Vpcs[0].CidrBlock) != "172.31.0.0/16" {
			t.Fatalf("DescribeVpcs(%s) = %+v, %v; want the default VPC", region, vpcs, err)
		}
		vpc := aws.ToString(vpcs.Vpcs[0].VpcId)
		sns, err := c.DescribeSubnets(t.Context(), &ec2.DescribeSubnetsInput{Filters: []types.Filter{{Name: aws.String("vpc-id"), Values: []string{vpc}}}})
		if err != nil || len(sns.Subnets) < 3 {
			t.Fatalf("DescribeSubnets(%s) = %+v, %v; want the default subnets", region, sns, err)
		}
		for _, sn := range sns.Subnets {
			if az := aws.ToString(sn.AvailabilityZone); !strings.HasPrefix(az, region) || !aws.ToBool(sn.DefaultForAz) {
				t.Errorf("subnet %s in %s: zone %s; want a default subnet of %s", aws.ToString(sn.SubnetId), region, az, region)
			}
		}
		if _, err := c.DescribeVpcs(t.Context(), &ec2.DescribeVpcsInput{VpcIds: []string{"vpc-0123456789abcdef0"}}); errCode(err) != "InvalidVpcID.NotFound" {
			t.Errorf("DescribeVpcs(unknown) = %q; want InvalidVpcID.NotFound", errCode(err))
		}
	}
	if n := len(s.DefaultSubnets()); n != 6 {
		t.Errorf("DefaultSubnets() = %d; want the simulator region's 6", n)
	}
}

// FuzzImportKeyPair feeds ImportKeyPair's parser any key material: it
// never panics, and what it accepts is a key of a type EC2 imports.
func FuzzImportKeyPair(f *testing.F) {
	line, _ := testPublicKey()
	for _, seed := range []string{line, "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQ== x", "ssh-ed25519", "", "ssh-ed25519 AAAA", "\x00\x00"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, material string) {
		typ, blob, ok := parsePublicKey(material)
		if ok && (typ != "rsa" && typ != "ed25519" || len(blob) == 0 || importedFingerprint(typ, blob) == "") {
			t.Errorf("parsePublicKey(%q) = %q, %d bytes, ok", material, typ, len(blob))
		}
	})
}
