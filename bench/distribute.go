package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"kiln/internal/awssim"
	"kiln/internal/bakery"
)

// The distribute scenario: a bake that copies its image to three regions
// and shares it with an account in all four, through the bakery against
// the simulator over HTTP (the copies are CopyImage calls signed for each
// destination region, each region a world of its own).
//
//   - copy3: a signed push → the bake succeeded with its image available
//     in us-east-1 and copied, available and shared in us-west-2,
//     eu-west-1 and ap-southeast-2; against the lower bound of the
//     simulator's durations (boot + script + stop + console + image, then
//     one copy: the copies run at once), scaled. Target as the bake
//     scenario's: ≤ lower bound + 5 % + 2 s (scaled). API calls per bake,
//     in all, per action, and per region added.
//
//     KILN_BENCH_DISTRIBUTE_SCALE=0.05   time scale (0 skips the scenario)
const distributeScaleEnv = "KILN_BENCH_DISTRIBUTE_SCALE"

var distributeRegions = []string{"us-west-2", "eu-west-1", "ap-southeast-2"}

type distributeFigures struct {
	bakeOverheadFigures
	Regions         []string `json:"copy_to"`
	PlainCalls      int      `json:"calls_plain_bake"`
	CallsPerRegion  float64  `json:"calls_per_added_region"`
	ImagesPerRegion int      `json:"images_per_region"`
}

func distributeBench(ctx context.Context, emit func(v any)) error {
	if os.Getenv(distributeScaleEnv) == "0" {
		return nil
	}
	scale := envFloat(distributeScaleEnv, 0.05)
	d := awssim.DefaultDurations()
	b, err := newBakery(ctx, awssim.Options{TimeScale: scale, Durations: d}, bakery.Options{})
	if err != nil {
		return err
	}
	defer b.stop()
	if err := b.project(ctx, "web", "copy_to: ["+strings.Join(distributeRegions, ", ")+"]", "share_with: ['210987654321']", "keep: 100"); err != nil {
		return err
	}
	// One bake without copies first: the calls the copies add are the
	// difference.
	if err := b.project(ctx, "plain"); err != nil {
		return err
	}
	b.sim.ResetCalls()
	if err := distributeBake(ctx, b, "plain", "plain-0", 0); err != nil {
		return err
	}
	plain := b.sim.Calls("")
	lower := time.Duration(float64(d.Boot+bakeScriptTime+d.Stop+d.Console+d.Image+d.Copy) * scale)
	f := distributeFigures{Regions: distributeRegions}
	f.bakeOverheadFigures = bakeOverheadFigures{Scenario: "distribute", Case: "copy3", TimeScale: scale, Bakes: 3,
		LowerBoundMS: ms(lower), TargetMS: ms(lower + lower/20 + time.Duration(float64(2*time.Second)*scale))}
	b.sim.ResetCalls()
	for i := range f.Bakes {
		start := time.Now()
		if err := distributeBake(ctx, b, "web", fmt.Sprint("distribute-", i), i+1); err != nil {
			return err
		}
		took := time.Since(start)
		f.TookMS = append(f.TookMS, ms(took))
		f.WorstMS = max(f.WorstMS, ms(took))
		fmt.Fprintf(os.Stderr, "bench: distribute: bake took %s (lower bound %s)\n", took.Round(time.Millisecond), lower)
	}
	f.Ratio = f.WorstMS / f.LowerBoundMS
	f.OverheadMS = f.WorstMS - f.LowerBoundMS
	f.WithinTarget = f.WorstMS <= f.TargetMS
	calls, _ := b.sim.CallCounts()
	f.CallsPerAction = calls
	total := 0
	for _, v := range calls {
		total += v
	}
	f.CallsPerBake = float64(total) / float64(f.Bakes)
	f.PlainCalls = plain
	f.CallsPerRegion = (f.CallsPerBake - float64(plain)) / float64(len(distributeRegions))
	f.ImagesPerRegion = f.Bakes
	emit(f)
	return nil
}

// distributeBake pushes commit n of project and waits until its bake
// succeeded, with an image in every region the project names.
func distributeBake(ctx context.Context, b *testBakery, project, delivery string, n int) error {
	bk, err := b.bakeOnce(ctx, project, delivery, n+1)
	if err != nil {
		return err
	}
	imgs, err := b.st.BakeImages(ctx, bk.ID)
	if err != nil {
		return err
	}
	want := 1
	if project != "plain" {
		want += len(distributeRegions)
	}
	if len(imgs) != want {
		return fmt.Errorf("bake %d: images in %d regions; want %d", bk.ID, len(imgs), want)
	}
	return nil
}
