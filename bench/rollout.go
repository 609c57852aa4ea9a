package main

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/sync/errgroup"

	"kiln/internal/awsapi"
	"kiln/internal/awsres"
	"kiln/internal/awssim"
	"kiln/internal/engine"
)

// The rollout scenario: aws:asg moves a group of N instances (default 100)
// to a new image with an instance refresh (MinHealthyPercentage 90,
// InstanceWarmup 60 s), on the simulator's manual clock at realistic
// durations (boot 15 s). The clock moves in steps of the hub's longest
// wait between looks (15 s), and kiln looks once per step, as it would in
// production with no pushed event to wake it.
//
// Figures: the refresh's simulated duration (from its StartTime and
// EndTime) and when kiln saw it end, against the lower bound that batch
// size and warm-up set: batches = ceil(N / (N - ceil(N·min%))) and each
// batch must boot and warm up before the next may start, so
// bound = batches × (boot + warm-up) (the warm-up-only bound, batches ×
// warm-up, is reported too); and the API calls the rollout used, per action.
//
//	KILN_BENCH_ROLLOUT=100   group size
const rolloutEnv = "KILN_BENCH_ROLLOUT"

type rolloutFigures struct {
	Scenario          string         `json:"scenario"`
	Case              string         `json:"case"`
	Instances         int            `json:"instances"`
	MinHealthyPercent int            `json:"min_healthy_percent"`
	WarmupS           float64        `json:"warmup_s"`
	BootS             float64        `json:"boot_s"`
	BatchSize         int            `json:"batch_size"`
	Batches           int            `json:"batches"`
	StepS             float64        `json:"clock_step_s"`
	RefreshS          float64        `json:"refresh_s"`        // simulated, StartTime → EndTime
	ObservedS         float64        `json:"observed_s"`       // simulated, CheckApply start → its return
	LowerBoundS       float64        `json:"lower_bound_s"`    // batches × (boot + warm-up)
	WarmupBoundS      float64        `json:"warmup_bound_s"`   // batches × warm-up
	RatioToBound      float64        `json:"ratio_to_bound"`   // refresh_s / lower_bound_s
	FewestHealthy     int            `json:"fewest_healthy"`   // warmed-up instances, sampled every step
	Replaced          int            `json:"replaced"`         // instances on the new version at the end
	Calls             int            `json:"api_calls"`        // every call during the rollout
	CallsPerAction    map[string]int `json:"calls_per_action"` // the same, by action
	WallS             float64        `json:"wall_s"`
}

func rolloutBench(ctx context.Context, emit func(v any)) error {
	n := 100
	if s := os.Getenv(rolloutEnv); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			return fmt.Errorf("%s=%q: want a group size", rolloutEnv, s)
		}
		n = v
	}
	f, err := rolloutCase(ctx, n)
	if err != nil {
		return err
	}
	emit(f)
	return nil
}

