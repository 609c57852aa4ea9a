package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"kiln/internal/awsapi"
	"kiln/internal/awssim"
	"kiln/internal/bakery"
	"kiln/internal/events"
	"kiln/internal/hook"
	"kiln/internal/store"
)

// The cluster scenario: two kiln serve servers (two Stores, two hook
// handlers, two bake services) on one database, as behind a load balancer.
//
//   - intake-2servers: 1,000 kept-alive connections, half to each server,
//     offer signed 7 KB GitHub pushes to 100 projects at 2,000/s for 5 s
//     (10,000 deliveries, open loop: latency counts from the moment each
//     was due) → accepted/s and p50/p99. On PostgreSQL, and side by side
//     the same two servers on one SQLite file, and one server on SQLite.
//     Target on PostgreSQL: ≥ 2,000/s sustained, p99 < 50 ms.
//   - many-2servers: 100 projects baking at once, triggered alternately on
//     the two servers, with the simulator's throttling on; each server's
//     rate limiter has half the account (--aws-share 0.5) → all succeed, 0
//     throttled calls.
//
// It needs PostgreSQL: KILN_BENCH_POSTGRES names the server (default the
// local one, user postgres); each case makes a database of its own and
// drops it. Without a server the scenario prints a skipped line.
//
//	KILN_BENCH_CLUSTER_RATE=2000     offered deliveries per second
//	KILN_BENCH_CLUSTER_SECONDS=5     for how long
//	KILN_BENCH_CLUSTER_MANY=100      projects of the many case (0 skips it)

const (
	clusterPGEnv      = "KILN_BENCH_POSTGRES"
	clusterRateEnv    = "KILN_BENCH_CLUSTER_RATE"
	clusterSecondsEnv = "KILN_BENCH_CLUSTER_SECONDS"
	clusterManyEnv    = "KILN_BENCH_CLUSTER_MANY"
	clusterPGDefault  = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
)

func clusterBench(ctx context.Context, emit func(v any)) error {
	server := os.Getenv(clusterPGEnv)
	if server == "" {
		server = clusterPGDefault
	}
	if err := pgPing(ctx, server); err != nil {
		emit(map[string]any{"scenario": "cluster", "case": "all", "skipped": "PostgreSQL unreachable (" + clusterPGEnv + "): " + err.Error()})
		return nil
	}
	rate := envFloat(clusterRateEnv, 2000)
	secs := envFloat(clusterSecondsEnv, 5)
	if rate*secs < 1 {
		secs = 0 // no intake cases
	}
	for _, c := range []struct {
		name    string
		pg      bool
		servers int
	}{{"intake-2servers-postgres", true, 2}, {"intake-2servers-sqlite", false, 2}, {"intake-1server-sqlite", false, 1}} {
		if secs == 0 {
			break
		}
		target, drop, err := clusterDB(ctx, server, c.pg)
		if err != nil {
			return err
		}
		err = clusterIntake(ctx, c.name, target, c.servers, rate, time.Duration(secs*float64(time.Second)), emit)
		drop()
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
	}
	many, err := sizesFrom(clusterManyEnv, []int{100})
	if err != nil {
		return err
	}
	for _, n := range many {
		if n <= 0 {
			continue
		}
		target, drop, err := clusterDB(ctx, server, true)
		if err != nil {
			return err
		}
		err = clusterMany(ctx, target, n, emit)
		drop()
		if err != nil {
			return fmt.Errorf("many-2servers %d: %w", n, err)
		}
	}
	return nil
}

func pgPing(ctx context.Context, dsn string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	return c.Close(ctx)
}

// clusterDB makes a fresh database: on the PostgreSQL server, or a SQLite
// file in a temporary directory. drop removes it.
func clusterDB(ctx context.Context, server string, pg bool) (target string, drop func(), err error) {
	if !pg {
		dir, err := os.MkdirTemp("", "kiln-bench-cluster-")
		if err != nil {
			return "", nil, err
		}
		return filepath.Join(dir, "kiln.db"), func() { os.RemoveAll(dir) }, nil
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "kiln_bench_" + hex.EncodeToString(b[:])
	exec := func(sql string) error {
		c, err := pgx.Connect(ctx, server)
		if err != nil {
			return err
		}
		defer c.Close(context.WithoutCancel(ctx))
		_, err = c.Exec(ctx, sql)
		return err
	}
	if err := exec("CREATE DATABASE " + name); err != nil {
		return "", nil, fmt.Errorf("create bench database: %w", err)
	}
	u, err := url.Parse(server)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	return u.String(), func() {
		if err := exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			fmt.Fprintf(os.Stderr, "bench: cluster: drop database %s: %v\n", name, err)
		}
	}, nil
}

