package cli

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"kiln/internal/awssim"
	"kiln/internal/lock"
	"kiln/internal/lock/locktest"
	"kiln/internal/testsupport"
)

// buildKiln builds the kiln binary into a temporary directory, for tests
// that run and kill real processes.
func buildKiln(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool to build kiln with")
	}
	bin := filepath.Join(t.TempDir(), "kiln")
	if out, err := exec.Command(goTool, "build", "-o", bin, "kiln/cmd/kiln").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// lockTTL is the lease of the failover test: short, so it runs in seconds.
const lockTTL = 2 * time.Second

// TestRunLockFailover is issue 10's --lock test: two kiln run --lock
// processes on one graph against one kiln sim process. The holder acts and
// the standby runs no check and makes no AWS write; SIGKILLed, the holder
// is replaced by the standby, which repairs an instance stopped by hand;
// and a holder whose database connection is killed stops applying at once
// and acts again only under a new lease.
func TestRunLockFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kiln and kills it")
	}
	dsn := locktest.DSN(t)
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
	simURL := startSimProcess(t, bin, env, "")
	env = append(env, "AWS_ENDPOINT_URL="+simURL)
	sim := ec2.NewFromConfig(awssim.ClientConfig(simURL, "us-east-1"))
	img, err := sim.DescribeImages(t.Context(), &ec2.DescribeImagesInput{Owners: []string{"amazon"}})
	if err != nil || len(img.Images) == 0 {
		t.Fatalf("DescribeImages: %v", err)
	}

	name := "locktest-" + strings.ToLower(rand.Text()[:8])
	graph := filepath.Join(dir, "graph.yaml")
	writeFile(t, graph, fmt.Sprintf(`name: %s
resources:
  - kind: aws:ec2
    name: web
    image: %s
    type: t3.micro
    meta: {poll: 300ms}
`, name, aws.ToString(img.Images[0].ImageId)))

	a := startLocked(t, bin, env, dir, "a", dsn, graph)
	testsupport.EventuallyWithin(t, 10*time.Second, "a holds the lock", func() bool { return a.metric(t, "kiln_lock_held") == "1" })
	id := waitRunning(t, simURL, name)

	b := startLocked(t, bin, env, dir, "b", dsn, graph)
	testsupport.EventuallyWithin(t, 10*time.Second, "b stands by", func() bool { return b.metric(t, "kiln_lock_held") == "0" && b.hasHolder(t, a.pid()) })
	if page := b.get(t, "/"); !strings.Contains(page, fmt.Sprintf("pid %d", a.pid())) || !strings.Contains(page, "standing by") {
		t.Errorf("b's engine page does not say a holds the lock:\n%s", page)
	}

	// A stop by hand: the holder repairs it, the standby does nothing.
	resetCalls(t, simURL)
	simPost(t, simURL, "/_sim/instances/"+id+"/stop")
	testsupport.EventuallyWithin(t, 10*time.Second, "a repairs the stop", func() bool { return instanceState(t, simURL, id) == "running" })
	// A sleep: the standby doing nothing leaves nothing to wait on; a full
	// lease is the chance it gets to do something wrong.
	time.Sleep(lockTTL)
	if n := simCalls(t, simURL)["StartInstances"]; n != 1 {
		t.Errorf("StartInstances %d times, want 1 (the holder's)", n)
	}
	if n := b.metric(t, "kiln_engine_checkapply_total"); n != "" {
		t.Errorf("standby ran checks: kiln_engine_checkapply_total %s", n)
	}

	// SIGKILL the holder, stop the instance by hand: b takes over and repairs.
	killed := time.Now()
	a.kill()
	resetCalls(t, simURL)
	simPost(t, simURL, "/_sim/instances/"+id+"/stop")
	testsupport.EventuallyWithin(t, 15*time.Second, "b takes over", func() bool { return b.metric(t, "kiln_lock_held") == "1" })
	took := time.Since(killed)
	testsupport.EventuallyWithin(t, 10*time.Second, "b repairs the stop", func() bool { return instanceState(t, simURL, id) == "running" })
	t.Logf("holder killed -> standby holds the lock in %v, repaired in %v", took.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
	if took > 15*time.Second {
		t.Errorf("takeover took %v, want within 15 s", took)
	}
	if page := b.get(t, "/"); !strings.Contains(page, "held by this kiln") {
		t.Errorf("b's page after the takeover:\n%s", page)
	}

	// Kill b's database connection: b stops applying at once. An instance
	// stopped right after stays stopped until b holds a new lease (its old
	// lease expires in the database at least 3/4 TTL after the loss).
	terminated := time.Now()
	if n := locktest.Terminate(t, dsn, lock.AppName(name, b.pid())); n != 1 {
		t.Fatalf("terminated %d backends of b, want 1", n)
	}
	testsupport.EventuallyWithin(t, lockTTL/2, "b notices the lost lock", func() bool { return b.metric(t, "kiln_lock_held") == "0" })
	resetCalls(t, simURL)
	simPost(t, simURL, "/_sim/instances/"+id+"/stop")
	// A sleep: nothing may happen until half a lease after the loss (the
	// old lease lives on in the database); only the wall clock shows it.
	time.Sleep(time.Until(terminated.Add(lockTTL / 2)))
	if n := simCalls(t, simURL)["StartInstances"]; n != 0 || b.metric(t, "kiln_lock_held") != "0" {
		t.Fatalf("a holder that lost its lock acted: StartInstances %d", n)
	}
	if n := b.metric(t, "kiln_lock_lost_total"); n != "1" {
		t.Errorf("kiln_lock_lost_total %q, want 1", n)
	}
	testsupport.EventuallyWithin(t, 10*time.Second, "b holds a new lease and repairs", func() bool { return instanceState(t, simURL, id) == "running" })
	if n := b.metric(t, "kiln_lock_acquired_total"); n != "2" {
		t.Errorf("kiln_lock_acquired_total %q, want 2", n)
	}

	// SIGTERM: the holder releases the lock and a standby takes it at once,
	// long before the lease would have expired.
	testsupport.EventuallyWithin(t, 10*time.Second, "b holds the lock again", func() bool { return b.metric(t, "kiln_lock_held") == "1" })
	c := startLocked(t, bin, env, dir, "c", dsn, graph)
	testsupport.EventuallyWithin(t, 10*time.Second, "c stands by", func() bool { return c.hasHolder(t, b.pid()) })
	stopped := time.Now()
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	testsupport.EventuallyWithin(t, lockTTL/2, "c takes over from a released lock", func() bool { return c.metric(t, "kiln_lock_held") == "1" })
	t.Logf("released -> standby holds the lock in %v", time.Since(stopped).Round(time.Millisecond))
	<-b.exited
	if code := b.cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("b exited %d after SIGTERM, want 130", code)
	}
}

