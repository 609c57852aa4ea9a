package awsapi

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/engine"
)

// launchAPI is the call Launch makes through its caller's client, in the
// SDK's shape: *ec2.Client satisfies it. (Its lookup goes through the hub's
// batcher.)
type launchAPI interface {
	RunInstances(context.Context, *ec2.RunInstancesInput, ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error)
}

// MaxUserData is EC2's limit on user data before base64.
const MaxUserData = 16 * 1024

// Launch is one instance for RunInstances: every kiln launch (aws:ec2's
// instances, the bakery's builders) goes through it, so the token, the tags,
// the instance profile and the reading of the errors are the same for all.
type Launch struct {
	// Token is the ClientToken (see ClientToken): derived from durable facts
	// only, so that a process killed right after RunInstances sends the same
	// token again and gets the same instance rather than a second one.
	Token string
	Image string // AMI id
	Type  string // instance type
	// UserData is plain text; Launch base64-encodes it.
	UserData       string
	Subnet         string   // subnet id; "" = the default subnet
	SecurityGroups []string // group ids; none = the VPC's default group
	KeyName        string
	// Profile is an instance profile name, or its ARN ("arn:...").
	Profile string
	// Shutdown is what an OS power-off does; "" = EC2's default (stop).
	Shutdown types.ShutdownBehavior
	// Tags go on the instance and its volumes in the RunInstances call
	// itself, so neither is ever untagged. They must hold the tags the caller
	// finds the instance again by.
	Tags []types.Tag
}

// ClientToken is a RunInstances ClientToken: prefix and a digest of parts
// (the durable facts that name one launch: a bake id, or a graph, resource
// and the instance it replaces). The same parts give the same token in every
// process. prefix plus 48 hex digits must fit EC2's 64 characters.
func ClientToken(prefix string, parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return prefix + hex.EncodeToString(sum[:24])
}

// Tags turns m into EC2 tags, sorted by key.
func Tags(m map[string]string) []types.Tag {
	out := make([]types.Tag, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, types.Tag{Key: aws.String(k), Value: aws.String(m[k])})
	}
	return out
}

// IsLive reports whether in still counts as an instance: not shutting down
// or terminated. An instance without a state (just launched) is live.
func IsLive(in types.Instance) bool {
	if in.State == nil {
		return true
	}
	s := in.State.Name
	return s != types.InstanceStateNameTerminated && s != types.InstanceStateNameShuttingDown
}

// ErrorClass is what a launch does with an EC2 error.
type ErrorClass int

const (
	// ClassReturned (not in the table): the error is returned as it is; the
	// caller's retry policy (the engine's retry meta-param, a later run of
	// the bake) decides when to try again, and the failure is seen meanwhile.
	ClassReturned ErrorClass = iota
	// ClassPermanent: retrying cannot fix it; returned engine.Permanent.
	ClassPermanent
	// ClassRetried: waited out in place with the hub's backoff, never
	// reported as a failure.
	ClassRetried
	// ClassDone: an earlier launch with the same token made the instance.
	ClassDone
)

func (c ErrorClass) String() string {
	return [...]string{"returned", "permanent", "retried", "already done"}[c]
}

// launchErrors is the one table of RunInstances' error codes (permission
// and throttling codes, and HTTP 5xx, are read by IsPermission and
// IsTransient before it: permanent and retried, for every call). Why each
// entry is where it is:
//
//   - Permanent: the request names something that does not exist or is not
//     allowed (the AMI, subnet, group, key pair, instance type, a parameter
//     value or combination, the user data). Nothing changes by asking again;
//     the spec must change. InvalidAMIID.NotFound is permanent although
//     NotFound means "not yet" elsewhere: kiln launches only from images it
//     has seen available (a bake's resolved base, aws:ami's waited-for
//     output) or that the user typed.
//   - Retried: InsufficientInstanceCapacity is AWS running short of the type
//     in the zone for a while; it clears without a change on kiln's side.
//   - Done: IdempotentParameterMismatch is the token already spent, on a
//     launch with other parameters: the same launch (its parameters are all
//     derived from the token's facts) made by an earlier process with an
//     older spec, a newer resolved base image, or kiln's own earlier
//     version. Its instance exists, so a second must not be made; Launch
//     looks it up by its token and answers with it (see Hub.Launch).
//   - Returned: instance and vCPU quotas. Instances ending elsewhere or a
//     quota raise fix them, on a scale of minutes to days: retrying in place
//     would hide the failure, making the launch permanent would need a
//     restart after the raise.
var launchErrors = map[string]ErrorClass{
	"InvalidAMIID.NotFound":       ClassPermanent,
	"InvalidAMIID.Malformed":      ClassPermanent,
	"InvalidAMIID.Unavailable":    ClassPermanent,
	"InvalidParameterValue":       ClassPermanent,
	"InvalidParameterCombination": ClassPermanent,
	"InvalidSubnetID.NotFound":    ClassPermanent,
	"InvalidGroup.NotFound":       ClassPermanent,
	"InvalidKeyPair.NotFound":     ClassPermanent,
	"InvalidInstanceType":         ClassPermanent,
	"Unsupported":                 ClassPermanent,
	"InvalidUserData.Malformed":   ClassPermanent,

	"InsufficientInstanceCapacity": ClassRetried,

	"IdempotentParameterMismatch": ClassDone,

	"InstanceLimitExceeded": ClassReturned,
	"VcpuLimitExceeded":     ClassReturned,
}

