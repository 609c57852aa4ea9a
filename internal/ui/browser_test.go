package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/chromedp/chromedp"

	"kiln/internal/awsapi"
	"kiln/internal/awsres"
	"kiln/internal/awssim"
	"kiln/internal/bakery"
	"kiln/internal/config"
	"kiln/internal/engine"
	"kiln/internal/pipeline"
	"kiln/internal/project"
	"kiln/internal/resources"
	"kiln/internal/store"
	"kiln/internal/testsupport"
	"kiln/internal/web"
)

// One headless chromium serves every browser test of the package; each
// test opens its own tab in its own browser context (fresh cookies).
var (
	browser     context.Context // nil when chromium is absent
	browserSkip string
)

func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// moduleRoot is read before any test changes directory.
var moduleRoot, _ = filepath.Abs(filepath.Join("..", ".."))

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	path := chromiumPath()
	if path == "" {
		if os.Getenv("CI") != "" {
			fmt.Fprintln(os.Stderr, "ui: chromium is not installed, and CI is set: the browser tests must run (.ci/run installs it)")
			return 1
		}
		browserSkip = "chromium is not installed: browser tests skipped (apt-get install chromium; with CI set they fail instead)"
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "kiln-ui-chromium-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	actx, acancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
	)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		fmt.Fprintf(os.Stderr, "ui: start chromium: %v\n", err)
		return 1
	}
	browser = bctx
	return m.Run()
}

// tab opens a tab in a fresh browser context, closed at the end of the test.
func tab(t *testing.T) context.Context {
	t.Helper()
	if browser == nil {
		t.Skip(browserSkip)
	}
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	ctx, cancelT := context.WithTimeout(ctx, 25*time.Second)
	t.Cleanup(cancelT)
	return ctx
}

func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// text is the visible text of the first element sel matches, read in one
// evaluation: a live page may replace the element between a node lookup and
// a read of it.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	q, err := json.Marshal(sel)
	if err != nil {
		t.Fatal(err)
	}
	s := eval[*string](t, ctx, `(() => { const e = document.querySelector(`+string(q)+`); return e ? e.innerText : null })()`)
	if s == nil {
		t.Fatalf("text(%s): no such element", sel)
	}
	return *s
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("Evaluate(%s): %v", js, err)
	}
	return v
}

// screenshot writes docs/screenshots/name.png when KILN_SCREENSHOTS=1.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if os.Getenv("KILN_SCREENSHOTS") != "1" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := filepath.Join(moduleRoot, "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// simWorld is the EC2 simulator with a hub set talking to it over HTTP.
type simWorld struct {
	sim  *awssim.Sim
	hubs *awsapi.Hubs
}

