package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/sync/errgroup"

	"kiln/internal/awssim"
)

// The awssim scenario: the simulator over real HTTP (loopback TCP) driven by
// the real SDK, so the figures include the SDK's serialization and signing.
//
//	describe-tag-filter         DescribeInstances with a tag filter over 10,000
//	                            instances (10 match), latency per SDK call
//	describe-tag-filter-server  the same request served in process: the
//	                            simulator's own time, without HTTP and SDK
//	describe-sweep              the poller's call: every instance by tag, pages of 1000
//	mixed                       many concurrent SDK clients, a mix of reads and writes
//	mixed-server                the same mix straight into the handler (no SDK, no TCP)
//	mixed-http                  the same mix as plain form POSTs over loopback HTTP (no SDK)
//
//	KILN_BENCH_AWSSIM_SECONDS=5   duration of the mixed workload
//	KILN_BENCH_AWSSIM_CLIENTS=64  concurrent clients of the mixed workload
const (
	awssimSecondsEnv = "KILN_BENCH_AWSSIM_SECONDS"
	awssimClientsEnv = "KILN_BENCH_AWSSIM_CLIENTS"
)

type awssimFigures struct {
	Scenario  string  `json:"scenario"`
	Case      string  `json:"case"`
	Instances int     `json:"instances"`
	Matches   int     `json:"matches,omitempty"`
	Calls     int     `json:"calls"`
	P50MS     float64 `json:"p50_ms"`
	P99MS     float64 `json:"p99_ms"`
	MaxMS     float64 `json:"max_ms"`
	Clients   int     `json:"clients,omitempty"`
	Seconds   float64 `json:"seconds,omitempty"`
	RPS       float64 `json:"requests_per_s,omitempty"`
	Errors    int64   `json:"errors,omitempty"`
	CPUs      int     `json:"cpus"`
	CPUSec    float64 `json:"cpu_s,omitempty"`
	RPCPU     float64 `json:"requests_per_cpu_s,omitempty"`
	TargetMS  float64 `json:"target_ms,omitempty"`
	TargetRPS float64 `json:"target_requests_per_s,omitempty"`
}

func awssimBench(ctx context.Context, emit func(v any)) error {
	sv, err := awssim.NewServer("127.0.0.1:0", awssim.Options{ManualClock: true})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return sv.Run(gctx) })
	err = awssimCases(gctx, sv, emit)
	cancel()
	if werr := g.Wait(); err == nil {
		err = werr
	}
	return err
}

func awssimCases(ctx context.Context, sv *awssim.Server, emit func(v any)) error {
	cfg := awssim.ClientConfig(sv.URL())
	c := ec2.NewFromConfig(cfg)
	imgs, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"},
		Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"al2023-ami-2023.*-x86_64"}}}})
	if err != nil || len(imgs.Images) == 0 {
		return fmt.Errorf("find base image: %w", err)
	}
	ami := imgs.Images[0].ImageId
	// 10,000 instances: 1,000 shards of 10, all owned by "bench".
	const shards, perShard = 1000, 10
	for i := range shards {
		_, err := c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: ami, InstanceType: types.InstanceTypeT3Micro,
			MinCount: aws.Int32(perShard), MaxCount: aws.Int32(perShard),
			TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: []types.Tag{
				{Key: aws.String("kiln:owner"), Value: aws.String("bench")},
				{Key: aws.String("shard"), Value: aws.String(strconv.Itoa(i))},
			}}}})
		if err != nil {
			return fmt.Errorf("launch shard %d: %w", i, err)
		}
	}
	sv.Sim.Advance(time.Minute) // all running
	n := shards * perShard

	// describe-tag-filter
	var lat []time.Duration
	matches := 0
	for i := range 300 {
		start := time.Now()
		out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []types.Filter{
			{Name: aws.String("tag:shard"), Values: []string{strconv.Itoa(i % shards)}},
			{Name: aws.String("instance-state-name"), Values: []string{"running"}},
		}})
		if err != nil {
			return fmt.Errorf("describe by tag: %w", err)
		}
		lat = append(lat, time.Since(start))
		matches = 0
		for _, r := range out.Reservations {
			matches += len(r.Instances)
		}
	}
	f := awssimFigures{Scenario: "awssim", Case: "describe-tag-filter", Instances: n, Matches: matches, CPUs: runtime.GOMAXPROCS(0), TargetMS: 20}
	f.setLatency(lat)
	emit(f)

	// describe-tag-filter-server: the same call straight into the handler.
	lat = lat[:0]
	for i := range 1000 {
		form := url.Values{"Action": {"DescribeInstances"}, "Version": {"2016-11-15"},
			"Filter.1.Name": {"tag:shard"}, "Filter.1.Value.1": {strconv.Itoa(i % shards)},
			"Filter.2.Name": {"instance-state-name"}, "Filter.2.Value.1": {"running"}}.Encode()
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		start := time.Now()
		sv.Sim.ServeHTTP(rec, req)
		lat = append(lat, time.Since(start))
		if rec.Code != http.StatusOK {
			return fmt.Errorf("describe in process: status %d", rec.Code)
		}
	}
	f = awssimFigures{Scenario: "awssim", Case: "describe-tag-filter-server", Instances: n, Matches: matches, CPUs: runtime.GOMAXPROCS(0), TargetMS: 20}
	f.setLatency(lat)
	emit(f)

	// describe-sweep: the poller's one tag-filtered, paginated listing.
	lat = lat[:0]
	for range 10 {
		start := time.Now()
		seen := 0
		p := ec2.NewDescribeInstancesPaginator(c, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(1000),
			Filters: []types.Filter{{Name: aws.String("tag:kiln:owner"), Values: []string{"bench"}}}})
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				return fmt.Errorf("sweep: %w", err)
			}
			for _, r := range out.Reservations {
				seen += len(r.Instances)
			}
		}
		lat = append(lat, time.Since(start))
		matches = seen
	}
	f = awssimFigures{Scenario: "awssim", Case: "describe-sweep", Instances: n, Matches: matches, CPUs: runtime.GOMAXPROCS(0)}
	f.setLatency(lat)
	emit(f)

	return awssimMixed(ctx, sv, cfg, ami, emit)
}