// LaunchErrorClass is what a launch does with err (ClassReturned for nil).
func LaunchErrorClass(err error) ErrorClass {
	switch {
	case err == nil:
		return ClassReturned
	case IsPermission(err):
		return ClassPermanent
	case IsTransient(err):
		return ClassRetried
	}
	return launchErrors[Code(err)]
}

// PermanentLaunchCodes are the table's permanent codes, sorted, for
// Classify on the calls that take the same parameters as a launch
// (ModifyInstanceAttribute's type, DescribeImages, CreateImage).
func PermanentLaunchCodes() []string {
	var out []string
	for c, k := range launchErrors {
		if k == ClassPermanent {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

// MismatchWait bounds how long Launch waits, after
// IdempotentParameterMismatch, for the token's instance to show in
// DescribeInstances (eventual consistency: seconds, rarely minutes). AWS
// remembers a token for longer than it lists a terminated instance; after
// the wait the token is taken to belong to such an instance.
const MismatchWait = 5 * time.Minute

// ErrTokenSpent: the token was spent on a launch whose instance is no longer
// listed. Returned engine.Permanent.
var ErrTokenSpent = errors.New("client token spent on an instance no longer listed")

// Launch runs l's instance through api (*ec2.Client; tests may pass
// another) with the hub's retries and returns it as RunInstances or the
// lookup saw it. It blocks until EC2 has answered, not until the instance
// runs; cancelling ctx stops the retries.
//
// Repeating a launch is safe: with the same token and parameters EC2 answers
// with the token's instance; with other parameters
// (IdempotentParameterMismatch) Launch finds the token's instance by the
// client-token filter (one DescribeInstances through the batcher, which
// sends it as it is), waiting while it is not listed yet. Either way the
// answer may be an instance that is no longer live (the token was spent on
// an instance since terminated): the caller decides what that means.
//
// Errors: engine.Permanent for what the table calls permanent, a bad token
// or user data, and ErrTokenSpent; ctx's error; or an error of class
// ClassReturned.
func (h *Hub) Launch(ctx context.Context, api launchAPI, l Launch) (types.Instance, error) {
	in, err := l.input()
	if err != nil {
		return types.Instance{}, engine.Permanent(err)
	}
	var inst types.Instance
	var since time.Time // first IdempotentParameterMismatch
	err = h.Retry(ctx, func(ctx context.Context) error {
		out, err := api.RunInstances(ctx, in)
		switch LaunchErrorClass(err) {
		case ClassDone:
			if since.IsZero() {
				since = time.Now()
			}
			found, ferr := byToken(ctx, h.Instances(), l.Token)
			switch {
			case ferr != nil:
				return ferr
			case found != nil:
				inst = *found
				return nil
			case time.Since(since) > MismatchWait:
				return engine.Permanent(fmt.Errorf("%w: %w", ErrTokenSpent, err))
			}
			return NotYet(err)
		case ClassRetried:
			return NotYet(err)
		}
		if err != nil {
			return Classify(err, PermanentLaunchCodes()...)
		}
		if len(out.Instances) == 0 {
			return errors.New("RunInstances returned no instance")
		}
		inst = out.Instances[0]
		return nil
	})
	return inst, err
}

// byToken is the instance launched with token, nil while none is listed.
func byToken(ctx context.Context, b *Batcher, token string) (*types.Instance, error) {
	out, err := b.DescribeInstances(ctx, &ec2.DescribeInstancesInput{
		Filters: []types.Filter{{Name: aws.String("client-token"), Values: []string{token}}},
	})
	if err != nil {
		return nil, err
	}
	for _, r := range out.Reservations {
		for i := range r.Instances {
			if aws.ToString(r.Instances[i].ClientToken) == token {
				return &r.Instances[i], nil
			}
		}
	}
	return nil, nil
}

// input is l as RunInstances' input.
func (l Launch) input() (*ec2.RunInstancesInput, error) {
	switch {
	case l.Token == "" || len(l.Token) > 64:
		return nil, fmt.Errorf("client token %q: want 1 to 64 characters", l.Token)
	case len(l.UserData) > MaxUserData:
		return nil, fmt.Errorf("user data is %d bytes; EC2 takes at most %d", len(l.UserData), MaxUserData)
	}
	in := &ec2.RunInstancesInput{
		ImageId:                           aws.String(l.Image),
		InstanceType:                      types.InstanceType(l.Type),
		MinCount:                          aws.Int32(1),
		MaxCount:                          aws.Int32(1),
		ClientToken:                       aws.String(l.Token),
		InstanceInitiatedShutdownBehavior: l.Shutdown,
		TagSpecifications: []types.TagSpecification{
			{ResourceType: types.ResourceTypeInstance, Tags: l.Tags},
			{ResourceType: types.ResourceTypeVolume, Tags: l.Tags},
		},
	}
	if l.UserData != "" {
		in.UserData = aws.String(base64.StdEncoding.EncodeToString([]byte(l.UserData)))
	}
	if l.Subnet != "" {
		in.SubnetId = aws.String(l.Subnet)
	}
	if len(l.SecurityGroups) > 0 {
		in.SecurityGroupIds = l.SecurityGroups
	}
	if l.KeyName != "" {
		in.KeyName = aws.String(l.KeyName)
	}
	switch {
	case strings.HasPrefix(l.Profile, "arn:"):
		in.IamInstanceProfile = &types.IamInstanceProfileSpecification{Arn: aws.String(l.Profile)}
	case l.Profile != "":
		in.IamInstanceProfile = &types.IamInstanceProfileSpecification{Name: aws.String(l.Profile)}
	}
	return in, nil
}
