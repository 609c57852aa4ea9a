package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awsapi"
	"kiln/internal/awssim"
	"kiln/internal/bakery"
	"kiln/internal/pgtest"
	"kiln/internal/pipeline"
	"kiln/internal/store"
	"kiln/internal/testsupport"
	"kiln/internal/web"
)

// crashKills is how many times TestServeCrash kills kiln serve by default;
// KILN_CRASH_KILLS asks for more (or fewer).
const crashKills = 8

// TestServeCrash is issue 5's crash test: kiln serve, a real process, is
// SIGKILLed at random moments while bakes of three projects run, and
// restarted on the same database each time. The simulator is a process of
// its own, so AWS's state outlives every kill. Once the last server has
// finished every bake: each bake is over and succeeded, each has exactly
// one image, no two images share a name, and no builder is left but
// terminated ones.
func TestServeCrash(t *testing.T) {
	// The default lease: a restarted server finds its predecessor's
	// process gone and resumes its bakes at once, without waiting it out.
	r := newCrashRig(t, filepath.Join(t.TempDir(), "kiln.db"), 1, bakery.DefaultLease)
	kills := r.kills
	c := r.client(0)
	ctx := t.Context()
	srv := r.start(0, 0)
	r.applyProjects(c)

	midBake := 0 // kills while a bake was running
	for i := range kills {
		r.triggerSome(c)
		if r.running(c) {
			midBake++
		}
		r.kill(srv)
		srv = r.start(0, i+1)
	}
	for _, p := range crashProjects {
		if _, err := c.Trigger(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(2 * time.Minute) // only catches a hang
	bakes := r.waitFinal(c, deadline, srv)
	t.Logf("%d bakes over %d kills, %d of them while a bake ran", len(bakes), kills, midBake)
	r.checkImages(bakes)

	// Builders: every one terminated. A builder whose bake ended while no
	// server ran is the sweeper's; a restart runs it at once.
	r.kill(srv)
	srv = r.start(0, kills+1)
	defer r.kill(srv)
	r.waitBuildersGone(deadline)
}

// TestServeCrashTwoServers is issue 10's crash test: two kiln serve
// processes on one PostgreSQL database, one bakery. At random moments one
// of them is SIGKILLed and started again while bakes run; webhooks and
// triggers go to either. Last, one is killed mid-bake and stays dead: the
// survivor takes its bakes over (once the lease, the default 15 s, has run
// out) and finishes every one within 60 s. Then: every bake succeeded, one image
// each, no two images share a name, no builder left.
func TestServeCrashTwoServers(t *testing.T) {
	dsn := pgtest.DB(t)
	r := newCrashRig(t, dsn, 2, bakery.DefaultLease)
	ctx := t.Context()
	srvs := []*crashProc{r.start(0, 0), r.start(1, 1)}
	clients := []*web.Client{r.client(0), r.client(1)}
	r.applyProjects(clients[0])
	n := 2
	midBake := 0
	for range r.kills {
		r.triggerSome(clients[r.rng.IntN(2)])
		if r.running(clients[0]) {
			midBake++
		}
		k := r.rng.IntN(2)
		r.kill(srvs[k])
		srvs[k] = r.start(k, n)
		n++
	}
	// The last kill: a server that runs a bake dies and stays dead.
	for _, p := range crashProjects {
		if _, err := clients[r.rng.IntN(2)].Trigger(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	victim := -1
	testsupport.Eventually(t, "a bake to run on a server", func() bool {
		owners, err := st.BakeOwners(ctx)
		if err != nil {
			return false
		}
		for _, o := range owners {
			for k, p := range srvs {
				if strings.Contains(o, fmt.Sprintf("-%d-", p.cmd.Process.Pid)) {
					victim = k
					return true
				}
			}
		}
		return false
	})
	r.kill(srvs[victim])
	killed := time.Now()
	survivor := 1 - victim
	bakes := r.waitFinal(clients[survivor], killed.Add(60*time.Second), srvs[survivor])
	t.Logf("%d bakes over %d kills (%d while a bake ran); the survivor finished all %v after the last kill",
		len(bakes), r.kills+1, midBake, time.Since(killed).Round(time.Millisecond))
	r.checkImages(bakes)
	// The survivor's leadership (the sweeper) covers the dead server's
	// builders; a fresh server takes over leadership from it too.
	r.kill(srvs[survivor])
	last := r.start(survivor, n)
	defer r.kill(last)
	r.waitBuildersGone(time.Now().Add(time.Minute))
}

// crashProjects are the projects of the crash tests.
var crashProjects = []string{"alpha", "beta", "gamma"}

// crashRig runs kiln serve processes against a simulator process for the
// crash tests: each server i listens on a port of its own, the same at
// every restart; the simulator pushes its state-change events to server 0.
type crashRig struct {
	t      *testing.T
	bin    string
	dir    string
	env    []string
	db     string
	ports  []int
	simURL string
	kills  int
	lease  time.Duration
	rng    *rand.Rand
	logs   strings.Builder
}

type crashProc struct {
	cmd    *exec.Cmd
	exited chan struct{}
	i      int
}

const crashToken = "crash-admin-token"

// newCrashRig builds kiln and starts the simulator, for servers on db
// with --lease lease.
func newCrashRig(t *testing.T, db string, servers int, lease time.Duration) *crashRig {
	if testing.Short() {
		t.Skip("builds kiln and kills it repeatedly")
	}
	kills := crashKills
	if s := os.Getenv("KILN_CRASH_KILLS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			t.Fatalf("KILN_CRASH_KILLS=%q: want a count", s)
		}
		kills = n
	}
	r := &crashRig{t: t, dir: t.TempDir(), db: db, kills: kills, lease: lease, bin: buildKiln(t)}
	// Servers listen on the same port every time: the simulator pushes its
	// state-change events there (lost while serve is dead, as they would be).
	for range servers {
		r.ports = append(r.ports, freePort(t))
	}
	const eventsKey = "crash-events-key"
	r.env = append(os.Environ(),
		"KILN_TOKEN="+crashToken,
		eventsKeyEnv+"="+eventsKey,
		"AWS_ACCESS_KEY_ID="+awssim.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY="+awssim.SecretAccessKey,
		"AWS_REGION=us-east-1",
		"AWS_CONFIG_FILE="+filepath.Join(r.dir, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(r.dir, "no-aws-credentials"),
		"GORACE=atexit_sleep_ms=0",
	)
	r.simURL = startSimProcess(t, r.bin, r.env, fmt.Sprintf("http://127.0.0.1:%d/events/aws", r.ports[0]))
	r.env = append(r.env, "AWS_ENDPOINT_URL="+r.simURL)
	seed := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5)).Uint64()
	t.Logf("kills: %d (seed %d)", kills, seed)
	r.rng = rand.New(rand.NewPCG(seed, 5))
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(r.logs.String())
		}
	})
	return r
}