// lockedProc is one kiln run --lock process.
type lockedProc struct {
	cmd    *exec.Cmd
	url    string
	log    string
	exited chan struct{}
}

func startLocked(t *testing.T, bin string, env []string, dir, tag, dsn, graph string) *lockedProc {
	t.Helper()
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := &lockedProc{url: "http://" + listen, log: filepath.Join(dir, "run."+tag+".log"), exited: make(chan struct{})}
	p.cmd = exec.Command(bin, "run", "--lock", dsn, "--lock-ttl", lockTTL.String(), "--listen", listen, graph)
	p.cmd.Env = env
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			out, _ := os.ReadFile(p.log)
			t.Logf("--- kiln run %s\n%s", tag, out)
		}
	})
	return p
}

func (p *lockedProc) pid() int { return p.cmd.Process.Pid }

func (p *lockedProc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// get returns the body at path, "" while the process does not answer.
func (p *lockedProc) get(t *testing.T, path string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", p.url+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// metric returns the value of the first series named name, "" when absent.
func (p *lockedProc) metric(t *testing.T, name string) string {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(p.get(t, "/metrics")))
	re := regexp.MustCompile(`^` + name + `(\{[^}]*\})? (\S+)$`)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			return m[2]
		}
	}
	return ""
}

func (p *lockedProc) hasHolder(t *testing.T, pid int) bool {
	return strings.Contains(p.get(t, "/metrics"), fmt.Sprintf(`pid="%d"`, pid))
}

// waitRunning returns the id of the graph's running instance.
func waitRunning(t *testing.T, simURL, graph string) string {
	t.Helper()
	var id string
	testsupport.EventuallyWithin(t, 10*time.Second, "the instance runs", func() bool {
		for _, in := range simInstances(t, simURL) {
			if in.Tags["kiln:owner"] == graph && in.State == "running" {
				id = in.ID
				return true
			}
		}
		return false
	})
	return id
}

func instanceState(t *testing.T, simURL, id string) string {
	t.Helper()
	for _, in := range simInstances(t, simURL) {
		if in.ID == id {
			return in.State
		}
	}
	return ""
}

func simPost(t *testing.T, simURL, path string) {
	t.Helper()
	simDo(t, "POST", simURL+path, nil)
}

func resetCalls(t *testing.T, simURL string) { simDo(t, "DELETE", simURL+"/_sim/calls", nil) }

func simCalls(t *testing.T, simURL string) map[string]int {
	var out struct{ Calls map[string]int }
	simDo(t, "GET", simURL+"/_sim/calls", &out)
	return out.Calls
}

func simDo(t *testing.T, method, url string, into any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s %s: %s %s", method, url, resp.Status, b)
	}
	if into != nil {
		if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
			t.Fatal(err)
		}
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