func newSim(t *testing.T, scale float64) *simWorld {
	t.Helper()
	sim := awssim.New(awssim.Options{TimeScale: scale})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	cfg := awssim.ClientConfig(srv.URL)
	hubs := awsapi.NewHubs(awsapi.Options{
		Config: &cfg,
		Retry: awsapi.RetryOptions{MaxAttempts: 3, Backoff: retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) {
			return time.Millisecond, nil
		})},
		Batch:   awsapi.BatchOptions{Idle: 2 * time.Millisecond, Max: 20 * time.Millisecond},
		Poll:    100 * time.Millisecond,
		Wait:    awsapi.Backoff{Min: 2 * time.Millisecond, Max: 20 * time.Millisecond},
		Retries: awsapi.Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond},
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = sim.Run(ctx) })
	wg.Go(func() { _ = hubs.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return &simWorld{sim: sim, hubs: hubs}
}

const engineGraph = `name: shop
resources:
  - kind: aws:ec2
    name: web
    region: us-east-1
    image: ami-000f627752e462816
    type: t3.micro
    meta: {poll: 200ms}
  - kind: file
    name: web-ip
    path: web.ip
    content: "${aws:ec2/web.private_ip}\n"
  - kind: file
    name: motd
    path: motd
    content: "hello\n"
`

// TestEnginePageDriftConverges runs an aws:ec2 instance against the
// simulator, stops it out of band, and watches the engine page show the
// drift being repaired, without a reload.
func TestEnginePageDriftConverges(t *testing.T) {
	ctx := tab(t)
	w := newSim(t, 0.01) // a boot takes 150 ms
	kinds := config.Kinds{
		"aws:ec2": func() engine.Resource { return awsres.NewInstance(w.hubs) },
		"file":    func() engine.Resource { return &resources.File{} },
	}
	g, err := config.Parse("shop.yaml", []byte(engineGraph), kinds)
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	eng := engine.New(g, engine.Options{})
	ectx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = eng.Run(ectx) })
	t.Cleanup(func() { stop(); wg.Wait() })

	mux := http.NewServeMux()
	mux.Handle("GET /", EnginePage(eng, "shop"))
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() }) // the live stream never ends by itself

	const row = `tr[data-id="aws:ec2/web"]`
	do(t, ctx, "open the engine page", chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(row+` .state.converged`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-id="file/web-ip"] .state.converged`)),
		chromedp.WaitVisible(chromedp.CSS(`svg g.converged`)))
	if n := eval[int](t, ctx, `document.querySelectorAll("svg g").length`); n != 3 {
		t.Errorf("graph nodes drawn = %d; want 3", n)
	}
	// Record every state the live row goes through, and mark the page so a
	// reload would show.
	do(t, ctx, "observe", chromedp.Evaluate[chromedp.Void](`window.__states = []; window.__marker = 1;
		new MutationObserver(() => { const s = document.querySelector('`+row+` .state'); if (s) window.__states.push(s.textContent); })
			.observe(document.getElementById("live"), {childList: true, subtree: true}); null`))
	screenshot(t, ctx, "engine")

	var id string
	for _, in := range w.sim.Instances() {
		if in.State == "running" {
			id = in.ID
		}
	}
	if id == "" {
		t.Fatal("no running instance in the simulator")
	}
	if err := w.sim.StopInstance(id); err != nil {
		t.Fatal(err)
	}
	// The engine notices (poll), starts it again, and the page follows.
	do(t, ctx, "see the repair", chromedp.Poll[chromedp.Void](`(() => {
		const cells = document.querySelectorAll('`+row+` td');
		return cells.length > 4 && cells[4].textContent.trim().endsWith("/ 2") && cells[1].textContent.includes("converged");
	})()`, chromedp.WithPollingTimeout(15*time.Second)))
	if m := eval[int](t, ctx, `window.__marker || 0`); m != 1 {
		t.Error("the page reloaded; want live updates in place")
	}
	states := eval[[]string](t, ctx, `window.__states`)
	t.Logf("states shown for aws:ec2/web: %q", states)
	if !strings.Contains(strings.Join(states, ","), "checking") && !strings.Contains(strings.Join(states, ","), "failed") {
		t.Errorf("states shown = %q; want the drift (checking) before converged", states)
	}
	if in, _ := w.sim.Instance(id); in.State != "running" {
		t.Errorf("instance %s is %s; want running again", id, in.State)
	}

	// A graph swap that changes web's spec (not the world) restarts its
	// vertex; the page still says when kiln last changed the instance.
	lastChange := eval[string](t, ctx, `document.querySelectorAll('`+row+` td')[3].title`)
	if lastChange == "" {
		t.Fatal("no last change shown for aws:ec2/web after the repair")
	}
	g2, err := config.Parse("shop.yaml", []byte(strings.Replace(engineGraph, "poll: 200ms", "poll: 300ms", 1)), kinds)
	if err != nil {
		t.Fatal(err)
	}
	eng.Swap(g2)
	do(t, ctx, "see the swapped resource checked afresh", chromedp.Poll[chromedp.Void](`(() => {
		const cells = document.querySelectorAll('`+row+` td');
		return cells.length > 4 && cells[4].textContent.trim().endsWith(" / 0") && cells[1].textContent.includes("converged");
	})()`, chromedp.WithPollingTimeout(15*time.Second)))
	if got := eval[string](t, ctx, `document.querySelectorAll('`+row+` td')[3].title`); got != lastChange {
		t.Errorf("last change after the swap = %q; want %q, as before it", got, lastChange)
	}
}

const adminToken = "open-sesame-0123456789"

// bakeryWorld is a bake service on the simulator and the bakery pages.
type bakeryWorld struct {
	st  *store.Store
	svc *bakery.Service
	srv *httptest.Server
}

func newBakeryWorld(t *testing.T, scale float64) *bakeryWorld {
	t.Helper()
	w := newSim(t, scale)
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "kiln.db"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	svc, err := bakery.NewService(st, w.hubs, log, bakery.Options{
		FetchPollInterval: 20 * time.Millisecond,
		BusySnooze:        50 * time.Millisecond,
		SweepInterval:     time.Hour,
		Pipeline:          pipeline.PipelineOptions{ConsoleWait: 2 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = svc.Run(ctx) })
	hash := web.HashToken(adminToken)
	srv := httptest.NewServer(Bakery(BakeryConfig{Records: st, Sessions: st, Service: svc, CheckToken: hash.Match, Log: log, PollInterval: 100 * time.Millisecond}))
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close(); cancel(); wg.Wait(); st.Close() })
	return &bakeryWorld{st: st, svc: svc, srv: srv}
}

func signIn(t *testing.T, ctx context.Context, base, token string) {
	t.Helper()
	do(t, ctx, "sign in", chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#token`)),
		chromedp.SendKeys(chromedp.CSS(`#token`), token),
		chromedp.Submit(chromedp.CSS(`#token`)),
		chromedp.WaitVisible(chromedp.CSS(`header form button`)))
}

