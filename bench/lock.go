package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/jackc/pgx/v5"

	"kiln/internal/awssim"
	"kiln/internal/cli"
	"kiln/internal/lock"
)

// lockBench measures kiln run --lock failover: two kiln run --lock
// processes (this binary re-executed as kiln) on one graph against an
// in-process simulator; each round SIGKILLs the holder at a random moment
// of its renewal cycle, stops the graph's instance by hand, and times the
// standby: the lock taken (its /metrics says kiln_lock_held 1), its first
// check (kiln_engine_checkapply_total > 0), and the repair (the
// simulator's StartInstances). A new standby is started for the next round.
//
//	KILN_BENCH_POSTGRES=postgres://...  the database (default KILN_TEST_POSTGRES, else the local server)
//	KILN_BENCH_LOCK_ROUNDS=10           kills
//	KILN_BENCH_LOCK_TTL=4s              --lock-ttl (default kiln's)
const (
	lockKilnEnv   = "KILN_BENCH_LOCK_KILN"
	lockRoundsEnv = "KILN_BENCH_LOCK_ROUNDS"
	lockTTLEnv    = "KILN_BENCH_LOCK_TTL"
)

// init makes this binary kiln itself when the bench re-executes it.
func init() {
	if os.Getenv(lockKilnEnv) == "" {
		return
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}

type lockFigures struct {
	Scenario  string  `json:"scenario"`
	Case      string  `json:"case"`
	Rounds    int     `json:"rounds"`
	TTLS      float64 `json:"ttl_s"`
	TakeP50   float64 `json:"takeover_p50_s"`
	TakeMax   float64 `json:"takeover_max_s"`
	CheckP50  float64 `json:"first_check_p50_s"`
	CheckP99  float64 `json:"first_check_p99_s"`
	CheckMax  float64 `json:"first_check_max_s"`
	RepairP50 float64 `json:"repair_p50_s"`
	RepairMax float64 `json:"repair_max_s"`
}

func lockBench(ctx context.Context, emit func(v any)) error {
	dsn := cmpStr(os.Getenv("KILN_BENCH_POSTGRES"), os.Getenv("KILN_TEST_POSTGRES"), "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	if c, err := pgx.Connect(ctx, dsn); err != nil {
		return fmt.Errorf("PostgreSQL (KILN_BENCH_POSTGRES): %w", err)
	} else {
		_ = c.Close(ctx)
	}
	rounds := 10
	if s := os.Getenv(lockRoundsEnv); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return fmt.Errorf("%s=%q: want a count", lockRoundsEnv, s)
		}
		rounds = n
	}
	ttl := lock.DefaultTTL
	if s := os.Getenv(lockTTLEnv); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%s: %w", lockTTLEnv, err)
		}
		ttl = d
	}
	dir, err := os.MkdirTemp("", "kiln-bench-lock")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	sv, err := awssim.NewServer("127.0.0.1:0", awssim.Options{TimeScale: 0.002})
	if err != nil {
		return err
	}
	sctx, stopSim := context.WithCancel(ctx)
	defer stopSim()
	go func() { _ = sv.Run(sctx) }()
	sim := sv.Sim
	c := ec2.NewFromConfig(awssim.ClientConfig(sv.URL(), "us-east-1"))
	img, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"}})
	if err != nil || len(img.Images) == 0 {
		return fmt.Errorf("describe images: %v", err)
	}
	name := fmt.Sprintf("bench-lock-%d", time.Now().UnixNano())
	graph := filepath.Join(dir, "graph.yaml")
	if err := os.WriteFile(graph, fmt.Appendf(nil, `name: %s
resources:
  - kind: aws:ec2
    name: web
    image: %s
    type: t3.micro
    meta: {poll: 1s}
`, name, aws.ToString(img.Images[0].ImageId)), 0o644); err != nil {
		return err
	}
	env := append(os.Environ(), lockKilnEnv+"=1",
		"AWS_ENDPOINT_URL="+sv.URL(), "AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID="+awssim.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+awssim.SecretAccessKey,
		"AWS_CONFIG_FILE="+filepath.Join(dir, "none"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "none"))
	start := func(i int) (*benchKiln, error) {
		return startBenchKiln(ctx, env, dir, i, "run", "--lock", dsn, "--lock-ttl", ttl.String(), graph)
	}

	holder, err := start(0)
	if err != nil {
		return err
	}
	defer func() { holder.kill() }()
	if err := until(ctx, 30*time.Second, func() bool { return holder.metric("kiln_lock_held") == "1" }); err != nil {
		return fmt.Errorf("first holder: %w", err)
	}
	var id string
	if err := until(ctx, 30*time.Second, func() bool {
		for _, in := range sim.Instances() {
			if in.Tags["kiln:owner"] == name && in.State == "running" {
				id = in.ID
				return true
			}
		}
		return false
	}); err != nil {
		return fmt.Errorf("instance: %w", err)
	}

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 10))
	var take, check, repair []float64
	for i := 1; i <= rounds; i++ {
		standby, err := start(i)
		if err != nil {
			return err
		}
		if err := until(ctx, 30*time.Second, func() bool {
			return standby.metric("kiln_lock_held") == "0" && standby.metric("kiln_lock_holder") == "1"
		}); err != nil {
			standby.kill()
			return fmt.Errorf("round %d: standby: %w", i, err)
		}
		// A random moment of the holder's renewal cycle.
		time.Sleep(time.Duration(rng.Int64N(int64(ttl / 4))))
		killed := time.Now()
		holder.kill()
		if err := sim.StopInstance(id); err != nil {
			standby.kill()
			return fmt.Errorf("round %d: stop by hand: %w", i, err)
		}
		starts := sim.Calls("StartInstances")
		var tTake, tCheck, tRepair time.Duration
		err = until(ctx, 60*time.Second, func() bool {
			now := time.Since(killed)
			if tRepair == 0 && sim.Calls("StartInstances") > starts {
				tRepair = now
			}
			if tTake == 0 || tCheck == 0 {
				m := standby.metrics()
				if tTake == 0 && m["kiln_lock_held"] == "1" {
					tTake = now
				}
				if tCheck == 0 && m["kiln_engine_checkapply_total"] != "" {
					tCheck = now
				}
			}
			return tTake > 0 && tCheck > 0 && tRepair > 0
		})
		if err != nil {
			standby.kill()
			return fmt.Errorf("round %d: takeover: %w", i, err)
		}
		fmt.Fprintf(os.Stderr, "bench: lock round %d: lock %v, first check %v, repair %v\n", i,
			tTake.Round(time.Millisecond), tCheck.Round(time.Millisecond), tRepair.Round(time.Millisecond))
		take = append(take, tTake.Seconds())
		check = append(check, tCheck.Seconds())
		repair = append(repair, tRepair.Seconds())
		holder = standby
	}
	for _, s := range [][]float64{take, check, repair} {
		slices.Sort(s)
	}
	emit(lockFigures{Scenario: "lock", Case: "failover", Rounds: rounds, TTLS: ttl.Seconds(),
		TakeP50: round3(pct(take, 0.5)), TakeMax: round3(take[len(take)-1]),
		CheckP50: round3(pct(check, 0.5)), CheckP99: round3(pct(check, 0.99)), CheckMax: round3(check[len(check)-1]),
		RepairP50: round3(pct(repair, 0.5)), RepairMax: round3(repair[len(repair)-1])})
	return nil
}

