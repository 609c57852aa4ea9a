package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kiln/internal/awssim"
	"kiln/internal/testsupport"
)

// simServer runs a simulator outside kiln, as kiln sim does, so that its
// instances and queues outlive a kiln restart; kiln reaches it through
// the standard configuration.
func simServer(t *testing.T) *awssim.Server {
	t.Helper()
	sv, err := awssim.NewServer("127.0.0.1:0", awssim.Options{Region: "us-east-1", TimeScale: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sv.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL": sv.URL(), "AWS_REGION": "us-east-1",
		"AWS_ACCESS_KEY_ID": awssim.AccessKeyID, "AWS_SECRET_ACCESS_KEY": awssim.SecretAccessKey,
		"AWS_CONFIG_FILE": filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}
	return sv
}

// startKiln runs kiln with args until the returned stop is called, which
// checks that it ended as interrupted.
func startKiln(t *testing.T, args ...string) (stderr *testsupport.Buffer, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	var stdout testsupport.Buffer
	stderr = &testsupport.Buffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, &stdout, stderr) }()
	return stderr, func() {
		t.Helper()
		cancel()
		if code := <-done; code != ExitInterrupted {
			t.Errorf("kiln %s = %d; want %d\n%s", strings.Join(args, " "), code, ExitInterrupted, stderr.String())
		}
	}
}

func namedInstance(sim *awssim.Sim, name string) (id, state string) {
	for _, in := range sim.Instances() {
		if in.Tags["Name"] == name && in.State != "terminated" {
			return in.ID, in.State
		}
	}
	return "", ""
}