const alPattern = "al2023-ami-2023.*-x86_64"

// TestBakeryPages signs in, creates a project through the form, bakes it
// and watches the bake page reach an available image, then cancels a bake.
func TestBakeryPages(t *testing.T) {
	ctx := tab(t)
	w := newBakeryWorld(t, 0.01) // an image takes 1.8 s
	base := w.srv.URL

	// A wrong token sees nothing.
	do(t, ctx, "wrong token", chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#token`)),
		chromedp.SendKeys(chromedp.CSS(`#token`), "not-the-token"),
		chromedp.Submit(chromedp.CSS(`#token`)),
		chromedp.WaitVisible(chromedp.CSS(`#login-error`)))
	if got := text(t, ctx, `#login-error`); got != "Wrong token." {
		t.Errorf("sign-in error = %q; want %q", got, "Wrong token.")
	}
	screenshot(t, ctx, "login")
	if n := eval[int](t, ctx, `document.querySelectorAll("#projects, header form").length`); n != 0 {
		t.Error("a wrong token sees the projects or a session")
	}

	signIn(t, ctx, base, adminToken)

	// The form checks like the project-file parser.
	do(t, ctx, "bad name", chromedp.Navigate(base+"/projects/new"),
		chromedp.WaitVisible(chromedp.CSS(`#project-form`)),
		chromedp.SetValue(chromedp.CSS(`#name`), "bad name!"),
		chromedp.SetValue(chromedp.CSS(`#base_name`), alPattern),
		chromedp.SetValue(chromedp.CSS(`#script`), "#!/bin/sh\necho baking\n"),
		chromedp.Click(chromedp.CSS(`#save`)),
		chromedp.WaitVisible(chromedp.CSS(`#form-errors`)))
	const wantMsg = `"bad name!": use letters, digits, '.', '_' and '-', starting with a letter or digit (it names images and URLs)`
	if got := text(t, ctx, `.field-error[data-field="name"]`); got != wantMsg {
		t.Errorf("name error = %q; want %q", got, wantMsg)
	}
	screenshot(t, ctx, "project-form-error")
	do(t, ctx, "good name", chromedp.SetValue(chromedp.CSS(`#name`), "web"),
		chromedp.Click(chromedp.CSS(`#save`)),
		chromedp.WaitVisible(chromedp.CSS(`#secret`)))
	if got := text(t, ctx, `#webhook-url`); got != base+"/hooks/web" {
		t.Errorf("webhook URL = %q; want %q", got, base+"/hooks/web")
	}
	screenshot(t, ctx, "project")

	// Bake now, and watch the page follow the bake to its image.
	do(t, ctx, "bake now", chromedp.Click(chromedp.CSS(`form[action="/projects/web/bake"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`#bake-state`)))
	first := text(t, ctx, `#bake-state`)
	do(t, ctx, "mark", chromedp.Evaluate[chromedp.Void](`window.__marker = 1; null`))
	do(t, ctx, "bake succeeds", chromedp.WaitVisible(chromedp.CSS(`#bake-state.succeeded`)),
		chromedp.WaitVisible(chromedp.CSS(`#image-id code`)))
	if first == "succeeded" {
		t.Errorf("the bake page opened on a finished bake; want to watch it run")
	}
	if m := eval[int](t, ctx, `window.__marker || 0`); m != 1 {
		t.Error("the bake page reloaded; want live updates in place")
	}
	if got := text(t, ctx, `#image-id`); !strings.HasPrefix(got, "ami-") || !strings.Contains(got, "available") {
		t.Errorf("image cell = %q; want an ami id, available", got)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll("#steps tbody tr").length`); n < 3 {
		t.Errorf("%d steps in the timeline; want at least 3", n)
	}
	screenshot(t, ctx, "bake")

	do(t, ctx, "projects", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`#projects`)))
	if got := text(t, ctx, `#projects tbody`); !strings.Contains(got, "succeeded") || !strings.Contains(got, "ami-") {
		t.Errorf("projects row = %q; want the last bake succeeded and its image", got)
	}
	screenshot(t, ctx, "projects")

	// A bake whose script never ends, cancelled from its page.
	p, err := w.st.Project(t.Context(), "web")
	if err != nil {
		t.Fatal(err)
	}
	p.Name, p.Script = "slow", "#!/bin/sh\nsleep 3600\n"
	if _, err := w.st.PutProject(t.Context(), *p, "0123456789abcdef0123"); err != nil {
		t.Fatal(err)
	}
	do(t, ctx, "bake slow", chromedp.Navigate(base+"/projects/slow"),
		chromedp.Click(chromedp.CSS(`form[action="/projects/slow/bake"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`#bake-state.running`)),
		// The live part is swapped under a node-based click; a script click is atomic.
		chromedp.Evaluate[chromedp.Void](`document.querySelector("#cancel").click(); null`),
		chromedp.WaitVisible(chromedp.CSS(`#bake-state.cancelled`)))
	if got := text(t, ctx, `#reason`); !strings.Contains(got, "cancelled") {
		t.Errorf("reason = %q; want cancelled", got)
	}
}

// TestEnvironmentPages: a project with staging (auto) and production
// (manual): a bake from the page goes to staging, the page shows it live
// with its configuration (the secret masked), and its Promote button rolls
// the image out to production.
func TestEnvironmentPages(t *testing.T) {
	ctx := tab(t)
	w := newBakeryWorld(t, 0.01)
	base := w.srv.URL
	p, err := project.Parse("shop.yaml", []byte(`name: shop
region: us-east-1
base: {owner: amazon, name: "`+alPattern+`", most_recent: true}
type: t3.small
script: |
  #!/bin/sh
  echo baking
environments:
  - name: staging
    group: {type: t3.micro, min: 2, max: 2, iam_profile: shop-app, rollout: {min_healthy_percent: 50, warmup: 30s}}
    config:
      LOG_LEVEL: debug
      API_KEY: {value: "${API_KEY}", secret: true}
  - name: production
    group: {type: t3.small, min: 2, max: 2, iam_profile: shop-app, rollout: {min_healthy_percent: 50, warmup: 30s}}
    config:
      LOG_LEVEL: warn
      API_KEY: {value: "${API_KEY}", secret: true}
`), func(string) string { return "browser-secret-value" })
	if err != nil {
		t.Fatal(err)
	}
	p.Secret = "0123456789abcdef0123"
	if _, err := w.svc.ApplyProject(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	signIn(t, ctx, base, adminToken)
	do(t, ctx, "bake now", chromedp.Navigate(base+"/projects/shop"),
		chromedp.Click(chromedp.CSS(`form[action="/projects/shop/bake"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`#bake-state.succeeded`)))
	staged := func() bool {
		do(t, ctx, "project page", chromedp.Navigate(base+"/projects/shop"), chromedp.WaitVisible(chromedp.CSS(`#pipeline`)))
		return strings.Contains(text(t, ctx, `#env-staging h3`), "live")
	}
	if !testsupport.Within(30*time.Second, staged) {
		t.Fatalf("staging never went live: %q", text(t, ctx, `#env-staging`))
	}
	if got := text(t, ctx, `#env-staging`); !strings.Contains(got, "••••••••") || strings.Contains(got, "browser-secret-value") || !strings.Contains(got, "debug") {
		t.Errorf("staging section = %q; want the plain value and the secret masked", got)
	}
	do(t, ctx, "promote", chromedp.Click(chromedp.CSS(`#promote-production`)), chromedp.WaitVisible(chromedp.CSS(`#flash`)))
	if got := text(t, ctx, `#flash`); !strings.Contains(got, "is rolling out to production") {
		t.Errorf("flash = %q", got)
	}
	if !testsupport.Within(30*time.Second, func() bool {
		do(t, ctx, "project page", chromedp.Navigate(base+"/projects/shop"), chromedp.WaitVisible(chromedp.CSS(`#pipeline`)))
		return strings.Contains(text(t, ctx, `#env-production h3`), "live")
	}) {
		t.Fatalf("production never went live: %q", text(t, ctx, `#env-production`))
	}
	if got := text(t, ctx, `#pipeline`); strings.Count(got, "live") != 2 {
		t.Errorf("pipeline = %q; want both environments live", got)
	}
	do(t, ctx, "to the environments", chromedp.Evaluate[chromedp.Void](`document.getElementById("environments").scrollIntoView(); null`))
	screenshot(t, ctx, "environments")
}
