package awsres

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/big"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awsapi"
	"kiln/internal/config"
	"kiln/internal/engine"
	"kiln/internal/iampolicy"
)

// keyPairAPI is what aws:key_pair calls, in the SDK's shape: *ec2.Client
// satisfies it.
type keyPairAPI interface {
	DescribeKeyPairs(context.Context, *ec2.DescribeKeyPairsInput, ...func(*ec2.Options)) (*ec2.DescribeKeyPairsOutput, error)
	ImportKeyPair(context.Context, *ec2.ImportKeyPairInput, ...func(*ec2.Options)) (*ec2.ImportKeyPairOutput, error)
	DeleteKeyPair(context.Context, *ec2.DeleteKeyPairInput, ...func(*ec2.Options)) (*ec2.DeleteKeyPairOutput, error)
	CreateTags(context.Context, *ec2.CreateTagsInput, ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
}

// KeyPair is the aws:key_pair kind: an EC2 key pair named by the resource's
// name, imported from a public key kiln is given (kiln never sees a private
// key). A pair of that name with another key is replaced (deleted and
// imported again: instances launched with it keep the key they got), when
// kiln made it; one kiln did not make is an error. Outputs: key_name,
// key_pair_id, fingerprint.
type KeyPair struct {
	Region string `yaml:"region"` // default: AWS_REGION
	// PublicKey is an OpenSSH public key line ("ssh-ed25519 AAAA... me@host");
	// RSA and ED25519 keys, as EC2 imports them.
	PublicKey string `yaml:"public_key"`
	// PublicKeyFile is a file holding it (id_ed25519.pub), instead of
	// PublicKey; a relative path is relative to kiln's working directory.
	PublicKeyFile string            `yaml:"public_key_file"`
	Tags          map[string]string `yaml:"tags"`

	hubs *awsapi.Hubs
	env  engine.Env
	poll time.Duration

	hub *awsapi.Hub
	api keyPairAPI

	checkState // outputs and plan lines
}

// NewKeyPair returns an empty aws:key_pair resource using the shared hubs.
func NewKeyPair(hubs *awsapi.Hubs) *KeyPair {
	return &KeyPair{hubs: hubs}
}

// Validate checks the fields (values holding a ${...} reference are
// checked once resolved).
func (r *KeyPair) Validate() error {
	var errs []error
	switch {
	case r.PublicKey == "" && r.PublicKeyFile == "":
		errs = append(errs, config.Fieldf("public_key", "required (an OpenSSH public key line), or public_key_file"))
	case r.PublicKey != "" && r.PublicKeyFile != "":
		errs = append(errs, config.Fieldf("public_key_file", "not with public_key: give one of them"))
	case r.PublicKey != "" && !config.HasRef(r.PublicKey):
		if _, _, err := parseSSHPublicKey(r.PublicKey); err != nil {
			errs = append(errs, config.Fieldf("public_key", "%v", err))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(r.Tags)) {
		if strings.HasPrefix(k, "kiln:") || strings.HasPrefix(k, "aws:") {
			errs = append(errs, config.Fieldf("tags."+k, "reserved tag key (kiln sets kiln:*; aws:* is AWS's)"))
		}
	}
	return errors.Join(errs...)
}

// parseSSHPublicKey reads an OpenSSH public key line: its type ("rsa" or
// "ed25519", as EC2 names them) and its wire blob.
func parseSSHPublicKey(line string) (keyType string, blob []byte, err error) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return "", nil, errors.New(`want an OpenSSH public key line like "ssh-ed25519 AAAA... me@host"`)
	}
	switch f[0] {
	case "ssh-rsa":
		keyType = "rsa"
	case "ssh-ed25519":
		keyType = "ed25519"
	default:
		return "", nil, fmt.Errorf("key type %q: EC2 imports ssh-rsa and ssh-ed25519 keys", f[0])
	}
	blob, err = base64.StdEncoding.DecodeString(f[1])
	if err != nil || len(blob) < 4+len(f[0]) || string(blob[4:4+len(f[0])]) != f[0] {
		return "", nil, errors.New("the key's base64 part is not a " + f[0] + " key")
	}
	if keyType == "rsa" {
		if _, err := rsaPublicKeyDER(blob); err != nil {
			return "", nil, err
		}
	}
	return keyType, blob, nil
}

