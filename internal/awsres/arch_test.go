package awsres

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awsapi"
	"kiln/internal/engine"
	"kiln/internal/pipeline"
	"kiln/internal/testsupport"
)

// armImage is the newest stock al2023 arm64 image.
func (w *world) armImage(t *testing.T) string {
	t.Helper()
	out, err := w.client.DescribeImages(t.Context(), &ec2.DescribeImagesInput{
		Owners:  []string{"amazon"},
		Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"al2023-ami-2023.9.*-kernel-6.1-arm64"}}},
	})
	if err != nil || len(out.Images) != 1 {
		t.Fatalf("DescribeImages(arm64) = %v, %v; want one image", out, err)
	}
	return aws.ToString(out.Images[0].ImageId)
}

// wantArchMismatch fails unless err is the permanent mismatch naming the
// image, its architecture, the type and the type's.
func wantArchMismatch(t *testing.T, err error, image, arch, itype, typeArch string) {
	t.Helper()
	if !errors.Is(err, awsapi.ErrArchMismatch) || !engine.IsPermanent(err) {
		t.Fatalf("error = %v; want a permanent ErrArchMismatch", err)
	}
	for _, s := range []string{image, arch, itype, typeArch} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error = %q; want it to name %q", err, s)
		}
	}
}

func TestInstanceArchitectureMismatch(t *testing.T) {
	w := newWorld(t, worldOpts{})
	arm := w.armImage(t)
	r := w.instance("web", func(r *Instance) { r.Image = arm }) // on t3.micro
	for _, apply := range []bool{false, true} {
		_, err := r.CheckApply(t.Context(), apply)
		wantArchMismatch(t, err, arm, "arm64", "t3.micro", "x86_64")
	}
	if n := w.sim.Calls("RunInstances"); n != 0 {
		t.Errorf("RunInstances calls = %d; want 0 (kiln checks before launching)", n)
	}
	// Each answer is remembered: one look at the image and the type.
	if n, m := w.sim.Calls("DescribeInstanceTypes"), w.sim.Calls("DescribeImages"); n != 1 || m != 3 {
		t.Errorf("DescribeInstanceTypes, DescribeImages calls = %d, %d; want 1 and 3 (two of them the test's)", n, m)
	}
	r.Type = "t4g.micro"
	if ok := checkApply(t, r); ok {
		t.Error("CheckApply(arm64 on t4g.micro) = true; want a launch")
	}
	if l := w.live("web"); len(l) != 1 || l[0].State != "running" {
		t.Fatalf("live instances = %+v; want one running", l)
	}
	// A type change to another architecture is refused before the stop.
	r.Type, r.AllowRestart = "t3.small", true
	_, err := r.CheckApply(t.Context(), true)
	wantArchMismatch(t, err, arm, "arm64", "t3.small", "x86_64")
	if n := w.sim.Calls("StopInstances"); n != 0 {
		t.Errorf("StopInstances calls = %d; want 0", n)
	}
}

func TestASGArchitectureMismatch(t *testing.T) {
	w := newASGWorld(t)
	arm := w.armImage(t)
	r := w.asg("web", arm, nil) // on t3.micro
	_, err := checkASG(t, r)
	wantArchMismatch(t, err, arm, "arm64", "t3.micro", "x86_64")
	for _, a := range []string{"CreateLaunchTemplate", "CreateAutoScalingGroup"} {
		if n := w.sim.Calls(a); n != 0 {
			t.Errorf("%s calls = %d; want 0", a, n)
		}
	}
}

func TestBaseResolvesAmongTheTypesArchitecture(t *testing.T) {
	w := newWorld(t, worldOpts{})
	p := pipeline.NewPipeline(w.hubs, testLog, pipeline.PipelineOptions{})
	arm := w.armImage(t)
	base := pipeline.Base{Owner: "amazon", Name: "al2023-ami-2023.*", MostRecent: true} // both architectures match
	tests := []struct {
		itype, want string
	}{
		{"t3.small", w.image}, // the newest x86_64
		{"t4g.small", arm},    // the newest arm64
	}
	for _, tt := range tests {
		got, err := p.ResolveBase(t.Context(), "", tt.itype, base)
		if err != nil || got != tt.want {
			t.Errorf("ResolveBase(%s) = %s, %v; want %s", tt.itype, got, err, tt.want)
		}
	}
	// A base given by id of the other architecture names both.
	_, err := p.ResolveBase(t.Context(), "", "t3.small", pipeline.Base{ID: arm})
	wantArchMismatch(t, err, arm, "arm64", "t3.small", "x86_64")
	// No image of the type's architecture matches the pattern.
	_, err = p.ResolveBase(t.Context(), "", "t4g.small", pipeline.Base{Owner: "amazon", Name: "amzn2-ami-kernel-5.10-hvm-*", MostRecent: true})
	if !engine.IsPermanent(err) || !strings.Contains(err.Error(), "no such image of architecture arm64") {
		t.Errorf("ResolveBase(amzn2 on arm64) = %v; want a permanent error naming arm64", err)
	}
}

