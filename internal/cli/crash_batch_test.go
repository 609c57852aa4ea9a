package cli

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"kiln/internal/awsapi"
	"kiln/internal/awssim"
)

// batchCrashInstances and batchCrashKills size TestRunCrashBatchedLaunch.
const (
	batchCrashInstances = 300
	batchCrashKills     = 10
)

// TestRunCrashBatchedLaunch is issue 26's crash test: kiln run --once of a
// graph of 300 identical aws:ec2, a real process, is SIGKILLed at random
// points of its batched launch (before any launch, after some instances
// exist, while they are being named), ten times, and started again each
// time; the simulator is a process of its own. After each kill no resource
// has two instances; after the last run: exactly 300 live instances, each
// named and claimed by its own resource.
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
	for i := range batchCrashKills {
		before := count()
		cmd, done := run(i)
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
		c := count()
		t.Logf("kill %d: %d live, %d named", i, c.live, c.named)
	}
	_, done := run(batchCrashKills)
	select {
	case err := <-done:
		if err != nil {
			log, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("run.%d.log", batchCrashKills)))
			t.Fatalf("last kiln run --once = %v\n%s", err, log)
		}
	case <-time.After(3 * time.Minute):
		t.Fatal("last kiln run --once did not finish in 3 minutes")
	}
	if c := count(); c.live != batchCrashInstances || c.named != batchCrashInstances {
		t.Errorf("after the last run: %d live instances, %d named; want %d of each", c.live, c.named, batchCrashInstances)
	}
}
