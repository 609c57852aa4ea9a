package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"golang.org/x/sync/errgroup"

	"kiln/internal/audit"
	"kiln/internal/awsapi"
	"kiln/internal/awssim"
	"kiln/internal/bakery"
	"kiln/internal/events"
	"kiln/internal/hook"
	"kiln/internal/notify"
	"kiln/internal/project"
	"kiln/internal/store"
)

// The bake scenario: the bakery (store, River, pipeline, hook handler)
// against the simulator over HTTP, as kiln serve --sim runs it.
//
//   - overhead: a signed GitHub push to one project → its bake succeeded
//     (image available, tagged, builder terminated), against the lower
//     bound the simulator's state durations impose (boot + script + stop +
//     console + image, scaled). Target: ≤ lower bound + 5 % + 2 s (the
//     2 s at realistic scale: it is scaled here too). API calls per bake.
//
//   - intake: 1,000 concurrent signed GitHub deliveries over real HTTP to
//     the hook handler on a real store → accepted/s and p99 latency. The
//     senders are 1,000 kept-alive connections writing pre-signed requests
//     of a real push's size (7 KB), on the same 2 cores. Target ≥ 2,000/s,
//     p99 < 50 ms on 2 cores. Sent all at once (intake), the latency is
//     mostly the wait in line (1,000 / rate); intake-2000/s offers the same
//     1,000 at 2,000/s, the latency at the target rate; intake-audited
//     and intake-audited-2000/s are the same through the audit log's wrap,
//     as kiln serve mounts the handler; intake-http-floor
//     sends the burst to a handler that only reads the body and answers,
//     the part of the burst's latency that is HTTP on this machine.
//
//   - many: 100 projects baking at once with the simulator's throttling on
//     → all succeed, none fails on throttling; time and throttled calls;
//     and the delivery latency (p50, p99) of each bake's bake.succeeded
//     notification to a local receiver.
//
//     KILN_BENCH_BAKE_SCALE=0.05   time scale of the overhead case (0 skips it)
//     KILN_BENCH_BAKE_MANY=100     projects of the many case (0 skips it)
const (
	bakeScaleEnv = "KILN_BENCH_BAKE_SCALE"
	bakeManyEnv  = "KILN_BENCH_BAKE_MANY"
)

func bakeBench(ctx context.Context, emit func(v any)) error {
	scale := envFloat(bakeScaleEnv, 0.05)
	many, err := sizesFrom(bakeManyEnv, []int{100})
	if err != nil {
		return err
	}
	if os.Getenv(bakeScaleEnv) != "0" {
		if err := bakeOverhead(ctx, scale, emit); err != nil {
			return fmt.Errorf("overhead: %w", err)
		}
	}
	if err := bakeIntake(ctx, 1000, emit); err != nil {
		return fmt.Errorf("intake: %w", err)
	}
	for _, n := range many {
		if n > 0 {
			if err := bakeMany(ctx, n, emit); err != nil {
				return fmt.Errorf("many %d: %w", n, err)
			}
		}
	}
	return nil
}

const (
	bakeSecret     = "bench-webhook-secret"
	bakeScript     = "sleep 60" // a minute of simulated script
	bakeScriptTime = 60 * time.Second
)

// bakery is the simulator and a bakery.Service over a fresh store, served
// over HTTP as kiln serve does: /hooks/{project} and the events receiver
// the simulator pushes its state changes to.
type testBakery struct {
	sim  *awssim.Sim
	st   *store.Store
	svc  *bakery.Service
	url  string // the hooks and events server
	stop func()
}

func newBakery(ctx context.Context, o awssim.Options, so bakery.Options) (*testBakery, error) {
	return newBakeryWith(ctx, o, so, nil)
}

