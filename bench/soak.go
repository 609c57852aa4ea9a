package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"kiln/internal/awsapi"
	"kiln/internal/awssim"
)

// The soak scenario: kiln run --lock, twice on one graph, against a
// simulator under the chaos fault profile, while drift storms stop or
// terminate a tenth of the instances by hand and a random kiln process is
// SIGKILLed (and started again) now and then. It prints one JSON line.
//
// Beside them, two kiln serve on one PostgreSQL database of their own
// bake 20 projects: a bake of a random project every 10 s and a promotion
// of one to its environment a minute, through the API of a random live
// server. The SIGKILL picks any of the four processes.
//
//	KILN_BENCH_SOAK_DURATION=10m   how long
//	KILN_BENCH_SOAK_INSTANCES=200  the graph's instances
//	KILN_BENCH_SOAK_STORM=30s      a drift storm this often
//	KILN_BENCH_SOAK_KILL=2m        a SIGKILL this often
//	KILN_BENCH_SOAK_SEED=0         the faults' seed (0: random, printed)
//	KILN_BENCH_SOAK_PROJECTS=20    the bakery's projects (0: no kiln serve)
//	KILN_BENCH_SOAK_BAKE=10s       a bake this often
//	KILN_BENCH_SOAK_PROMOTE=1m     a promotion this often
//	KILN_BENCH_POSTGRES=...        the lock's database (default the local server)
const (
	soakDurationEnv  = "KILN_BENCH_SOAK_DURATION"
	soakInstancesEnv = "KILN_BENCH_SOAK_INSTANCES"
	soakStormEnv     = "KILN_BENCH_SOAK_STORM"
	soakKillEnv      = "KILN_BENCH_SOAK_KILL"
	soakSeedEnv      = "KILN_BENCH_SOAK_SEED"
	soakProjectsEnv  = "KILN_BENCH_SOAK_PROJECTS"
	soakBakeEnv      = "KILN_BENCH_SOAK_BAKE"
	soakPromoteEnv   = "KILN_BENCH_SOAK_PROMOTE"
)

// soakFigures is the soak's JSON line.
type soakFigures struct {
	Scenario          string   `json:"scenario"`
	DurationS         float64  `json:"duration_s"`
	Bakes             *int     `json:"bakes"`
	BakesFinalPct     *float64 `json:"bakes_final_pct"`
	ImagesExtra       *int     `json:"images_extra"`
	BuildersLeaked    *int     `json:"builders_leaked"`
	InstancesDup      int      `json:"instances_duplicate"`
	DriftRepairs      int      `json:"drift_repairs"`
	DriftRepairedPct  float64  `json:"drift_repaired_pct"`
	DriftP50MS        float64  `json:"drift_p50_ms"`
	DriftP99MS        float64  `json:"drift_p99_ms"`
	PromotionsFinalPc *float64 `json:"promotions_final_pct"`
	Kills             int      `json:"kills"`
	Panics            int      `json:"panics"`
	Instances         int      `json:"instances"`
	Seed              uint64   `json:"seed"`
	Faults            any      `json:"faults"`
	Partial           string   `json:"partial,omitempty"`
	BakesSucceeded    int      `json:"bakes_succeeded"`
	Promotions        int      `json:"promotions"`
	PromotionsRefused int      `json:"promotions_refused"`
}

// soakConfig is what a soak runs; soakBench reads it from the environment.
type soakConfig struct {
	dsn       string
	duration  time.Duration
	instances int
	storm     time.Duration
	kill      time.Duration
	seed      uint64
	procs     int // GOMAXPROCS of each kiln process (0: Go's default)
	projects  int // the bakery's projects (0: no kiln serve)
	bake      time.Duration
	promote   time.Duration
}

func soakBench(ctx context.Context, emit func(v any)) error {
	cfg := soakConfig{
		dsn:       cmpStr(os.Getenv("KILN_BENCH_POSTGRES"), os.Getenv("KILN_TEST_POSTGRES"), clusterPGDefault),
		duration:  envDuration(soakDurationEnv, 10*time.Minute),
		instances: int(envFloat(soakInstancesEnv, 200)),
		storm:     envDuration(soakStormEnv, 30*time.Second),
		kill:      envDuration(soakKillEnv, 2*time.Minute),
		seed:      uint64(envFloat(soakSeedEnv, 0)),
		projects:  int(envFloat(soakProjectsEnv, 20)),
		bake:      envDuration(soakBakeEnv, 10*time.Second),
		promote:   envDuration(soakPromoteEnv, time.Minute),
	}
	f, err := soak(ctx, cfg)
	if err != nil {
		return err
	}
	emit(f)
	return nil
}

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil && d > 0 {
		return d
	}
	return def
}

// drift is one instance stopped or terminated by hand, and when kiln had
// it running again.
type drift struct {
	resource string
	id       string // the instance changed by hand
	at       time.Time
	repaired time.Duration // 0: not yet
}