// keyFingerprint is EC2's fingerprint of an imported key. RSA: the MD5,
// colon-separated hex, of the DER SubjectPublicKeyInfo (what `openssl pkey
// -pubout -outform DER | openssl md5 -c` prints; not the MD5 of the SSH blob
// that `ssh-keygen -E md5` prints). ED25519: the base64 SHA-256 of the SSH
// blob, '='-padded (EC2 may send it with or without the padding: compare
// with sameFingerprint).
func keyFingerprint(keyType string, blob []byte) (string, error) {
	if keyType == "ed25519" {
		sum := sha256.Sum256(blob)
		return base64.StdEncoding.EncodeToString(sum[:]), nil
	}
	der, err := rsaPublicKeyDER(blob)
	if err != nil {
		return "", err
	}
	sum := md5.Sum(der)
	h := hex.EncodeToString(sum[:])
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":"), nil
}

// rsaPublicKeyDER is the DER SubjectPublicKeyInfo of an ssh-rsa wire blob:
// string "ssh-rsa", mpint e, mpint n.
func rsaPublicKeyDER(blob []byte) ([]byte, error) {
	var fields [3][]byte
	rest := blob
	for i := range fields {
		if len(rest) < 4 || uint64(len(rest)-4) < uint64(binary.BigEndian.Uint32(rest)) {
			return nil, errors.New("the ssh-rsa key is truncated")
		}
		n := binary.BigEndian.Uint32(rest)
		fields[i], rest = rest[4:4+n], rest[4+n:]
	}
	e, n := new(big.Int).SetBytes(fields[1]), new(big.Int).SetBytes(fields[2])
	if len(fields[1]) > 4 || e.Sign() == 0 || n.BitLen() < 1024 {
		return nil, errors.New("the ssh-rsa key's exponent or modulus is not usable (EC2 wants 1024 to 4096 bits)")
	}
	return x509.MarshalPKIXPublicKey(&rsa.PublicKey{N: n, E: int(e.Int64())})
}

// sameFingerprint compares two EC2 fingerprints, ignoring base64 '='
// padding and, in colon-separated hex, the case of the digits.
func sameFingerprint(a, b string) bool {
	if strings.Contains(a, ":") {
		return strings.EqualFold(a, b)
	}
	return strings.TrimRight(a, "=") == strings.TrimRight(b, "=")
}

// holds reports whether kp holds the key of blob: the same fingerprint, or,
// for a pair EC2 created (whose RSA fingerprint is the SHA-1 of a private
// key kiln never sees), the same public key.
func holds(kp *types.KeyPairInfo, fp string, blob []byte) bool {
	if sameFingerprint(aws.ToString(kp.KeyFingerprint), fp) {
		return true
	}
	_, theirs, err := parseSSHPublicKey(aws.ToString(kp.PublicKey))
	return err == nil && bytes.Equal(theirs, blob)
}

// key is the public key line, from the field or the file, its wire blob and
// EC2's fingerprint of it.
func (r *KeyPair) key() (line string, blob []byte, fp string, err error) {
	line = r.PublicKey
	if r.PublicKeyFile != "" {
		b, err := os.ReadFile(r.PublicKeyFile)
		if err != nil {
			return "", nil, "", engine.Permanent(fmt.Errorf("aws:key_pair %q: public_key_file: %w", r.env.Name, err))
		}
		line = strings.TrimSpace(string(b))
	}
	keyType, blob, err := parseSSHPublicKey(line)
	if err == nil {
		fp, err = keyFingerprint(keyType, blob)
	}
	if err != nil {
		return "", nil, "", engine.Permanent(fmt.Errorf("aws:key_pair %q: public key: %w", r.env.Name, err))
	}
	return line, blob, fp, nil
}

