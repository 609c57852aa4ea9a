package awsres

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awsapi"
	"kiln/internal/config"
)

// An instance profile is checked against what DescribeInstances already
// reports (its ARN), so a converged instance costs no extra call; only a
// difference looks up the association and changes it in place: associate
// when the instance has none, replace when it is running with another,
// and on a stopped instance (where EC2 refuses a replace) disassociate and
// associate. An empty iam_profile means "whatever the instance has", as
// for security_groups: kiln never removes a profile.

var (
	// IAM's rules for an instance profile name, and the ARN of one
	// (arn:PARTITION:iam::ACCOUNT:instance-profile/PATH/NAME).
	profileNameRE = regexp.MustCompile(`^[\w+=,.@-]{1,128}$`)
	profileArnRE  = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:instance-profile/([\w+=,.@/-]*/)?[\w+=,.@-]{1,128}$`)
)

// checkProfile is the error for field unless p is an instance profile
// name, an instance profile ARN or a reference.
func checkProfile(field, p string) []error {
	switch {
	case p == "" || config.HasRef(p):
		return nil
	case strings.HasPrefix(p, "arn:"):
		if !profileArnRE.MatchString(p) {
			return []error{config.Fieldf(field, "want an instance profile ARN like \"arn:aws:iam::123456789012:instance-profile/web\", got %q", p)}
		}
	case !profileNameRE.MatchString(p):
		return []error{config.Fieldf(field, "want an instance profile name (letters, digits and +=,.@_-) or ARN, got %q", p)}
	}
	return nil
}

// profileMatches reports whether the instance profile ARN arn is the one
// want names: an ARN compares whole, a name with the ARN's last path
// element (profile names are unique in an account, whatever their path).
func profileMatches(want, arn string) bool {
	if arn == "" {
		return false
	}
	if strings.HasPrefix(want, "arn:") {
		return arn == want
	}
	_, rest, ok := strings.Cut(arn, ":instance-profile/")
	if !ok {
		return false
	}
	return rest[strings.LastIndex(rest, "/")+1:] == want
}

func profileARN(in types.Instance) string {
	if in.IamInstanceProfile == nil {
		return ""
	}
	return aws.ToString(in.IamInstanceProfile.Arn)
}

// profileDrift describes how the instance's profile differs from the
// spec's ("" when it does not, or the spec names none).
func (r *Instance) profileDrift(in types.Instance) string {
	if r.IAMProfile == "" {
		return ""
	}
	got := profileARN(in)
	if profileMatches(r.IAMProfile, got) {
		return ""
	}
	if got == "" {
		got = "none"
	}
	return fmt.Sprintf("iam_profile is %s, spec wants %s", got, r.IAMProfile)
}

func (r *Instance) profileSpec() *types.IamInstanceProfileSpecification {
	if strings.HasPrefix(r.IAMProfile, "arn:") {
		return &types.IamInstanceProfileSpecification{Arn: aws.String(r.IAMProfile)}
	}
	return &types.IamInstanceProfileSpecification{Name: aws.String(r.IAMProfile)}
}

// Codes that retrying a profile change cannot fix: a profile IAM does not
// know (InvalidParameterValue) and kin.
var profilePermanent = []string{"InvalidParameterValue", "InvalidParameterCombination", "MissingParameter"}

// errDisassociating: the old association is on its way out; associate
// once it is gone.
var errDisassociating = errors.New("the old instance profile association is still disassociating")

// setProfile gives the live instance in the spec's instance profile. It
// blocks until EC2 has accepted the change (not until the association
// reports associated: the instance's DescribeInstances already shows it).
func (r *Instance) setProfile(ctx context.Context, in types.Instance) error {
	id := aws.ToString(in.InstanceId)
	running := stateOf(in) == StateRunning
	err := r.hub.Retry(ctx, func(ctx context.Context) error {
		cur, err := r.association(ctx, id)
		if err != nil {
			return err
		}
		switch {
		case cur == nil:
			_, err = r.api.AssociateIamInstanceProfile(ctx, &ec2.AssociateIamInstanceProfileInput{
				InstanceId: aws.String(id), IamInstanceProfile: r.profileSpec(),
			})
			if awsapi.Code(err) == "IncorrectState" {
				// An association still disassociating (ours, or someone's).
				return awsapi.NotYet(err)
			}
		case profileMatches(r.IAMProfile, profileOfAssoc(cur)):
			return nil
		case running:
			_, err = r.api.ReplaceIamInstanceProfileAssociation(ctx, &ec2.ReplaceIamInstanceProfileAssociationInput{
				AssociationId: cur.AssociationId, IamInstanceProfile: r.profileSpec(),
			})
		default:
			// EC2 replaces on a running instance only.
			_, err = r.api.DisassociateIamInstanceProfile(ctx, &ec2.DisassociateIamInstanceProfileInput{AssociationId: cur.AssociationId})
			if err == nil {
				return awsapi.NotYet(errDisassociating)
			}
		}
		if awsapi.Code(err) == "InvalidAssociationID.NotFound" {
			return awsapi.NotYet(err) // replaced meanwhile: look again
		}
		return awsapi.Classify(notFoundNotYet(err), profilePermanent...)
	})
	if err != nil {
		return fmt.Errorf("set instance profile of instance %s: %w", id, err)
	}
	r.log().Info("instance profile set", "instance", id, "profile", r.IAMProfile)
	return nil
}

func profileOfAssoc(a *types.IamInstanceProfileAssociation) string {
	if a.IamInstanceProfile == nil {
		return ""
	}
	return aws.ToString(a.IamInstanceProfile.Arn)
}

// association is the instance's active (associating or associated)
// instance profile association, nil for none.
func (r *Instance) association(ctx context.Context, id string) (*types.IamInstanceProfileAssociation, error) {
	out, err := r.api.DescribeIamInstanceProfileAssociations(ctx, &ec2.DescribeIamInstanceProfileAssociationsInput{
		Filters: []types.Filter{{Name: aws.String("instance-id"), Values: []string{id}}},
	})
	if err != nil {
		return nil, err
	}
	for _, a := range out.IamInstanceProfileAssociations {
		switch a.State {
		case types.IamInstanceProfileAssociationStateAssociating, types.IamInstanceProfileAssociationStateAssociated:
			return &a, nil
		}
	}
	return nil, nil
}
