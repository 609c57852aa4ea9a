package awsres

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awsapi"
	"kiln/internal/awssim"
	"kiln/internal/config"
	"kiln/internal/engine"
	"kiln/internal/pipeline"
	"kiln/internal/testsupport"
)

// ami returns an initialised aws:ami resource baking script.
func (w *world) ami(name, script string, mod func(*AMI)) *AMI {
	r := NewAMI(w.hubs)
	r.Base = AMIBase{Owner: "amazon", Name: "al2023-ami-2023.*-x86_64", MostRecent: true}
	r.Script, r.Type = script, "t3.small"
	r.Tags = map[string]string{"team": "shop"}
	r.pipeOpts = pipeline.PipelineOptions{ConsoleWait: 500 * time.Millisecond}
	if mod != nil {
		mod(r)
	}
	_ = r.Init(engine.Env{Graph: graph, ID: "aws:ami/" + name, Kind: "aws:ami", Name: name, Log: testLog})
	return r
}

// amiImages are the account's images tagged as resource aws:ami/name.
func (w *world) amiImages(t *testing.T, name string) []types.Image {
	t.Helper()
	out, err := w.client.DescribeImages(t.Context(), &ec2.DescribeImagesInput{
		Owners: []string{"self"}, Filters: []types.Filter{{Name: aws.String("tag:" + awsapi.TagResource), Values: []string{"aws:ami/" + name}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Images
}

// liveBuilders counts the builders of aws:ami/name still alive.
func (w *world) liveBuilders(name string) (all, live int) {
	for _, in := range w.sim.Instances() {
		if in.Tags[awsapi.TagResource] == "aws:ami/"+name && in.Tags[pipeline.TagRole] == "builder" {
			all++
			if in.State != "terminated" && in.State != "shutting-down" {
				live++
			}
		}
	}
	return all, live
}

func TestAMIConverges(t *testing.T) {
	w := newWorld(t, worldOpts{sim: awssim.Options{TimeScale: 0.001, Durations: awssim.Durations{TerminatedVisible: 1000 * time.Hour}}})
	r := w.ami("web", "#!/bin/sh\ndnf install -y nginx\n", nil)
	if err := r.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}

	if ok, err := r.CheckApply(t.Context(), false); ok || err != nil {
		t.Fatalf("CheckApply(noop) = %v, %v; want false, nil", ok, err)
	}
	if n := w.sim.Calls("RunInstances"); n != 0 {
		t.Fatalf("noop CheckApply made %d RunInstances calls", n)
	}
	if ok, err := r.CheckApply(t.Context(), true); ok || err != nil {
		t.Fatalf("CheckApply() = %v, %v; want false (baked), nil", ok, err)
	}
	id := r.Outputs()["image_id"]
	imgs := w.amiImages(t, "web")
	if len(imgs) != 1 || aws.ToString(imgs[0].ImageId) != id || imgs[0].State != types.ImageStateAvailable {
		t.Fatalf("images = %+v; want one available, %s", imgs, id)
	}
	tags := map[string]string{}
	for _, tg := range imgs[0].Tags {
		tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	if tags[awsapi.TagOwner] != graph || tags[tagSpec] != r.specDigest("") || tags["team"] != "shop" || tags[pipeline.TagSourceImage] != w.image {
		t.Errorf("image tags = %v", tags)
	}
	if all, live := w.liveBuilders("web"); all != 1 || live != 0 {
		t.Errorf("builders = %d, live %d; want 1 launched, none left", all, live)
	}

	// Converged: a second check, and a fresh resource (a new process), find it.
	if ok, err := r.CheckApply(t.Context(), true); !ok || err != nil {
		t.Errorf("second CheckApply() = %v, %v; want true, nil", ok, err)
	}
	r2 := w.ami("web", "#!/bin/sh\ndnf install -y nginx\n", nil)
	if ok, err := r2.CheckApply(t.Context(), true); !ok || err != nil || r2.Outputs()["image_id"] != id {
		t.Errorf("fresh CheckApply() = %v, %v, %v; want true with %s", ok, err, r2.Outputs(), id)
	}
	if n, m := w.sim.Calls("RunInstances"), w.sim.Calls("CreateImage"); n != 1 || m != 1 {
		t.Errorf("RunInstances, CreateImage calls = %d, %d; want 1, 1", n, m)
	}

	// The image feeds an instance.
	in := w.instance("web-1", func(in *Instance) { in.Image = id })
	if _, err := in.CheckApply(t.Context(), true); err != nil {
		t.Fatalf("aws:ec2 CheckApply() = %v", err)
	}
	if l := w.live("web-1"); len(l) != 1 || l[0].ImageID != id {
		t.Errorf("instance = %+v; want one running %s", l, id)
	}

	// A new script bakes a new image; keep 1 removes the old one, except
	// that the instance uses it.
	r3 := w.ami("web", "#!/bin/sh\ndnf install -y nginx httpd\n", func(a *AMI) { a.Keep = 1 })
	if ok, err := r3.CheckApply(t.Context(), true); ok || err != nil {
		t.Fatalf("CheckApply(new script) = %v, %v; want false, nil", ok, err)
	}
	if got := r3.Outputs()["image_id"]; got == id || got == "" {
		t.Errorf("image_id = %q; want a new image", got)
	}
	if n := len(w.amiImages(t, "web")); n != 2 {
		t.Errorf("%d images; want 2 (the old one is in use)", n)
	}
}

func TestAMIWatchAndRebake(t *testing.T) {
	w := newWorld(t, worldOpts{sim: awssim.Options{TimeScale: 0.001}})
	r := w.ami("web", "#!/bin/sh\ntrue\n", func(a *AMI) { a.SetPoll(10 * time.Millisecond) })
	ctx, cancel := context.WithCancel(t.Context())
	ev := newChanges()
	var wg sync.WaitGroup
	wg.Go(func() { _ = r.Watch(ctx, ev) })
	defer func() { cancel(); wg.Wait() }()
	<-ev.running
	if _, err := r.CheckApply(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	id := r.Outputs()["image_id"]
	if _, err := w.client.DeregisterImage(t.Context(), &ec2.DeregisterImageInput{ImageId: aws.String(id)}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ev.changed:
	case <-time.After(20 * time.Second):
		t.Fatal("Watch did not report the deregistered image")
	}
	if ok, err := r.CheckApply(t.Context(), true); ok || err != nil {
		t.Fatalf("CheckApply() after deregister = %v, %v; want false (rebaked), nil", ok, err)
	}
	if got := r.Outputs()["image_id"]; got == id || got == "" {
		t.Errorf("image_id = %q; want a new image", got)
	}
}

func TestAMIScriptFails(t *testing.T) {
	w := newWorld(t, worldOpts{sim: awssim.Options{TimeScale: 0.001, Durations: awssim.Durations{TerminatedVisible: 1000 * time.Hour}}})
	r := w.ami("web", "#!/bin/sh\necho broken\nexit 7\n", nil)
	_, err := r.CheckApply(t.Context(), true)
	if err == nil || !strings.Contains(err.Error(), "exit 7") || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("CheckApply() error = %v; want the failure with the console tail", err)
	}
	if n := len(w.amiImages(t, "web")); n != 0 {
		t.Errorf("%d images; want none", n)
	}
	if all, live := w.liveBuilders("web"); all != 1 || live != 0 {
		t.Errorf("builders = %d, live %d; want 1, none left", all, live)
	}
}

func manyTags(n int) map[string]string {
	m := map[string]string{}
	for i := range n {
		m[fmt.Sprintf("k%d", i)] = "v"
	}
	return m
}

func TestAMIValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*AMI)
		want string
	}{
		{"ok", func(*AMI) {}, ""},
		{"no base", func(a *AMI) { a.Base = AMIBase{} }, "base"},
		{"id and name", func(a *AMI) { a.Base.ID = "ami-12345678" }, "either id"},
		{"bad id", func(a *AMI) { a.Base = AMIBase{ID: "img-1"} }, "base.id"},
		{"no script", func(a *AMI) { a.Script = " " }, "script"},
		{"delimiter", func(a *AMI) { a.Script = "echo\nKILN_BAKE_SCRIPT\n" }, "script"},
		{"no type", func(a *AMI) { a.Type = "" }, "type"},
		{"keep", func(a *AMI) { a.Keep = -1 }, "keep"},
		{"reserved tag", func(a *AMI) { a.Tags = map[string]string{"kiln:x": "y"} }, "reserved"},
		{"rebake with pattern", func(a *AMI) { a.RebakeOnNewBase = true }, ""},
		{"rebake with id", func(a *AMI) { a.Base = AMIBase{ID: "ami-12345678"}; a.RebakeOnNewBase = true }, "rebake_on_new_base: needs a base given by owner and name"},
		// The builder's rules are a project file's (pipeline.Builder.Validate).
		{"group name", func(a *AMI) { a.SecurityGroups = []string{"web", "sg-0123abcd"} }, ""},
		{"group reference", func(a *AMI) { a.SecurityGroups = []string{"${aws:security_group/web.group_id}"} }, ""},
		{"group twice", func(a *AMI) { a.SecurityGroups = []string{"web", "web"} }, `security_groups[1]: "web" given twice`},
		{"41 tags", func(a *AMI) { a.Tags = manyTags(41) }, "tags: at most 40 tags"},
		{"40 tags", func(a *AMI) { a.Tags = manyTags(40) }, ""},
		{"bad subnet", func(a *AMI) { a.Subnet = "subnet-xyz" }, "subnet"},
		{"bad profile", func(a *AMI) { a.IAMProfile = "a b" }, "iam_profile"},
		{"bad region", func(a *AMI) { a.Region = "mars-1" }, "region"},
		// Image lifecycle.
		{"deprecate_after", func(a *AMI) { a.DeprecateAfter = "30d" }, ""},
		{"bad deprecate_after", func(a *AMI) { a.DeprecateAfter = "soon" }, `deprecate_after: "soon": want a duration such as 30d`},
		{"deprecate_after too far", func(a *AMI) { a.DeprecateAfter = "4000d" }, "deprecate_after: must be more than 0 and at most 10 years"},
		{"disable_for", func(a *AMI) { a.Keep, a.DisableFor = 2, "7d" }, ""},
		{"disable_for without keep", func(a *AMI) { a.DisableFor = "7d" }, "disable_for: needs keep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &AMI{Base: AMIBase{Owner: "amazon", Name: "al2023-*"}, Script: "true", Type: "t3.small"}
			tt.mod(r)
			err := r.Validate()
			if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Validate() = %v; want %q", err, tt.want)
			}
		})
	}
}

