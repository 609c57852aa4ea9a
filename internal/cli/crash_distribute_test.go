package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"kiln/internal/awsapi"
	"kiln/internal/awssim"
	"kiln/internal/store"
	"kiln/internal/testsupport"
	"kiln/internal/web"
)

// TestServeCrashDuringCopy: kiln serve is SIGKILLed while a bake's copies
// to two regions are pending, and restarted on the same database; the bake
// then succeeds with exactly one image in each region (the copy's client
// token and name found the copy the killed server started), and kiln bake
// show lists every region's image.
func TestServeCrashDuringCopy(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kiln and kills it")
	}
	rig := newCrashRig(t, "", 1, 15*time.Second)
	dir, bin, port, env, simURL := rig.dir, rig.bin, rig.ports[0], rig.env, rig.simURL
	ctx := t.Context()
	db := filepath.Join(dir, "kiln.db")
	rig.db = db
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	url := "http://" + listen
	env = append(env, "KILN_SERVER="+url)
	c := web.NewClient(url, crashToken)

	start := func(i int) (*exec.Cmd, chan struct{}) {
		p := rig.start(0, i)
		return p.cmd, p.exited
	}
	kill := func(cmd *exec.Cmd, exited chan struct{}) {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
	}
	logs := func() string {
		var b strings.Builder
		for i := range 2 {
			out, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("serve.%d.log", i)))
			fmt.Fprintf(&b, "--- serve %d\n%s", i, out)
		}
		return b.String()
	}

	srv, exited := start(0)
	if _, err := c.Apply(ctx, "web.yaml", []byte(`name: web
region: us-east-1
base: {owner: amazon, name: "al2023-ami-*", most_recent: true}
type: t3.small
copy_to: [us-west-2, eu-west-1]
share_with: ['210987654321']
keep: 1
script: |
  #!/bin/sh
  echo baking
`), nil); err != nil {
		t.Fatal(err)
	}
	r, err := c.Trigger(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	bake := strconv.FormatInt(r.Bake.ID, 10)
	clients := map[string]*ec2.Client{}
	for _, region := range []string{"us-east-1", "us-west-2", "eu-west-1"} {
		clients[region] = ec2.NewFromConfig(awssim.ClientConfig(simURL, region))
	}
	images := func(region string) (ids []string, states []string) {
		out, err := clients[region].DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range out.Images {
			if tagValue(im.Tags, awsapi.TagBake) == bake {
				ids, states = append(ids, aws.ToString(im.ImageId)), append(states, string(im.State))
			}
		}
		return ids, states
	}
	// Kill as soon as a copy is pending in us-west-2.
	deadline := time.Now().Add(time.Minute)
	if !testsupport.Within(time.Until(deadline), func() bool {
		_, states := images("us-west-2")
		return len(states) > 0 && states[0] == "pending"
	}) {
		kill(srv, exited)
		t.Fatalf("no pending copy in us-west-2\n%s", logs())
	}
	kill(srv, exited)
	srv, exited = start(1)
	defer kill(srv, exited)

	var b *web.Bake
	if !testsupport.Within(time.Until(deadline), func() bool {
		if b, err = c.Bake(ctx, r.Bake.ID); err != nil {
			t.Fatal(err)
		}
		return b.State.Final()
	}) {
		t.Fatalf("bake not over after the restart: %s\n%s", b.State, logs())
	}
	if b.State != store.Succeeded {
		t.Fatalf("bake = %s (%s)\n%s", b.State, b.Reason, logs())
	}
	got := map[string]string{}
	for _, im := range b.Images {
		got[im.Region] = im.ImageID + " " + im.State
	}
	for _, region := range []string{"us-east-1", "us-west-2", "eu-west-1"} {
		ids, states := images(region)
		if len(ids) != 1 || states[0] != "available" {
			t.Errorf("%s: images %v %v of bake %s; want exactly one, available", region, ids, states, bake)
			continue
		}
		if got[region] != ids[0]+" available" {
			t.Errorf("bake record in %s = %q; want %s available", region, got[region], ids[0])
		}
	}
	// kiln bake show lists every region.
	show := exec.Command(bin, "bake", "show", bake)
	show.Env = env
	out, err := show.CombinedOutput()
	if err != nil {
		t.Fatalf("kiln bake show: %v\n%s", err, out)
	}
	for _, region := range []string{"us-east-1", "us-west-2", "eu-west-1"} {
		if !strings.Contains(string(out), region+"  "+strings.Fields(got[region])[0]+"  available") {
			t.Errorf("kiln bake show does not list %s:\n%s", region, out)
		}
	}
	// kiln project show lists the distribution.
	ps := exec.Command(bin, "project", "show", "web")
	ps.Env = env
	out, err = ps.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "copy to:") || !strings.Contains(string(out), "us-west-2, eu-west-1") || !strings.Contains(string(out), "shared with: 210987654321") {
		t.Errorf("kiln project show = %v:\n%s", err, out)
	}

	// A second bake: keep 1 leaves only its image in every region, as the
	// aws CLI (a second client, its own signer) sees each region.
	r2, err := c.Trigger(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if !testsupport.Within(time.Until(deadline), func() bool {
		if b, err = c.Bake(ctx, r2.Bake.ID); err != nil {
			t.Fatal(err)
		}
		return b.State.Final()
	}) {
		t.Fatalf("second bake not over: %s\n%s", b.State, logs())
	}
	if b.State != store.Succeeded || len(b.Images) != 3 {
		t.Fatalf("second bake = %s (%s), images %v", b.State, b.Reason, b.Images)
	}
	if _, err := exec.LookPath("aws"); err != nil {
		t.Log("aws CLI not installed: retention checked through the SDK only")
		for _, im := range b.Images {
			if ids, _ := images(im.Region); len(ids) != 0 {
				t.Errorf("%s: the first bake's images %v are still there", im.Region, ids)
			}
		}
		return
	}
	for _, im := range b.Images {
		cli := exec.Command("aws", "ec2", "describe-images", "--endpoint-url", simURL, "--region", im.Region, "--owners", "self",
			"--filters", "Name=tag:kiln:project,Values=web", "--query", "Images[].ImageId", "--output", "text")
		cli.Env = append(env, "HOME="+dir, "AWS_PAGER=")
		out, err := cli.CombinedOutput()
		if err != nil {
			t.Fatalf("aws ec2 describe-images --region %s: %v\n%s", im.Region, err, out)
		}
		if got := strings.Fields(string(out)); len(got) != 1 || got[0] != im.ImageID {
			t.Errorf("aws CLI in %s: images %v; want only %s (keep 1)", im.Region, got, im.ImageID)
		}
	}
}
