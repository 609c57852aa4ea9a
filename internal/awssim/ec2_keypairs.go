package awssim

import (
	"bytes"
	"crypto/ed25519"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"maps"
	mathbig "math/big"
	"slices"
	"strings"
	"time"
)

// Key pairs: CreateKeyPair (rsa or ed25519, pem), ImportKeyPair (an
// OpenSSH public key: ssh-rsa, ssh-ed25519), DescribeKeyPairs and
// DeleteKeyPair, with fingerprints computed as EC2 documents them.

type keyPair struct {
	seq         uint64
	id, name    string
	keyType     string // rsa | ed25519
	fingerprint string
	publicKey   string // OpenSSH authorized_keys line
	created     time.Time
	visibleAt   time.Time // eventual consistency
}

// keyPairsLocked is the key pairs by name; s.mu is held.
func (s *Sim) keyPairsLocked() map[string]*keyPair {
	if s.keys == nil {
		s.keys = map[string]*keyPair{}
	}
	return s.keys
}

func checkKeyName(name string) error {
	if name == "" {
		return apiErr("MissingParameter", "The request must contain the parameter KeyName")
	}
	if len(name) > 255 {
		return apiErr("InvalidParameterValue", "Value (%s) for parameter keyName is invalid. Length exceeds maximum of 255.", name)
	}
	for _, c := range name {
		if c > 0x7e || c < 0x20 {
			return apiErr("InvalidParameterValue", "Value (%s) for parameter keyName is invalid. Character sets beyond ASCII are not supported.", name)
		}
	}
	return nil
}

// sshString appends an SSH wire-format string.
func sshString(b *bytes.Buffer, s []byte) {
	_ = binary.Write(b, binary.BigEndian, uint32(len(s)))
	b.Write(s)
}

// readSSHString reads one SSH wire-format string from b.
func readSSHString(b []byte) (s, rest []byte, ok bool) {
	if len(b) < 4 {
		return nil, nil, false
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(len(b)-4) < uint64(n) {
		return nil, nil, false
	}
	return b[4 : 4+n], b[4+n:], true
}

// parsePublicKey reads an OpenSSH public key line ("ssh-rsa AAAA... c")
// and returns its type and wire blob.
func parsePublicKey(material string) (keyType string, blob []byte, ok bool) {
	f := strings.Fields(material)
	if len(f) < 2 {
		return "", nil, false
	}
	blob, err := base64.StdEncoding.DecodeString(f[1])
	if err != nil {
		return "", nil, false
	}
	name, rest, ok := readSSHString(blob)
	if !ok || string(name) != f[0] {
		return "", nil, false
	}
	switch f[0] {
	case "ssh-rsa":
		e, rest, ok1 := readSSHString(rest)
		n, _, ok2 := readSSHString(rest)
		if !ok1 || !ok2 || len(e) == 0 || len(e) > 4 || len(n) < 128 {
			return "", nil, false
		}
		if _, err := rsaPublicDER(blob); err != nil {
			return "", nil, false
		}
		return "rsa", blob, true
	case "ssh-ed25519":
		k, _, ok := readSSHString(rest)
		if !ok || len(k) != ed25519.PublicKeySize {
			return "", nil, false
		}
		return "ed25519", blob, true
	}
	return "", nil, false
}

func colonHex(b []byte) string {
	h := hex.EncodeToString(b)
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

// importedFingerprint is EC2's fingerprint of an imported key: for RSA the
// MD5, colon-separated hex, of the DER SubjectPublicKeyInfo (what
// `openssl pkey -pubout -outform DER | openssl md5 -c` prints, not the MD5
// of the SSH blob that `ssh-keygen -E md5` prints); for ed25519 the base64
// SHA-256 of the SSH blob, '='-padded as EC2 sends it.
func importedFingerprint(keyType string, blob []byte) string {
	if keyType == "ed25519" {
		sum := sha256.Sum256(blob)
		return base64.StdEncoding.EncodeToString(sum[:])
	}
	der, err := rsaPublicDER(blob)
	if err != nil {
		return ""
	}
	sum := md5.Sum(der)
	return colonHex(sum[:])
}

// rsaPublicDER is the DER SubjectPublicKeyInfo of an ssh-rsa blob
// (string "ssh-rsa", mpint e, mpint n).
func rsaPublicDER(blob []byte) ([]byte, error) {
	_, rest, _ := readSSHString(blob)
	e, rest, ok1 := readSSHString(rest)
	n, _, ok2 := readSSHString(rest)
	if !ok1 || !ok2 || len(e) == 0 || len(e) > 4 {
		return nil, errors.New("not an ssh-rsa key")
	}
	exp := new(mathbig.Int).SetBytes(e)
	return x509.MarshalPKIXPublicKey(&rsa.PublicKey{N: new(mathbig.Int).SetBytes(n), E: int(exp.Int64())})
}

// newKey makes a key pair of keyType: the private key as EC2 hands it out
// (PKCS#1 PEM for RSA, OpenSSH for ed25519), the public key line, and
// EC2's fingerprint of a key it made (SHA-1 of the PKCS#8 private key for
// RSA, base64 SHA-256 of the public key blob for ed25519).
func newKey(keyType string) (material, public, fingerprint string, err error) {
	var blob bytes.Buffer
	switch keyType {
	case "ed25519":
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return "", "", "", err
		}
		sshString(&blob, []byte("ssh-ed25519"))
		sshString(&blob, pub)
		sum := sha256.Sum256(blob.Bytes())
		return openSSHPrivate(blob.Bytes(), pub, priv), "ssh-ed25519 " + base64.StdEncoding.EncodeToString(blob.Bytes()),
			base64.StdEncoding.EncodeToString(sum[:]), nil
	default:
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return "", "", "", err
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return "", "", "", err
		}
		sum := sha1.Sum(der)
		sshString(&blob, []byte("ssh-rsa"))
		e := big(k.E)
		sshString(&blob, e)
		sshString(&blob, append([]byte{0}, k.N.Bytes()...))
		pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
		return strings.TrimSuffix(string(pemKey), "\n"), "ssh-rsa " + base64.StdEncoding.EncodeToString(blob.Bytes()), colonHex(sum[:]), nil
	}
}