func TestASGWaitsForCapacity(t *testing.T) {
	w := newASGWorld(t)
	var logs testsupport.Buffer
	wait := 10 * time.Minute
	r := w.asg("web", w.image, func(r *ASG) { r.Min, r.Max, r.WaitForCapacity = 3, 3, &wait })
	_ = r.Init(engine.Env{Graph: graph, ID: "aws:asg/web", Kind: "aws:asg", Name: "web", Log: slog.New(slog.NewTextHandler(&logs, nil))})
	var ok bool
	var err error
	done := make(chan struct{})
	go func() { defer close(done); ok, err = checkASG(t, r) }()
	// The check creates the group, then waits: nothing is InService before
	// the clock moves.
	testsupport.Eventually(t, "the check to wait for capacity", func() bool {
		return strings.Contains(logs.String(), `msg="waiting for capacity" group=web in_service=0 desired=3`)
	})
	// Move the simulator's clock 5 s at a time until the check returns.
	step := 0
	testsupport.Eventually(t, "the check to return", func() bool {
		select {
		case <-done:
			return true
		default:
		}
		if step++; step > 100 {
			t.Fatal("the check never returned")
		}
		w.sim.Advance(5 * time.Second)
		return false
	})
	if ok || err != nil {
		t.Fatalf("CheckApply() = %v, %v; want false, nil", ok, err)
	}
	// It returned only once the desired capacity was InService and healthy.
	g := w.group(t, "web")
	if n := inService(&g); n != 3 {
		t.Errorf("InService and healthy when the check returned = %d; want 3", n)
	}
	for _, s := range []string{`msg="capacity in service" group=web in_service=3 desired=3`} {
		if !strings.Contains(logs.String(), s) {
			t.Errorf("log lacks %q:\n%s", s, logs.String())
		}
	}
	if o := r.Outputs(); o["group"] != "web" {
		t.Errorf("Outputs() = %v; want the group", o)
	}

	// A group whose capacity does not come within the wait fails the check,
	// naming the count; the manual clock does not move here.
	short := 50 * time.Millisecond
	r2 := w.asg("slow", w.image, func(r *ASG) { r.Min, r.Max, r.WaitForCapacity = 2, 2, &short })
	_, err = checkASG(t, r2)
	if err == nil || engine.IsPermanent(err) || !strings.Contains(err.Error(), `aws:asg "slow": 0 of 2 instances InService and healthy after 50ms (wait_for_capacity)`) {
		t.Errorf("CheckApply(capacity never comes) = %v; want a retryable error naming 0 of 2 and the wait", err)
	}
}

// TestInstancePlanImageKnownAfterApply: in a check-only pass, an instance
// whose image another resource has yet to make (engine.KnownAfterApply) is
// planned as a launch with its known attributes, its image known after
// apply, and no call about the image.
func TestInstancePlanImageKnownAfterApply(t *testing.T) {
	w := newWorld(t, worldOpts{})
	r := w.instance("web", func(r *Instance) { r.Image = engine.KnownAfterApply })
	w.sim.ResetCalls()
	ok, err := r.CheckApply(t.Context(), false)
	if err != nil || ok {
		t.Fatalf("CheckApply(false) = %v, %v; want false, nil", ok, err)
	}
	pc := r.PlannedChanges()
	if len(pc) != 1 || pc[0].Action != engine.ActionCreate {
		t.Fatalf("PlannedChanges() = %+v; want one create", pc)
	}
	attrs := map[string]string{}
	for _, a := range pc[0].Attrs {
		attrs[a.Name] = a.New
	}
	if attrs["image"] != engine.KnownAfterApply || attrs["type"] != "t3.micro" {
		t.Errorf("planned attributes = %v; want image %q and type t3.micro", attrs, engine.KnownAfterApply)
	}
	if n := w.sim.Calls("DescribeImages"); n != 0 {
		t.Errorf("DescribeImages calls = %d; want 0 (the image is not made yet)", n)
	}
}