// goldenBase is a base pattern the tests publish new releases of with
// publishBase (the simulator's stock amazon images never change).
var goldenBase = AMIBase{Owner: "self", Name: "golden-base-*", MostRecent: true}

// publishBase makes an available image named name in the account, a new
// release of goldenBase, through the API (an instance imaged, then
// terminated), and returns its id.
func (w *world) publishBase(t *testing.T, name string) string {
	t.Helper()
	ctx := t.Context()
	run, err := w.client.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId: aws.String(w.image), InstanceType: types.InstanceTypeT3Micro, MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
	})
	if err != nil {
		t.Fatalf("RunInstances() = %v", err)
	}
	in := aws.ToString(run.Instances[0].InstanceId)
	err = ec2.NewInstanceRunningWaiter(w.client, func(o *ec2.InstanceRunningWaiterOptions) {
		o.MinDelay, o.MaxDelay = 5*time.Millisecond, 50*time.Millisecond
	}).Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{in}}, 20*time.Second)
	if err != nil {
		t.Fatalf("wait for %s running: %v", in, err)
	}
	img, err := w.client.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(in), Name: aws.String(name), NoReboot: aws.Bool(true)})
	if err != nil {
		t.Fatalf("CreateImage() = %v", err)
	}
	id := aws.ToString(img.ImageId)
	err = ec2.NewImageAvailableWaiter(w.client, func(o *ec2.ImageAvailableWaiterOptions) {
		o.MinDelay, o.MaxDelay = 5*time.Millisecond, 50*time.Millisecond
	}).Wait(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}}, 20*time.Second)
	if err != nil {
		t.Fatalf("wait for %s available: %v", id, err)
	}
	if _, err := w.client.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{in}}); err != nil {
		t.Fatalf("TerminateInstances() = %v", err)
	}
	return id
}

