package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http/httptest"
	"os"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"golang.org/x/sync/errgroup"

	"kiln/internal/awsapi"
	"kiln/internal/awsres"
	"kiln/internal/awssim"
	"kiln/internal/engine"
)

// The dns scenario: N aws:route53_record resources in one zone, against
// the simulator's Route 53 over HTTP.
//
//   - cold: the N records from nothing, with Route 53's request limit on
//     (5 requests a second per account; kiln's client paces at 90 % of it)
//     → time to converge (every change INSYNC), calls per action, throttled
//     calls, and the ratio to the bound: the INSYNC delay (Durations.DNSChange,
//     scaled) plus the time the limit needs for the fewest calls the records
//     could cost (zone lookup, one listing per 300 records, one change per
//     500 UPSERTs, one GetChange per change) beyond its burst of 5.
//
//   - watch: the converged records at steady state → calls per poll
//     (goal: ceil((N+2)/300) listings, one per page, and nothing else).
//
//     KILN_BENCH_DNS_RECORDS=1000   sizes (records in the zone)
//     KILN_BENCH_DNS_SCALE=0.1      the simulator's time scale (INSYNC after 30 s × scale)
//     KILN_BENCH_DNS_WORKERS=0      the engine's workers (0: one per record; kiln run's default is 64)
const (
	dnsRecordsEnv = "KILN_BENCH_DNS_RECORDS"
	dnsScaleEnv   = "KILN_BENCH_DNS_SCALE"
	dnsWorkersEnv = "KILN_BENCH_DNS_WORKERS"
)

func dnsBench(ctx context.Context, emit func(v any)) error {
	sizes, err := sizesFrom(dnsRecordsEnv, []int{1000})
	if err != nil {
		return err
	}
	scale, err := floatFrom(dnsScaleEnv, 0.1)
	if err != nil {
		return err
	}
	workers, err := sizesFrom(dnsWorkersEnv, []int{0})
	if err != nil || len(workers) != 1 {
		return fmt.Errorf("%s: want one number (%v)", dnsWorkersEnv, err)
	}
	for _, n := range sizes {
		if n > 0 {
			if err := dnsRun(ctx, n, scale, workers[0], emit); err != nil {
				return fmt.Errorf("dns %d: %w", n, err)
			}
		}
	}
	return nil
}

type dnsColdFigures struct {
	Scenario  string         `json:"scenario"`
	Case      string         `json:"case"`
	Records   int            `json:"records"`
	Workers   int            `json:"workers"`
	TimeScale float64        `json:"time_scale"`
	Seconds   float64        `json:"seconds"`
	Bound     float64        `json:"bound_seconds"`
	Ratio     float64        `json:"ratio_to_bound"`
	Calls     map[string]int `json:"calls"`
	Throttled map[string]int `json:"throttled"`
	Naive     int            `json:"calls_one_record_at_a_time"`
}

type dnsWatchFigures struct {
	Scenario          string         `json:"scenario"`
	Case              string         `json:"case"`
	Records           int            `json:"records"`
	Polls             int            `json:"polls"`
	ListingsPerPoll   float64        `json:"list_resource_record_sets_per_poll"`
	OtherCallsPerPoll float64        `json:"other_calls_per_poll"`
	Goal              int            `json:"goal_listings_per_poll"`
	Calls             map[string]int `json:"calls"`
}

func dnsRun(ctx context.Context, n int, scale float64, workers int, emit func(any)) error {
	if workers <= 0 {
		workers = n
	}
	o := awssim.Options{TimeScale: scale, Throttle: true}
	sim := awssim.New(o)
	srv := httptest.NewServer(sim)
	defer srv.Close()
	ctx, cancel := context.WithCancel(ctx)
	var g errgroup.Group
	defer func() { cancel(); _ = g.Wait() }()
	const poll = 2 * time.Second
	cfg := awssim.ClientConfig(srv.URL)
	hubs := awsapi.NewHubs(awsapi.Options{Config: &cfg, Poll: poll, RateLimit: simRateLimit(o),
		Wait: awsapi.Backoff{Min: time.Duration(float64(time.Second) * scale), Max: time.Duration(float64(15*time.Second) * scale)}})
	g.Go(func() error { return sim.Run(ctx) })
	g.Go(func() error { return hubs.Run(ctx) })
	c, err := hubs.Route53(ctx)
	if err != nil {
		return err
	}
	if _, err := c.CreateHostedZone(ctx, &route53.CreateHostedZoneInput{Name: aws.String("bench.example"), CallerReference: aws.String("bench")}); err != nil {
		return err
	}
	specs := make([]*engine.Spec, n)
	for i := range n {
		name := fmt.Sprintf("h%d", i)
		specs[i] = &engine.Spec{Kind: "aws:route53_record", Name: name, Hash: name, Meta: engine.Meta{Retry: -1, Delay: time.Second},
			Build: func(engine.Lookup) (engine.Resource, string, error) {
				r := awsres.NewRecord(hubs)
				r.Zone, r.Record, r.Type = "bench.example", name+".bench.example", "A"
				r.Values = []string{fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)}
				return r, name, nil
			}}
	}
	graph, err := engine.NewGraph("dns", specs)
	if err != nil {
		return err
	}
	// Cold: from nothing to every record INSYNC, the request limit on.
	sim.ResetCalls()
	eng := engine.New(graph, engine.Options{Workers: workers})
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var eg errgroup.Group
	start := time.Now()
	eg.Go(func() error { return eng.Run(runCtx) })
	for {
		conv := 0
		for _, s := range eng.Status() {
			if s.State == engine.StateConverged {
				conv++
			}
		}
		if conv == n {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	secs := time.Since(start).Seconds()
	calls, throttled := sim.CallCounts()
	pages := int(math.Ceil(float64(n+2) / 300))
	fewest := 1 + 1 + int(math.Ceil(float64(n)/500))*2 // lookup, a listing of the empty zone, a change and a GetChange per 500
	bound := 30*scale + max(0, float64(fewest-5))/5
	emit(dnsColdFigures{Scenario: "dns", Case: "cold", Records: n, Workers: workers, TimeScale: scale, Seconds: round2(secs), Bound: round2(bound),
		Ratio: round2(secs / bound), Calls: calls, Throttled: throttled, Naive: 3 * n})

	// Watch: steady state, calls per poll.
	time.Sleep(poll + poll/2) // past the first polls of the watches
	sim.ResetCalls()
	const polls = 5
	time.Sleep(polls * poll)
	calls, _ = sim.CallCounts()
	other := 0
	for a, k := range calls {
		if a != "ListResourceRecordSets" {
			other += k
		}
	}
	emit(dnsWatchFigures{Scenario: "dns", Case: "watch", Records: n, Polls: polls,
		ListingsPerPoll: float64(calls["ListResourceRecordSets"]) / polls, OtherCallsPerPoll: float64(other) / polls, Goal: pages, Calls: calls})
	stop()
	if err := eg.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

func floatFrom(env string, def float64) (float64, error) {
	s := os.Getenv(env)
	if s == "" {
		return def, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", env, err)
	}
	return f, nil
}