// Init receives the vertex's identity.
func (r *KeyPair) Init(env engine.Env) error {
	r.env = env
	return nil
}

// SetPoll sets how often Watch looks at the key pair. Default: the hub's.
func (r *KeyPair) SetPoll(d time.Duration) { r.poll = d }

// IAMActions are the calls CheckApply and Watch may make.
func (r *KeyPair) IAMActions() []string {
	return []string{"ec2:DescribeKeyPairs", "ec2:ImportKeyPair", "ec2:DeleteKeyPair", "ec2:CreateTags"}
}

// describe returns the key pair of this name, or nil.
func (r *KeyPair) describe(ctx context.Context) (*types.KeyPairInfo, error) {
	var kp *types.KeyPairInfo
	err := r.hub.Retry(ctx, func(ctx context.Context) error {
		out, err := r.api.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{KeyNames: []string{r.env.Name}, IncludePublicKey: aws.Bool(true)})
		if awsapi.Code(err) == "InvalidKeyPair.NotFound" {
			kp = nil
			return nil
		}
		if err != nil {
			return awsapi.Classify(err)
		}
		kp = nil
		for i := range out.KeyPairs {
			if aws.ToString(out.KeyPairs[i].KeyName) == r.env.Name {
				kp = &out.KeyPairs[i]
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("describe key pair %q: %w", r.env.Name, err)
	}
	return kp, nil
}

func (r *KeyPair) ours(kp *types.KeyPairInfo) bool {
	return awsapi.TagValue(kp.Tags, awsapi.TagOwner) == r.env.Graph && awsapi.TagValue(kp.Tags, awsapi.TagResource) == r.id() &&
		(!r.env.Meta.Protect || awsapi.TagValue(kp.Tags, TagProtect) == "true")
}

// CheckApply imports the key pair when there is none of this name, and
// replaces one of kiln's whose fingerprint is not the given key's. A pair
// of this name kiln did not make is adopted (tagged) when it holds the
// same key, else an error.
func (r *KeyPair) CheckApply(ctx context.Context, apply bool) (bool, error) {
	r.startCheck()
	if err := r.resolve(ctx); err != nil {
		return false, err
	}
	line, blob, fp, err := r.key()
	if err != nil {
		return false, err
	}
	kp, err := r.describe(ctx)
	if err != nil {
		return false, err
	}
	ok := true
	switch {
	case kp == nil:
		if !apply {
			r.checkState.plan(r.log(), "import key pair "+r.env.Name+" ("+fp+")")
			return false, nil
		}
		if kp, err = r.importKey(ctx, line); err != nil {
			return false, err
		}
		ok = false
	case !holds(kp, fp, blob) && !r.ours(kp):
		return false, engine.Permanent(fmt.Errorf("aws:key_pair %q: a key pair of this name with another key (%s) exists that kiln did not import; delete it, or rename the resource",
			r.env.Name, aws.ToString(kp.KeyFingerprint)))
	case !holds(kp, fp, blob):
		if !apply {
			r.checkState.plan(r.log(), "replace key pair "+r.env.Name+" (fingerprint "+aws.ToString(kp.KeyFingerprint)+", spec's key "+fp+")")
			return false, nil
		}
		if err := r.hub.Retry(ctx, func(ctx context.Context) error {
			_, err := r.api.DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{KeyPairId: kp.KeyPairId})
			if awsapi.Code(err) == "InvalidKeyPair.NotFound" {
				return nil
			}
			return awsapi.Classify(err)
		}); err != nil {
			return false, fmt.Errorf("delete key pair %q: %w", r.env.Name, err)
		}
		r.log().Info("key pair deleted: its key changed", "key_pair", aws.ToString(kp.KeyPairId))
		if kp, err = r.importKey(ctx, line); err != nil {
			return false, err
		}
		ok = false
	case !r.ours(kp):
		if !apply {
			r.checkState.plan(r.log(), "tag key pair "+r.env.Name)
			return false, nil
		}
		if err := r.hub.Retry(ctx, func(ctx context.Context) error {
			_, err := r.api.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{aws.ToString(kp.KeyPairId)}, Tags: r.tags()})
			return awsapi.Classify(err)
		}); err != nil {
			return false, fmt.Errorf("tag key pair %q: %w", r.env.Name, err)
		}
		ok = false
	}
	r.converged(map[string]string{"key_name": r.env.Name, "key_pair_id": aws.ToString(kp.KeyPairId), "fingerprint": aws.ToString(kp.KeyFingerprint)}, "")
	return ok, nil
}

