package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"strconv"
	"time"

	"kiln/internal/awssim"
	"kiln/internal/bakery"
	"kiln/internal/pipeline"
	"kiln/internal/project"
	"kiln/internal/store"
)

// The environments scenario: bake → staging → soak → production, through
// the bakery against the simulator over HTTP (as kiln serve --sim runs
// it). A signed GitHub push bakes an image; the bake's image goes to
// staging (2 instances), staging soaks, production (4 instances) follows
// automatically. Time is from the push until production's promotion has
// succeeded, against the lower bound AWS's durations set:
//
//	bake (boot + script + stop + console + image)
//	+ staging + soak + production,
//
// where a group's part is, for its first promotion (case "first": the
// group is created), one boot; for a later one (case "steady": an
// instance refresh), batches × (boot + warm-up), batches =
// ceil(N / (N − ceil(N·min%))). The simulator's durations are scaled by
// the time scale, the soak (kiln's own wait, real time) is not. The bake
// tests its image (tests:) before the promotion: the "test image" step's
// bound is a test instance's launch, its script and its power-off, and the
// console read (boot + test script + stop + console); the termination is
// asked for and not waited on. The bake's bound includes it. Figures: time,
// bound, overhead and ratio, each environment's share, the test step's
// time against its bound, API calls.
//
//	KILN_BENCH_ENV_SCALE=0.05   time scale (0 skips the scenario)
//	KILN_BENCH_ENV_SOAK=2s      production's soak
const (
	envScaleEnv = "KILN_BENCH_ENV_SCALE"
	envSoakEnv  = "KILN_BENCH_ENV_SOAK"
)

type envFigures struct {
	Scenario       string         `json:"scenario"`
	Case           string         `json:"case"`
	TimeScale      float64        `json:"time_scale"`
	SoakS          float64        `json:"soak_s"`
	BakeMS         float64        `json:"bake_ms"`       // push → bake succeeded
	TestMS         float64        `json:"test_ms"`       // the "test image" step
	TestBoundMS    float64        `json:"test_bound_ms"` // launch + script + stop + console
	TestOverheadMS float64        `json:"test_overhead_ms"`
	StagingMS      float64        `json:"staging_ms"`    // staging promotion created → succeeded
	ProductionMS   float64        `json:"production_ms"` // production promotion created → succeeded
	TookMS         float64        `json:"took_ms"`       // push → production succeeded
	LowerBoundMS   float64        `json:"lower_bound_ms"`
	OverheadMS     float64        `json:"overhead_ms"`
	Ratio          float64        `json:"ratio"`
	Calls          int            `json:"api_calls"`
	CallsPerAction map[string]int `json:"calls_per_action"`
}

const envBenchProject = `name: web
region: us-east-1
base: {owner: amazon, name: "al2023-ami-*", most_recent: true}
type: t3.small
branch: main
webhook_secret: %s
script: |
  #!/bin/sh
  %s
environments:
  - name: staging
    group: {type: t3.micro, min: 2, max: 2, rollout: {min_healthy_percent: 50, warmup: 30s}}
    config: {LOG_LEVEL: debug}
  - name: production
    promotion: auto
    soak: %s
    group: {type: t3.micro, min: 4, max: 4, rollout: {min_healthy_percent: 50, warmup: 30s}}
    config: {LOG_LEVEL: warn}
tests:
  script: |
    #!/bin/sh
    %s
`