func rolloutCase(ctx context.Context, n int) (*rolloutFigures, error) {
	const (
		minHealthy = 90
		warmup     = 60 * time.Second
		step       = 15 * time.Second
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sim := awssim.New(awssim.Options{ManualClock: true, TimeScale: 1})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	cfg := awssim.ClientConfig(srv.URL)
	hubs := awsapi.NewHubs(awsapi.Options{
		Config:  &cfg,
		Wait:    awsapi.Backoff{Min: time.Millisecond, Max: 2 * time.Millisecond},
		Retries: awsapi.Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond},
	})
	var g errgroup.Group
	defer func() { cancel(); _ = g.Wait() }()
	g.Go(func() error { return sim.Run(ctx) })
	g.Go(func() error { return hubs.Run(ctx) })

	h, err := hubs.Hub(ctx, "")
	if err != nil {
		return nil, err
	}
	imgs, err := h.EC2().DescribeImages(ctx, &ec2.DescribeImagesInput{
		Owners:  []string{"amazon"},
		Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"al2023-ami-2023.*-kernel-6.1-x86_64"}}},
	})
	if err != nil || len(imgs.Images) < 2 {
		return nil, fmt.Errorf("find two images: %v", err)
	}
	slices.SortFunc(imgs.Images, func(a, b types.Image) int {
		return strings.Compare(aws.ToString(a.CreationDate), aws.ToString(b.CreationDate))
	})
	oldImage, newImage := aws.ToString(imgs.Images[0].ImageId), aws.ToString(imgs.Images[1].ImageId)

	mk := func(image string) *awsres.ASG {
		r := awsres.NewASG(hubs)
		r.Image, r.Type, r.Min, r.Max = image, "t3.micro", n, n
		mh := minHealthy
		r.Rollout = awsres.Rollout{MinHealthyPercent: &mh, Warmup: warmup}
		// The scenario moves the manual clock itself, looking at the refresh;
		// the check's own wait for capacity would wait on a clock that stands
		// still. The figures are the refresh's.
		noWait := time.Duration(0)
		r.WaitForCapacity = &noWait
		_ = r.Init(engine.Env{Graph: "bench", ID: "aws:asg/web", Kind: "aws:asg", Name: "web"})
		return r
	}
	if _, err := mk(oldImage).CheckApply(ctx, true); err != nil {
		return nil, fmt.Errorf("create group: %w", err)
	}
	for i := 0; ; i++ {
		if gi, ok := sim.AutoScalingGroup("web"); ok && gi.Healthy() == n {
			break
		}
		if i > 10000 {
			return nil, errors.New("group never warmed up")
		}
		sim.Advance(step)
	}

	sim.ResetCalls()
	start, wall := sim.Now(), time.Now()
	r := mk(newImage)
	var (
		wg     sync.WaitGroup
		runErr error
		done   = make(chan struct{})
	)
	wg.Go(func() {
		defer close(done)
		_, runErr = r.CheckApply(ctx, true)
	})
	isDone := func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	looks := func() int { return sim.Calls("DescribeInstanceRefreshes") }
	fewest := n
	for i := 0; !isDone(); i++ {
		if i > 100000 {
			return nil, errors.New("rollout never ended")
		}
		before := looks()
		sim.Advance(step)
		if gi, ok := sim.AutoScalingGroup("web"); ok {
			fewest = min(fewest, gi.Healthy())
		}
		for !isDone() && looks() == before {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-done:
			case <-time.After(100 * time.Microsecond):
			}
		}
	}
	wg.Wait()
	if runErr != nil {
		return nil, fmt.Errorf("roll out: %w", runErr)
	}
	observed := sim.Now().Sub(start)
	calls, _ := sim.CallCounts()
	total := 0
	for _, c := range calls {
		total += c
	}

	as, err := hubs.AutoScaling(ctx, "")
	if err != nil {
		return nil, err
	}
	out, err := as.DescribeInstanceRefreshes(ctx, &autoscaling.DescribeInstanceRefreshesInput{AutoScalingGroupName: aws.String("web"), MaxRecords: aws.Int32(1)})
	if err != nil || len(out.InstanceRefreshes) == 0 {
		return nil, fmt.Errorf("describe the refresh: %v", err)
	}
	rf := out.InstanceRefreshes[0]
	gi, _ := sim.AutoScalingGroup("web")
	replaced := 0
	for _, in := range gi.Instances {
		if in.LaunchTemplateVersion == r.Outputs()["version"] {
			replaced++
		}
	}
	boot := awssim.DefaultDurations().Boot
	batch := max(1, n-(n*minHealthy+99)/100)
	batches := (n + batch - 1) / batch
	bound := time.Duration(batches) * (boot + warmup)
	refresh := aws.ToTime(rf.EndTime).Sub(aws.ToTime(rf.StartTime))
	return &rolloutFigures{
		Scenario: "rollout", Case: fmt.Sprintf("asg-%d", n), Instances: n, MinHealthyPercent: minHealthy,
		WarmupS: warmup.Seconds(), BootS: boot.Seconds(), BatchSize: batch, Batches: batches, StepS: step.Seconds(),
		RefreshS: refresh.Seconds(), ObservedS: observed.Seconds(),
		LowerBoundS: bound.Seconds(), WarmupBoundS: (time.Duration(batches) * warmup).Seconds(),
		RatioToBound: float64(refresh) / float64(bound), FewestHealthy: fewest, Replaced: replaced,
		Calls: total, CallsPerAction: calls, WallS: time.Since(wall).Seconds(),
	}, nil
}