// big is n as an SSH mpint's bytes (positive, no leading zero needed
// below 2^31).
func big(n int) []byte {
	var b []byte
	for n > 0 {
		b = append([]byte{byte(n)}, b...)
		n >>= 8
	}
	if len(b) > 0 && b[0]&0x80 != 0 {
		b = append([]byte{0}, b...)
	}
	return b
}

// openSSHPrivate is an unencrypted openssh-key-v1 private key.
func openSSHPrivate(pubBlob []byte, pub ed25519.PublicKey, priv ed25519.PrivateKey) string {
	var inner bytes.Buffer
	check := make([]byte, 4)
	_, _ = rand.Read(check)
	inner.Write(check)
	inner.Write(check)
	sshString(&inner, []byte("ssh-ed25519"))
	sshString(&inner, pub)
	sshString(&inner, priv)
	sshString(&inner, nil) // comment
	for i := byte(1); inner.Len()%8 != 0; i++ {
		inner.WriteByte(i)
	}
	var b bytes.Buffer
	b.WriteString("openssh-key-v1\x00")
	sshString(&b, []byte("none"))
	sshString(&b, []byte("none"))
	sshString(&b, nil)
	_ = binary.Write(&b, binary.BigEndian, uint32(1))
	sshString(&b, pubBlob)
	sshString(&b, inner.Bytes())
	return strings.TrimSuffix(string(pem.EncodeToMemory(&pem.Block{Type: "OPENSSH PRIVATE KEY", Bytes: b.Bytes()})), "\n")
}

type createKeyPairResponse struct {
	ec2Meta
	KeyFingerprint string `xml:"keyFingerprint"`
	KeyMaterial    string `xml:"keyMaterial,omitempty"`
	KeyName        string `xml:"keyName"`
	KeyPairID      string `xml:"keyPairId"`
	Tags           []Tag  `xml:"tagSet>item"`
}

