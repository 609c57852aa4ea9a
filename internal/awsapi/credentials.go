package awsapi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// credentialsTimeout bounds the start-up credential check: the last links
// of the chain (container and instance metadata) time out on a machine
// that is not in AWS.
const credentialsTimeout = 10 * time.Second

// CredentialsError is a start-up failure to find AWS credentials (or to
// load the configuration they come from). It names what was tried and what
// to do, so that a command can say it once instead of every resource
// failing with the SDK's chain of errors.
type CredentialsError struct {
	Profile string // AWS_PROFILE, or "default"
	Err     error
}

func (e *CredentialsError) Error() string {
	return fmt.Sprintf(`no usable AWS credentials (tried, in order: the environment's AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, profile %q of the shared config and credentials files, its SSO or role settings, a web identity token, container and EC2 instance metadata): %v
Set AWS_PROFILE to a profile that has credentials (or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), or add --sim to run against kiln's built-in EC2 simulator, which needs no AWS account.`,
		e.Profile, e.Err)
}

func (e *CredentialsError) Unwrap() error { return e.Err }

// Short is the error in one line, for a status: "no AWS credentials
// (profile "default": ...)".
func (e *CredentialsError) Short() string {
	return fmt.Sprintf("no AWS credentials (profile %q: %v)", e.Profile, e.Err)
}

// CheckCredentials loads the AWS configuration and resolves its
// credentials once, so that a command fails at start with a
// *CredentialsError rather than in every resource. With Options.Config
// set (the simulator) there is nothing to check.
func (hs *Hubs) CheckCredentials(ctx context.Context) error {
	if hs.o.Config != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, credentialsTimeout)
	defer cancel()
	cfg, err := hs.config(ctx)
	if err == nil && cfg.Credentials == nil {
		err = fmt.Errorf("no credential provider")
	}
	if err == nil {
		_, err = cfg.Credentials.Retrieve(ctx)
	}
	if err == nil {
		return nil
	}
	if ce, ok := NoCredentials(err); ok {
		return ce
	}
	return &CredentialsError{Profile: profileName(), Err: err}
}

// profileName is AWS_PROFILE, or "default".
func profileName() string {
	if p := os.Getenv("AWS_PROFILE"); p != "" {
		return p
	}
	return "default"
}

// NoCredentials returns the *CredentialsError in err's chain: a call that
// failed because the configuration could not be loaded or its credentials
// could not be got. Nothing retried by the call itself fixes that.
func NoCredentials(err error) (*CredentialsError, bool) {
	return errors.AsType[*CredentialsError](err)
}

// markCredentials makes a failure to get c's credentials a
// *CredentialsError, so that NoCredentials finds it in any call's error.
func markCredentials(c aws.Config) aws.Config {
	if c.Credentials != nil {
		c.Credentials = credentialsMarker{c.Credentials}
	}
	return c
}

type credentialsMarker struct{ aws.CredentialsProvider }

func (m credentialsMarker) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := m.CredentialsProvider.Retrieve(ctx)
	if err != nil && ctx.Err() == nil {
		if _, ok := NoCredentials(err); !ok {
			err = &CredentialsError{Profile: profileName(), Err: err}
		}
	}
	return c, err
}