// newBakeryWith is newBakery whose service is told of its events by the
// notifier that notifier makes on the bakery's store (nil: none).
func newBakeryWith(ctx context.Context, o awssim.Options, so bakery.Options, notifier func(*store.Store) (bakery.Notifier, error)) (*testBakery, error) {
	dir, err := os.MkdirTemp("", "kiln-bench-bake-")
	if err != nil {
		return nil, err
	}
	b := &testBakery{}
	ctx, cancel := context.WithCancel(ctx)
	var g errgroup.Group
	var servers []*httptest.Server
	b.stop = func() {
		cancel()
		_ = g.Wait()
		for _, s := range servers {
			s.Close()
		}
		if b.st != nil {
			b.st.Close()
		}
		os.RemoveAll(dir)
	}
	var front http.Handler
	fs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { front.ServeHTTP(w, r) }))
	servers = append(servers, fs)
	b.url = fs.URL
	const key = "bench-events"
	o.Events = []awssim.EventTarget{{URL: fs.URL + events.Path, APIKey: key}}
	b.sim = awssim.New(o)
	ss := httptest.NewServer(b.sim)
	servers = append(servers, ss)
	cfg := awssim.ClientConfig(ss.URL)
	hubs := simHubs(&cfg, o.TimeScale, simRateLimit(o))
	if b.st, err = store.Open(ctx, filepath.Join(dir, "kiln.db")); err != nil {
		b.stop()
		return nil, err
	}
	if notifier != nil {
		if so.Notifier, err = notifier(b.st); err != nil {
			b.stop()
			return nil, err
		}
	}
	if b.svc, err = bakery.NewService(b.st, hubs, nil, so); err != nil {
		b.stop()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("POST /hooks/{project}", hook.NewHandler(b.svc.Queue(), nil))
	mux.Handle("POST "+events.Path, events.New(hubs, events.Options{APIKey: key}))
	front = mux
	g.Go(func() error { return b.sim.Run(ctx) })
	g.Go(func() error { return hubs.Run(ctx) })
	g.Go(func() error { return b.svc.Run(ctx) })
	return b, nil
}

// simHubs are AWS hubs on the simulator at cfg, its waits scaled with the
// simulator's clock as kiln serve --sim scales them.
func simHubs(cfg *aws.Config, scale float64, rl awsapi.RateLimit) *awsapi.Hubs {
	return awsapi.NewHubs(awsapi.Options{
		Config:    cfg,
		Wait:      awsapi.Backoff{Min: scaleDur(time.Second, scale, 20*time.Millisecond), Max: scaleDur(15*time.Second, scale, 200*time.Millisecond)},
		Poll:      scaleDur(60*time.Second, scale, time.Second),
		RateLimit: rl,
	})
}

func scaleDur(d time.Duration, scale float64, floor time.Duration) time.Duration {
	return max(min(time.Duration(float64(d)*scale), d), floor)
}

// project stores a project baking bakeScript from the newest AL2023 image;
// extra are more lines of its file ("copy_to: [us-west-2]").
func (b *testBakery) project(ctx context.Context, name string, extra ...string) error {
	p, err := project.Parse(name+".yaml", fmt.Appendf(nil, `name: %s
region: us-east-1
base: {owner: amazon, name: "al2023-ami-*", most_recent: true}
type: t3.small
branch: main
webhook_secret: %s
%sscript: |
  #!/bin/sh
  %s
`, name, bakeSecret, strings.Join(append(extra, ""), "\n"), bakeScript), nil)
	if err != nil {
		return err
	}
	_, err = project.Apply(ctx, b.st, p)
	return err
}