// sourceImage is the kiln:source-image tag of image id.
func (w *world) sourceImage(t *testing.T, id string) string {
	t.Helper()
	out, err := w.client.DescribeImages(t.Context(), &ec2.DescribeImagesInput{ImageIds: []string{id}})
	if err != nil || len(out.Images) != 1 {
		t.Fatalf("DescribeImages(%s) = %v, %v", id, out, err)
	}
	return awsapi.TagValue(out.Images[0].Tags, pipeline.TagSourceImage)
}

// TestAMIRebakeOnNewBase publishes a newer release of the base pattern
// after the first bake: with rebake_on_new_base the next check bakes from
// it (and plan says why), without it nothing happens.
func TestAMIRebakeOnNewBase(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run("rebake_on_new_base="+strconv.FormatBool(on), func(t *testing.T) {
			w := newWorld(t, worldOpts{sim: awssim.Options{TimeScale: 0.001, Durations: awssim.Durations{TerminatedVisible: 1000 * time.Hour}}})
			b1 := w.publishBase(t, "golden-base-1")
			mod := func(a *AMI) { a.Base, a.RebakeOnNewBase = goldenBase, on }
			r := w.ami("web", "#!/bin/sh\ndnf upgrade -y\n", mod)
			if err := r.Validate(); err != nil {
				t.Fatalf("Validate() = %v", err)
			}
			if ok, err := r.CheckApply(t.Context(), true); ok || err != nil {
				t.Fatalf("CheckApply() = %v, %v; want false (baked), nil", ok, err)
			}
			id1 := r.Outputs()["image_id"]
			if got := w.sourceImage(t, id1); got != b1 {
				t.Fatalf("first image baked from %s; want %s", got, b1)
			}

			b2 := w.publishBase(t, "golden-base-2")
			runs, creates := w.sim.Calls("RunInstances"), w.sim.Calls("CreateImage")

			ok, err := r.CheckApply(t.Context(), false)
			if err != nil || ok == on {
				t.Fatalf("CheckApply(noop) after a new base = %v, %v; want %v, nil", ok, err, !on)
			}
			var want []string
			if on {
				want = []string{"bake image: new base " + b2 + " replaces " + b1}
			}
			if got := r.Changes(); !slices.Equal(got, want) {
				t.Errorf("Changes() = %q; want %q", got, want)
			}

			ok, err = r.CheckApply(t.Context(), true)
			if err != nil || ok == on {
				t.Fatalf("CheckApply() after a new base = %v, %v; want %v, nil", ok, err, !on)
			}
			id2 := r.Outputs()["image_id"]
			gotRuns, gotCreates := w.sim.Calls("RunInstances")-runs, w.sim.Calls("CreateImage")-creates
			if !on {
				if id2 != id1 || gotRuns != 0 || gotCreates != 0 {
					t.Errorf("image_id = %s, RunInstances, CreateImage calls = %d, %d; want %s and no bake", id2, gotRuns, gotCreates, id1)
				}
				return
			}
			if id2 == id1 || id2 == "" || gotRuns != 1 || gotCreates != 1 {
				t.Fatalf("image_id = %q, RunInstances, CreateImage calls = %d, %d; want a new image from one bake", id2, gotRuns, gotCreates)
			}
			if got := w.sourceImage(t, id2); got != b2 {
				t.Errorf("new image baked from %s; want %s", got, b2)
			}
			// Retention is keep's job (0 here): the old image stays.
			if st := w.sim.ImageState(id1); st != "available" {
				t.Errorf("old image %s is %q; want available", id1, st)
			}
			if n := len(w.amiImages(t, "web")); n != 2 {
				t.Errorf("%d images; want 2", n)
			}
			// Converged: the same process, and a fresh one, find the new image.
			r2 := w.ami("web", "#!/bin/sh\ndnf upgrade -y\n", mod)
			for _, c := range []*AMI{r, r2} {
				if ok, err := c.CheckApply(t.Context(), true); !ok || err != nil || c.Outputs()["image_id"] != id2 {
					t.Errorf("CheckApply() = %v, %v, %v; want true with %s", ok, err, c.Outputs(), id2)
				}
			}
			if n := w.sim.Calls("CreateImage") - creates; n != 1 {
				t.Errorf("CreateImage calls = %d; want 1", n)
			}
		})
	}
}

