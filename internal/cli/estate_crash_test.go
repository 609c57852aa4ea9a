package cli

import (
	"fmt"
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

// TestDestroyKilledThenRerun: kiln destroy, a real process, is SIGKILLed
// once it has terminated the instances and while it waits to delete the
// security group they held; a second destroy finishes it: nothing of the
// graph is left, and another graph's instance is untouched.
func TestDestroyKilledThenRerun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kiln and kills it")
	}
	bin := buildKiln(t)
	dir := t.TempDir()
	env := append(os.Environ(),
		"AWS_ACCESS_KEY_ID="+awssim.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+awssim.SecretAccessKey,
		"AWS_REGION=us-east-1",
		"AWS_CONFIG_FILE="+filepath.Join(dir, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "no-aws-credentials"),
	)
	simURL := startSimProcess(t, bin, env, "http://127.0.0.1:1/events/aws")
	env = append(env, "AWS_ENDPOINT_URL="+simURL)
	kiln := func(args ...string) *exec.Cmd {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		return cmd
	}
	var shop strings.Builder
	shop.WriteString("name: shop\nresources:\n  - kind: aws:security_group\n    name: web\n")
	for i := range 6 {
		fmt.Fprintf(&shop, "  - kind: aws:ec2\n    name: web-%d\n    image: ami-000f627752e462816\n    type: t3.micro\n    security_groups: [\"${aws:security_group/web.group_id}\"]\n", i)
	}
	files := map[string]string{
		"shop.yaml":  shop.String(),
		"other.yaml": "name: other\nresources:\n  - kind: aws:ec2\n    name: web-0\n    image: ami-000f627752e462816\n    type: t3.micro\n",
	}
	for name, src := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := kiln("run", "--once", p).CombinedOutput(); err != nil {
			t.Fatalf("kiln run --once %s: %v\n%s", name, err, out)
		}
	}
	live := func(graph string) (live, dying int) {
		for _, in := range simInstances(t, simURL) {
			if in.Tags[awsapi.TagOwner] != graph {
				continue
			}
			switch in.State {
			case "terminated":
			case "shutting-down":
				dying++
			default:
				live++
			}
		}
		return live, dying
	}
	if n, _ := live("shop"); n != 6 {
		t.Fatalf("shop runs %d instances; want 6", n)
	}

	first := kiln("destroy", "--auto-approve", filepath.Join(dir, "shop.yaml"))
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = first.Wait(); close(exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if n, _ := live("shop"); n == 0 {
			break // terminated: the group's delete waits on them now
		}
		select {
		case <-exited:
			t.Fatal("destroy finished before it could be killed")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("destroy terminated nothing within 30 s")
		}
		time.Sleep(time.Millisecond) // polls for the first termination: the kill must land mid-destroy, and nothing signals that moment
	}
	_ = first.Process.Signal(syscall.SIGKILL)
	<-exited

	out, err := kiln("plan", "--destroy", filepath.Join(dir, "shop.yaml")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "aws:security_group/web") {
		t.Logf("plan --destroy after the kill (the group may have gone already):\n%s", out)
	}
	if out, err := kiln("destroy", "--auto-approve", filepath.Join(dir, "shop.yaml")).CombinedOutput(); err != nil {
		t.Fatalf("second destroy: %v\n%s", err, out)
	}
	if n, _ := live("shop"); n != 0 {
		t.Errorf("shop runs %d instances after the second destroy; want 0", n)
	}
	if out, err := kiln("plan", "--destroy", filepath.Join(dir, "shop.yaml")).CombinedOutput(); err != nil || !strings.Contains(string(out), "0 to destroy") {
		t.Errorf("plan --destroy after the second destroy: %v\n%s; want nothing owned", err, out)
	}
	if n, _ := live("other"); n != 1 {
		t.Errorf("the other graph runs %d instances; want 1 (untouched)", n)
	}
}