func (r *crashRig) client(server int) *web.Client {
	return web.NewClient(fmt.Sprintf("http://127.0.0.1:%d", r.ports[server]), crashToken)
}

// start starts server (its n-th process overall, for the log file names)
// and waits until it listens.
func (r *crashRig) start(server, n int) *crashProc {
	t := r.t
	addrFile := filepath.Join(r.dir, fmt.Sprintf("addr.%d", n))
	cmd := exec.Command(r.bin, "serve", "--db", r.db, "--lease", r.lease.String(),
		"--listen", fmt.Sprintf("127.0.0.1:%d", r.ports[server]), "--addr-file", addrFile)
	cmd.Env = r.env
	logf, err := os.Create(filepath.Join(r.dir, fmt.Sprintf("serve.%d.log", n)))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	for {
		if _, err := os.Stat(addrFile); err == nil {
			return &crashProc{cmd, exited, n}
		}
		select {
		case <-exited:
			out, _ := os.ReadFile(logf.Name())
			t.Fatalf("serve %d exited before listening:\n%s", n, out)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// kill SIGKILLs p and keeps its log for a failure's report.
func (r *crashRig) kill(p *crashProc) {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	out, _ := os.ReadFile(filepath.Join(r.dir, fmt.Sprintf("serve.%d.log", p.i)))
	fmt.Fprintf(&r.logs, "--- serve %d\n%s", p.i, out)
}

func (r *crashRig) applyProjects(c *web.Client) {
	for i, p := range crashProjects {
		// Different script lengths put the kills at different steps.
		if _, err := c.Apply(r.t.Context(), p+".yaml", []byte(fmt.Sprintf(`name: %s
region: us-east-1
base: {owner: amazon, name: "al2023-ami-*", most_recent: true}
type: t3.small
keep: 100
script: |
  #!/bin/sh
  echo baking %s
  sleep %d
`, p, p, 50*(i+1))), nil); err != nil {
			r.t.Fatal(err)
		}
	}
}

// triggerSome queues a bake or two, then waits a random moment of them.
func (r *crashRig) triggerSome(c *web.Client) {
	for range 1 + r.rng.IntN(2) {
		if _, err := c.Trigger(r.t.Context(), crashProjects[r.rng.IntN(len(crashProjects))]); err != nil {
			r.t.Fatalf("trigger: %v", err)
		}
	}
	// A sleep: the crash comes at a random moment of the bakes, on purpose.
	time.Sleep(time.Duration(r.rng.IntN(700)) * time.Millisecond)
}

// running reports whether a bake runs now.
func (r *crashRig) running(c *web.Client) bool {
	list, err := c.Bakes(r.t.Context(), web.BakeQuery{Limit: 1000})
	if err != nil {
		return false
	}
	for _, b := range list.Bakes {
		if b.State == store.Running {
			return true
		}
	}
	return false
}

// waitFinal waits until every bake is over, by deadline, and returns them;
// past it the test fails, srv killed for its log.
func (r *crashRig) waitFinal(c *web.Client, deadline time.Time, srv *crashProc) []web.Bake {
	t := r.t
	var list *web.BakeList
	if testsupport.Within(time.Until(deadline), func() bool {
		var err error
		if list, err = c.Bakes(t.Context(), web.BakeQuery{Limit: 1000}); err != nil {
			t.Fatal(err)
		}
		done := true
		for _, b := range list.Bakes {
			done = done && b.State.Final()
		}
		return done
	}) {
		return list.Bakes
	}
	r.kill(srv)
	var left []string
	for _, b := range list.Bakes {
		if !b.State.Final() {
			left = append(left, fmt.Sprintf("%d (%s) %s", b.ID, b.Project, b.State))
		}
	}
	t.Fatalf("bakes not over in time: %s", strings.Join(left, ", "))
	return nil
}

// checkImages: one image per succeeded bake, none for the others, names
// unique.
func (r *crashRig) checkImages(bakes []web.Bake) {
	t := r.t
	e2 := ec2.NewFromConfig(awssim.ClientConfig(r.simURL, "us-east-1"))
	out, err := e2.DescribeImages(t.Context(), &ec2.DescribeImagesInput{Owners: []string{"self"}})
	if err != nil {
		t.Fatal(err)
	}
	perBake := map[string][]string{}
	names := map[string]string{}
	for _, im := range out.Images {
		id, name := aws.ToString(im.ImageId), aws.ToString(im.Name)
		if other, dup := names[name]; dup {
			t.Errorf("images %s and %s share the name %q", other, id, name)
		}
		names[name] = id
		perBake[tagValue(im.Tags, awsapi.TagBake)] = append(perBake[tagValue(im.Tags, awsapi.TagBake)], id)
	}
	for _, b := range bakes {
		imgs := perBake[strconv.FormatInt(b.ID, 10)]
		delete(perBake, strconv.FormatInt(b.ID, 10))
		switch {
		case b.State != store.Succeeded:
			t.Errorf("bake %d of %s %s: %s", b.ID, b.Project, b.State, b.Reason)
			if len(imgs) != 0 {
				t.Errorf("bake %d %s has images %v", b.ID, b.State, imgs)
			}
		case len(imgs) != 1 || imgs[0] != b.ImageID:
			t.Errorf("bake %d: images %v; want exactly its image %s", b.ID, imgs, b.ImageID)
		}
	}
	for id, imgs := range perBake {
		t.Errorf("images %v of no bake (bake tag %q)", imgs, id)
	}
}

// waitBuildersGone waits until no builder is left but terminated ones.
func (r *crashRig) waitBuildersGone(deadline time.Time) {
	var left []string
	if !testsupport.Within(time.Until(deadline), func() bool {
		left = nil
		for _, in := range simInstances(r.t, r.simURL) {
			if in.Tags[pipeline.TagRole] == "builder" && in.State != "terminated" {
				left = append(left, in.ID+" "+in.State)
			}
		}
		return len(left) == 0
	}) {
		r.t.Fatalf("builders left: %v", left)
	}
}

// startSimProcess runs `kiln sim` as a process of its own, pushing events
// to events, and returns its URL. The test's cleanup stops it.
func startSimProcess(t *testing.T, bin string, env []string, events string) string {
	t.Helper()
	cmd := exec.Command(bin, "sim", "--listen", "127.0.0.1:0", "--time-scale", "0.002", "--events", events)
	cmd.Env = env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = nil
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	})
	re := regexp.MustCompile(`export AWS_ENDPOINT_URL=(\S+)`)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			go func() { _, _ = io.Copy(io.Discard, stdout) }()
			return m[1]
		}
	}
	t.Fatalf("kiln sim printed no endpoint (%v)", sc.Err())
	return ""
}

func simInstances(t *testing.T, simURL string) []awssim.InstanceInfo {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), "GET", simURL+"/_sim/instances", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list []awssim.InstanceInfo
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	return list
}

func tagValue(tags []ec2types.Tag, key string) string {
	for _, tg := range tags {
		if aws.ToString(tg.Key) == key {
			return aws.ToString(tg.Value)
		}
	}
	return ""
}

// freePort returns a loopback port free at the time of the call.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