// TestAMIWatchNewBase: with rebake_on_new_base, Watch's poll reports a new
// base release (once); without it, a release goes unnoticed.
func TestAMIWatchNewBase(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run("rebake_on_new_base="+strconv.FormatBool(on), func(t *testing.T) {
			w := newWorld(t, worldOpts{sim: awssim.Options{TimeScale: 0.001}})
			w.publishBase(t, "golden-base-1")
			r := w.ami("web", "#!/bin/sh\ntrue\n", func(a *AMI) {
				a.Base, a.RebakeOnNewBase = goldenBase, on
				a.SetPoll(10 * time.Millisecond)
			})
			ctx, cancel := context.WithCancel(t.Context())
			ev := newChanges()
			var wg sync.WaitGroup
			wg.Go(func() { _ = r.Watch(ctx, ev) })
			defer func() { cancel(); wg.Wait() }()
			<-ev.running
			if _, err := r.CheckApply(t.Context(), true); err != nil {
				t.Fatal(err)
			}
			// Some twenty polls of an unchanged base report nothing.
			select {
			case <-ev.changed:
				t.Fatal("Watch reported a change before a new base appeared")
			case <-time.After(200 * time.Millisecond):
			}

			w.publishBase(t, "golden-base-2")
			wait := 20 * time.Second
			if !on {
				wait = 300 * time.Millisecond
			}
			select {
			case <-ev.changed:
				if !on {
					t.Fatal("Watch reported a new base without rebake_on_new_base")
				}
			case <-time.After(wait):
				if on {
					t.Fatal("Watch did not report the new base")
				}
				return
			}
			// Reported once: the polls until the rebake stay quiet.
			select {
			case <-ev.changed:
				t.Fatal("Watch reported the same new base again")
			case <-time.After(200 * time.Millisecond):
			}
			if ok, err := r.CheckApply(t.Context(), true); ok || err != nil {
				t.Fatalf("CheckApply() after the report = %v, %v; want false (rebaked), nil", ok, err)
			}
		})
	}
}

