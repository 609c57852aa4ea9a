package awsapi

import (
	"context"
	"fmt"
	"os"
	"time"
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
	profile := os.Getenv("AWS_PROFILE")
	if profile == "" {
		profile = "default"
	}
	ctx, cancel := context.WithTimeout(ctx, credentialsTimeout)
	defer cancel()
	cfg, err := hs.config(ctx)
	if err != nil {
		return &CredentialsError{Profile: profile, Err: err}
	}
	if cfg.Credentials == nil {
		return &CredentialsError{Profile: profile, Err: fmt.Errorf("no credential provider")}
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		return &CredentialsError{Profile: profile, Err: err}
	}
	return nil
}
