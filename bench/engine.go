package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"kiln/internal/engine"
)

// The engine scenario: graphs of noop resources built directly as engine
// Specs, in three shapes (independent, one chain, layered diamonds) and three
// sizes. Each case runs in a fresh subprocess (this binary re-executed with
// KILN_BENCH_ENGINE_CASE set) so its RSS is its own.
//
//	KILN_BENCH_ENGINE_IDLE=1s   shortens the idle-CPU window (default 10s)
//	KILN_BENCH_ENGINE_SIZES=1000,10000   picks the sizes
//	KILN_BENCH_ENGINE_STATIC=1  resources implement engine.Static (no Watch goroutine)
//	KILN_BENCH_ENGINE_HCL=1     with SIZES set, still run the HCL cases (engine_hcl.go)
//	KILN_BENCH_ENGINE_SHAPES=files   picks the shapes (independent, chain, diamonds, files)
//
// The files cases (engine_files.go) run file resources in a whole kiln
// process instead.
const (
	engineShapesEnv = "KILN_BENCH_ENGINE_SHAPES"
	engineCaseEnv   = "KILN_BENCH_ENGINE_CASE"
	engineIdleEnv   = "KILN_BENCH_ENGINE_IDLE"
	engineSizesEnv  = "KILN_BENCH_ENGINE_SIZES"
	engineStaticEnv = "KILN_BENCH_ENGINE_STATIC"
)

type engineFigures struct {
	Scenario          string  `json:"scenario"`
	Case              string  `json:"case"`
	Resources         int     `json:"resources"`
	Static            bool    `json:"static"`
	ConvergeMS        float64 `json:"converge_ms"`         // Run start to Run returning, Once
	LastCheckMS       float64 `json:"last_check_ms"`       // Run start to the last first-pass CheckApply
	ConvergeCPUMS     float64 `json:"converge_cpu_ms"`     // user+sys CPU of the Once run (robust on a busy machine)
	PeakRSSMB         float64 `json:"peak_rss_mb"`         // VmHWM of the case's process
	RSSPerResourceKB  float64 `json:"rss_per_resource_kb"` // (VmHWM - RSS before the graph) / resources
	GoroutinesPerRes  float64 `json:"goroutines_per_resource"`
	IdleSeconds       float64 `json:"idle_s"`
	IdleCPUMS         float64 `json:"idle_cpu_ms"` // user+sys CPU over the idle window, converged
	RecheckPerSecond  float64 `json:"recheck_per_s"`
	RecheckMS         float64 `json:"recheck_ms"` // every resource Changed at once until all re-checked
	GOMAXPROCS        int     `json:"gomaxprocs"`
	Workers           int     `json:"workers"`
	ConvergeOnceError string  `json:"error,omitempty"`
}

func engineBench(ctx context.Context, emit func(v any)) error {
	sizes := []int{1000, 10000, 100000}
	if s := os.Getenv(engineSizesEnv); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				return fmt.Errorf("parse %s: %w", engineSizesEnv, err)
			}
			sizes = append(sizes, n)
		}
	}
	shapes := []string{"independent", "chain", "diamonds", "files"}
	if s := os.Getenv(engineShapesEnv); s != "" {
		shapes = strings.Split(s, ",")
	}
	var errs []error
	for _, shape := range shapes {
		if shape == "files" {
			errs = append(errs, filesCases(ctx, emit))
			continue
		}
		for _, n := range sizes {
			name := fmt.Sprintf("%s/%d", shape, n)
			fmt.Fprintf(os.Stderr, "bench: engine %s\n", name)
			line, err := engineSubprocess(ctx, name)
			if err != nil {
				errs = append(errs, fmt.Errorf("case %s: %w", name, err))
				continue
			}
			emit(json.RawMessage(line))
		}
	}
	if os.Getenv(engineSizesEnv) == "" || os.Getenv("KILN_BENCH_ENGINE_HCL") == "1" {
		for _, name := range hclCases {
			fmt.Fprintf(os.Stderr, "bench: engine %s\n", name)
			line, err := engineSubprocess(ctx, name)
			if err != nil {
				errs = append(errs, fmt.Errorf("case %s: %w", name, err))
				continue
			}
			emit(json.RawMessage(line))
		}
	}
	return errors.Join(errs...)
}

// engineSubprocess re-executes this binary for one case and returns its JSON line.
func engineSubprocess(ctx context.Context, name string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), engineCaseEnv+"="+name)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("run subprocess: %w", err)
	}
	return bytes.TrimSpace(out), nil
}

// init runs the case when this process is a case subprocess.
func init() {
	name := os.Getenv(engineCaseEnv)
	if name == "" {
		return
	}
	var fig any
	var err error
	if strings.HasPrefix(name, "hcl-") {
		fig, err = hclCase(context.Background(), name)
	} else {
		fig, err = engineCase(context.Background(), name)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: engine %s: %v\n", name, err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(fig); err != nil {
		os.Exit(1)
	}
	os.Exit(0)
}

// benchNoop is the trivial resource: always converged; its Watch says Running
// and keeps the Events so the bench can send Changed to everyone at once.
type benchNoop struct {
	checks *atomic.Int64
	last   *atomic.Int64 // unix nanoseconds of the latest check
	ev     engine.Events
	mu     sync.Mutex
}

func (r *benchNoop) Watch(ctx context.Context, ev engine.Events) error {
	r.mu.Lock()
	r.ev = ev
	r.mu.Unlock()
	ev.Running()
	<-ctx.Done()
	return nil
}