// clusterIntake runs servers hook handlers, each on its own Store over
// target, and offers rate deliveries a second for d from 1,000 senders.
func clusterIntake(ctx context.Context, name, target string, servers int, rate float64, d time.Duration, emit func(any)) error {
	const conns, projects = 1000, 100
	var addrs []string
	var stores []*store.Store
	defer func() {
		for _, st := range stores {
			st.Close()
		}
	}()
	for i := range servers {
		st, err := store.Open(ctx, target)
		if err != nil {
			return err
		}
		stores = append(stores, st)
		rc, err := st.NewRiverClient(nil, nil)
		if err != nil {
			return err
		}
		if i == 0 {
			b := &testBakery{st: st}
			for p := range projects {
				if err := b.project(ctx, fmt.Sprint("p", p)); err != nil {
					return err
				}
			}
		}
		mux := http.NewServeMux()
		mux.Handle("POST /hooks/{project}", hook.NewHandler(hook.NewQueue(st, rc), nil))
		srv := httptest.NewServer(mux)
		defer srv.Close()
		addrs = append(addrs, srv.Listener.Addr().String())
	}
	senders := make([]*sender, conns)
	for i := range senders {
		s, err := dialSender(addrs[i%len(addrs)])
		if err != nil {
			return err
		}
		defer s.conn.Close()
		senders[i] = s
	}
	total := int(rate * d.Seconds())
	every := time.Duration(float64(time.Second) / rate)
	run := func(tag string, n int, every time.Duration) (lat []time.Duration, accepted int, took time.Duration, err error) {
		reqs := make([][]byte, n)
		for k := range reqs {
			reqs[k] = signedPush(addrs[(k%conns)%len(addrs)], fmt.Sprint("p", k%projects),
				fmt.Sprintf("%s-%d", tag, k), pushBody(fmt.Sprintf("%040x", k+1)))
		}
		lat = make([]time.Duration, n)
		var ok atomic.Int64
		var mu sync.Mutex
		var first error
		var wg sync.WaitGroup
		start := time.Now().Add(50 * time.Millisecond)
		for c, snd := range senders {
			wg.Go(func() {
				for k := c; k < n; k += conns {
					due := start.Add(time.Duration(k) * every)
					time.Sleep(time.Until(due))
					status, err := snd.do(reqs[k])
					lat[k] = time.Since(due) // from when it was due: no coordinated omission
					if err != nil {
						mu.Lock()
						first = cmpErr(first, err)
						mu.Unlock()
					}
					if status == http.StatusAccepted {
						ok.Add(1)
					}
				}
			})
		}
		wg.Wait()
		return lat, int(ok.Load()), time.Since(start), first
	}
	if _, _, _, err := run("warm", conns, 0); err != nil {
		return err
	}
	lat, accepted, took, err := run("sustained", total, every)
	if err != nil {
		return err
	}
	sorted := make([]float64, len(lat))
	for i, l := range lat {
		sorted[i] = ms(l)
	}
	slices.Sort(sorted)
	emit(clusterIntakeFigures{
		bakeIntakeFigures: bakeIntakeFigures{
			Scenario: "cluster", Case: name, Deliveries: total, Projects: projects,
			Accepted: accepted, Other: total - accepted, Seconds: took.Seconds(),
			PerSecond: float64(accepted) / took.Seconds(),
			P50MS:     pct(sorted, 0.50), P99MS: pct(sorted, 0.99), MaxMS: sorted[len(sorted)-1],
			CPUs: runtime.GOMAXPROCS(0),
		},
		Servers: servers, OfferedPerSecond: rate, Connections: conns,
	})
	return nil
}

type clusterIntakeFigures struct {
	bakeIntakeFigures
	Servers          int     `json:"servers"`
	OfferedPerSecond float64 `json:"offered_per_s"`
	Connections      int     `json:"connections"`
}

// clusterMany bakes n projects at once on two services over target, each
// with its own AWS clients (half the account's rate each) against one
// throttling simulator.
func clusterMany(ctx context.Context, target string, n int, emit func(any)) error {
	const scale = 0.01
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var front http.Handler
	fs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { front.ServeHTTP(w, r) }))
	defer fs.Close()
	const key = "bench-events"
	o := awssim.Options{TimeScale: scale, Durations: awssim.DefaultDurations(), Throttle: true,
		Events: []awssim.EventTarget{{URL: fs.URL + events.Path, APIKey: key}}}
	sim := awssim.New(o)
	ss := httptest.NewServer(sim)
	defer ss.Close()
	cfg := awssim.ClientConfig(ss.URL)
	var stores []*store.Store
	defer func() { // after the services have stopped
		for _, st := range stores {
			st.Close()
		}
	}()
	var g errgroup.Group
	defer func() { cancel(); _ = g.Wait() }()
	g.Go(func() error { return sim.Run(ctx) })
	var svcs []*bakery.Service
	var allHubs []*awsapi.Hubs
	for range 2 {
		st, err := store.Open(ctx, target)
		if err != nil {
			return err
		}
		stores = append(stores, st)
		hubs := simHubs(&cfg, scale, awsapi.RateLimit{Scale: 1, Share: 0.5})
		allHubs = append(allHubs, hubs)
		svc, err := bakery.NewService(st, hubs, nil, bakery.Options{Workers: n})
		if err != nil {
			return err
		}
		svcs = append(svcs, svc)
	}
	// The simulator's events go to the first server, as one events URL would.
	front = events.New(allHubs[0], events.Options{APIKey: key})
	b := &testBakery{sim: sim, st: stores[0], svc: svcs[0]}
	for i := range n {
		if err := b.project(ctx, fmt.Sprint("many", i)); err != nil {
			return err
		}
	}
	for i, svc := range svcs {
		g.Go(func() error { return allHubs[i].Run(ctx) })
		g.Go(func() error { return svc.Run(ctx) })
	}
	sim.ResetCalls()
	start := time.Now()
	ids := make([]int64, n)
	for i := range n {
		res, err := svcs[i%2].Trigger(ctx, fmt.Sprint("many", i), "", "")
		if err != nil {
			return err
		}
		ids[i] = res.BakeID
	}
	f := bakeManyFigures{Scenario: "cluster", Case: "many-2servers", Projects: n, TimeScale: scale}
	if err := waitMany(ctx, b, ids, start, &f); err != nil {
		return err
	}
	emit(f)
	return nil
}
