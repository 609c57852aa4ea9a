package awssim

import (
	"strconv"
	"strings"
	"sync"
	"time"
)

// Bucket is one of AWS's request token buckets: Burst tokens at most,
// refilled at Refill per second. Every action has its own buckets, sized
// by its category (shared/reference AWS.md).
type Bucket struct {
	Burst  float64
	Refill float64
}

// Bucket categories.
var (
	bucketNonMutating = Bucket{100, 20} // Describe*/Get*, filtered or paginated
	bucketUnfiltered  = Bucket{50, 10}  // the big Describe calls, unfiltered and unpaginated
	bucketMutating    = Bucket{50, 5}
	bucketTags        = Bucket{100, 10}
	bucketDelete      = Bucket{100, 5}
)

// requestBuckets are the actions with a request bucket of their own size.
// Every other action takes its category's: Describe*/Get*/List* the
// non-mutating bucket, writes (the IAM instance profile association calls
// among them) the mutating one.
var requestBuckets = map[string]Bucket{
	"RunInstances":                {5, 2},
	"StartInstances":              {5, 2},
	"TerminateInstances":          {100, 5},
	"CreateTags":                  bucketTags,
	"DeleteTags":                  bucketTags,
	"DeregisterImage":             bucketDelete,
	"DeleteSnapshot":              bucketDelete,
	"CreateLaunchTemplateVersion": bucketDelete,
	"CopyImage":                   {100, 1},
}

// resourceBuckets count instances rather than requests.
var resourceBuckets = map[string]Bucket{
	"RunInstances":       {1000, 2},
	"StartInstances":     {1000, 2},
	"TerminateInstances": {1000, 20},
	"StopInstances":      {1000, 20},
}

// unfilteredDescribes use the smaller bucket when called without filters,
// ids or pagination.
var unfilteredDescribes = map[string]bool{
	"DescribeInstances": true, "DescribeInstanceStatus": true, "DescribeSecurityGroups": true,
	"DescribeSnapshots": true, "DescribeImages": true, "DescribeTags": true, "DescribeVolumes": true,
	"DescribeNetworkInterfaces": true, "DescribeSubnets": true,
}

type tokenBucket struct {
	Bucket
	tokens float64
	at     time.Time
}

func (b *tokenBucket) refill(now time.Time) {
	if dt := now.Sub(b.at).Seconds(); dt > 0 {
		b.tokens = min(b.Burst, b.tokens+dt*b.Refill)
	}
	b.at = now
}

type throttler struct {
	mu      sync.Mutex
	enabled bool
	buckets map[string]*tokenBucket
	// lastBurst is when other tenants last drained the buckets (the
	// throttle fault profile).
	lastBurst time.Time
}

func newThrottler() *throttler { return &throttler{buckets: map[string]*tokenBucket{}} }

func (t *throttler) bucket(key string, size Bucket, now time.Time) *tokenBucket {
	b := t.buckets[key]
	if b == nil {
		b = &tokenBucket{Bucket: size, tokens: size.Burst, at: now}
		t.buckets[key] = b
	}
	b.refill(now)
	return b
}

// SetThrottle turns AWS's request throttling on or off.
func (s *Sim) SetThrottle(on bool) {
	s.buckets.mu.Lock()
	defer s.buckets.mu.Unlock()
	s.buckets.enabled = on
	if !on {
		clear(s.buckets.buckets)
	}
}

func (s *Sim) throttleEnabled() bool {
	s.buckets.mu.Lock()
	on := s.buckets.enabled || s.opts.Throttle
	s.buckets.mu.Unlock()
	return on || s.throttleProfile()
}

// admit takes an EC2 request's tokens, or reports false (throttled) and
// takes none.
func (s *Sim) admit(r *request) bool {
	now := s.Now()
	act := r.Action
	var size Bucket
	switch {
	case requestBuckets[act] != Bucket{}:
		size = requestBuckets[act]
	case strings.HasPrefix(act, "Describe") || strings.HasPrefix(act, "Get") || strings.HasPrefix(act, "List"):
		size = bucketNonMutating
		if unfilteredDescribes[act] && !filteredOrPaged(r) {
			size = bucketUnfiltered
		}
	default:
		size = bucketMutating
	}
	t := s.buckets
	t.mu.Lock()
	defer t.mu.Unlock()
	req := t.bucket(act+"/"+strconv.FormatFloat(size.Burst, 'f', 0, 64), size, now)
	if req.tokens < 1 {
		return false
	}
	if rs, ok := resourceBuckets[act]; ok {
		n := float64(len(r.list("InstanceId")))
		if act == "RunInstances" {
			c, _ := strconv.Atoi(r.str("MaxCount"))
			n = float64(max(c, 1))
		}
		res := t.bucket(act+"/instances", rs, now)
		if res.tokens < n {
			return false
		}
		res.tokens -= n
	}
	req.tokens--
	return true
}

func filteredOrPaged(r *request) bool {
	for k := range r.Params {
		if strings.HasPrefix(k, "Filter.") || strings.HasSuffix(k, "Id.1") || k == "MaxResults" || k == "NextToken" {
			return true
		}
	}
	return false
}
