package awsapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"kiln/internal/engine"
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

// DefaultRetryTimeout is how long Retry keeps retrying when its policy
// says nothing (kiln's --aws-retry-timeout).
const DefaultRetryTimeout = 5 * time.Minute

// RetryPolicy is how Retry retries: its backoff, how long before it gives
// up, and the logger it tells about a call that keeps failing.
type RetryPolicy struct {
	Backoff Backoff
	Timeout time.Duration // default DefaultRetryTimeout
	Log     *slog.Logger  // nil: no log lines
}

// logFrom is the attempt from which Retry logs each failure at info.
const logFrom = 3

// Retry calls fn until it succeeds, returns an error that retrying cannot
// fix, p.Timeout has passed, or ctx is done. Throttling, server faults and
// errors marked NotYet are retried with backoff; server faults are retried
// here rather than inside the SDK, so that every attempt is counted. From
// the third failed attempt each failure is logged at info (action, error,
// attempt, next try), and while it retries the engine shows the reason as
// the resource's last error (engine.Report). After p.Timeout it gives up
// with the last error and the action named. An action the endpoint does not
// implement (HTTP 501) fails at once, saying so; so does a permission
// error, naming the action (Classify). On ctx done it returns ctx's error
// wrapped with the last error seen.
func Retry(ctx context.Context, p RetryPolicy, fn func(ctx context.Context) error) error {
	b := p.Backoff.orDefault(250*time.Millisecond, 30*time.Second)
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = DefaultRetryTimeout
	}
	t := &tries{log: p.Log}
	rctx, cancel := context.WithTimeout(context.WithValue(ctx, triesKey{}, t), timeout)
	defer cancel()
	for n := 0; ; n++ {
		err := unjoinDeferred(fn(rctx))
		if err == nil {
			return nil
		}
		if isCanceled(err) && ctx.Err() != nil {
			return err
		}
		if rctx.Err() != nil && ctx.Err() == nil { // the retry timeout, in a call
			if !isCanceled(err) {
				t.n++
			}
			return t.gaveUp(err, timeout)
		}
		if notImplemented(err) {
			return engine.Permanent(fmt.Errorf("%s: the endpoint does not implement this action (HTTP 501): %w", actionOr(err, "the call"), err))
		}
		if !isRetryableLocally(err) {
			return Classify(err)
		}
		d := b.delay(n)
		t.failed(ctx, err, d)
		if serr := sleep(rctx, d); serr != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
			}
			return t.gaveUp(err, timeout)
		}
	}
}

// tries is one Retry's record of its failed attempts.
type tries struct {
	log  *slog.Logger
	n    int
	last error
}

type triesKey struct{}

// failed records a failed attempt that will be tried again after next.
// "Not yet" answers (eventual consistency) are expected: they are only
// counted; other failures are logged from the third attempt on and shown
// as the resource's last error.
func (t *tries) failed(ctx context.Context, err error, next time.Duration) {
	t.n++
	t.last = err
	if errors.Is(err, ErrNotYet) {
		return
	}
	action := actionOr(err, "an AWS call")
	why := explain(err)
	engine.Report(ctx, fmt.Sprintf("retrying %s (attempt %d, next in %v): %v", action, t.n, next.Round(time.Millisecond), why))
	if t.n >= logFrom && t.log != nil {
		t.log.Info("AWS call failed, retrying", "action", action, "err", why, "attempt", t.n, "next_try", next.Round(time.Millisecond))
	}
}

// gaveUp is the error of a Retry whose timeout passed: the last error of
// an attempt (not the timeout's own), with the action named. The count is
// of attempts that were answered (a call the timeout cut short is not).
func (t *tries) gaveUp(err error, timeout time.Duration) error {
	if isCanceled(err) && t.last != nil {
		err = t.last
	}
	return fmt.Errorf("%s: gave up after %v of retries (%d attempts; --aws-retry-timeout): %w", actionOr(err, "AWS call"), timeout, t.n, explainErr(err))
}

func actionOr(err error, dflt string) string {
	if a := Action(err); a != "" {
		return a
	}
	return dflt
}

// explain says in words what an unhelpful server fault means: an endpoint
// that answers HTTP 500 with a body that is not an AWS error (no code)
// does not implement the action.
func explain(err error) string {
	return explainErr(err).Error()
}

func explainErr(err error) error {
	if nonAWSFault(err) {
		return fmt.Errorf("the endpoint does not implement this action (HTTP 500 with a body that is not an AWS error): %w", err)
	}
	return err
}
