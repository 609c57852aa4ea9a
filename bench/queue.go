package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	"kiln/internal/awsapi"
	"kiln/internal/awssim"
	"kiln/internal/engine"
	"kiln/internal/eventqueue"
)

// The queue scenario: aws:ec2 woken by events from an SQS queue that an
// EventBridge rule fills (kiln run --events-queue), against the
// simulator over HTTP, with a 10-minute fallback poll so that only the
// queue can be fast.
//
//   - drift: 100 instances stopped by hand at once → time from each stop
//     request (and from the routing of its "stopped" event) to kiln's
//     corrective StartInstances.
//
//   - idle: the same converged graph left alone → API calls per minute, by
//     action (the goal: 3 long polls per queue, nothing else).
//
//     KILN_BENCH_QUEUE_N=100      instances
//     KILN_BENCH_QUEUE_IDLE=60s   the idle window (calls are given per minute)
const (
	queueNEnv    = "KILN_BENCH_QUEUE_N"
	queueIdleEnv = "KILN_BENCH_QUEUE_IDLE"
)

type queueDriftFigures struct {
	Scenario        string  `json:"scenario"`
	Case            string  `json:"case"`
	Instances       int     `json:"instances"`
	PollS           float64 `json:"poll_s"`
	Corrected       int     `json:"corrected"`
	P50MS           float64 `json:"p50_ms"`
	P99MS           float64 `json:"p99_ms"`
	MaxMS           float64 `json:"max_ms"`
	FromEventP50MS  float64 `json:"from_event_p50_ms"`
	FromEventP99MS  float64 `json:"from_event_p99_ms"`
	Receives        int     `json:"receive_message_calls"`
	DeleteBatches   int     `json:"delete_message_batch_calls"`
	MessagesRouted  int     `json:"stopped_events_routed"`
	SimStopSeconds  float64 `json:"sim_stop_s"`
	MeasuredFromTag string  `json:"from"`
}

type queueIdleFigures struct {
	Scenario      string         `json:"scenario"`
	Case          string         `json:"case"`
	Instances     int            `json:"instances"`
	WindowS       float64        `json:"window_s"`
	CallsPerMin   float64        `json:"calls_per_minute"`
	ReceivePerMin float64        `json:"receive_message_per_minute"`
	Calls         map[string]int `json:"calls"`
}

func queueBench(ctx context.Context, emit func(v any)) error {
	n := 100
	if s := os.Getenv(queueNEnv); s != "" {
		if _, err := fmt.Sscan(s, &n); err != nil || n < 1 {
			return fmt.Errorf("%s=%q: want a positive number", queueNEnv, s)
		}
	}
	idle := 60 * time.Second
	if s := os.Getenv(queueIdleEnv); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return fmt.Errorf("%s=%q: want a duration", queueIdleEnv, s)
		}
		idle = d
	}
	const poll = 10 * time.Minute
	const scale = 0.001 // a stop takes 30 ms
	w, err := newEC2World(ctx, awssim.Options{TimeScale: scale}, false, poll)
	if err != nil {
		return err
	}
	defer w.stop()
	cfg, err := w.hubs.Config(ctx)
	if err != nil {
		return err
	}
	q := awsapi.NewSQS(cfg, "")
	if _, err := eventqueue.Setup(ctx, q, awsapi.NewEventBridge(cfg, ""), eventqueue.Plan{Queue: "kiln-bench"}); err != nil {
		return err
	}
	cons, err := eventqueue.Open(ctx, q, "kiln-bench", recordStops{w}, eventqueue.Options{})
	if err != nil {
		return err
	}
	g, err := w.graph("queue", n)
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	eng := engine.New(g, engine.Options{Workers: n})
	var eg errgroup.Group
	eg.Go(func() error { return eng.Run(runCtx) })
	eg.Go(func() error { return cons.Run(runCtx) })
	defer func() { cancel(); _ = eg.Wait() }()

	// The launch events drain from the queue while the checks settle.
	stoppedAt, err := w.stopAll(ctx, n, time.Second, 60*time.Second)
	if err != nil {
		return err
	}
	w.mu.Lock()
	var lat, fromEvent []float64
	for id, at := range w.starts {
		if t0, ok := stoppedAt[id]; ok {
			lat = append(lat, float64(at.Sub(t0).Microseconds())/1000)
		}
		if t0, ok := w.stopped[id]; ok {
			fromEvent = append(fromEvent, float64(at.Sub(t0).Microseconds())/1000)
		}
	}
	routed := len(w.stopped)
	w.mu.Unlock()
	slices.Sort(lat)
	slices.Sort(fromEvent)
	f := queueDriftFigures{Scenario: "queue", Case: "drift", Instances: n, PollS: poll.Seconds(), Corrected: len(lat),
		Receives: w.sim.Calls("ReceiveMessage"), DeleteBatches: w.sim.Calls("DeleteMessageBatch"), MessagesRouted: routed,
		SimStopSeconds: 30 * scale, MeasuredFromTag: "stop request (p50/p99), stopped event routed (from_event)"}
	if len(lat) > 0 {
		f.P50MS, f.P99MS, f.MaxMS = pct(lat, 0.50), pct(lat, 0.99), lat[len(lat)-1]
	}
	if len(fromEvent) > 0 {
		f.FromEventP50MS, f.FromEventP99MS = pct(fromEvent, 0.50), pct(fromEvent, 0.99)
	}
	emit(f)

	// Idle: let the repair's events drain, then count every call.
	time.Sleep(2 * time.Second)
	w.sim.ResetCalls()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(idle):
	}
	calls, _ := w.sim.CallCounts()
	total := 0
	for _, c := range calls {
		total += c
	}
	perMin := time.Minute.Seconds() / idle.Seconds()
	emit(queueIdleFigures{Scenario: "queue", Case: "idle", Instances: n, WindowS: idle.Seconds(),
		CallsPerMin: float64(total) * perMin, ReceivePerMin: float64(calls["ReceiveMessage"]) * perMin, Calls: calls})
	return nil
}
