package awsres

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awsapi"
	"kiln/internal/engine"
	"kiln/internal/pipeline"
)

// AMITests is aws:ami's tests: block, the bakery's project tests: (see
// pipeline.Tests): an instance launched from each new image runs Script
// before the image is copied, shared or used; type, subnet and security
// groups default to the builder's.
type AMITests struct {
	Type           string        `yaml:"type"`
	Subnet         string        `yaml:"subnet"`
	SecurityGroups []string      `yaml:"security_groups"`
	Script         string        `yaml:"script"`
	Timeout        time.Duration `yaml:"timeout"`
}

// tests is the block in the pipeline's shape; nil without one.
func (r *AMI) tests() *pipeline.Tests {
	if r.Tests == nil {
		return nil
	}
	t := r.Tests
	return &pipeline.Tests{Type: t.Type, Subnet: t.Subnet, SecurityGroups: t.SecurityGroups, Script: t.Script, Timeout: t.Timeout}
}

// testsDigest folds the tests into a spec digest d: a changed test bakes
// and tests a new image. Without tests d is unchanged (the digest of
// earlier kiln versions).
func (r *AMI) testsDigest(d string) string {
	if r.Tests == nil {
		return d
	}
	b, _ := json.Marshal(struct {
		Spec  string
		Tests AMITests
	}{d, *r.Tests})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// testsFailed is the error of an image of this spec that failed its tests
// (tagged kiln:tests=failed by the bake): the same spec would fail again,
// so it is permanent until the spec or the tests change. nil otherwise.
func (r *AMI) testsFailed(im types.Image) error {
	if awsapi.TagValue(im.Tags, pipeline.TagTests) != pipeline.TestsFailed {
		return nil
	}
	return engine.Permanent(fmt.Errorf("aws:ami %q: image %s failed its tests (kept for inspection; change the script or the tests to bake again)",
		r.env.Name, aws.ToString(im.ImageId)))
}

// untested reports whether im, available, still has its tests to run (a
// bake a crash interrupted during the test): the bake resumes on it.
func (r *AMI) untested(im types.Image) bool {
	return r.Tests != nil && awsapi.TagValue(im.Tags, pipeline.TagTests) != pipeline.TestsPassed
}