// TestRunQueueRestartsStoppedInstance: with a 10-minute poll, only the
// events queue can bring kiln back within the test's minute. It does,
// and events queued while kiln was down are consumed after its restart.
func TestRunQueueRestartsStoppedInstance(t *testing.T) {
	sv := simServer(t)
	sim := sv.Sim
	urls, err := simQueues(t.Context(), sv.URL(), "us-east-1", []string{"kiln-events"})
	if err != nil {
		t.Fatal(err)
	}
	graph := filepath.Join(t.TempDir(), "g.yaml")
	if err := os.WriteFile(graph, []byte(`name: queued
resources:
  - kind: aws:ec2
    name: web-1
    image: ami-000f627752e462816
    type: t3.micro
    meta: {poll: 10m}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"run", "--events-queue", urls[0], graph}

	stderr, stop := startKiln(t, args...)
	testsupport.Eventually(t, "web-1 running", func() bool { _, s := namedInstance(sim, "web-1"); return s == "running" })
	if !strings.Contains(stderr.String(), `msg="events queue open" queue=kiln-events`) {
		t.Errorf("no events queue in the log:\n%s", stderr.String())
	}
	id, _ := namedInstance(sim, "web-1")
	if err := sim.StopInstance(id); err != nil {
		t.Fatal(err)
	}
	testsupport.Eventually(t, "kiln to start web-1 again, woken by the queue", func() bool {
		_, s := namedInstance(sim, "web-1")
		return sim.Calls("StartInstances") == 1 && s == "running"
	})
	if sim.Calls("DeleteMessageBatch") == 0 {
		t.Error("no event was deleted from the queue")
	}
	stop()
	if n := sim.Calls("RunInstances"); n != 1 {
		t.Errorf("RunInstances = %d; want 1", n)
	}

	// kiln is down: the stop's events wait in the queue.
	if err := sim.StopInstance(id); err != nil {
		t.Fatal(err)
	}
	testsupport.Eventually(t, "the stop's events in the queue", func() bool {
		_, s := namedInstance(sim, "web-1")
		q := sim.Queues()[0]
		return s == "stopped" && q.Visible >= 2
	})
	_, stop = startKiln(t, args...)
	defer stop()
	testsupport.Eventually(t, "the queue drained and web-1 running again", func() bool {
		_, s := namedInstance(sim, "web-1")
		q := sim.Queues()[0]
		return s == "running" && q.Visible+q.InFlight == 0
	})
}

func TestRunQueueMissingIsAnErrorAtStart(t *testing.T) {
	sv := simServer(t)
	graph := filepath.Join(t.TempDir(), "g.yaml")
	if err := os.WriteFile(graph, []byte("name: g\nresources:\n  - kind: noop\n    name: a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr testsupport.Buffer
	code := run(t.Context(), []string{"run", "--once", "--events-queue", sv.URL() + "/123456789012/nope", graph}, &stdout, &stderr)
	if code != ExitError || !strings.Contains(stderr.String(), "does not exist") || !strings.Contains(stderr.String(), "kiln events setup --queue nope") {
		t.Errorf("kiln run with a missing queue = %d\n%s", code, stderr.String())
	}
	code = run(t.Context(), []string{"run", "--once", "--events-queue", "nope", graph}, &stdout, &stderr)
	if code != ExitError {
		t.Errorf("kiln run with a missing queue by name = %d", code)
	}
}

func TestEventsSetup(t *testing.T) {
	sv := simServer(t)
	var stdout, stderr testsupport.Buffer
	if code := run(t.Context(), []string{"events", "setup", "--queue", "ops-events"}, &stdout, &stderr); code != ExitOK {
		t.Fatalf("events setup = %d\n%s", code, stderr.String())
	}
	out := stdout.String()
	if !strings.Contains(out, "queue   ops-events: created") || !strings.Contains(out, "kiln run --events-queue "+sv.URL()+"/123456789012/ops-events") {
		t.Errorf("first setup:\n%s", out)
	}
	var again testsupport.Buffer
	if code := run(t.Context(), []string{"events", "setup", "--queue", "ops-events", "--region", "us-east-1"}, &again, &stderr); code != ExitOK {
		t.Fatalf("second setup = %d\n%s", code, stderr.String())
	}
	if !strings.Contains(again.String(), "ops-events: exists") || !strings.Contains(again.String(), "already allows the rule") {
		t.Errorf("second setup:\n%s", again.String())
	}
	if r := sv.Sim.Rules(); len(r) != 1 || r[0].Name != "kiln-events-ops-events" || len(r[0].Targets) != 1 {
		t.Errorf("rules = %+v", r)
	}

	var tpl testsupport.Buffer
	if code := run(t.Context(), []string{"events", "setup", "--queue", "ops-events", "--print"}, &tpl, &stderr); code != ExitOK {
		t.Fatalf("setup --print = %d\n%s", code, stderr.String())
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(tpl.String()), &doc); err != nil || doc["Resources"] == nil {
		t.Errorf("--print is not a template: %v\n%s", err, tpl.String())
	}
	for _, bad := range [][]string{{"events", "setup"}, {"events", "setup", "--queue", "no spaces"}} {
		var e testsupport.Buffer
		if code := run(t.Context(), bad, &stdout, &e); code != ExitError || !strings.Contains(e.String(), "--help") {
			t.Errorf("kiln %v = %d\n%s", bad, code, e.String())
		}
	}
	if n := len(sv.Sim.Queues()); n != 1 {
		t.Errorf("queues = %d; bad input must change nothing", n)
	}
}

// TestRunQueueUnderFaults: the events queue still brings kiln back, with a
// 10-minute poll, when the simulator answers under the eventual and flaky
// fault profiles (SQS's calls fail and reset too).
func TestRunQueueUnderFaults(t *testing.T) {
	for _, profile := range []string{"eventual", "flaky"} {
		t.Run(profile, func(t *testing.T) {
			sv := simServer(t)
			sim := sv.Sim
			urls, err := simQueues(t.Context(), sv.URL(), "us-east-1", []string{"kiln-events"})
			if err != nil {
				t.Fatal(err)
			}
			p, err := awssim.NamedProfile(profile)
			if err != nil {
				t.Fatal(err)
			}
			p.Seed = 27
			if p.Flaky != nil { // a kiln run polling its queue makes few calls: fail more of them
				p.Flaky.Errors, p.Flaky.Resets, p.Flaky.Delays = 0.05, 0.03, 0.02
			}
			sim.SetFaultProfile(p)
			graph := filepath.Join(t.TempDir(), "g.yaml")
			if err := os.WriteFile(graph, []byte("name: queued\nresources:\n  - kind: aws:ec2\n    name: web-1\n    image: ami-000f627752e462816\n    type: t3.micro\n    meta: {poll: 10m}\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			_, stop := startKiln(t, "run", "--events-queue", urls[0], graph)
			defer stop()
			testsupport.Eventually(t, "web-1 running", func() bool { _, s := namedInstance(sim, "web-1"); return s == "running" })
			id, _ := namedInstance(sim, "web-1")
			if err := sim.StopInstance(id); err != nil {
				t.Fatal(err)
			}
			testsupport.Eventually(t, "kiln to start web-1 again, woken by the queue", func() bool {
				got, s := namedInstance(sim, "web-1")
				return got == id && s == "running" && sim.Calls("StartInstances") >= 1
			})
			var live int
			for _, in := range sim.Instances() {
				if in.State != "terminated" {
					live++
				}
			}
			if live != 1 {
				t.Errorf("%d live instances; want 1 (started, not replaced)", live)
			}
		})
	}
}