func environmentsBench(ctx context.Context, emit func(v any)) error {
	scale := 0.05
	if s := os.Getenv(envScaleEnv); s != "" {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v < 0 {
			return fmt.Errorf("%s=%q: want a time scale", envScaleEnv, s)
		}
		scale = v
	}
	if scale == 0 {
		return nil
	}
	soak := 2 * time.Second
	if s := os.Getenv(envSoakEnv); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < time.Second || d%time.Second != 0 {
			return fmt.Errorf("%s=%q: want whole seconds, at least 1s", envSoakEnv, s)
		}
		soak = d
	}
	d := awssim.DefaultDurations()
	b, err := newBakery(ctx, awssim.Options{TimeScale: scale, Durations: d}, bakery.Options{})
	if err != nil {
		return err
	}
	defer b.stop()
	p, err := project.Parse("web.yaml", fmt.Appendf(nil, envBenchProject, bakeSecret, bakeScript, soak, testScript), nil)
	if err != nil {
		return err
	}
	if _, err := b.svc.ApplyProject(ctx, p); err != nil {
		return err
	}
	scaled := func(x time.Duration) time.Duration { return time.Duration(float64(x) * scale) }
	test := scaled(d.Boot + testScriptTime + d.Stop + d.Console)
	bake := scaled(d.Boot+bakeScriptTime+d.Stop+d.Console+d.Image) + test
	refresh := func(n, minPct int, warmup time.Duration) time.Duration {
		keep := int(math.Ceil(float64(n) * float64(minPct) / 100))
		batches := int(math.Ceil(float64(n) / float64(max(n-keep, 1))))
		return scaled(time.Duration(batches) * (d.Boot + warmup))
	}
	for i, cs := range []struct {
		name        string
		stage, prod time.Duration
	}{
		{"first", scaled(d.Boot), scaled(d.Boot)},
		{"steady", refresh(2, 50, 30*time.Second), refresh(4, 50, 30*time.Second)},
	} {
		b.sim.ResetCalls()
		start := time.Now()
		bk, err := b.bakeOnce(ctx, "web", fmt.Sprint("env-", i), i+1)
		if err != nil {
			return err
		}
		baked := time.Since(start)
		tested, err := stepTime(ctx, b.st, bk.ID, pipeline.StepTestImage)
		if err != nil {
			return err
		}
		st, err := waitPromotion(ctx, b.st, "staging", bk.ImageID)
		if err != nil {
			return err
		}
		pr, err := waitPromotion(ctx, b.st, "production", bk.ImageID)
		if err != nil {
			return err
		}
		took := time.Since(start)
		lower := bake + cs.stage + soak + cs.prod
		f := envFigures{Scenario: "environments", Case: cs.name, TimeScale: scale, SoakS: soak.Seconds(),
			BakeMS: ms(baked), TestMS: ms(tested), TestBoundMS: ms(test), TestOverheadMS: ms(tested - test),
			StagingMS: ms(st.Finished.Sub(st.Created)), ProductionMS: ms(pr.Finished.Sub(pr.Created)),
			TookMS: ms(took), LowerBoundMS: ms(lower), OverheadMS: ms(took - lower), Ratio: float64(took) / float64(lower),
			CallsPerAction: map[string]int{}}
		calls, _ := b.sim.CallCounts()
		for k, v := range calls {
			f.Calls += v
			f.CallsPerAction[k] = v
		}
		fmt.Fprintf(os.Stderr, "bench: environments %s: push → production %s (bound %s)\n", cs.name, took.Round(time.Millisecond), lower.Round(time.Millisecond))
		emit(f)
	}
	return nil
}

// testScript is the image test of the scenario: half a minute of
// simulated checks.
const (
	testScript     = "sleep 30"
	testScriptTime = 30 * time.Second
)

// stepTime is how long step of bake id took, from its records.
func stepTime(ctx context.Context, st *store.Store, id int64, step string) (time.Duration, error) {
	steps, err := st.Steps(ctx, id)
	if err != nil {
		return 0, err
	}
	for _, s := range steps {
		if s.Name == step && s.State == store.StepSucceeded {
			return s.Finished.Sub(s.Started), nil
		}
	}
	return 0, fmt.Errorf("bake %d has no succeeded step %q", id, step)
}

// waitPromotion returns env's promotion of image once it succeeded.
func waitPromotion(ctx context.Context, st *store.Store, env, image string) (*store.Promotion, error) {
	for {
		ps, err := st.Promotions(ctx, store.PromotionQuery{Project: "web", Env: env, ImageID: image, Limit: 1})
		if err != nil {
			return nil, err
		}
		if len(ps) == 1 && ps[0].State == store.PromotionFailed {
			return nil, fmt.Errorf("promotion %d to %s failed: %s", ps[0].ID, env, ps[0].Reason)
		}
		if len(ps) == 1 && ps[0].State == store.PromotionSucceeded {
			return &ps[0], nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}
