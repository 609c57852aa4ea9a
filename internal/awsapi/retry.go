package awsapi

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// Backoff is an exponential delay with jitter between Min and Max.
type Backoff struct {
	Min, Max time.Duration
}

func (b Backoff) orDefault(min, max time.Duration) Backoff {
	if b.Min <= 0 {
		b.Min = min
	}
	if b.Max < b.Min {
		b.Max = max
		if b.Max < b.Min {
			b.Max = b.Min
		}
	}
	return b
}

// delay returns the wait before attempt n (0-based): Min·2ⁿ capped at Max,
// with ±25 % jitter so a fleet does not retry in lockstep.
func (b Backoff) delay(n int) time.Duration {
	d := b.Min
	for i := 0; i < n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	j := time.Duration(rand.Int64N(int64(d)/2 + 1))
	return d - d/4 + j
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Retry calls fn until it succeeds, returns an error that retrying cannot
// fix, or ctx is done. Throttling, server faults and errors marked NotYet are
// retried with backoff b, forever (the engine's timeout meta bounds a
// CheckApply); they never surface as failures. Other errors go through
// Classify, so a permission error comes back Permanent and names the action.
// On ctx done it returns ctx's error wrapped with the last error seen.
func Retry(ctx context.Context, b Backoff, fn func(ctx context.Context) error) error {
	b = b.orDefault(250*time.Millisecond, 30*time.Second)
	for n := 0; ; n++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if isCanceled(err) && ctx.Err() != nil {
			return err
		}
		if !isRetryableLocally(err) {
			return Classify(err)
		}
		if serr := sleep(ctx, b.delay(n)); serr != nil {
			return fmt.Errorf("%w (last error: %w)", serr, err)
		}
	}
}
