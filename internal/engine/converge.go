package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"
)

// Converge converges one resource outside a graph, with the policies the
// engine gives a vertex: Init (when r is an Initer) with env, then
// CheckApply (apply unless env.Meta.Noop), each call bounded by
// env.Meta.Timeout and with a panic turned into an error (its stack
// logged); a failed call is retried after the engine's backoff
// (env.Meta.Delay doubling, with jitter, capped at 5 minutes) up to
// env.Meta.Retry times (-1: forever), and a Permanent error ends it at
// once. It returns after the first successful CheckApply: changed says it
// changed something (ok false). r's Outputs, when it has any, are read by
// the caller afterwards. There is no Watch: the caller decides when to
// converge again.
//
// It blocks until done or ctx is done (then it returns ctx's error). The
// error is the last CheckApply's, unwrapped, so errors.As and IsPermanent
// see what the resource returned. Limit and Poll do not apply to one call.
// Promotions and a bake's rollout drive aws:asg through it: there is no
// retry loop beside the engine's.
func Converge(ctx context.Context, r Resource, env Env) (changed bool, err error) {
	log := env.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	id := env.ID
	if id == "" {
		id = env.Kind + "/" + env.Name
	}
	if i, ok := r.(Initer); ok {
		if err := guard(log, id, "init", func() error { return i.Init(env) }); err != nil {
			return false, err
		}
	}
	m := env.Meta
	apply := !m.Noop
	for attempt := 1; ; attempt++ {
		ok, err := checkApply(ctx, log, r, id, m, apply)
		if err == nil {
			return !ok, nil
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		if IsPermanent(err) || (m.Retry >= 0 && attempt > m.Retry) {
			return false, err
		}
		d := backoff(m.Delay, attempt)
		log.Warn("resource check failed, retrying", "resource", id, "attempt", attempt, "in", d, "err", err)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return false, ctx.Err()
		case <-t.C:
		}
	}
}

// checkApply runs r's CheckApply with m's timeout, recovering panics.
func checkApply(ctx context.Context, log *slog.Logger, r Resource, id string, m Meta, apply bool) (ok bool, err error) {
	cctx := ctx
	if m.Timeout > 0 {
		var cancel context.CancelFunc
		cctx, cancel = context.WithTimeout(ctx, m.Timeout)
		defer cancel()
	}
	err = guard(log, id, "check apply", func() error {
		var err error
		ok, err = r.CheckApply(cctx, apply)
		return err
	})
	if err != nil && m.Timeout > 0 && errors.Is(cctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		err = fmt.Errorf("check apply: timed out after %v: %w", m.Timeout, err)
	}
	return ok, err
}

// guard runs resource code, turning a panic into an error (stack in the log).
func guard(log *slog.Logger, id, op string, f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			log.Error("resource panicked", "resource", id, "op", op, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = fmt.Errorf("%s: panic: %v", op, p)
		}
	}()
	return f()
}