// addKeyLocked stores a new key pair, refusing a name in use.
func (s *Sim) addKeyLocked(r *request, kp *keyPair, now time.Time) (*createKeyPairResponse, error) {
	specs, err := r.tagSpecs("", anyTagType)
	if err != nil {
		return nil, err
	}
	tags, err := tagsFor(specs, "key-pair", "key-pair")
	if err != nil {
		return nil, err
	}
	keys := s.keyPairsLocked()
	if _, dup := keys[kp.name]; dup {
		return nil, apiErr("InvalidKeyPair.Duplicate", "The keypair '%s' already exists.", kp.name)
	}
	s.instSeq++
	kp.seq, kp.id, kp.created, kp.visibleAt = s.instSeq, s.newID("key"), now, s.eventualLocked(now)
	keys[kp.name] = kp
	for _, tg := range tags {
		s.tags.set(kp.id, tg.Key, tg.Value)
	}
	return &createKeyPairResponse{KeyFingerprint: kp.fingerprint, KeyName: kp.name, KeyPairID: kp.id, Tags: s.tags.list(kp.id)}, nil
}

func (s *Sim) createKeyPair(r *request) (any, error) {
	name := r.str("KeyName")
	if err := checkKeyName(name); err != nil {
		return nil, err
	}
	typ := r.str("KeyType")
	switch typ {
	case "":
		typ = "rsa"
	case "rsa", "ed25519":
	default:
		return nil, apiErr("InvalidParameterValue", "Value (%s) for parameter keyType is invalid. Valid values are rsa, ed25519.", typ)
	}
	switch r.str("KeyFormat") {
	case "", "pem":
	case "ppk":
		return nil, apiErr("InvalidParameterValue", "Value (ppk) for parameter keyFormat is not supported by the simulator: use pem.")
	default:
		return nil, apiErr("InvalidParameterValue", "Value (%s) for parameter keyFormat is invalid. Valid values are pem, ppk.", r.str("KeyFormat"))
	}
	// The key is made before the lock: an RSA key takes a while.
	material, public, fp, err := newKey(typ)
	if err != nil {
		return nil, err
	}
	now := s.lock()
	defer s.mu.Unlock()
	out, err := s.addKeyLocked(r, &keyPair{name: name, keyType: typ, fingerprint: fp, publicKey: public + " " + name}, now)
	if err != nil {
		return nil, err
	}
	out.KeyMaterial = material
	return out, nil
}

func (s *Sim) importKeyPair(r *request) (any, error) {
	name := r.str("KeyName")
	if err := checkKeyName(name); err != nil {
		return nil, err
	}
	raw, err := r.required("PublicKeyMaterial")
	if err != nil {
		return nil, err
	}
	// The SDK and the CLI send the key file base64-encoded.
	material := raw
	if b, err := base64.StdEncoding.DecodeString(raw); err == nil {
		material = string(b)
	}
	typ, blob, ok := parsePublicKey(material)
	if !ok {
		return nil, apiErr("InvalidKey.Format", "Key is not in valid OpenSSH public key format")
	}
	now := s.lock()
	defer s.mu.Unlock()
	f := strings.Fields(material)
	return s.addKeyLocked(r, &keyPair{name: name, keyType: typ, fingerprint: importedFingerprint(typ, blob), publicKey: f[0] + " " + f[1] + " " + name}, now)
}

type xKeyPair struct {
	KeyPairID      string `xml:"keyPairId"`
	KeyFingerprint string `xml:"keyFingerprint"`
	KeyName        string `xml:"keyName"`
	KeyType        string `xml:"keyType"`
	Tags           []Tag  `xml:"tagSet>item"`
	PublicKey      string `xml:"publicKey,omitempty"`
	CreateTime     string `xml:"createTime"`
}

type describeKeyPairsResponse struct {
	ec2Meta
	Keys []xKeyPair `xml:"keySet>item"`
}

