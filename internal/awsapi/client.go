// Package awsapi is kiln's one door to AWS: SDK clients built from the
// standard configuration, a retry policy that retries throttling and server
// faults but no other 4xx, the one place that reads AWS error codes, and a
// per-region Hub shared by every AWS resource of a process.
//
// A Hub holds three things that make API cost grow with the fleet divided by a
// thousand rather than with the fleet:
//
//   - a batcher (Hub.Instances) with *ec2.Client's DescribeInstances method
//     shape: concurrent calls by instance id, or by one varying tag filter, from
//     all resources merge into one call;
//   - a poller that lists every instance of a graph (tag kiln:owner=<graph>)
//     with ONE tag-filtered, paginated DescribeInstances per interval and turns
//     differences into per-resource notifications;
//   - an event router that hands pushed state-change events (Hubs.Deliver) to
//     the resource owning the instance or image.
//
// Constructors start no goroutines: Hubs.Run owns every hub's loops, including
// hubs created lazily after Run started, and the DNS hub's (DNS.Run). The
// batcher and the DNS hub need Run to be running.
package awsapi

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/logging"
	"github.com/aws/smithy-go/middleware"
)

// Tags kiln puts on everything it creates, and finds it by.
const (
	TagOwner    = "kiln:owner"    // the graph's name
	TagResource = "kiln:resource" // "kind/name" of the resource
	TagBake     = "kiln:bake"     // the bake id (bakery builders and images)
	TagName     = "Name"
)

// RetryOptions tune the SDK retryer.
type RetryOptions struct {
	// MaxAttempts per SDK call, first included. Default 10: throttling is
	// common at fleet scale and must not surface as a failure.
	MaxAttempts int
	// MaxBackoff between attempts. Default 20 s (the SDK's).
	MaxBackoff time.Duration
	// Backoff overrides the delay strategy (tests use a tiny one).
	Backoff retry.BackoffDelayer
}

// NewRetryer returns the standard retryer, retrying throttling codes,
// connection errors and HTTP 500/502/503/504 only: never another 4xx. The
// client-side retry quota is off, since a fleet-wide throttle storm would
// otherwise drain it and turn throttling into failures. A server fault in
// a call made inside Retry is not retried here but by Retry, which counts,
// logs and bounds its attempts.
func NewRetryer(o RetryOptions) aws.Retryer {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 10
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 20 * time.Second
	}
	return leaveFaultsToRetry{retry.NewStandard(func(so *retry.StandardOptions) {
		so.MaxAttempts = o.MaxAttempts
		so.MaxBackoff = o.MaxBackoff
		if o.Backoff != nil {
			so.Backoff = o.Backoff
		}
		so.RateLimiter = ratelimit.None
		so.Retryables = []retry.IsErrorRetryable{
			retry.NoRetryCanceledError{},
			retry.RetryableConnectionError{},
			retry.RetryableHTTPStatusCode{Codes: map[int]struct{}{500: {}, 502: {}, 503: {}, 504: {}}},
			retry.RetryableErrorCode{Codes: retry.DefaultThrottleErrorCodes},
		}
	})}
}

// leaveFaultsToRetry is the SDK retryer, except that a server fault (not
// throttling) in a call made inside Retry goes back to Retry at once.
type leaveFaultsToRetry struct{ aws.RetryerV2 }

// GetRetryToken refuses the SDK a retry of such a fault: the SDK then
// returns it, joined with errLeftToRetry.
func (r leaveFaultsToRetry) GetRetryToken(ctx context.Context, err error) (func(error) error, error) {
	if ctx.Value(triesKey{}) != nil && httpStatus(err) >= 500 && !IsThrottle(err) {
		return nil, errLeftToRetry
	}
	return r.RetryerV2.GetRetryToken(ctx, err)
}

// LoadConfig loads the standard AWS configuration: the credential chain,
// shared config and profiles, AWS_REGION, AWS_ENDPOINT_URL[_EC2]. The
// retryer is NewRetryer's; the SDK's own log lines (such as its fallback
// to IMDSv1) go to log at debug, nil discarding them.
func LoadConfig(ctx context.Context, ro RetryOptions, log *slog.Logger) (aws.Config, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sdkLog := logging.LoggerFunc(func(c logging.Classification, format string, v ...any) {
		log.Debug(fmt.Sprintf(format, v...), "component", "aws-sdk", "class", string(c))
	})
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRetryer(func() aws.Retryer { return NewRetryer(ro) }),
		config.WithLogger(sdkLog))
	if err != nil {
		return aws.Config{}, fmt.Errorf("load aws config: %w", err)
	}
	return cfg, nil
}

// NewEC2 returns an EC2 client for cfg in region (cfg.Region when empty),
// with apiOptions added to each call's middleware stack.
func NewEC2(cfg aws.Config, region string, apiOptions ...func(*middleware.Stack) error) *ec2.Client {
	return ec2.NewFromConfig(cfg, func(o *ec2.Options) {
		if region != "" {
			o.Region = region
		}
		o.APIOptions = append(o.APIOptions, apiOptions...)
	})
}

// NewSQS returns an SQS client for cfg in region (cfg.Region when empty).
func NewSQS(cfg aws.Config, region string) *sqs.Client {
	return sqs.NewFromConfig(cfg, func(o *sqs.Options) {
		if region != "" {
			o.Region = region
		}
	})
}

// NewEventBridge returns an EventBridge client for cfg in region
// (cfg.Region when empty).
func NewEventBridge(cfg aws.Config, region string) *eventbridge.Client {
	return eventbridge.NewFromConfig(cfg, func(o *eventbridge.Options) {
		if region != "" {
			o.Region = region
		}
	})
}