func soak(ctx context.Context, cfg soakConfig) (soakFigures, error) {
	var f soakFigures
	if c, err := pgx.Connect(ctx, cfg.dsn); err != nil {
		return f, fmt.Errorf("PostgreSQL (KILN_BENCH_POSTGRES): %w", err)
	} else {
		_ = c.Close(ctx)
	}
	seed := cfg.seed
	for seed == 0 {
		seed = rand.Uint64()
	}
	chaos, err := awssim.NamedProfile("chaos")
	if err != nil {
		return f, err
	}
	chaos.Seed = seed
	dir, err := os.MkdirTemp("", "kiln-bench-soak")
	if err != nil {
		return f, err
	}
	defer os.RemoveAll(dir)

	sv, err := awssim.NewServer("127.0.0.1:0", awssim.Options{TimeScale: 0.01, Faults: chaos,
		Durations: awssim.Durations{TerminatedVisible: 1000 * time.Hour}})
	if err != nil {
		return f, err
	}
	sctx, stopSim := context.WithCancel(ctx)
	defer stopSim()
	go func() { _ = sv.Run(sctx) }()
	sim := sv.Sim

	name := fmt.Sprintf("soak-%d", time.Now().UnixNano())
	var g bytes.Buffer
	fmt.Fprintf(&g, "name: %s\nresources:\n", name)
	for i := range cfg.instances {
		fmt.Fprintf(&g, "  - kind: aws:ec2\n    name: web-%d\n    image: ami-000f627752e462816\n    type: t3.micro\n    meta: {poll: 5s, retry: -1, delay: 1s}\n", i)
	}
	graph := filepath.Join(dir, "graph.yaml")
	if err := os.WriteFile(graph, g.Bytes(), 0o644); err != nil {
		return f, err
	}
	env := append(os.Environ(), lockKilnEnv+"=1", "KILN_TOKEN="+soakToken,
		"AWS_ENDPOINT_URL="+sv.URL(), "AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID="+awssim.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+awssim.SecretAccessKey,
		"AWS_CONFIG_FILE="+filepath.Join(dir, "none"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "none"))
	if cfg.procs > 0 {
		env = append(env, fmt.Sprintf("GOMAXPROCS=%d", cfg.procs))
	}
	// The bakery's database: one of its own, dropped at the end.
	bk := &soakBakery{bakes: map[int64]bool{}, client: &http.Client{Timeout: 10 * time.Second}}
	if cfg.projects > 0 {
		target, drop, err := clusterDB(ctx, cfg.dsn, true)
		if err != nil {
			return f, err
		}
		defer drop()
		bk.target = target
	}
	logN := 0
	// procs[0:2] run the graph, procs[2:4] serve the bakery.
	start := func(i int) (*benchKiln, error) {
		logN++
		if i >= 2 {
			return startBenchKiln(ctx, env, dir, logN, serveArgs(bk.target)...)
		}
		return startBenchKiln(ctx, env, dir, logN, "run", "--lock", cfg.dsn, graph)
	}
	procs := make([]*benchKiln, 2)
	if cfg.projects > 0 {
		procs = make([]*benchKiln, 4)
	}
	bk.servers = func() []*benchKiln { return procs[2:] }
	for i := range procs {
		if procs[i], err = start(i); err != nil {
			return f, err
		}
	}
	defer func() {
		for _, p := range procs {
			p.kill()
		}
	}()
	rng := rand.New(rand.NewPCG(seed, 27))
	if cfg.projects > 0 {
		if err := bk.apply(ctx, rng, cfg.projects); err != nil {
			return f, err
		}
	}

	// live maps each resource to its instances that are not terminated
	// (nor going).
	live := func() map[string][]awssim.InstanceInfo {
		out := map[string][]awssim.InstanceInfo{}
		for _, in := range sim.Instances() {
			if in.Tags[awsapi.TagOwner] != name || in.State == awssim.StateTerminated || in.State == awssim.StateShuttingDown {
				continue
			}
			r := in.Tags[awsapi.TagResource]
			out[r] = append(out[r], in)
		}
		return out
	}
	converged := func() bool {
		l := live()
		if len(l) != cfg.instances {
			return false
		}
		for _, ins := range l {
			if len(ins) != 1 || ins[0].State != awssim.StateRunning {
				return false
			}
		}
		return true
	}
	fmt.Fprintf(os.Stderr, "bench: soak: %d instances, seed %d, for %v\n", cfg.instances, seed, cfg.duration)
	if err := until(ctx, 5*time.Minute, converged); err != nil {
		return f, fmt.Errorf("first convergence: %w", err)
	}

	began := time.Now()
	var drifts []*drift
	dup := map[string]bool{}
	unnamed := map[string]bool{} // instance ids seen live and unnamed
	nextStorm, nextKill := began.Add(cfg.storm), began.Add(cfg.kill)
	nextBake, nextPromote := began, began.Add(cfg.promote)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	check := func() {
		l := live()
		// Unnamed instances ("") are a batch's, between its launch and
		// their naming. One that goes away unnamed (kiln terminated it as
		// an extra) was a duplicate launch; one still unnamed at the end
		// too (counted there).
		now := map[string]bool{}
		for r, ins := range l {
			if r != "" && len(ins) > 1 {
				dup[r] = true
			}
			for _, in := range ins {
				now[in.ID] = r != ""
				if r == "" {
					unnamed[in.ID] = true
				}
			}
		}
		for id := range unnamed {
			if named, ok := now[id]; !ok || named {
				delete(unnamed, id)
				if !ok {
					dup["extra "+id] = true
				}
			}
		}
		for _, d := range drifts {
			if d.repaired == 0 && len(l[d.resource]) == 1 && l[d.resource][0].State == awssim.StateRunning {
				d.repaired = time.Since(d.at)
			}
		}
	}
	for time.Since(began) < cfg.duration {
		select {
		case <-ctx.Done():
			return f, ctx.Err()
		case <-tick.C:
		}
		check()
		now := time.Now()
		if now.After(nextStorm) {
			nextStorm = now.Add(cfg.storm)
			var running []awssim.InstanceInfo
			for r, ins := range live() {
				if r != "" && len(ins) == 1 && ins[0].State == awssim.StateRunning {
					running = append(running, ins[0])
				}
			}
			rng.Shuffle(len(running), func(i, j int) { running[i], running[j] = running[j], running[i] })
			for _, in := range running[:max(1, cfg.instances/10)] {
				var err error
				if rng.IntN(2) == 0 {
					err = sim.StopInstance(in.ID)
				} else {
					err = sim.TerminateInstance(in.ID)
				}
				if err == nil {
					drifts = append(drifts, &drift{resource: in.Tags[awsapi.TagResource], id: in.ID, at: time.Now()})
				}
			}
		}
		if cfg.projects > 0 && now.After(nextBake) {
			nextBake = now.Add(cfg.bake)
			bk.bake(ctx, rng)
		}
		if cfg.projects > 0 && now.After(nextPromote) {
			nextPromote = now.Add(cfg.promote)
			bk.promote(ctx, rng)
		}
		if now.After(nextKill) {
			nextKill = now.Add(cfg.kill)
			i := rng.IntN(len(procs))
			procs[i].kill()
			f.Kills++
			if procs[i], err = start(i); err != nil {
				return f, err
			}
		}
	}
	// The last storm's repairs: as long as a repair may take.
	_ = until(ctx, 2*time.Minute, func() bool {
		check()
		return !slices.ContainsFunc(drifts, func(d *drift) bool { return d.repaired == 0 })
	})
	check()
	// An instance still unnamed once kiln has had the time to name it is
	// an extra: launched and never given to a resource.
	_ = until(ctx, 30*time.Second, func() bool { check(); return len(live()[""]) == 0 })
	for _, in := range live()[""] {
		dup["unnamed "+in.ID] = true
	}
	// Every bake and promotion over: as long as one may take, a server's
	// lease run out included.
	var sf soakServeFigures
	if cfg.projects > 0 {
		for deadline := time.Now().Add(3 * time.Minute); ; {
			var done bool
			if sf, done, err = bk.measure(ctx, sim); err != nil {
				return f, err
			}
			if done || time.Now().After(deadline) {
				break
			}
			select {
			case <-ctx.Done():
				return f, ctx.Err()
			case <-time.After(time.Second):
			}
		}
	}

	var lat []float64
	for _, d := range drifts {
		if d.repaired > 0 {
			lat = append(lat, float64(d.repaired.Milliseconds()))
		}
	}
	slices.Sort(lat)
	f = soakFigures{Scenario: "soak", DurationS: round3(time.Since(began).Seconds()), Kills: f.Kills,
		InstancesDup: len(dup), DriftRepairs: len(lat), Instances: cfg.instances, Seed: seed, Faults: sim.FaultStats(),
		Promotions: sf.promotions, PromotionsRefused: bk.refused, BakesSucceeded: sf.bakesSucceeded}
	if cfg.projects > 0 {
		f.Bakes, f.ImagesExtra, f.BuildersLeaked = &sf.bakes, &sf.imagesExtra, &sf.buildersLeaked
		f.BakesFinalPct, f.PromotionsFinalPc = pctOf(sf.bakesFinal, sf.bakes), pctOf(sf.promoFin, sf.promotions)
	} else {
		f.Partial = "no kiln serve (" + soakProjectsEnv + "=0): no bakes nor promotions"
	}
	if len(drifts) > 0 {
		f.DriftRepairedPct = round3(100 * float64(len(lat)) / float64(len(drifts)))
	}
	if len(lat) > 0 {
		f.DriftP50MS, f.DriftP99MS = pct(lat, 0.5), pct(lat, 0.99)
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "kiln.*.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		f.Panics += strings.Count(string(b), "panic:") + strings.Count(string(b), "msg=\"resource panicked\"")
	}
	return f, nil
}