var keyFilters = map[string]func(k *keyPair) string{
	"key-name":    func(k *keyPair) string { return k.name },
	"key-pair-id": func(k *keyPair) string { return k.id },
	"fingerprint": func(k *keyPair) string { return k.fingerprint },
	"key-type":    func(k *keyPair) string { return k.keyType },
}

// describeKeyPairs lists key pairs (KeyName.N, KeyPairId.N, the filters of
// keyFilters and tags; IncludePublicKey), oldest first. A name or id that
// does not exist is InvalidKeyPair.NotFound.
func (s *Sim) describeKeyPairs(r *request) (any, error) {
	names, ids := r.list("KeyName"), r.list("KeyPairId")
	fs, err := r.filters(filterNames(keyFilters, true))
	if err != nil {
		return nil, err
	}
	withPublic, err := r.boolean("IncludePublicKey")
	if err != nil {
		return nil, err
	}
	now := s.lock()
	defer s.mu.Unlock()
	keys := maps.Clone(s.keyPairsLocked())
	maps.DeleteFunc(keys, func(_ string, k *keyPair) bool { return now.Before(k.visibleAt) }) // not yet
	for _, n := range names {
		if _, ok := keys[n]; !ok {
			return nil, apiErr("InvalidKeyPair.NotFound", "The key pair '%s' does not exist", n)
		}
	}
	for _, id := range ids {
		if !slices.ContainsFunc(slices.Collect(maps.Values(keys)), func(k *keyPair) bool { return k.id == id }) {
			return nil, apiErr("InvalidKeyPair.NotFound", "The key pair '%s' does not exist", id)
		}
	}
	all := slices.SortedFunc(maps.Values(keys), func(a, b *keyPair) int { return int(a.seq) - int(b.seq) })
	out := &describeKeyPairsResponse{}
	for _, k := range all {
		if (len(names) > 0 && !slices.Contains(names, k.name)) || (len(ids) > 0 && !slices.Contains(ids, k.id)) {
			continue
		}
		if !matchFilters(fs, s.tags.get(k.id), func(f filter) bool { return matchAny(f.Values, keyFilters[f.Name](k)) }) {
			continue
		}
		x := xKeyPair{KeyPairID: k.id, KeyFingerprint: k.fingerprint, KeyName: k.name, KeyType: k.keyType, Tags: s.tags.list(k.id), CreateTime: isoTime(k.created)}
		if withPublic {
			x.PublicKey = k.publicKey
		}
		out.Keys = append(out.Keys, x)
	}
	return out, nil
}

type deleteKeyPairResponse struct {
	ec2Meta
	Return    bool   `xml:"return"`
	KeyPairID string `xml:"keyPairId,omitempty"`
}

// deleteKeyPair removes a key pair by name or id. As on EC2, deleting a
// name that does not exist succeeds.
func (s *Sim) deleteKeyPair(r *request) (any, error) {
	name, id := r.str("KeyName"), r.str("KeyPairId")
	if name == "" && id == "" {
		return nil, apiErr("MissingParameter", "The request must contain the parameter KeyName or KeyPairId")
	}
	s.lock()
	defer s.mu.Unlock()
	keys := s.keyPairsLocked()
	var k *keyPair
	if id != "" {
		for _, c := range keys {
			if c.id == id {
				k = c
			}
		}
		if k == nil {
			return nil, apiErr("InvalidKeyPair.NotFound", "The key pair '%s' does not exist", id)
		}
	} else if k = keys[name]; k == nil {
		return &deleteKeyPairResponse{Return: true}, nil
	}
	delete(keys, k.name)
	s.tags.drop(k.id)
	return &deleteKeyPairResponse{Return: true, KeyPairID: k.id}, nil
}

// keyPairByIDLocked finds a key pair by its id, for tagging.
func (s *Sim) keyPairByIDLocked(id string) error {
	if !wellFormed("key", id) {
		return apiErr("InvalidKeyPairId.Malformed", "Invalid id: \"%s\" (expecting \"key-...\")", id)
	}
	for _, k := range s.keyPairsLocked() {
		if k.id == id {
			return nil
		}
	}
	return apiErr("InvalidKeyPair.NotFound", "The key pair '%s' does not exist", id)
}