func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

func cmpStr(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// until polls ok every 10 ms for at most d.
func until(ctx context.Context, d time.Duration, ok func() bool) error {
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v", d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// benchKiln is one kiln process with --listen on a free port.
type benchKiln struct {
	cmd    *exec.Cmd
	url    string
	exited chan struct{}
	client *http.Client
}

func startBenchKiln(ctx context.Context, env []string, dir string, i int, args ...string) (*benchKiln, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	args = append(args[:1:1], append([]string{"--listen", addr}, args[1:]...)...)
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = env
	logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("kiln.%d.log", i)))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	k := &benchKiln{cmd: cmd, url: "http://" + addr, exited: make(chan struct{}), client: &http.Client{Timeout: time.Second}}
	go func() { _ = cmd.Wait(); close(k.exited) }()
	return k, nil
}

func (k *benchKiln) kill() {
	_ = k.cmd.Process.Signal(syscall.SIGKILL)
	<-k.exited
}

var metricLine = regexp.MustCompile(`^([a-z_]+)(\{[^}]*\})? (\S+)$`)

// metrics returns the first value of every series of /metrics, by name.
func (k *benchKiln) metrics() map[string]string {
	out := map[string]string{}
	resp, err := k.client.Get(k.url + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if m := metricLine.FindStringSubmatch(sc.Text()); m != nil {
			if _, ok := out[m[1]]; !ok {
				out[m[1]] = m[3]
			}
		}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return out
}

func (k *benchKiln) metric(name string) string { return k.metrics()[name] }
