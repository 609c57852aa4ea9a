package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/sync/errgroup"

	"kiln/internal/awsapi"
	"kiln/internal/awsres"
	"kiln/internal/awssim"
	"kiln/internal/config"
	"kiln/internal/engine"
)

// The accounts case of bench ec2 (KILN_BENCH_EC2_CASES=accounts): the
// cold case's N instances spread evenly over 4 accounts × 2 regions, with
// AWS's throttling buckets on. Every account and region has its own
// buckets (and kiln its own hub, rate limiter and batcher for each), so
// the bound is one account-region's for N/8 instances: about an eighth
// of the time one account and region takes (the cold case's bound).

var benchAccounts = []string{"", "210987654321", "333333333333", "444444444444"} // "" the starting account

var benchRegions = []string{"us-east-1", "us-west-2"}

type ec2AccountsFigures struct {
	Scenario  string  `json:"scenario"`
	Case      string  `json:"case"`
	Instances int     `json:"instances"`
	Worlds    int     `json:"account_regions"`
	RunningS  float64 `json:"running_s"`
	NamedS    float64 `json:"named_s"`
	// BoundS: the cold case's bounds (RunInstances and CreateTags
	// buckets, plus pending→running) for N/8 instances in one
	// account-region; OneAccountBoundS the same for all N in one.
	BoundS           float64        `json:"bound_s"`
	OneAccountBoundS float64        `json:"one_account_bound_s"`
	Ratio            float64        `json:"ratio"`
	Duplicates       int            `json:"duplicates"`
	Throttled        int            `json:"throttled"`
	Calls            map[string]int `json:"calls"`
}

func ec2Accounts(ctx context.Context, n int, emit func(any)) error {
	o := awssim.Options{TimeScale: 1, Throttle: true, Accounts: benchAccounts[1:]}
	sim := awssim.New(o)
	srv := httptest.NewServer(sim)
	defer srv.Close()
	cfg := awssim.ClientConfig(srv.URL)
	hubs := awsapi.NewHubs(awsapi.Options{Config: &cfg, Poll: time.Hour, RateLimit: simRateLimit(o)})
	ctx, cancel := context.WithCancel(ctx)
	var g errgroup.Group
	defer func() { cancel(); _ = g.Wait() }()
	g.Go(func() error { return sim.Run(ctx) })
	g.Go(func() error { return hubs.Run(ctx) })
	images := map[string]string{}
	for _, region := range benchRegions {
		h, err := hubs.Hub(ctx, region)
		if err != nil {
			return err
		}
		out, err := h.EC2().DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"},
			Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"al2023-ami-2023.*-kernel-6.1-x86_64"}}}})
		if err != nil || len(out.Images) == 0 {
			return fmt.Errorf("describe images in %s: %v", region, err)
		}
		images[region] = aws.ToString(out.Images[0].ImageId)
	}
	specs := make([]*engine.Spec, n)
	for i := range n {
		name := fmt.Sprintf("web-%d", i)
		acct, region := benchAccounts[i%len(benchAccounts)], benchRegions[(i/len(benchAccounts))%len(benchRegions)]
		specs[i] = &engine.Spec{Kind: "aws:ec2", Name: name, Hash: name, Meta: engine.Meta{Retry: -1, Delay: time.Second},
			Build: func(engine.Lookup) (engine.Resource, string, error) {
				r := awsres.NewInstance(hubs)
				if acct != "" {
					r.UseAccount(config.Account{Name: "acct-" + acct, RoleARN: "arn:aws:iam::" + acct + ":role/kiln"})
				}
				r.Region, r.Image, r.Type = region, images[region], "t3.micro"
				return r, name, nil
			}}
	}
	gr, err := engine.NewGraph("accounts", specs)
	if err != nil {
		return err
	}
	sim.ResetCalls()
	start := time.Now()
	eng := engine.New(gr, engine.Options{Workers: n})
	g.Go(func() error { return eng.Run(ctx) })
	count := func(ok func(awssim.InstanceInfo) bool) (int, int, error) {
		match, all := 0, 0
		for _, acct := range benchAccounts {
			home := sim
			if acct != "" {
				var err error
				if home, err = sim.Account(acct); err != nil {
					return 0, 0, err
				}
			}
			for _, region := range benchRegions {
				w, err := home.Region(region)
				if err != nil {
					return 0, 0, err
				}
				for _, in := range w.Instances() {
					if in.State != "terminated" {
						all++
					}
					if ok(in) {
						match++
					}
				}
			}
		}
		return match, all, nil
	}
	wait := func(ok func(awssim.InstanceInfo) bool) (float64, error) {
		deadline := time.Now().Add(10 * time.Minute)
		for {
			m, _, err := count(ok)
			if err != nil {
				return 0, err
			}
			if m >= n {
				return time.Since(start).Seconds(), nil
			}
			if time.Now().After(deadline) {
				return 0, fmt.Errorf("%d of %d after 10 minutes", m, n)
			}
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	runningS, err := wait(func(in awssim.InstanceInfo) bool { return in.State == "running" })
	if err != nil {
		return fmt.Errorf("running: %w", err)
	}
	namedS, err := wait(func(in awssim.InstanceInfo) bool { return in.Tags[awsapi.TagResource] != "" })
	if err != nil {
		return fmt.Errorf("named: %w", err)
	}
	_, all, err := count(func(awssim.InstanceInfo) bool { return false })
	if err != nil {
		return err
	}
	calls, throttled := sim.CallCounts()
	total := 0
	for _, v := range throttled {
		total += v
	}
	worlds := len(benchAccounts) * len(benchRegions)
	size := awsapi.Options{}.Batch.LaunchSize
	if h, err := hubs.Hub(ctx, ""); err == nil {
		size = h.Options().Batch.LaunchSize
	}
	boot := awssim.DefaultDurations().Boot.Seconds() * o.TimeScale
	bound := func(n int) float64 {
		batches := float64((n + size - 1) / size)
		run := max(bucketTime(batches, 5, 2), bucketTime(float64(n), 1000, 2)) + boot
		return max(run, bucketTime(float64(n), 100, 10))
	}
	b := bound((n + worlds - 1) / worlds)
	emit(ec2AccountsFigures{Scenario: "ec2", Case: fmt.Sprintf("accounts-%d", n), Instances: n, Worlds: worlds,
		RunningS: runningS, NamedS: namedS, BoundS: b, OneAccountBoundS: bound(n), Ratio: max(runningS, namedS) / max(b, 1e-9),
		Duplicates: max(all-n, 0), Throttled: total, Calls: calls})
	return nil
}
