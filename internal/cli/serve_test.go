package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"kiln/internal/hook"
	"kiln/internal/store"
	"kiln/internal/testsupport"
	"kiln/internal/web"
)

// startServe runs `kiln serve --sim` in-process and returns its URL and a
// func that stops it (as SIGINT would) and returns its exit code and log.
func startServe(t *testing.T, extra ...string) (url string, stop func() (int, string)) {
	t.Helper()
	dir := t.TempDir()
	addrFile := filepath.Join(dir, "addr")
	ctx, cancel := context.WithCancel(t.Context())
	var stdout, stderr bytes.Buffer
	code := make(chan int, 1)
	args := append([]string{"serve", "--sim", "--sim-time-scale", "0.002", "--db", filepath.Join(dir, "kiln.db"),
		"--listen", "127.0.0.1:0", "--addr-file", addrFile}, extra...)
	go func() { code <- run(ctx, args, &stdout, &stderr) }()
	stop = func() (int, string) {
		cancel()
		return <-code, stderr.String()
	}
	for {
		data, err := os.ReadFile(addrFile)
		if err == nil && strings.HasSuffix(string(data), "\n") {
			return strings.TrimSpace(string(data)), stop
		}
		select {
		case c := <-code:
			t.Fatalf("kiln serve exited %d before listening: %s", c, stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// TestServeWebhookToImage: a signed GitHub push to a served project bakes
// an image against the simulator, and the metrics count it.
func TestServeWebhookToImage(t *testing.T) {
	t.Setenv("KILN_TOKEN", "serve-test-token")
	// The simulator's events reach the bake's steps through a queue.
	url, stop := startServe(t, "--events-queue", "kiln-events")
	ctx := t.Context()
	c := web.NewClient(url, "serve-test-token")

	applied, err := c.Apply(ctx, "web.yaml", []byte(`name: web
region: us-east-1
base: {owner: amazon, name: "al2023-ami-*", most_recent: true}
type: t3.small
script: |
  #!/bin/sh
  echo building
branch: main
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if applied.WebhookURL != url+"/hooks/web" || applied.WebhookSecret == "" {
		t.Fatalf("Apply() = %+v", applied)
	}

	body, err := os.ReadFile(filepath.Join("..", "hook", "testdata", "hooks", "github-push.json"))
	if err != nil {
		t.Fatal(err)
	}
	push := func(secret string) (int, hook.Response) {
		req, _ := http.NewRequestWithContext(ctx, "POST", applied.WebhookURL, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
		req.Header.Set("X-Hub-Signature-256", hook.Sign(body, secret))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var hr hook.Response
		_ = json.NewDecoder(resp.Body).Decode(&hr)
		return resp.StatusCode, hr
	}
	// The admin token is no signature.
	if status, _ := push("serve-test-token"); status != http.StatusUnauthorized {
		t.Errorf("push signed with the admin token = %d; want 401", status)
	}
	status, hr := push(applied.WebhookSecret)
	if status != http.StatusAccepted || hr.BakeID == 0 {
		t.Fatalf("push = %d %+v; want 202 with a bake id", status, hr)
	}
	if status, again := push(applied.WebhookSecret); status != http.StatusAccepted || !again.Duplicate || again.BakeID != hr.BakeID {
		t.Errorf("redelivery = %d %+v; want the same bake, duplicate", status, again)
	}

	final, err := c.Follow(ctx, hr.BakeID, func(*web.Bake) {})
	if err != nil {
		t.Fatal(err)
	}
	if final.State != store.Succeeded || !strings.HasPrefix(final.ImageID, "ami-") ||
		final.Commit != "59b20b8d5c6ff8d09518454d4dd8b7a30f095ab5" {
		t.Fatalf("bake = %+v; want succeeded at the pushed commit with an image", final)
	}

	// The pages are served beside the API: the project list sends a
	// visitor without a session to sign in.
	page, err := http.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	html, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if page.StatusCode != http.StatusOK || page.Request.URL.Path != "/login" || !strings.Contains(string(html), "<form") {
		t.Errorf("GET / = %d at %s; want the sign-in form", page.StatusCode, page.Request.URL.Path)
	}

	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`kiln_webhook_deliveries_total{result="queued"} 1`,
		`kiln_webhook_deliveries_total{result="duplicate"} 1`,
		`kiln_webhook_deliveries_total{result="unauthorized"} 1`,
		`kiln_bakes{state="succeeded"} 1`,
		`kiln_bake_step_duration_seconds_count{state="succeeded",step="launch builder"} 1`,
	} {
		if !strings.Contains(string(metrics), want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	if !regexp.MustCompile(`kiln_events_queue_routed_total\{queue="kiln-events"\} [1-9]`).Match(metrics) ||
		!regexp.MustCompile(`kiln_events_queue_deleted_total\{queue="kiln-events"\} [1-9]`).Match(metrics) {
		t.Errorf("no event routed from the queue:\n%s", metrics)
	}
	code, log := stop()
	if code != ExitInterrupted {
		t.Errorf("serve exited %d after cancel; want %d; log:\n%s", code, ExitInterrupted, log)
	}
	if !strings.Contains(log, "msg=stopped") {
		t.Errorf("serve did not log its stop:\n%s", log)
	}
}

// TestServeShutdownMidBake: stopping the server while a bake runs exits
// cleanly; a restart on the same database finishes the bake.
func TestServeShutdownMidBake(t *testing.T) {
	t.Setenv("KILN_TOKEN", "serve-test-token")
	dir := t.TempDir()
	db := filepath.Join(dir, "kiln.db")
	url, stop := startServe(t, "--db", db)
	ctx := t.Context()
	c := web.NewClient(url, "serve-test-token")
	if _, err := c.Apply(ctx, "slow.yaml", []byte(`name: slow
region: us-east-1
base: {owner: amazon, name: "al2023-ami-*", most_recent: true}
type: t3.small
script: |
  #!/bin/sh
  sleep 600
`), nil); err != nil {
		t.Fatal(err)
	}
	tr, err := c.Trigger(ctx, "slow")
	if err != nil {
		t.Fatal(err)
	}
	// Stop once the builder is up and the script is sleeping.
	testsupport.Eventually(t, "the bake's builder", func() bool {
		b, err := c.Bake(ctx, tr.Bake.ID)
		if err != nil {
			t.Fatal(err)
		}
		if b.BuilderID == "" && b.State.Final() {
			t.Fatalf("bake ended before it launched a builder: %+v", b)
		}
		return b.BuilderID != ""
	})
	if code, log := stop(); code != ExitInterrupted {
		t.Fatalf("serve exited %d; want %d; log:\n%s", code, ExitInterrupted, log)
	}
	st, err := store.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.Bake(ctx, tr.Bake.ID)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	if b.State != store.Running {
		t.Errorf("bake after shutdown = %s; want running (resumed by the next start)", b.State)
	}
}

// TestReadmeBakeryDemo bakes the demo project file of the bakery's page
// (docs/bakery/README.md, "Running the bakery") against the simulator, so
// the demo cannot go stale.
func TestReadmeBakeryDemo(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "docs", "bakery", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	const open = "cat > demo.yaml <<'EOF'\n"
	_, rest, ok := strings.Cut(string(readme), open)
	demo, _, ok2 := strings.Cut(rest, "\nEOF\n")
	if !ok || !ok2 {
		t.Fatalf("docs/bakery/README.md has no %q ... EOF block", open)
	}
	for _, want := range []string{"kiln serve --sim", "kiln project apply -f demo.yaml", "kiln bake demo --follow"} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("docs/bakery/README.md lacks %q", want)
		}
	}
	t.Setenv("KILN_TOKEN", "serve-test-token")
	url, stop := startServe(t)
	defer stop()
	c := web.NewClient(url, "serve-test-token")
	if _, err := c.Apply(t.Context(), "demo.yaml", []byte(demo+"\n"), nil); err != nil {
		t.Fatal(err)
	}
	tr, err := c.Trigger(t.Context(), "demo")
	if err != nil {
		t.Fatal(err)
	}
	final, err := c.Follow(t.Context(), tr.Bake.ID, func(*web.Bake) {})
	if err != nil {
		t.Fatal(err)
	}
	if final.State != store.Succeeded {
		t.Errorf("bakery demo bake = %s (%s); want succeeded", final.State, final.Reason)
	}
}