func (r *benchNoop) CheckApply(context.Context, bool) (bool, error) {
	r.checks.Add(1)
	r.last.Store(time.Now().UnixNano())
	return true, nil
}

var (
	_ engine.Resource = (*benchNoop)(nil)
	_ engine.Static   = (*benchStatic)(nil)
)

// benchStatic is benchNoop without a Watch goroutine.
type benchStatic struct{ benchNoop }

func (*benchStatic) Static() bool { return true }

func engineGraph(shape string, n int, static bool, checks, last *atomic.Int64) (*engine.Graph, []*benchNoop, error) {
	specs := make([]*engine.Spec, n)
	res := make([]*benchNoop, n)
	names := make([]string, n)
	for i := range n {
		names[i] = "r" + strconv.Itoa(i)
	}
	ref := func(i int) string { return "noop/" + names[i] }
	for i := range n {
		var deps []string
		switch shape {
		case "independent":
		case "chain":
			if i > 0 {
				deps = []string{ref(i - 1)}
			}
		case "diamonds":
			// Diamonds of four, chained: top -> (left, right) -> bottom,
			// bottom = next diamond's top's dependency.
			switch i % 4 {
			case 0:
				if i > 0 {
					deps = []string{ref(i - 1)}
				}
			case 1, 2:
				deps = []string{ref(i - i%4)}
			case 3:
				deps = []string{ref(i - 2), ref(i - 1)}
			}
		default:
			return nil, nil, fmt.Errorf("unknown shape %q", shape)
		}
		var r engine.Resource
		if static {
			s := &benchStatic{benchNoop{checks: checks, last: last}}
			res[i], r = &s.benchNoop, s
		} else {
			res[i] = &benchNoop{checks: checks, last: last}
			r = res[i]
		}
		specs[i] = &engine.Spec{
			Kind: "noop", Name: names[i], DependsOn: deps, Hash: names[i],
			Build: func(engine.Lookup) (engine.Resource, string, error) { return r, "", nil },
		}
	}
	g, err := engine.NewGraph("bench", specs)
	return g, res, err
}

func engineCase(ctx context.Context, name string) (*engineFigures, error) {
	shape, nstr, _ := strings.Cut(name, "/")
	n, err := strconv.Atoi(nstr)
	if err != nil {
		return nil, fmt.Errorf("case %q: %w", name, err)
	}
	idle := 10 * time.Second
	if s := os.Getenv(engineIdleEnv); s != "" {
		if idle, err = time.ParseDuration(s); err != nil {
			return nil, fmt.Errorf("parse %s: %w", engineIdleEnv, err)
		}
	}
	static := os.Getenv(engineStaticEnv) == "1"
	fig := &engineFigures{
		Scenario: "engine", Case: name, Resources: n, Static: static,
		GOMAXPROCS: runtime.GOMAXPROCS(0), IdleSeconds: idle.Seconds(),
		Workers: max(4, 2*runtime.GOMAXPROCS(0)),
	}
	runtime.GC()
	base := procStatus("VmRSS")

	// Phase 1: converge with Once, timed.
	var checks, last atomic.Int64
	g, _, err := engineGraph(shape, n, static, &checks, &last)
	if err != nil {
		return nil, err
	}
	t0, cpu0 := time.Now(), cpuTime()
	err = engine.New(g, engine.Options{Once: true}).Run(ctx)
	fig.ConvergeMS = ms(time.Since(t0))
	fig.ConvergeCPUMS = ms(cpuTime() - cpu0)
	fig.LastCheckMS = ms(time.Duration(last.Load() - t0.UnixNano()))
	if err != nil {
		fig.ConvergeOnceError = err.Error()
	}
	g = nil
	runtime.GC()

	// Phase 2: a long-running engine: goroutines, idle CPU, re-check throughput.
	var checks2 atomic.Int64
	g, res, err := engineGraph(shape, n, static, &checks2, &last)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	e := engine.New(g, engine.Options{})
	var runErr error
	var rg sync.WaitGroup
	rg.Go(func() { runErr = e.Run(runCtx) })
	for checks2.Load() < int64(n) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // let the last status updates settle
	fig.GoroutinesPerRes = float64(runtime.NumGoroutine()) / float64(n)
	fig.PeakRSSMB = float64(procStatus("VmHWM")) / 1024
	fig.RSSPerResourceKB = float64(procStatus("VmHWM")-base) / float64(n)

	runtime.GC()
	c0 := cpuTime()
	time.Sleep(idle)
	fig.IdleCPUMS = ms(cpuTime() - c0)

	if !static {
		var evs []engine.Events
		for _, r := range res {
			r.mu.Lock()
			evs = append(evs, r.ev)
			r.mu.Unlock()
		}
		before := checks2.Load()
		t1 := time.Now()
		for _, ev := range evs {
			ev.Changed()
		}
		for checks2.Load() < before+int64(n) {
			time.Sleep(100 * time.Microsecond)
		}
		d := time.Since(t1)
		fig.RecheckMS = ms(d)
		fig.RecheckPerSecond = float64(n) / d.Seconds()
	}
	fig.PeakRSSMB = float64(procStatus("VmHWM")) / 1024
	cancel()
	rg.Wait()
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return nil, fmt.Errorf("run: %w", runErr)
	}
	return fig, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// procStatus reads a "kB" field of /proc/self/status (0 if unavailable).
func procStatus(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && k == field {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// cpuTime is this process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