// push delivers a signed GitHub push to project and returns the status.
func (b *testBakery) push(ctx context.Context, c *http.Client, project, delivery string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.url+"/hooks/"+project, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", delivery)
	req.Header.Set("X-Hub-Signature-256", hook.Sign(body, bakeSecret))
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	// Read to the end, or the transport closes the connection instead of
	// keeping it for the next request.
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// wait returns bake id once it is over.
func (b *testBakery) wait(ctx context.Context, id int64) (*store.Bake, error) {
	ch, unsubscribe := b.svc.Subscribe(id)
	defer unsubscribe()
	tick := time.NewTicker(time.Second) // dropped updates
	defer tick.Stop()
	for {
		bk, err := b.st.Bake(ctx, id)
		if err != nil {
			return nil, err
		}
		if bk.State.Final() {
			return bk, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ch:
		case <-tick.C:
		}
	}
}

// pushBody is a GitHub push delivery of one commit with the fields and size
// (about 7 KB) of a real one: the parser must skip what it does not need.
func pushBody(commit string) []byte {
	body := fmt.Appendf(nil, `{"ref":"refs/heads/main","before":"%040x","after":%q,`, 1, commit)
	body = append(body, `"repository":{`...)
	body = append(body, `"id":1296269,"node_id":"MDEwOlJlcG9zaXRvcnkxMjk2MjY5","name":"web","full_name":"acme/web","private":true,`...)
	body = append(body, `"owner":`...)
	body = appendGitHubUser(body, "acme", 1)
	body = append(body, `,"html_url":"https://example.invalid/acme/web","description":"The web tier","fork":false,"url":"https://example.invalid/acme/web",`...)
	for _, u := range []string{"forks", "keys", "collaborators", "teams", "hooks", "issue_events", "events",
		"assignees", "branches", "tags", "blobs", "git_tags", "git_refs", "trees", "statuses", "languages",
		"stargazers", "contributors", "subscribers", "subscription", "commits", "git_commits", "comments",
		"issue_comment", "contents", "compare", "merges", "archive", "downloads", "issues", "pulls",
		"milestones", "notifications", "labels", "releases", "deployments"} {
		body = fmt.Appendf(body, `"%s_url":"https://api.example.invalid/repos/acme/web/%s{/id}",`, u, u)
	}
	body = append(body, `"created_at":1700000000,"updated_at":"2026-11-25T10:00:00Z","pushed_at":1764064800,`+
		`"git_url":"git://example.invalid/acme/web.git","ssh_url":"git@example.invalid:acme/web.git",`+
		`"clone_url":"https://example.invalid/acme/web.git","svn_url":"https://example.invalid/acme/web",`+
		`"homepage":null,"size":4821,"stargazers_count":12,"watchers_count":12,"language":"Go",`+
		`"has_issues":true,"has_projects":true,"has_downloads":true,"has_wiki":false,"has_pages":false,`+
		`"has_discussions":false,"forks_count":3,"mirror_url":null,"archived":false,"disabled":false,`+
		`"open_issues_count":7,"license":null,"allow_forking":true,"is_template":false,`+
		`"web_commit_signoff_required":false,"topics":["web","nginx"],"visibility":"private","forks":3,`+
		`"open_issues":7,"watchers":12,"default_branch":"main","stargazers":12,"master_branch":"main",`+
		`"organization":"acme","custom_properties":{}},`...)
	body = append(body, `"pusher":{"name":"ada","email":"ada@example.invalid"},"organization":{"login":"acme","id":1},"sender":`...)
	body = appendGitHubUser(body, "ada", 2)
	body = fmt.Appendf(body, `,"created":false,"deleted":false,"forced":false,"base_ref":null,`+
		`"compare":"https://example.invalid/acme/web/compare/%.12x...%.12s","commits":[`, 1, commit)
	body = appendGitHubCommit(body, commit)
	body = append(body, `],"head_commit":`...)
	body = appendGitHubCommit(body, commit)
	return append(body, '}')
}

func appendGitHubUser(b []byte, login string, id int) []byte {
	b = fmt.Appendf(b, `{"name":%q,"email":"%s@example.invalid","login":%q,"id":%d,"node_id":"MDQ6VXNlcjE=",`+
		`"avatar_url":"https://avatars.example.invalid/u/%d?v=4","gravatar_id":"",`, login, login, login, id, id)
	for _, u := range []string{"html", "followers", "following", "gists", "starred", "subscriptions",
		"organizations", "repos", "events", "received_events"} {
		b = fmt.Appendf(b, `"%s_url":"https://api.example.invalid/users/%s/%s",`, u, login, u)
	}
	return append(b, `"type":"User","user_view_type":"public","site_admin":false}`...)
}

func appendGitHubCommit(b []byte, commit string) []byte {
	return fmt.Appendf(b, `{"id":%q,"tree_id":"%040x","distinct":true,`+
		`"message":"nginx: enable gzip\n\nSmaller pages, and the health check follows the new path.",`+
		`"timestamp":"2026-11-25T10:00:00Z","url":"https://example.invalid/acme/web/commit/%s",`+
		`"author":{"name":"Ada","email":"ada@example.invalid","username":"ada"},`+
		`"committer":{"name":"Ada","email":"ada@example.invalid","username":"ada"},`+
		`"added":[],"removed":[],"modified":["web.yaml","nginx/gzip.conf"]}`, commit, 2, commit)
}

type bakeOverheadFigures struct {
	Scenario       string         `json:"scenario"`
	Case           string         `json:"case"`
	TimeScale      float64        `json:"time_scale"`
	Bakes          int            `json:"bakes"`
	LowerBoundMS   float64        `json:"lower_bound_ms"`
	TargetMS       float64        `json:"target_ms"`
	TookMS         []float64      `json:"took_ms"`
	WorstMS        float64        `json:"worst_ms"`
	Ratio          float64        `json:"ratio"`
	OverheadMS     float64        `json:"overhead_ms"`
	WithinTarget   bool           `json:"within_target"`
	CallsPerBake   float64        `json:"calls_per_bake"`
	CallsPerAction map[string]int `json:"calls_per_action"`
}

func bakeOverhead(ctx context.Context, scale float64, emit func(any)) error {
	d := awssim.DefaultDurations()
	b, err := newBakery(ctx, awssim.Options{TimeScale: scale, Durations: d}, bakery.Options{})
	if err != nil {
		return err
	}
	defer b.stop()
	if err := b.project(ctx, "web"); err != nil {
		return err
	}
	lower := time.Duration(float64(d.Boot+bakeScriptTime+d.Stop+d.Console+d.Image) * scale)
	f := bakeOverheadFigures{Scenario: "bake", Case: "overhead", TimeScale: scale, Bakes: 3,
		LowerBoundMS: ms(lower), TargetMS: ms(lower + lower/20 + time.Duration(float64(2*time.Second)*scale))}
	b.sim.ResetCalls()
	for i := range f.Bakes {
		start := time.Now()
		bk, err := b.bakeOnce(ctx, "web", fmt.Sprint("overhead-", i), i+1)
		if err != nil {
			return err
		}
		took := time.Since(start)
		f.TookMS = append(f.TookMS, ms(took))
		f.WorstMS = max(f.WorstMS, ms(took))
		fmt.Fprintf(os.Stderr, "bench: bake overhead: bake %d took %s (lower bound %s)\n", bk.ID, took.Round(time.Millisecond), lower)
	}
	f.Ratio = f.WorstMS / f.LowerBoundMS
	f.OverheadMS = f.WorstMS - f.LowerBoundMS
	f.WithinTarget = f.WorstMS <= f.TargetMS
	calls, _ := b.sim.CallCounts()
	f.CallsPerAction = map[string]int{}
	total := 0
	for k, v := range calls {
		total += v
		f.CallsPerAction[k] = v
	}
	f.CallsPerBake = float64(total) / float64(f.Bakes)
	emit(f)
	return nil
}

// bakeOnce pushes commit n to project and waits until its bake has
// succeeded (an error when it did not).
func (b *testBakery) bakeOnce(ctx context.Context, project, delivery string, n int) (*store.Bake, error) {
	status, err := b.push(ctx, &http.Client{}, project, delivery, pushBody(fmt.Sprintf("%040x", n)))
	if err != nil {
		return nil, err
	}
	if status != http.StatusAccepted {
		return nil, fmt.Errorf("push: status %d", status)
	}
	id, err := b.latest(ctx)
	if err != nil {
		return nil, err
	}
	bk, err := b.wait(ctx, id)
	if err != nil {
		return nil, err
	}
	if bk.State != store.Succeeded {
		return nil, fmt.Errorf("bake %d %s: %s", bk.ID, bk.State, bk.Reason)
	}
	return bk, nil
}

// latest is the newest bake's id.
func (b *testBakery) latest(ctx context.Context) (int64, error) {
	list, err := b.st.Bakes(ctx, store.BakeQuery{Limit: 1})
	if err != nil {
		return 0, err
	}
	if len(list) == 0 {
		return 0, errors.New("no bake")
	}
	return list[0].ID, nil
}

type bakeIntakeFigures struct {
	Scenario   string  `json:"scenario"`
	Case       string  `json:"case"`
	Deliveries int     `json:"deliveries"`
	Projects   int     `json:"projects"`
	Accepted   int     `json:"accepted"`
	Other      int     `json:"other"`
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"accepted_per_s"`
	P50MS      float64 `json:"p50_ms"`
	P99MS      float64 `json:"p99_ms"`
	MaxMS      float64 `json:"max_ms"`
	CPUs       int     `json:"gomaxprocs"`
}

// bakeIntake: n concurrent deliveries to 100 projects; the service does
// not run (no AWS work), as deliveries never wait for a bake anyway.
func bakeIntake(ctx context.Context, n int, emit func(any)) error {
	dir, err := os.MkdirTemp("", "kiln-bench-intake-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, err := store.Open(ctx, filepath.Join(dir, "kiln.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	rc, err := st.NewRiverClient(nil, nil)
	if err != nil {
		return err
	}
	b := &testBakery{st: st}
	const projects = 100
	for i := range projects {
		if err := b.project(ctx, fmt.Sprint("p", i)); err != nil {
			return err
		}
	}
	mux := http.NewServeMux()
	mux.Handle("POST /hooks/{project}", hook.NewHandler(hook.NewQueue(st, rc), nil))
	// The audited cases go through the audit log's wrap, as kiln serve
	// mounts the handler: each delivery also leaves its audit row.
	amux := http.NewServeMux()
	amux.Handle("POST /hooks/{project}", audit.New(st, nil).Wrap("bake.webhook", hook.NewHandler(hook.NewQueue(st, rc), nil)))
	// The floor case answers every delivery at once, without checking or
	// storing it: what the HTTP stack and the senders cost by themselves.
	var floor, audited atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if audited.Load() {
			amux.ServeHTTP(w, r)
			return
		}
		if !floor.Load() {
			mux.ServeHTTP(w, r)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"status":"queued","bake_id":1,"commit":"0000000000000000000000000000000000000000"}`+"\n")
	}))
	defer srv.Close()

	// The senders: n kept-alive connections writing requests signed in
	// advance, the way a load generator such as wrk does, so that the two
	// cores go to the server rather than to http.Client. Each connection
	// is its own sender, as n CI systems would be.
	senders := make([]*sender, n)
	for i := range senders {
		if senders[i], err = dialSender(srv.Listener.Addr().String()); err != nil {
			return err
		}
		defer senders[i].conn.Close()
	}

	// round delivers n pushes, all at once (every == 0) or one every every
	// (an open-loop offered rate), each from a sender of its own.
	round := func(tag string, every time.Duration) (lat []time.Duration, accepted int, took time.Duration, err error) {
		lat = make([]time.Duration, n)
		var ok atomic.Int64
		var first error
		var mu sync.Mutex
		var wg sync.WaitGroup
		gate := make(chan struct{})
		var start time.Time
		// Every request is built and signed before the gate opens.
		reqs := make([][]byte, n)
		for i := range reqs {
			reqs[i] = signedPush(srv.Listener.Addr().String(), fmt.Sprint("p", i%projects),
				fmt.Sprintf("%s-%d", tag, i), pushBody(fmt.Sprintf("%040x", i+1)))
		}
		for i, snd := range senders {
			req := reqs[i]
			wg.Go(func() {
				<-gate
				if every > 0 {
					time.Sleep(time.Until(start.Add(time.Duration(i) * every)))
				}
				t0 := time.Now()
				status, err := snd.do(req)
				lat[i] = time.Since(t0)
				if err != nil {
					mu.Lock()
					first = cmpErr(first, err)
					mu.Unlock()
				}
				if status == http.StatusAccepted {
					ok.Add(1)
				}
			})
		}
		start = time.Now()
		close(gate)
		wg.Wait()
		return lat, int(ok.Load()), time.Since(start), first
	}
	// Warm up: the server's connection goroutines, the SQLite page cache.
	if _, _, _, err := round("warm", 0); err != nil {
		return err
	}
	// intake: all n at once, so latency is mostly the wait in line;
	// intake-2000/s: n offered at the target rate, latency at that load;
	// intake-http-floor: all n at once to the bare handler.
	for _, c := range []struct {
		name           string
		every          time.Duration
		floor, audited bool
	}{
		{"intake", 0, false, false}, {"intake-2000/s", time.Second / 2000, false, false},
		{"intake-audited", 0, false, true}, {"intake-audited-2000/s", time.Second / 2000, false, true},
		{"intake-http-floor", 0, true, false},
	} {
		floor.Store(c.floor)
		audited.Store(c.audited)
		lat, accepted, took, err := round(c.name, c.every)
		if err != nil {
			return err
		}
		sorted := make([]float64, len(lat))
		for i, l := range lat {
			sorted[i] = ms(l)
		}
		slices.Sort(sorted)
		emit(bakeIntakeFigures{
			Scenario: "bake", Case: c.name, Deliveries: n, Projects: projects,
			Accepted: accepted, Other: n - accepted, Seconds: took.Seconds(),
			PerSecond: float64(accepted) / took.Seconds(),
			P50MS:     pct(sorted, 0.50), P99MS: pct(sorted, 0.99), MaxMS: sorted[len(sorted)-1],
			CPUs: runtime.GOMAXPROCS(0),
		})
	}
	return nil
}

