package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// initFake is a fake that records its Init.
type initFake struct {
	fake
	env     Env
	initErr error
}

func (f *initFake) Init(env Env) error { f.env = env; return f.initErr }

func TestConverge(t *testing.T) {
	errFlaky := errors.New("flaky")
	tests := []struct {
		name        string
		meta        Meta
		check       func(ctx context.Context, apply bool, n int) (bool, error)
		wantChanged bool
		wantErr     string // "" none
		wantChecks  int
		wantElapsed time.Duration // at least (backoff, with up to 25% jitter)
	}{
		{name: "converged", wantChecks: 1},
		{name: "changed", check: func(context.Context, bool, int) (bool, error) { return false, nil }, wantChanged: true, wantChecks: 1},
		{
			name: "retried with backoff",
			meta: Meta{Retry: 3, Delay: time.Second},
			check: func(_ context.Context, _ bool, n int) (bool, error) {
				if n < 3 {
					return false, errFlaky
				}
				return false, nil
			},
			wantChanged: true, wantChecks: 3, wantElapsed: 3 * time.Second, // 1 s + 2 s
		},
		{
			name:    "retries exhausted",
			meta:    Meta{Retry: 2, Delay: time.Second},
			check:   func(context.Context, bool, int) (bool, error) { return false, errFlaky },
			wantErr: "flaky", wantChecks: 3, wantElapsed: 3 * time.Second,
		},
		{
			name:    "permanent stops at once",
			meta:    Meta{Retry: -1},
			check:   func(context.Context, bool, int) (bool, error) { return false, Permanent(errFlaky) },
			wantErr: "flaky", wantChecks: 1,
		},
		{
			name: "panic is an error, retried",
			meta: Meta{Retry: 1},
			check: func(_ context.Context, _ bool, n int) (bool, error) {
				if n == 1 {
					panic("boom")
				}
				return true, nil
			},
			wantChecks: 2, wantElapsed: defaultDelay,
		},
		{
			name: "timeout bounds each check",
			meta: Meta{Timeout: time.Minute},
			check: func(ctx context.Context, _ bool, _ int) (bool, error) {
				<-ctx.Done()
				return false, ctx.Err()
			},
			wantErr: "timed out after 1m0s", wantChecks: 1, wantElapsed: time.Minute,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := &initFake{fake: fake{check: tt.check}}
				env := Env{Graph: "g", ID: "test/one", Kind: "test", Name: "one", Meta: tt.meta}
				start := time.Now()
				changed, err := Converge(t.Context(), r, env)
				elapsed := time.Since(start)
				if changed != tt.wantChanged {
					t.Errorf("Converge() changed = %v; want %v", changed, tt.wantChanged)
				}
				switch {
				case tt.wantErr == "" && err != nil:
					t.Errorf("Converge() = %v; want nil", err)
				case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
					t.Errorf("Converge() = %v; want an error with %q", err, tt.wantErr)
				}
				if r.checks != tt.wantChecks {
					t.Errorf("CheckApply calls = %d; want %d", r.checks, tt.wantChecks)
				}
				if elapsed < tt.wantElapsed || elapsed > tt.wantElapsed*5/4+time.Millisecond {
					t.Errorf("Converge took %v; want %v (+25%% jitter)", elapsed, tt.wantElapsed)
				}
				if r.env.ID != "test/one" {
					t.Errorf("Init got %+v; want the env", r.env)
				}
				for i, a := range r.applyFlags {
					if !a {
						t.Errorf("CheckApply %d with apply=false; want true", i+1)
					}
				}
			})
		})
	}
}

func TestConvergeKeepsTheResourcesError(t *testing.T) {
	want := &wrapped{}
	r := &fake{check: func(context.Context, bool, int) (bool, error) { return false, Permanent(want) }}
	_, err := Converge(t.Context(), r, Env{Kind: "test", Name: "x"})
	var got *wrapped
	if !errors.As(err, &got) || !IsPermanent(err) {
		t.Errorf("Converge() = %v; want the resource's permanent *wrapped", err)
	}
}

type wrapped struct{}

func (*wrapped) Error() string { return "typed" }

func TestConvergeInitFailure(t *testing.T) {
	r := &initFake{initErr: errors.New("no hubs")}
	if _, err := Converge(t.Context(), r, Env{Kind: "test", Name: "x"}); err == nil || r.checks != 0 {
		t.Errorf("Converge() = %v after %d checks; want Init's error and no check", err, r.checks)
	}
}

func TestConvergeNoopChecksOnly(t *testing.T) {
	r := &fake{check: func(context.Context, bool, int) (bool, error) { return false, nil }}
	changed, err := Converge(t.Context(), r, Env{Kind: "test", Name: "x", Meta: Meta{Noop: true}})
	if err != nil || !changed || len(r.applyFlags) != 1 || r.applyFlags[0] {
		t.Errorf("Converge(noop) = %v, %v with apply flags %v; want true, nil, [false]", changed, err, r.applyFlags)
	}
}

func TestConvergeStopsWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		r := &fake{check: func(context.Context, bool, int) (bool, error) { cancel(); return false, errors.New("down") }}
		if _, err := Converge(ctx, r, Env{Kind: "test", Name: "x", Meta: Meta{Retry: -1, Delay: time.Hour}}); !errors.Is(err, context.Canceled) {
			t.Errorf("Converge() = %v; want context.Canceled", err)
		}
	})
}
