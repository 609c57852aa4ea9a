package main

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awsapi"
	"kiln/internal/awsres"
	"kiln/internal/awssim"
	"kiln/internal/engine"
)

// The estate scenario: what a graph owns, against the simulator over HTTP.
//
//   - orphans: N owned instances, 10 of them removed from the graph, the
//     hub polling the graph → DescribeInstances calls per poll, and the
//     calls the orphan scan adds (instances come from the poll: none).
//
//   - destroy: N owned instances destroyed with AWS's throttling buckets on
//     (and kiln's limiter) → total time, calls and throttled calls, and the
//     ratio of TerminateInstances calls to the bound (one per 1,000 ids);
//     the time bound is what the instance bucket sets (it holds 1,000 and
//     refills 20/s, so up to 1,000 cost nothing).
//
//     KILN_BENCH_ESTATE_ORPHANS=1000,10000   sizes of the orphans case
//     KILN_BENCH_ESTATE_DESTROY=1000         size of the destroy case (0 skips it)
const (
	estateOrphansEnv = "KILN_BENCH_ESTATE_ORPHANS"
	estateDestroyEnv = "KILN_BENCH_ESTATE_DESTROY"
)

func estateBench(ctx context.Context, emit func(v any)) error {
	orphans, err := sizesFrom(estateOrphansEnv, []int{1000, 10000})
	if err != nil {
		return err
	}
	destroy, err := sizesFrom(estateDestroyEnv, []int{1000})
	if err != nil {
		return err
	}
	for _, n := range orphans {
		if n > 0 {
			if err := estateOrphans(ctx, n, emit); err != nil {
				return fmt.Errorf("orphans %d: %w", n, err)
			}
		}
	}
	for _, n := range destroy {
		if n > 0 {
			if err := estateDestroy(ctx, n, emit); err != nil {
				return fmt.Errorf("destroy %d: %w", n, err)
			}
		}
	}
	return nil
}

// ownedInstances launches n instances tagged as graph's web-0 .. web-(n-1).
func (w *ec2World) ownedInstances(ctx context.Context, graph string, n int) error {
	for done := 0; done < n; {
		k := min(1000, n-done)
		var out *ec2.RunInstancesOutput
		err := w.hub.Retry(ctx, func(ctx context.Context) error {
			var err error
			out, err = w.hub.EC2().RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(w.image),
				InstanceType: types.InstanceTypeT3Micro, MinCount: aws.Int32(int32(k)), MaxCount: aws.Int32(int32(k))})
			return err
		})
		if err != nil {
			return err
		}
		for i, in := range out.Instances {
			name := fmt.Sprintf("web-%d", done+i)
			if err := w.sim.SetTags(aws.ToString(in.InstanceId), map[string]string{
				awsapi.TagOwner: graph, awsapi.TagResource: "aws:ec2/" + name, awsapi.TagName: name,
			}); err != nil {
				return err
			}
		}
		done += k
	}
	return nil
}

// keptGraph is graph with web-0 .. web-(n-1) as vertices that build nothing.
func keptGraph(graph string, n int) (*engine.Graph, error) {
	specs := make([]*engine.Spec, n)
	for i := range n {
		specs[i] = &engine.Spec{Kind: "aws:ec2", Name: fmt.Sprintf("web-%d", i),
			Build: func(engine.Lookup) (engine.Resource, string, error) { return nil, "", nil }}
	}
	return engine.NewGraph(graph, specs)
}

type estateOrphanFigures struct {
	Scenario          string  `json:"scenario"`
	Case              string  `json:"case"`
	Instances         int     `json:"instances"`
	Orphans           int     `json:"orphans"`
	DescribePerPoll   float64 `json:"describe_instances_per_poll"`
	DescribePerScan   int     `json:"describe_instances_per_orphan_scan"`
	OtherCallsPerScan int     `json:"other_calls_per_orphan_scan"`
	ScanMS            float64 `json:"orphan_scan_ms"`
}

func estateOrphans(ctx context.Context, n int, emit func(any)) error {
	w, err := newEC2World(ctx, awssim.Options{TimeScale: 0.001}, false, time.Hour)
	if err != nil {
		return err
	}
	defer w.stop()
	const graph = "estate"
	if err := w.ownedInstances(ctx, graph, n); err != nil {
		return err
	}
	cancel := w.hub.Subscribe(awsapi.Owner{Graph: graph, Resource: "aws:ec2/web-0"}, time.Hour, func() {})
	defer cancel()
	g, err := keptGraph(graph, n-10)
	if err != nil {
		return err
	}
	const polls = 3
	w.sim.ResetCalls()
	for range polls {
		if err := w.hub.Poll(ctx, graph); err != nil {
			return err
		}
	}
	perPoll := float64(w.sim.Calls("DescribeInstances")) / polls
	w.sim.ResetCalls()
	start := time.Now()
	owned, err := awsres.NewEstate(w.hubs, nil).Owned(ctx, graph, []string{""})
	if err != nil {
		return err
	}
	found := engine.Orphans(g, owned)
	scan := time.Since(start)
	calls, _ := w.sim.CallCounts()
	other := 0
	for action, c := range calls {
		if action != "DescribeInstances" {
			other += c
		}
	}
	emit(estateOrphanFigures{Scenario: "estate", Case: fmt.Sprintf("orphans-%d", n), Instances: n, Orphans: len(found),
		DescribePerPoll: perPoll, DescribePerScan: calls["DescribeInstances"], OtherCallsPerScan: other,
		ScanMS: float64(scan.Microseconds()) / 1000})
	return nil
}

type estateDestroyFigures struct {
	Scenario   string  `json:"scenario"`
	Case       string  `json:"case"`
	Instances  int     `json:"instances"`
	TotalS     float64 `json:"total_s"`
	LowerBound float64 `json:"lower_bound_s"`
	// CallBound is the fewest TerminateInstances calls (1,000 ids each);
	// Ratio is the calls made over it.
	CallBound int            `json:"terminate_calls_bound"`
	Ratio     float64        `json:"ratio"`
	Calls     map[string]int `json:"calls"`
	Throttled map[string]int `json:"throttled"`
	Left      int            `json:"left"`
}

func estateDestroy(ctx context.Context, n int, emit func(any)) error {
	w, err := newEC2World(ctx, awssim.Options{TimeScale: 0.001, Throttle: true}, false, time.Hour)
	if err != nil {
		return err
	}
	defer w.stop()
	const graph = "estate"
	if err := w.ownedInstances(ctx, graph, n); err != nil {
		return err
	}
	est := awsres.NewEstate(w.hubs, nil)
	w.sim.ResetCalls()
	start := time.Now()
	owned, err := est.Owned(ctx, graph, []string{""})
	if err != nil {
		return err
	}
	if err := est.Destroy(ctx, owned); err != nil {
		return err
	}
	total := time.Since(start)
	calls, throttled := w.sim.CallCounts()
	left, err := est.Owned(ctx, graph, []string{""})
	if err != nil {
		return err
	}
	// The bound: one request per 1,000 ids (the request bucket holds 100),
	// 1,000 instance tokens at once and 20 a second after that; and the
	// listing, one DescribeInstances per 1,000 (bucket 100, 20/s).
	lower := max(0, float64(n-1000)/20)
	bound := (n + 999) / 1000
	emit(estateDestroyFigures{Scenario: "estate", Case: fmt.Sprintf("destroy-%d", n), Instances: n,
		TotalS: total.Seconds(), LowerBound: lower, CallBound: bound, Ratio: float64(calls["TerminateInstances"]) / float64(bound),
		Calls: calls, Throttled: throttled, Left: len(left)})
	return nil
}
