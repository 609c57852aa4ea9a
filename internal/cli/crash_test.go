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
	"kiln/internal/ec2sim"
	"kiln/internal/pipeline"
	"kiln/internal/store"
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
	bin := buildKiln(t)
	dir := t.TempDir()

	// serve listens on the same port every time: the simulator pushes its
	// state-change events there (lost while serve is dead, as they would be).
	dir, bin, port, env, simURL := crashSetup(t)
	ctx := t.Context()

	db := filepath.Join(dir, "kiln.db")
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	url := "http://" + listen
	c := web.NewClient(url, crashToken)
	var logs strings.Builder
	type proc struct {
		cmd    *exec.Cmd
		exited chan struct{}
		i      int
	}
	start := func(i int) *proc {
		cmd, exited := startServeProcess(t, dir, bin, env, db, listen, i)
		return &proc{cmd, exited, i}
	}
	kill := func(p *proc) {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
		out, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("serve.%d.log", p.i)))
		fmt.Fprintf(&logs, "--- serve %d\n%s", p.i, out)
	}

	srv := start(0)
	projects := []string{"alpha", "beta", "gamma"}
	for i, p := range projects {
		// Different script lengths put the kills at different steps.
		if _, err := c.Apply(ctx, p+".yaml", []byte(fmt.Sprintf(`name: %s
region: us-east-1
base: {owner: amazon, name: "al2023-ami-*", most_recent: true}
type: t3.small
keep: 100
script: |
  #!/bin/sh
  echo baking %s
  sleep %d
`, p, p, 50*(i+1))), nil); err != nil {
			t.Fatal(err)
		}
	}

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	seed := rng.Uint64()
	t.Logf("kills: %d (seed %d)", kills, seed)
	rng = rand.New(rand.NewPCG(seed, 5))
	midBake := 0 // kills while a bake was running
	for i := range kills {
		// Queue a bake or two, then kill at a random moment of them.
		for range 1 + rng.IntN(2) {
			if _, err := c.Trigger(ctx, projects[rng.IntN(len(projects))]); err != nil {
				t.Fatalf("trigger: %v", err)
			}
		}
		time.Sleep(time.Duration(rng.IntN(700)) * time.Millisecond)
		if list, err := c.Bakes(ctx, web.BakeQuery{Limit: 1000}); err == nil {
			for _, b := range list.Bakes {
				if b.State == store.Running {
					midBake++
					break
				}
			}
		}
		kill(srv)
		srv = start(i + 1)
	}
	for _, p := range projects {
		if _, err := c.Trigger(ctx, p); err != nil {
			t.Fatal(err)
		}
	}

	// Let the last server finish every bake.
	var bakes []web.Bake
	deadline := time.Now().Add(2 * time.Minute) // only catches a hang
	for {
		list, err := c.Bakes(ctx, web.BakeQuery{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		bakes = list.Bakes
		done := true
		for _, b := range bakes {
			done = done && b.State.Final()
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			kill(srv)
			var left []string
			for _, b := range bakes {
				if !b.State.Final() {
					left = append(left, fmt.Sprintf("%d (%s) %s", b.ID, b.Project, b.State))
				}
			}
			t.Fatalf("bakes not over after the last restart: %s\n%s", strings.Join(left, ", "), logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%d bakes over %d kills, %d of them while a bake ran", len(bakes), kills, midBake)
	defer func() {
		if t.Failed() {
			t.Log(logs.String())
		}
	}()

	// Images: one per succeeded bake, none for the others, names unique.
	e2 := ec2.NewFromConfig(ec2sim.ClientConfig(simURL, "us-east-1"))
	out, err := e2.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}})
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

	// Builders: every one terminated. A builder whose bake ended while no
	// server ran is the sweeper's; a restart runs it at once.
	kill(srv)
	srv = start(kills + 1)
	defer kill(srv)
	for {
		var left []string
		for _, in := range simInstances(t, simURL) {
			if in.Tags[pipeline.TagRole] == "builder" && in.State != "terminated" {
				left = append(left, in.ID+" "+in.State)
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("builders left: %v", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The crash tests' admin token.
const crashToken = "crash-admin-token"

// crashSetup builds kiln into a temporary dir and starts `kiln sim` as a
// process of its own, pushing its events to a kiln serve that is to listen
// on port, and returns the environment that points kiln at it (with
// KILN_TOKEN=crashToken). It skips the test without a go tool.
func crashSetup(t *testing.T) (dir, bin string, port int, env []string, simURL string) {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool to build kiln with")
	}
	dir = t.TempDir()
	bin = filepath.Join(dir, "kiln")
	if out, err := exec.Command(goTool, "build", "-o", bin, "kiln/cmd/kiln").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	port = freePort(t)
	env = append(os.Environ(),
		"KILN_TOKEN="+crashToken,
		eventsKeyEnv+"=crash-events-key",
		"AWS_ACCESS_KEY_ID="+ec2sim.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY="+ec2sim.SecretAccessKey,
		"AWS_REGION=us-east-1",
		"AWS_CONFIG_FILE="+filepath.Join(dir, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "no-aws-credentials"),
		"GORACE=atexit_sleep_ms=0",
	)
	simURL = startSimProcess(t, bin, env, fmt.Sprintf("http://127.0.0.1:%d/events/aws", port))
	return dir, bin, port, append(env, "AWS_ENDPOINT_URL="+simURL), simURL
}

// startServeProcess starts the i-th `kiln serve` on db and listen, its
// output in dir/serve.i.log, and returns once it listens; exited is closed
// when it has exited.
func startServeProcess(t *testing.T, dir, bin string, env []string, db, listen string, i int) (cmd *exec.Cmd, exited chan struct{}) {
	t.Helper()
	addrFile := filepath.Join(dir, fmt.Sprintf("addr.%d", i))
	cmd = exec.Command(bin, "serve", "--db", db, "--listen", listen, "--addr-file", addrFile)
	cmd.Env = env
	logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("serve.%d.log", i)))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited = make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	for {
		if _, err := os.Stat(addrFile); err == nil {
			return cmd, exited
		}
		select {
		case <-exited:
			out, _ := os.ReadFile(logf.Name())
			t.Fatalf("serve %d exited before listening:\n%s", i, out)
		case <-time.After(5 * time.Millisecond):
		}
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

func simInstances(t *testing.T, simURL string) []ec2sim.InstanceInfo {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), "GET", simURL+"/_sim/instances", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list []ec2sim.InstanceInfo
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