// sender is one kept-alive HTTP/1.1 connection to the hook handler.
type sender struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialSender(addr string) (*sender, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &sender{conn: c, r: bufio.NewReader(c)}, nil
}

// signedPush is the whole HTTP request of a signed GitHub push delivery.
func signedPush(host, project, delivery string, body []byte) []byte {
	req := fmt.Appendf(nil, "POST /hooks/%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"+
		"Content-Length: %d\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: %s\r\nX-Hub-Signature-256: %s\r\n\r\n",
		project, host, len(body), delivery, hook.Sign(body, bakeSecret))
	return append(req, body...)
}

// do writes req and reads the whole answer, returning its status.
func (s *sender) do(req []byte) (int, error) {
	if _, err := s.conn.Write(req); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(s.r, nil)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

type bakeManyFigures struct {
	Scenario       string         `json:"scenario"`
	Case           string         `json:"case"`
	Projects       int            `json:"projects"`
	TimeScale      float64        `json:"time_scale"`
	Succeeded      int            `json:"succeeded"`
	Failed         int            `json:"failed"`
	FailedThrottle int            `json:"failed_on_throttling"`
	Seconds        float64        `json:"seconds"`
	Calls          int            `json:"calls"`
	Throttled      map[string]int `json:"throttled"`
	ThrottledTotal int            `json:"throttled_total"`
	// Notification delivery: from a bake's recorded end to its
	// bake.succeeded event's arrival at a local receiver (a notify:
	// target of every project), through River as kiln serve sends it.
	Notified    int     `json:"notified,omitempty"`
	NotifyP50MS float64 `json:"notify_p50_ms,omitempty"`
	NotifyP99MS float64 `json:"notify_p99_ms,omitempty"`
	NotifyMaxMS float64 `json:"notify_max_ms,omitempty"`
}

// notifyReceiver is a local notification target: when each bake's event
// arrived.
type notifyReceiver struct {
	mu  sync.Mutex
	got map[int64]time.Time
	all chan struct{} // closed once want events arrived
	n   int
}

func (nr *notifyReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	var e struct {
		Bake int64 `json:"bake"`
	}
	if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	nr.mu.Lock()
	defer nr.mu.Unlock()
	if _, ok := nr.got[e.Bake]; !ok {
		nr.got[e.Bake] = at
		if len(nr.got) == nr.n {
			close(nr.all)
		}
	}
}

// notifyLatency fills in f's delivery figures: each bake's event arrival
// after its recorded end, waiting up to a minute for the last.
func notifyLatency(ctx context.Context, b *testBakery, nr *notifyReceiver, ids []int64, f *bakeManyFigures) error {
	select {
	case <-nr.all:
	case <-time.After(time.Minute):
	case <-ctx.Done():
		return ctx.Err()
	}
	nr.mu.Lock()
	defer nr.mu.Unlock()
	var lat []float64
	for _, id := range ids {
		at, ok := nr.got[id]
		if !ok {
			continue
		}
		bk, err := b.st.Bake(ctx, id)
		if err != nil {
			return err
		}
		lat = append(lat, max(ms(at.Sub(bk.Finished)), 0))
	}
	f.Notified = len(lat)
	if len(lat) > 0 {
		slices.Sort(lat)
		f.NotifyP50MS, f.NotifyP99MS, f.NotifyMaxMS = pct(lat, 0.5), pct(lat, 0.99), lat[len(lat)-1]
	}
	return nil
}

func bakeMany(ctx context.Context, n int, emit func(any)) error {
	const scale = 0.01
	nr := &notifyReceiver{got: map[int64]time.Time{}, all: make(chan struct{}), n: n}
	target := httptest.NewServer(nr)
	defer target.Close()
	b, err := newBakeryWith(ctx, awssim.Options{TimeScale: scale, Durations: awssim.DefaultDurations(), Throttle: true},
		bakery.Options{Workers: n}, func(st *store.Store) (bakery.Notifier, error) {
			ins, err := st.NewRiverClient(nil, nil)
			if err != nil {
				return nil, err
			}
			return notify.New(st, ins, notify.Options{}), nil
		})
	if err != nil {
		return err
	}
	defer b.stop()
	for i := range n {
		if err := b.project(ctx, fmt.Sprint("many", i), fmt.Sprintf(`notify: [{url: "%s/events", events: [bake.succeeded]}]`, target.URL)); err != nil {
			return err
		}
	}
	b.sim.ResetCalls()
	start := time.Now()
	ids := make([]int64, n)
	for i := range n {
		res, err := b.svc.Trigger(ctx, fmt.Sprint("many", i), "", "")
		if err != nil {
			return err
		}
		ids[i] = res.BakeID
	}
	f := bakeManyFigures{Scenario: "bake", Case: "many", Projects: n, TimeScale: scale}
	if err := waitMany(ctx, b, ids, start, &f); err != nil {
		return err
	}
	if err := notifyLatency(ctx, b, nr, ids, &f); err != nil {
		return err
	}
	emit(f)
	return nil
}

// waitMany waits for every bake of ids, b.sim's calls counted since start,
// and fills in f's outcome and API figures.
func waitMany(ctx context.Context, b *testBakery, ids []int64, start time.Time, f *bakeManyFigures) error {
	var mu sync.Mutex
	var g errgroup.Group
	for _, id := range ids {
		g.Go(func() error {
			bk, err := b.wait(ctx, id)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			if bk.State == store.Succeeded {
				f.Succeeded++
				return nil
			}
			f.Failed++
			if strings.Contains(bk.Reason, "RequestLimitExceeded") || strings.Contains(bk.Reason, "Throttl") {
				f.FailedThrottle++
			}
			fmt.Fprintf(os.Stderr, "bench: %s: bake %d %s: %s\n", f.Case, bk.ID, bk.State, bk.Reason)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	f.Seconds = time.Since(start).Seconds()
	calls, throttled := b.sim.CallCounts()
	for _, v := range calls {
		f.Calls += v
	}
	f.Throttled = maps.Clone(throttled)
	for _, v := range throttled {
		f.ThrottledTotal += v
	}
	return nil
}
