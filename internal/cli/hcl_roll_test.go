package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awssim"
	"kiln/internal/testsupport"
)

// TestDataSourceRollsGroup: a running kiln run of an HCL graph whose
// aws:asg takes its image from data "aws:ami" (meta { poll = "1s" }).
// Someone registers a newer image through the SDK: with no file edited,
// the graph is re-evaluated, the group's launch template gets a version
// with the new image and the group rolls to it, while the graph's other
// resources (two aws:ec2, a file) are not checked again: their
// CheckApply counts in /metrics do not move.
func TestDataSourceRollsGroup(t *testing.T) {
	sim, client := simEnv(t)
	ctx := t.Context()
	app1 := handImage(t, sim, client, "app-1")

	dir := filepath.Join(t.TempDir(), "roll")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	note := filepath.Join(t.TempDir(), "note.txt")
	graph := fmt.Sprintf(`graph = "roll"

data "aws:ami" "app" {
  owner       = "self"
  name        = "app-*"
  most_recent = true
  meta {
    poll = "1s"
  }
}

resource "aws:asg" "web" {
  image   = data.aws_ami.app.image_id
  type    = "t3.micro"
  min     = 1
  max     = 2
  desired = 1
  rollout {
    min_healthy_percent = 0
  }
}

resource "aws:ec2" "other" {
  count = 2
  image = %q
  type  = "t3.micro"
}

resource "file" "note" {
  path    = %q
  content = "untouched\n"
}
`, baseImage, note)
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(graph), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	runCtx, cancel := context.WithCancel(ctx)
	var stderr testsupport.Buffer
	done := make(chan int, 1)
	go func() { done <- run(runCtx, []string{"run", "--listen", addr, dir}, &testsupport.Buffer{}, &stderr) }()
	defer func() {
		cancel()
		if code := <-done; code != ExitInterrupted {
			t.Errorf("kiln run = %d; want %d\n%s", code, ExitInterrupted, stderr.String())
		}
	}()

	groupOn := func(image string) bool {
		g, ok := sim.AutoScalingGroup("web")
		if !ok || len(g.Instances) != 1 || g.Healthy() != 1 {
			return false
		}
		in, _ := sim.Instance(g.Instances[0].ID)
		return in.ImageID == image
	}
	// idle: every resource converged and no check pending or running
	// (kiln_engine_converged), so the counts below are settled.
	idle := func() bool { return checkCounts(t, addr)["converged"] == 1 }
	testsupport.EventuallyWithin(t, 2*time.Minute, "the group on app-1 and the graph converged", func() bool {
		return groupOn(app1) && idle()
	})
	before := checkCounts(t, addr)
	t.Logf("checks before the new image: %v", before)
	for _, kind := range []string{"aws:asg", "aws:ec2", "file"} {
		if before[kind] == 0 {
			t.Fatalf("checks before = %v; want some of %s", before, kind)
		}
	}

	app2 := handImage(t, sim, client, "app-2")
	testsupport.EventuallyWithin(t, 2*time.Minute, "the group rolled to app-2", func() bool { return groupOn(app2) && idle() })
	if !strings.Contains(stderr.String(), "data source changed; re-evaluating the graph") {
		t.Errorf("log lacks the data source change:\n%s", stderr.String())
	}
	after := checkCounts(t, addr)
	if after["aws:asg"] <= before["aws:asg"] {
		t.Errorf("aws:asg checks %v -> %v; want more (it rolled)", before["aws:asg"], after["aws:asg"])
	}
	for _, kind := range []string{"aws:ec2", "file"} {
		if after[kind] != before[kind] {
			t.Errorf("%s checks %v -> %v; want unchanged (they do not read the image)\n%s", kind, before[kind], after[kind], stderr.String())
		}
	}
	if data, err := os.ReadFile(note); err != nil || string(data) != "untouched\n" {
		t.Errorf("note = %q, %v; want untouched", data, err)
	}
}

// baseImage is one of the simulator's stock Amazon Linux images.
const baseImage = "ami-000f627752e462816"

// handImage makes an image named name from a new instance, as an operator
// would by hand, and waits until it is available.
func handImage(t *testing.T, sim *awssim.Sim, client *ec2.Client, name string) string {
	t.Helper()
	ctx := t.Context()
	out, err := client.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId: aws.String(baseImage), InstanceType: ec2types.InstanceTypeT3Micro,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
	})
	if err != nil {
		t.Fatalf("RunInstances: %v", err)
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	testsupport.Eventually(t, "the image's instance running", func() bool {
		in, _ := sim.Instance(id)
		return in.State == "running"
	})
	img, err := client.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(id), Name: aws.String(name)})
	if err != nil {
		t.Fatalf("CreateImage: %v", err)
	}
	image := aws.ToString(img.ImageId)
	testsupport.Eventually(t, "image "+name+" available", func() bool { return sim.ImageState(image) == "available" })
	return image
}

// checkCounts reads kiln_engine_checkapply_total by kind from /metrics,
// and kiln_engine_converged as "converged".
func checkCounts(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 1<<22))
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "kiln_engine_converged "); ok {
			out["converged"], _ = strconv.ParseFloat(v, 64)
			continue
		}
		rest, ok := strings.CutPrefix(line, `kiln_engine_checkapply_total{kind="`)
		if !ok {
			continue
		}
		kind, val, _ := strings.Cut(rest, `"} `)
		n, err := strconv.ParseFloat(val, 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[kind] = n
	}
	return out
}