// TestAMIRebakeOnNewBaseNeedsPattern: the refusal of a base given by id
// names the file and line, as every field error does.
func TestAMIRebakeOnNewBaseNeedsPattern(t *testing.T) {
	data := []byte(`name: shop
resources:
  - kind: aws:ami
    name: web
    base: {id: ami-0123456789abcdef0}
    script: "#!/bin/sh\ntrue\n"
    type: t3.small
    rebake_on_new_base: true
`)
	kinds := config.Kinds{"aws:ami": func() engine.Resource { return NewAMI(nil) }}
	_, err := config.Parse("ami.yaml", data, kinds)
	want := `ami.yaml:8: aws:ami "web": rebake_on_new_base: needs a base given by owner and name`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Parse() = %v; want %q", err, want)
	}
}

// TestAMISpecDigestStable: without rebake_on_new_base the digest is what it
// was before the option existed, so an upgrade finds the images baked
// before it and bakes nothing.
func TestAMISpecDigestStable(t *testing.T) {
	r := &AMI{Base: AMIBase{Owner: "amazon", Name: "al2023-ami-2023.*-x86_64", MostRecent: true}, Script: "#!/bin/sh\ntrue\n",
		Type: "t3.small", SecurityGroups: []string{"sg-12345678"}, Subnet: "subnet-12345678"}
	if got, want := r.specDigest(""), "db986a3bb653669b42221035d679a116"; got != want {
		t.Errorf("specDigest() = %s; want %s (the digest of earlier kiln versions)", got, want)
	}
	if got := r.specDigest("ami-0123456789abcdef0"); got == r.specDigest("") || got == r.specDigest("ami-0fedcba987654321f") {
		t.Errorf("specDigest(resolved) = %s; want one per resolved base, unlike the pattern's", got)
	}
}

