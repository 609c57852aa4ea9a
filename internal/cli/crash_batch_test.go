package cli

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"kiln/internal/awsapi"
	"kiln/internal/awssim"
	"kiln/internal/testsupport"
)

// batchCrashInstances and batchCrashKills size TestRunCrashBatchedLaunch.
const (
	batchCrashInstances = 300
	batchCrashKills     = 10
)

// TestRunCrashBatchedLaunch is issue 26's crash test: kiln run --once of a
// graph of 300 identical aws:ec2, a real process, is SIGKILLed at a random
// point of its batched launch (before any launch, after some instances
// exist, while they are being named), then run again to the end; ten
// times, under the simulator's eventual consistency (new instances
// unlisted for a while, tags showing late), the simulator a process of
// its own. After each kill no resource has two instances; after each
// restart: exactly 300 live instances, each named and claimed by its own
// resource. Each round after the first terminates up to 100 of the
// instances by hand first, so that the killed run has a batch of
// replacements under way.
func TestRunCrashBatchedLaunch(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kiln and kills it repeatedly")
	}
	bin := buildKiln(t)
	dir := t.TempDir()
	env := append(os.Environ(),
		"AWS_ACCESS_KEY_ID="+awssim.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY="+awssim.SecretAccessKey,
		"AWS_REGION=us-east-1",
		"AWS_CONFIG_FILE="+filepath.Join(dir, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "no-aws-credentials"),
		"GORACE=atexit_sleep_ms=0",
	)
	simURL := startSimProcess(t, bin, env, fmt.Sprintf("http://127.0.0.1:%d/events/aws", freePort(t)))
	env = append(env, "AWS_ENDPOINT_URL="+simURL)

	var g strings.Builder
	g.WriteString("name: fleet\nresources:\n")
	for i := range batchCrashInstances {
		fmt.Fprintf(&g, "  - {kind: aws:ec2, name: web-%03d, image: ami-000f627752e462816, type: t3.micro}\n", i)
	}
	graph := filepath.Join(dir, "fleet.yaml")
	if err := os.WriteFile(graph, []byte(g.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 26))

	type counts struct{ live, named int }
	count := func() counts {
		var c counts
		perResource := map[string]string{}
		for _, in := range simInstances(t, simURL) {
			if in.Tags[awsapi.TagOwner] != "fleet" || in.State == "terminated" || in.State == "shutting-down" {
				continue
			}
			c.live++
			r := in.Tags[awsapi.TagResource]
			if r == "" {
				continue
			}
			if other, dup := perResource[r]; dup {
				t.Fatalf("%s has two instances: %s and %s", r, other, in.ID)
			}
			perResource[r] = in.ID
			if in.Tags[awsapi.TagName] == strings.TrimPrefix(r, "aws:ec2/") {
				c.named++
			}
		}
		if c.live > batchCrashInstances {
			t.Fatalf("%d live instances for %d resources", c.live, batchCrashInstances)
		}
		return c
	}
	run := func(n int) (*exec.Cmd, chan error) {
		cmd := exec.Command(bin, "run", "--once", graph)
		cmd.Env = env
		logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("run.%d.log", n)))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait(); logf.Close() }()
		return cmd, done
	}
	// The eventual profile: what a restarted kiln reads lags what the
	// killed one launched and named.
	resp, err := http.Post(simURL+"/_sim/faults/profile", "application/json", strings.NewReader(`{"profile":"eventual","seed":26}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /_sim/faults/profile: %s", resp.Status)
	}
	for i := range batchCrashKills {
		if i > 0 {
			// Replacements to launch: up to 100 terminated by hand (a
			// new kiln's CreateTags burst names them at once: kiln paces
			// its calls to AWS's buckets against a given endpoint too).
			var live []string
			for _, in := range simInstances(t, simURL) {
				if in.Tags[awsapi.TagOwner] == "fleet" && in.State == "running" {
					live = append(live, in.ID)
				}
			}
			rng.Shuffle(len(live), func(a, b int) { live[a], live[b] = live[b], live[a] })
			for _, id := range live[:1+rng.IntN(min(100, len(live)))] {
				simPost(t, simURL, "/_sim/instances/"+id+"/terminate")
			}
		}
		before := count()
		cmd, done := run(2 * i)
		// Where to kill: at once, once more instances exist, or once more
		// are named than before this run.
		var reached func(counts) bool
		switch phase := rng.IntN(3); {
		case phase == 0 || before.live == batchCrashInstances && before.named == batchCrashInstances:
			reached = func(counts) bool { return true }
		case phase == 1 && before.live < batchCrashInstances:
			k := before.live + 1 + rng.IntN(batchCrashInstances-before.live)
			reached = func(c counts) bool { return c.live >= k }
		default:
			k := before.named + 1 + rng.IntN(batchCrashInstances-before.named)
			reached = func(c counts) bool { return c.named >= k }
		}
		deadline := time.Now().Add(2 * time.Minute) // only catches a hang
		ended := false
	wait:
		for !reached(count()) {
			select {
			case err := <-done:
				t.Logf("run %d ended before its kill point: %v", i, err)
				ended = true
				break wait
			case <-time.After(5 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("run %d: kill point not reached in 2 minutes", i)
			}
		}
		if !ended { // a run that ended by itself has nothing left to kill or wait for
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-done
		}
		killed := count()
		// The restart, to the end.
		_, done = run(2*i + 1)
		select {
		case err := <-done:
			if err != nil {
				log, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("run.%d.log", 2*i+1)))
				t.Fatalf("kiln run --once after kill %d = %v\n%s", i, err, log)
			}
		case <-time.After(3 * time.Minute):
			t.Fatalf("kiln run --once after kill %d did not finish in 3 minutes", i)
		}
		var c counts
		// kiln has set every name when it exits; under eventual
		// consistency the last ones may show a moment later.
		testsupport.Within(5*time.Second, func() bool {
			c = count()
			return c.live == batchCrashInstances && c.named == batchCrashInstances
		})
		t.Logf("kill %d: %d live, %d named; after the restart %d live, %d named", i, killed.live, killed.named, c.live, c.named)
		if c.live != batchCrashInstances || c.named != batchCrashInstances {
			t.Fatalf("after restart %d: %d live instances, %d named; want %d of each", i, c.live, c.named, batchCrashInstances)
		}
	}
}
