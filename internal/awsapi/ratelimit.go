package awsapi

import (
	"context"
	"strings"
	"sync"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go/middleware"
	"golang.org/x/time/rate"
)

// RateLimit paces the process's EC2 calls to AWS's request token buckets
// (per account and region: a bucket per action, sized by its category), so
// that a burst across a fleet waits on the client instead of being refused
// with RequestLimitExceeded and retried after a backoff that overshoots.
// Throttling can still happen (other clients share the account's buckets)
// and is still retried.
type RateLimit struct {
	// Scale multiplies the refill rates: 1 is AWS's (and the simulator's,
	// whose buckets refill in real time at any time scale). 0 means 1 with
	// the standard configuration (AWS) and off with a given Config (a
	// simulator, whose throttling is off unless asked for); negative is off.
	Scale float64
	// Share is this process's part of the account's buckets, when several
	// processes share them (the servers of one bakery): bursts and refill
	// rates are multiplied by it (a burst stays at least 1), so that N
	// processes with 1/N each stay within AWS's buckets together. 0 or
	// more than 1 means 1.
	Share float64
}

// bucketSize is a token bucket: burst tokens at most, refill per second.
type bucketSize struct{ burst, refill float64 }

// AWS's bucket sizes (EC2 API request throttling in the AWS documentation).
var (
	sizeNonMutating = bucketSize{100, 20} // Describe*, Get*, filtered or paginated
	sizeUnfiltered  = bucketSize{50, 10}  // the big Describe calls without filter, ids or pagination
	sizeMutating    = bucketSize{50, 5}
	sizeTags        = bucketSize{100, 10}
	sizeDelete      = bucketSize{100, 5}

	// requestSizes are the actions whose request bucket is not their
	// category's.
	requestSizes = map[string]bucketSize{
		"RunInstances": {5, 2}, "StartInstances": {5, 2}, "TerminateInstances": {100, 5},
		"CreateTags": sizeTags, "DeleteTags": sizeTags,
		"DeregisterImage": sizeDelete, "DeleteSnapshot": sizeDelete, "CreateLaunchTemplateVersion": sizeDelete,
		"CopyImage": {100, 1},
	}
	// resourceSizes count instances rather than requests.
	resourceSizes = map[string]bucketSize{
		"RunInstances": {1000, 2}, "StartInstances": {1000, 2},
		"TerminateInstances": {1000, 20}, "StopInstances": {1000, 20},
	}
)

// limiter holds a region's buckets.
type limiter struct {
	scale float64 // refill multiplier: Scale, Share and paceMargin
	share float64 // burst multiplier

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

// paceMargin slows the client's refill below AWS's: the client's bucket
// and AWS's start at different moments (a request's latency apart) and
// latency varies, so a call released the instant its token is due here may
// find none there yet. At 2 tokens a second this is ~55 ms of slack.
const paceMargin = 0.9

func newLimiter(o RateLimit) *limiter {
	share := o.Share
	if share <= 0 || share > 1 {
		share = 1
	}
	return &limiter{scale: o.Scale * share * paceMargin, share: share, buckets: map[string]*rate.Limiter{}}
}

func (l *limiter) bucket(key string, size bucketSize) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		b = rate.NewLimiter(rate.Limit(size.refill*l.scale), max(1, int(size.burst*l.share)))
		l.buckets[key] = b
	}
	return b
}

// wait takes the tokens of one call of action with input params, waiting
// for them as long as it takes or until ctx is done.
func (l *limiter) wait(ctx context.Context, action string, params any) error {
	key, size := action, requestSize(action, params)
	if size == sizeUnfiltered {
		key += " unfiltered"
	}
	if err := take(ctx, l.bucket(key, size), 1); err != nil {
		return err
	}
	if size, ok := resourceSizes[action]; ok {
		b := l.bucket(action+" instances", size)
		return take(ctx, b, min(instanceCount(params), b.Burst()))
	}
	return nil
}

// take waits for n tokens of b. Unlike rate.Limiter.WaitN it waits past a
// deadline it cannot meet instead of failing at once: ctx ends the wait.
func take(ctx context.Context, b *rate.Limiter, n int) error {
	if n <= 0 {
		return nil
	}
	r := b.ReserveN(time.Now(), n)
	d := r.Delay()
	if d == 0 {
		return nil
	}
	if err := sleep(ctx, d); err != nil {
		r.Cancel()
		return err
	}
	return nil
}

// requestSize is the request bucket of a call of action with params.
func requestSize(action string, params any) bucketSize {
	if s, ok := requestSizes[action]; ok {
		return s
	}
	if strings.HasPrefix(action, "Describe") || strings.HasPrefix(action, "Get") {
		if unfiltered(params) {
			return sizeUnfiltered
		}
		return sizeNonMutating
	}
	return sizeMutating
}

// unfiltered reports whether a call is one of the big Describe calls made
// without filter, ids or pagination.
func unfiltered(params any) bool {
	switch in := params.(type) {
	case *ec2.DescribeInstancesInput:
		return len(in.Filters) == 0 && len(in.InstanceIds) == 0 && in.MaxResults == nil
	case *ec2.DescribeImagesInput:
		return len(in.Filters) == 0 && len(in.ImageIds) == 0 && len(in.Owners) == 0 && in.MaxResults == nil
	case *ec2.DescribeSnapshotsInput:
		return len(in.Filters) == 0 && len(in.SnapshotIds) == 0 && len(in.OwnerIds) == 0 && in.MaxResults == nil
	case *ec2.DescribeSecurityGroupsInput:
		return len(in.Filters) == 0 && len(in.GroupIds) == 0 && len(in.GroupNames) == 0 && in.MaxResults == nil
	case *ec2.DescribeSubnetsInput:
		return len(in.Filters) == 0 && len(in.SubnetIds) == 0 && in.MaxResults == nil
	}
	return false
}

// instanceCount is how many instances a call starts, stops or launches.
func instanceCount(params any) int {
	switch in := params.(type) {
	case *ec2.RunInstancesInput:
		if in.MaxCount != nil {
			return int(*in.MaxCount)
		}
		return 1
	case *ec2.StartInstancesInput:
		return len(in.InstanceIds)
	case *ec2.StopInstancesInput:
		return len(in.InstanceIds)
	case *ec2.TerminateInstancesInput:
		return len(in.InstanceIds)
	}
	return 0
}

// paramsKey carries a call's input from the initialize step to the
// finalize step, where every attempt takes its tokens.
type paramsKey struct{}

// addTo puts the limiter on an EC2 client's middleware stack (addPacer).
func (l *limiter) addTo(stack *middleware.Stack) error { return addPacer(stack, l.wait) }

// addPacer puts wait on a client's middleware stack: after the retryer, so
// each attempt (a retry too) waits for its tokens. wait gets the
// operation's name and input.
func addPacer(stack *middleware.Stack, wait func(ctx context.Context, action string, params any) error) error {
	err := stack.Initialize.Add(middleware.InitializeMiddlewareFunc("kiln.RateLimitParams",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			return next.HandleInitialize(middleware.WithStackValue(ctx, paramsKey{}, in.Parameters), in)
		}), middleware.After)
	if err != nil {
		return err
	}
	return stack.Finalize.Insert(middleware.FinalizeMiddlewareFunc("kiln.RateLimit",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			if err := wait(ctx, awsmiddleware.GetOperationName(ctx), middleware.GetStackValue(ctx, paramsKey{})); err != nil {
				return middleware.FinalizeOutput{}, middleware.Metadata{}, err
			}
			return next.HandleFinalize(ctx, in)
		}), "Retry", middleware.After)
}