func (r *KeyPair) tags() []types.Tag {
	m := maps.Clone(r.Tags)
	if m == nil {
		m = map[string]string{}
	}
	m[awsapi.TagOwner], m[awsapi.TagResource] = r.env.Graph, r.id()
	protectTag(r.env, m)
	return awsapi.Tags(m)
}

func (r *KeyPair) importKey(ctx context.Context, line string) (*types.KeyPairInfo, error) {
	var out *ec2.ImportKeyPairOutput
	err := r.hub.Retry(ctx, func(ctx context.Context) error {
		var err error
		out, err = r.api.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{
			KeyName: aws.String(r.env.Name), PublicKeyMaterial: []byte(line),
			TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeKeyPair, Tags: r.tags()}},
		})
		return awsapi.Classify(err, "InvalidKey.Format", "InvalidKeyPair.Duplicate", "InvalidParameterValue")
	})
	if err != nil {
		return nil, fmt.Errorf("import key pair %q: %w", r.env.Name, err)
	}
	r.log().Info("key pair imported", "key_pair", aws.ToString(out.KeyPairId), "fingerprint", aws.ToString(out.KeyFingerprint))
	return &types.KeyPairInfo{KeyName: out.KeyName, KeyPairId: out.KeyPairId, KeyFingerprint: out.KeyFingerprint, Tags: out.Tags}, nil
}

// Watch calls Running, then every poll looks the key pair up (one
// DescribeKeyPairs) and calls Changed when it is gone or holds another
// key. It blocks until ctx is done.
func (r *KeyPair) Watch(ctx context.Context, ev engine.Events) error {
	if err := r.resolve(ctx); err != nil {
		return err
	}
	return pollWatch(ctx, ev, r.poll, r.hub.Options().Poll, func(ctx context.Context) error {
		want, _ := r.last("fingerprint")
		if want == "" {
			return nil
		}
		kp, err := r.describe(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil && (kp == nil || !sameFingerprint(aws.ToString(kp.KeyFingerprint), want)) {
			r.log().Info("key pair changed", "key_name", r.env.Name)
			ev.Changed()
		}
		return nil
	})
}

func (r *KeyPair) id() string        { return envID(r.env, "aws:key_pair") }
func (r *KeyPair) log() *slog.Logger { return envLog(r.env) }

func (r *KeyPair) resolve(ctx context.Context) error {
	if r.hub != nil {
		return nil
	}
	h, err := regionHub(ctx, r.hubs, r.Region, "aws:key_pair", r.env.Name)
	if err != nil {
		return err
	}
	r.hub, r.api = h, h.EC2()
	return nil
}

var (
	_ engine.Resource       = (*KeyPair)(nil)
	_ engine.Initer         = (*KeyPair)(nil)
	_ engine.Outputter      = (*KeyPair)(nil)
	_ engine.SelfPoller     = (*KeyPair)(nil)
	_ engine.Changer        = (*KeyPair)(nil)
	_ config.Validator      = (*KeyPair)(nil)
	_ iampolicy.IAMActioner = (*KeyPair)(nil)
)
