package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"kiln/internal/testsupport"

	"github.com/rogpeppe/go-internal/testscript"
)

// setEnvRE: setenvre VAR FILE REGEXP sets VAR to REGEXP's first submatch in
// FILE (a background kiln's log, say), so a script can talk to a server on
// a port picked at run time.
func setEnvRE(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: setenvre VAR FILE REGEXP")
	}
	m := regexp.MustCompile("(?m)" + args[2]).FindSubmatch([]byte(ts.ReadFile(args[1])))
	if len(m) < 2 {
		ts.Fatalf("setenvre: %s has no match for %q", args[1], args[2])
	}
	ts.Setenv(args[0], string(m[1]))
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// TestRunSimRestartsStoppedInstance runs `kiln run --sim --listen`, stops
// the instance out of band through the simulator's control API, and sees
// kiln start it again. The graph asks for an hour's fallback poll, so what
// brings kiln back is the event the simulator pushes to POST /events/aws.
// TestRunSimRestartsStoppedInstance: an instance stopped by hand is
// started again, on a plain simulator and under the eventual and flaky
// fault profiles (drift repair, issue 27).
func TestRunSimRestartsStoppedInstance(t *testing.T) {
	t.Setenv("AWS_REGION", "us-east-1")
	for _, faults := range []string{"", "eventual", "flaky"} {
		t.Run("faults="+faults, func(t *testing.T) { testRunSimRestartsStoppedInstance(t, faults) })
	}
}

func testRunSimRestartsStoppedInstance(t *testing.T, faults string) {
	dir := t.TempDir()
	ipFile := filepath.Join(dir, "web-1.ip")
	graph := filepath.Join(dir, "g.yaml")
	if err := os.WriteFile(graph, fmt.Appendf(nil, `name: drift
resources:
  - kind: aws:ec2
    name: web-1
    image: ami-000f627752e462816
    type: t3.micro
    meta: {poll: 1h}
  - kind: file
    name: web-1-ip
    path: %s
    content: "${aws:ec2/web-1.private_ip}\n"
`, ipFile), 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr testsupport.Buffer
	done := make(chan int, 1)
	args := []string{"run", "--sim", "--listen", "127.0.0.1:0", graph}
	if faults != "" {
		args = append(args, "--sim-faults", faults, "--sim-faults-seed", "27")
	}
	go func() { done <- run(ctx, args, &stdout, &stderr) }()
	defer func() {
		cancel()
		if code := <-done; code != ExitInterrupted {
			t.Errorf("kiln run = %d; want %d\n%s", code, ExitInterrupted, stderr.String())
		}
	}()

	testsupport.Eventually(t, "the private IP file", func() bool {
		data, err := os.ReadFile(ipFile)
		return err == nil && net.ParseIP(strings.TrimSpace(string(data))) != nil
	})
	m := regexp.MustCompile(`msg="simulator started" url=(\S+)`).FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("no simulator address in the log:\n%s", stderr.String())
	}
	sim := m[1]
	if !strings.Contains(stderr.String(), "events_pushed=true") {
		t.Errorf("the simulator does not push events to kiln:\n%s", stderr.String())
	}

	var list []struct {
		ID    string            `json:"id"`
		State string            `json:"state"`
		Tags  map[string]string `json:"tags"`
	}
	getJSON(t, sim+"/_sim/instances", &list)
	if len(list) != 1 || list[0].State != "running" || list[0].Tags["Name"] != "web-1" {
		t.Fatalf("instances = %+v; want one running web-1", list)
	}
	id := list[0].ID

	resp, err := http.Post(sim+"/_sim/instances/"+id+"/stop", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stop %s out of band: %s", id, resp.Status)
	}

	var calls struct {
		Calls map[string]int `json:"calls"`
	}
	testsupport.Eventually(t, "kiln to start the instance again", func() bool {
		getJSON(t, sim+"/_sim/calls", &calls)
		var in struct {
			State string `json:"state"`
		}
		getJSON(t, sim+"/_sim/instances/"+id, &in)
		return calls.Calls["StartInstances"] >= 1 && in.State == "running"
	})
	if n := calls.Calls["RunInstances"]; n != 1 && faults == "" {
		t.Errorf("RunInstances calls = %d; want 1 (started, not replaced)", n)
	}
	getJSON(t, sim+"/_sim/instances", &list)
	if len(list) != 1 || list[0].ID != id {
		t.Errorf("instances = %+v; want %s only (started, not replaced)", list, id)
	}
	var ev struct {
		Delivered int `json:"delivered"`
		Failed    int `json:"failed"`
	}
	getJSON(t, sim+"/_sim/events", &ev)
	if ev.Delivered == 0 {
		t.Errorf("events delivered to kiln = %d; want some", ev.Delivered)
	}
}

func TestEventsURL(t *testing.T) {
	tests := []struct{ listen, want string }{
		{"127.0.0.1:0", `^http://127\.0\.0\.1:\d+/events/aws$`},
		{"0.0.0.0:0", `^http://127\.0\.0\.1:\d+/events/aws$`},
		{"[::1]:0", `^http://\[::1\]:\d+/events/aws$`},
		{":0", `^http://127\.0\.0\.1:\d+/events/aws$`},
	}
	for _, tt := range tests {
		ln, err := net.Listen("tcp", tt.listen)
		if err != nil {
			t.Logf("listen %s: %v (skipped)", tt.listen, err)
			continue
		}
		got := eventsURL(ln)
		ln.Close()
		if !regexp.MustCompile(tt.want).MatchString(got) {
			t.Errorf("eventsURL(%s) = %q; want %s", tt.listen, got, tt.want)
		}
	}
}

func TestScaled(t *testing.T) {
	tests := []struct {
		d     time.Duration
		scale float64
		floor time.Duration
		want  time.Duration
	}{
		{60 * time.Second, 0.01, time.Second, time.Second},
		{60 * time.Second, 0.1, time.Second, 6 * time.Second},
		{60 * time.Second, 1, time.Second, 60 * time.Second},
		{60 * time.Second, 5, time.Second, 60 * time.Second},
		{15 * time.Second, 0, 200 * time.Millisecond, 200 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := scaled(tt.d, tt.scale, tt.floor); got != tt.want {
			t.Errorf("scaled(%v, %g, %v) = %v; want %v", tt.d, tt.scale, tt.floor, got, tt.want)
		}
	}
}

func TestEventsKey(t *testing.T) {
	t.Setenv(eventsKeyEnv, "")
	ef := eventsFlags{}
	if k, _ := ef.key(false); k != "" {
		t.Errorf("key without flag, env or --sim = %q; want none", k)
	}
	k1, _ := ef.key(true)
	k2, _ := ef.key(true)
	if len(k1) != 32 || k1 == k2 {
		t.Errorf("--sim keys %q, %q; want random 32-hex-digit keys", k1, k2)
	}
	t.Setenv(eventsKeyEnv, "from-env")
	if k, _ := ef.key(true); k != "from-env" {
		t.Errorf("key = %q; want the environment's", k)
	}
	ef.apiKey = "from-flag"
	if k, _ := ef.key(true); k != "from-flag" {
		t.Errorf("key = %q; want the flag's", k)
	}
}