// awssimMixed runs many SDK clients against the simulator holding 10,000
// instances: 30% tag-filtered describes (10 matches), 30% describes by id,
// 10% CreateTags, 10% DescribeImages by name, 10% RunInstances followed by
// TerminateInstances, 10% StopInstances followed by StartInstances. Every
// SDK call counts as one request.
func awssimMixed(ctx context.Context, sv *awssim.Server, cfg aws.Config, ami *string, emit func(v any)) error {
	seconds := envFloat(awssimSecondsEnv, 5)
	clients := int(envFloat(awssimClientsEnv, 64))
	var ids []string
	for _, in := range sv.Sim.Instances() {
		ids = append(ids, in.ID)
	}
	var (
		calls, errs atomic.Int64
		mu          sync.Mutex
		lat         []time.Duration
	)
	deadline := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	g, gctx := errgroup.WithContext(ctx)
	start, cpu0 := time.Now(), cpuTime()
	for w := range clients {
		cl := ec2.NewFromConfig(cfg)
		g.Go(func() error {
			var mine []time.Duration
			for i := 0; time.Now().Before(deadline); i++ {
				id := ids[(w*7919+i*31)%len(ids)]
				t0 := time.Now()
				var err error
				switch i % 10 {
				case 0, 1, 2:
					_, err = cl.DescribeInstances(gctx, &ec2.DescribeInstancesInput{Filters: []types.Filter{{Name: aws.String("tag:shard"), Values: []string{strconv.Itoa((w*13 + i) % 1000)}}}})
				case 3, 4, 5:
					_, err = cl.DescribeInstances(gctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
				case 6:
					_, err = cl.CreateTags(gctx, &ec2.CreateTagsInput{Resources: []string{id}, Tags: []types.Tag{{Key: aws.String("seen"), Value: aws.String(strconv.Itoa(i))}}})
				case 7:
					_, err = cl.DescribeImages(gctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"},
						Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"al2023-ami-2023.*-x86_64"}}}})
				case 8:
					var r *ec2.RunInstancesOutput
					r, err = cl.RunInstances(gctx, &ec2.RunInstancesInput{ImageId: ami, MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
					if err == nil {
						_, err = cl.TerminateInstances(gctx, &ec2.TerminateInstancesInput{InstanceIds: []string{*r.Instances[0].InstanceId}})
						calls.Add(1)
					}
				case 9:
					_, err = cl.StopInstances(gctx, &ec2.StopInstancesInput{InstanceIds: []string{id}})
					if err == nil {
						sv.Sim.Advance(0)
						_, err = cl.StartInstances(gctx, &ec2.StartInstancesInput{InstanceIds: []string{id}})
						calls.Add(1)
					}
				}
				mine = append(mine, time.Since(t0))
				calls.Add(1)
				if err != nil {
					if gctx.Err() != nil {
						return gctx.Err()
					}
					errs.Add(1)
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	el, cpu := time.Since(start).Seconds(), (cpuTime() - cpu0).Seconds()
	f := awssimFigures{Scenario: "awssim", Case: "mixed", Instances: len(ids), Calls: int(calls.Load()), Clients: clients,
		Seconds: el, RPS: float64(calls.Load()) / el, Errors: errs.Load(), CPUs: runtime.GOMAXPROCS(0), TargetRPS: 5000,
		CPUSec: cpu, RPCPU: float64(calls.Load()) / cpu}
	f.setLatency(lat)
	f.Calls = int(calls.Load())
	emit(f)
	return awssimMixedServer(ctx, sv, ids, clients, seconds, emit)
}

// awssimMixedServer sends the same mix without the SDK: straight into the
// handler (mixed-server: the simulator's own throughput), and as plain form
// POSTs over loopback HTTP with keep-alive (mixed-http: the simulator as a
// server, without the SDK's signing and XML decoding on the client side).
func awssimMixedServer(ctx context.Context, sv *awssim.Server, ids []string, clients int, seconds float64, emit func(v any)) error {
	inProcess := func(body string) int {
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		sv.Sim.ServeHTTP(rec, req)
		return rec.Code
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	defer hc.CloseIdleConnections()
	overHTTP := func(body string) int {
		res, err := hc.Post(sv.URL(), "application/x-www-form-urlencoded", strings.NewReader(body))
		if err != nil {
			return 0
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	for _, c := range []struct {
		name string
		send func(string) int
	}{{"mixed-server", inProcess}, {"mixed-http", overHTTP}} {
		if err := awssimMix(ctx, sv, ids, clients, seconds, c.name, c.send, emit); err != nil {
			return err
		}
	}
	return nil
}

// awssimMix runs the mix of awssimMixed as raw Query forms through send.
func awssimMix(ctx context.Context, sv *awssim.Server, ids []string, clients int, seconds float64,
	name string, send func(body string) int, emit func(v any)) error {
	ami := ""
	for _, in := range sv.Sim.Instances() {
		ami = in.ImageID
		break
	}
	form := func(kv ...string) string {
		v := url.Values{"Version": {"2016-11-15"}}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v.Encode()
	}
	var calls, errs atomic.Int64
	deadline := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	g, _ := errgroup.WithContext(ctx)
	start, cpu0 := time.Now(), cpuTime()
	for w := range clients {
		g.Go(func() error {
			for i := 0; time.Now().Before(deadline); i++ {
				id := ids[(w*7919+i*31)%len(ids)]
				var forms []string
				switch i % 10 {
				case 0, 1, 2:
					forms = []string{form("Action", "DescribeInstances", "Filter.1.Name", "tag:shard", "Filter.1.Value.1", strconv.Itoa((w*13+i)%1000))}
				case 3, 4, 5:
					forms = []string{form("Action", "DescribeInstances", "InstanceId.1", id)}
				case 6:
					forms = []string{form("Action", "CreateTags", "ResourceId.1", id, "Tag.1.Key", "seen", "Tag.1.Value", strconv.Itoa(i))}
				case 7:
					forms = []string{form("Action", "DescribeImages", "Owner.1", "amazon", "Filter.1.Name", "name", "Filter.1.Value.1", "al2023-ami-2023.*-x86_64")}
				case 8:
					forms = []string{form("Action", "RunInstances", "ImageId", ami, "MinCount", "1", "MaxCount", "1")}
				case 9:
					forms = []string{form("Action", "StopInstances", "InstanceId.1", id), form("Action", "StartInstances", "InstanceId.1", id)}
				}
				for _, f := range forms {
					code := send(f)
					calls.Add(1)
					if code == 0 || code >= 500 {
						errs.Add(1)
					}
				}
			}
			return nil
		})
	}
	_ = g.Wait()
	el, cpu := time.Since(start).Seconds(), (cpuTime() - cpu0).Seconds()
	emit(awssimFigures{Scenario: "awssim", Case: name, Instances: len(ids), Calls: int(calls.Load()), Clients: clients,
		Seconds: el, RPS: float64(calls.Load()) / el, Errors: errs.Load(), CPUs: runtime.GOMAXPROCS(0), TargetRPS: 5000,
		CPUSec: cpu, RPCPU: float64(calls.Load()) / cpu})
	return nil
}

func (f *awssimFigures) setLatency(lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	f.Calls = len(lat)
	f.P50MS, f.P99MS, f.MaxMS = latencyMS(lat)
}

// latencyMS sorts lat (not empty) and returns its median, 99th percentile
// and maximum in milliseconds.
func latencyMS(lat []time.Duration) (p50, p99, maxMS float64) {
	slices.Sort(lat)
	return ms(lat[len(lat)/2]), ms(lat[len(lat)*99/100]), ms(lat[len(lat)-1])
}

func envFloat(name string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil && v > 0 {
		return v
	}
	return def
}
