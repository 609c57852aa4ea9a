package awsapi

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/smithy-go"

	"kiln/internal/engine"
)

// Code returns the AWS error code of err ("" when err carries none). This is
// the only place kiln reads error codes; it never matches message text.
func Code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// IsNotFound reports an "X.NotFound" code (InvalidInstanceID.NotFound,
// InvalidAMIID.NotFound, ...). Right after a create it means "not yet".
func IsNotFound(err error) bool {
	c := Code(err)
	return strings.HasSuffix(c, ".NotFound") || c == "NotFound"
}

// IsInUse reports that a thing cannot be deleted while something else uses
// it (a security group held by an instance: DependencyViolation).
func IsInUse(err error) bool {
	switch Code(err) {
	case "DependencyViolation", "ResourceInUse", "InvalidGroup.InUse":
		return true
	}
	return false
}

// IsThrottle reports a throttling code (RequestLimitExceeded and kin).
func IsThrottle(err error) bool {
	switch Code(err) {
	case "RequestLimitExceeded", "Throttling", "ThrottlingException", "ThrottledException",
		"RequestThrottledException", "TooManyRequestsException", "RequestThrottled",
		"EC2ThrottledException", "SlowDown", "PriorRequestNotComplete", "BandwidthLimitExceeded":
		return true
	}
	return false
}

// IsPermission reports that the caller is not allowed to make the call.
func IsPermission(err error) bool {
	switch Code(err) {
	case "UnauthorizedOperation", "AccessDenied", "AccessDeniedException", "AuthFailure",
		"UnauthorizedAccess", "OptInRequired", "Blocked":
		return true
	}
	return false
}

// IsTransient reports errors that retrying later can fix: throttling,
// server faults, capacity shortages.
func IsTransient(err error) bool {
	if IsThrottle(err) {
		return true
	}
	switch Code(err) {
	case "InsufficientInstanceCapacity", "InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable":
		return true
	}
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) && re.HTTPStatusCode() >= 500 {
		return true
	}
	return false
}

// Action returns the IAM action ("ec2:RunInstances") of the SDK call that
// failed with err, or "" when err does not come from an SDK call.
func Action(err error) string {
	var oe *smithy.OperationError
	if !errors.As(err, &oe) {
		return ""
	}
	svc := strings.ToLower(strings.ReplaceAll(oe.ServiceID, " ", ""))
	return svc + ":" + oe.OperationName
}

// Classify marks what retrying cannot fix as engine.Permanent: a permission
// error (naming the denied action), or an error whose code is in permanent.
// Other errors, and errors already marked permanent (classified once on
// their way up), are returned unchanged.
func Classify(err error, permanent ...string) error {
	if err == nil || engine.IsPermanent(err) {
		return err
	}
	if IsPermission(err) {
		a := Action(err)
		if a == "" {
			a = "the call"
		}
		return engine.Permanent(fmt.Errorf("permission denied for %s (grant it in the IAM policy, see kiln iam-policy): %w", a, err))
	}
	c := Code(err)
	for _, p := range permanent {
		if c == p {
			return engine.Permanent(err)
		}
	}
	return err
}

// ErrNotYet marks an error as "not yet": eventual consistency, retry later.
var ErrNotYet = errors.New("not yet")

type notYet struct{ err error }

func (n notYet) Error() string   { return n.err.Error() }
func (n notYet) Unwrap() []error { return []error{n.err, ErrNotYet} }
func isCanceled(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
func wrapNotYet(err error) error { return notYet{err} }
func isRetryableLocally(e error) bool {
	return !engine.IsPermanent(e) && (IsTransient(e) || errors.Is(e, ErrNotYet))
}

// NotYet marks err as eventual-consistency "not yet" for Retry.
func NotYet(err error) error {
	if err == nil {
		return nil
	}
	return wrapNotYet(err)
}

// httpStatus is the HTTP status of the response that err came from, 0 when
// there was none.
func httpStatus(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// notImplemented reports an endpoint that does not implement the action:
// HTTP 501.
func notImplemented(err error) bool { return httpStatus(err) == 501 }

// nonAWSFault reports an HTTP 500 whose body carried no AWS error code (the
// SDK then says "UnknownError"): an endpoint answering for an action it
// does not implement, or a proxy's error page.
func nonAWSFault(err error) bool {
	c := Code(err)
	return httpStatus(err) == 500 && (c == "" || c == "UnknownError")
}

// errLeftToRetry stops the SDK's own retries of a server fault in a call
// made inside Retry, which retries it itself and counts every attempt.
var errLeftToRetry = errors.New("retried by kiln")

// unjoinDeferred takes errLeftToRetry out of err, which the SDK joined to
// the server fault inside its OperationError.
func unjoinDeferred(err error) error {
	if err == nil || !errors.Is(err, errLeftToRetry) {
		return err
	}
	var oe *smithy.OperationError
	if !errors.As(err, &oe) {
		return err
	}
	if j, ok := oe.Err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if e != errLeftToRetry {
				oe.Err = e // a fresh error of this call: no one else holds it
				break
			}
		}
	}
	return err
}
