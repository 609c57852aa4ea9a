package awsres

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awsapi"
	"kiln/internal/bake"
	"kiln/internal/ec2sim"
	"kiln/internal/engine"
)

// ami returns an initialised aws:ami resource baking script.
func (w *world) ami(name, script string, mod func(*AMI)) *AMI {
	r := NewAMI(w.hubs)
	r.Base = AMIBase{Owner: "amazon", Name: "al2023-ami-2023.*-x86_64", MostRecent: true}
	r.Script, r.Type = script, "t3.small"
	r.Tags = map[string]string{"team": "shop"}
	r.pipeOpts = bake.PipelineOptions{ConsoleWait: 500 * time.Millisecond}
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
		if in.Tags[awsapi.TagResource] == "aws:ami/"+name && in.Tags[bake.TagRole] == "builder" {
			all++
			if in.State != "terminated" && in.State != "shutting-down" {
				live++
			}
		}
	}
	return all, live
}

func TestAMIConverges(t *testing.T) {
	w := newWorld(t, worldOpts{sim: ec2sim.Options{TimeScale: 0.001, Durations: ec2sim.Durations{TerminatedVisible: 1000 * time.Hour}}})
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
	if tags[awsapi.TagOwner] != graph || tags[tagSpec] != r.specDigest() || tags["team"] != "shop" || tags[bake.TagSourceImage] != w.image {
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
	w := newWorld(t, worldOpts{sim: ec2sim.Options{TimeScale: 0.001}})
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
	w := newWorld(t, worldOpts{sim: ec2sim.Options{TimeScale: 0.001, Durations: ec2sim.Durations{TerminatedVisible: 1000 * time.Hour}}})
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