// startBake runs CheckApply of r in the background until a builder of it
// is live, and returns the cancel of its context and CheckApply's error.
func (w *world) startBake(t *testing.T, r *AMI, name string) (context.CancelFunc, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { _, err := r.CheckApply(ctx, true); done <- err }()
	testsupport.Eventually(t, "a live builder", func() bool { _, live := w.liveBuilders(name); return live == 1 })
	return cancel, done
}

// TestAMIInterruptedBakeCleansUp: a check cancelled mid-bake (kiln run
// stopped by SIGINT or SIGTERM) terminates its builder before returning.
func TestAMIInterruptedBakeCleansUp(t *testing.T) {
	w := newWorld(t, worldOpts{sim: awssim.Options{TimeScale: 0.001}})
	r := w.ami("web", "#!/bin/sh\nsleep 3600\n", nil)
	cancel, done := w.startBake(t, r, "web")
	cancel()
	if err := <-done; err == nil {
		t.Fatal("CheckApply() = nil after cancel; want an error")
	}
	if all, live := w.liveBuilders("web"); all != 1 || live != 0 {
		t.Errorf("builders = %d, live %d; want 1 launched, none left", all, live)
	}
}

// TestAMIBuildersNoBakeOwns: a kiln killed mid-bake leaves a live builder.
// A restarted kiln resumes it when the spec is unchanged, terminates it
// when the spec changed, and SweepGraph terminates the builders of
// resources the graph no longer has (never a bakery project's).
func TestAMIBuildersNoBakeOwns(t *testing.T) {
	w := newWorld(t, worldOpts{sim: awssim.Options{TimeScale: 0.001}})
	// A killed kiln: the bake's context ends, but nothing cleans up.
	killed := func(name, script string) string {
		r := w.ami(name, script, nil)
		_ = r.resolve(t.Context())
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = r.pipe.Bake(ctx, r.bakeSpec("k-"+name, ""), nil)
		}()
		testsupport.Eventually(t, "a live builder of "+name, func() bool { _, live := w.liveBuilders(name); return live == 1 })
		cancel()
		<-done
		for _, in := range w.sim.Instances() {
			if in.Tags[awsapi.TagResource] == "aws:ami/"+name && in.State != "terminated" && in.State != "shutting-down" {
				return in.ID
			}
		}
		t.Fatalf("no live builder of %s", name)
		return ""
	}
	stale := killed("web", "#!/bin/sh\nsleep 3600\n")
	gone := killed("old", "#!/bin/sh\nsleep 3600\n")

	// The spec changed meanwhile: the old spec's builder is no bake's.
	r := w.ami("web", "#!/bin/sh\ntrue\n", nil)
	if _, err := r.CheckApply(t.Context(), true); err != nil {
		t.Fatalf("CheckApply() = %v", err)
	}
	if in, _ := w.sim.Instance(stale); in.State != "terminated" && in.State != "shutting-down" {
		t.Errorf("builder of the older spec is %s; want terminated", in.State)
	}

	// A bakery's builder in the same account is not the graph's to sweep.
	out, err := w.client.RunInstances(t.Context(), &ec2.RunInstancesInput{
		ImageId: aws.String(w.image), InstanceType: types.InstanceTypeT3Micro, MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: []types.Tag{
			{Key: aws.String(pipeline.TagRole), Value: aws.String("builder")},
			{Key: aws.String(pipeline.TagProject), Value: aws.String("web")},
			{Key: aws.String(awsapi.TagOwner), Value: aws.String(graph)},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	project := aws.ToString(out.Instances[0].InstanceId)
	swept, err := pipeline.NewPipeline(w.hubs, testLog, pipeline.PipelineOptions{}).SweepGraph(t.Context(), "", graph, map[string]bool{"aws:ami/web": true})
	if err != nil {
		t.Fatalf("SweepGraph() = %v", err)
	}
	if !slices.Equal(swept, []string{gone}) {
		t.Errorf("SweepGraph() = %v; want [%s] (the removed resource's builder)", swept, gone)
	}
	if in, _ := w.sim.Instance(project); in.State == "terminated" || in.State == "shutting-down" {
		t.Errorf("the bakery's builder is %s; want it left alone", in.State)
	}
}
