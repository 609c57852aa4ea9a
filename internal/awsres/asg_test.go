package awsres

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awssim"
	"kiln/internal/config"
	"kiln/internal/engine"
	"kiln/internal/testsupport"
)

// asgWorld is a world on the simulator's manual clock with pushed events,
// plus an Auto Scaling client.
type asgWorld struct {
	*world
	as *autoscaling.Client
}

func newASGWorld(t *testing.T) *asgWorld {
	t.Helper()
	w := newWorld(t, worldOpts{sim: awssim.Options{ManualClock: true, TimeScale: 1}, events: true})
	as, err := w.hubs.AutoScaling(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	return &asgWorld{world: w, as: as}
}

// asg returns an initialised aws:asg resource of 10 instances on image.
func (w *asgWorld) asg(name, image string, mod func(*ASG)) *ASG {
	r := NewASG(w.hubs)
	r.Image, r.Type, r.Min, r.Max = image, "t3.micro", 10, 10
	r.Rollout.Warmup = 60 * time.Second
	// The manual clock moves only when a test moves it: these tests step
	// it after each check, so a check does not wait for capacity here
	// (TestASGWaitsForCapacity does).
	noWait := time.Duration(0)
	r.WaitForCapacity = &noWait
	if mod != nil {
		mod(r)
	}
	_ = r.Init(engine.Env{Graph: graph, ID: "aws:asg/" + name, Kind: "aws:asg", Name: name, Log: testLog})
	return r
}

// drive runs fns concurrently while it moves the simulator's clock in 10 s
// steps, each time letting kiln look at the group (one more
// DescribeInstanceRefreshes or DescribeAutoScalingGroups call) before the
// next step. It returns the fewest warmed-up healthy instances of group
// seen after any step.
func (w *asgWorld) drive(t *testing.T, group string, fns ...func()) (minHealthy int) {
	t.Helper()
	var wg sync.WaitGroup
	done := make(chan struct{})
	for _, fn := range fns {
		wg.Go(fn)
	}
	go func() { wg.Wait(); close(done) }()
	isDone := func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	looks := func() int { return w.sim.Calls("DescribeInstanceRefreshes") + w.sim.Calls("DescribeAutoScalingGroups") }
	minHealthy = 1 << 30
	for step := 0; !isDone(); step++ {
		if step > 5000 {
			t.Fatalf("still running after %d clock steps", step)
		}
		before := looks()
		w.sim.Advance(10 * time.Second)
		if gi, ok := w.sim.AutoScalingGroup(group); ok {
			minHealthy = min(minHealthy, gi.Healthy())
		}
		testsupport.Eventually(t, "kiln to look at the group", func() bool { return isDone() || looks() > before })
	}
	return minHealthy
}

// warm moves the clock until every instance of group is warmed up.
func (w *asgWorld) warm(t *testing.T, group string, n int) {
	t.Helper()
	for step := 0; ; step++ {
		if gi, ok := w.sim.AutoScalingGroup(group); ok && gi.Healthy() == n && len(gi.Instances) == n {
			return
		}
		if step > 1000 {
			t.Fatalf("group %s never reached %d healthy instances", group, n)
		}
		w.sim.Advance(10 * time.Second)
	}
}

// versions counts the group's instances per launch-template version.
func (w *asgWorld) versions(t *testing.T, group string) map[string]int {
	t.Helper()
	gi, ok := w.sim.AutoScalingGroup(group)
	if !ok {
		t.Fatalf("no group %s", group)
	}
	m := map[string]int{}
	for _, in := range gi.Instances {
		m[in.LaunchTemplateVersion]++
	}
	return m
}

func (w *asgWorld) group(t *testing.T, name string) astypes.AutoScalingGroup {
	t.Helper()
	out, err := w.as.DescribeAutoScalingGroups(t.Context(), &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{name}})
	if err != nil || len(out.AutoScalingGroups) != 1 {
		t.Fatalf("DescribeAutoScalingGroups = %v, %v", out, err)
	}
	return out.AutoScalingGroups[0]
}

func checkASG(t *testing.T, r *ASG) (bool, error) {
	t.Helper()
	return r.CheckApply(t.Context(), true)
}

// created makes the group on image2 and warms it up.
func (w *asgWorld) created(t *testing.T, name string, mod func(*ASG)) *ASG {
	t.Helper()
	r := w.asg(name, w.image2, mod)
	if ok, err := checkASG(t, r); ok || err != nil {
		t.Fatalf("first CheckApply() = %v, %v; want false, nil", ok, err)
	}
	w.warm(t, name, r.desired())
	if ok, err := checkASG(t, r); !ok || err != nil {
		t.Fatalf("second CheckApply() = %v, %v; want true, nil", ok, err)
	}
	return r
}

func TestASGRollsOutNewImage(t *testing.T) {
	w := newASGWorld(t)
	r1 := w.created(t, "web", nil)
	if got := r1.Outputs(); got["version"] != "1" || got["group"] != "web" || !strings.HasPrefix(got["launch_template_id"], "lt-") {
		t.Fatalf("Outputs() = %v", got)
	}

	r2 := w.asg("web", w.image, nil)
	var ok bool
	var err error
	minHealthy := w.drive(t, "web", func() { ok, err = checkASG(t, r2) })
	if ok || err != nil {
		t.Fatalf("CheckApply() = %v, %v; want false, nil", ok, err)
	}
	if got := w.versions(t, "web"); got["2"] != 10 || len(got) != 1 {
		t.Errorf("instances per version = %v; want all 10 on 2", got)
	}
	if minHealthy < 9 {
		t.Errorf("fewest healthy during the refresh = %d; want >= 9 (90 %% of 10)", minHealthy)
	}
	if g := w.group(t, "web"); aws.ToString(g.LaunchTemplate.Version) != "2" {
		t.Errorf("group version = %s; want 2", aws.ToString(g.LaunchTemplate.Version))
	}
	if n := w.sim.Calls("StartInstanceRefresh"); n != 1 {
		t.Errorf("StartInstanceRefresh calls = %d; want 1", n)
	}
	if got := r2.Outputs()["version"]; got != "2" {
		t.Errorf("version output = %q; want 2", got)
	}
	if ok, err := checkASG(t, r2); !ok || err != nil {
		t.Errorf("CheckApply() after the rollout = %v, %v; want true, nil", ok, err)
	}
	rs, _ := w.as.DescribeInstanceRefreshes(t.Context(), &autoscaling.DescribeInstanceRefreshesInput{AutoScalingGroupName: aws.String("web")})
	if len(rs.InstanceRefreshes) > 0 {
		t.Logf("refresh took %s (simulated); fewest healthy %d", aws.ToTime(rs.InstanceRefreshes[0].EndTime).Sub(aws.ToTime(rs.InstanceRefreshes[0].StartTime)), minHealthy)
	}
	t.Logf("refresh: %d DescribeInstanceRefreshes, %d DescribeAutoScalingGroups", w.sim.Calls("DescribeInstanceRefreshes"), w.sim.Calls("DescribeAutoScalingGroups"))
}

func TestASGRefreshFailureRollsBack(t *testing.T) {
	for _, auto := range []bool{true, false} {
		t.Run(map[bool]string{true: "auto_rollback", false: "kiln_rollback"}[auto], func(t *testing.T) {
			w := newASGWorld(t)
			w.created(t, "web", nil)
			w.sim.FailNextRefresh(2)
			r2 := w.asg("web", w.image, func(r *ASG) { r.Rollout.AutoRollback = &auto })
			var err error
			w.drive(t, "web", func() { _, err = checkASG(t, r2) })
			var rf *RolloutError
			if !errors.As(err, &rf) || !engine.IsPermanent(err) {
				t.Fatalf("CheckApply() error = %v; want a permanent *RolloutError", err)
			}
			if rf.Reason == "" || !strings.Contains(err.Error(), rf.Reason) {
				t.Errorf("error %q does not carry Auto Scaling's reason %q", err, rf.Reason)
			}
			if got := w.versions(t, "web"); got["1"] != 10 || len(got) != 1 {
				t.Errorf("instances per version = %v; want all 10 back on 1", got)
			}
			if g := w.group(t, "web"); aws.ToString(g.LaunchTemplate.Version) != "1" {
				t.Errorf("group version = %s; want 1", aws.ToString(g.LaunchTemplate.Version))
			}
			// The failed version is not tried again by this resource.
			starts := w.sim.Calls("StartInstanceRefresh")
			if _, err := checkASG(t, r2); !engine.IsPermanent(err) {
				t.Errorf("CheckApply() again = %v; want the permanent failure", err)
			}
			if n := w.sim.Calls("StartInstanceRefresh"); n != starts {
				t.Errorf("StartInstanceRefresh calls = %d; want %d (no second attempt)", n, starts)
			}
			// Nor by a restarted kiln: a new resource with the same spec
			// learns the failure from the launch template's tags.
			r3 := w.asg("web", w.image, func(r *ASG) { r.Rollout.AutoRollback = &auto })
			// Bounded: a regression would start a refresh and wait on it.
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			_, err = r3.CheckApply(ctx, true)
			if !engine.IsPermanent(err) || !strings.Contains(err.Error(), rf.Reason) {
				t.Errorf("CheckApply() after a restart = %v; want the permanent failure with its reason", err)
			}
			if n := w.sim.Calls("StartInstanceRefresh"); n != starts {
				t.Errorf("StartInstanceRefresh calls after a restart = %d; want %d (no second attempt)", n, starts)
			}
			t.Logf("reason: %s", rf.Reason)
		})
	}
}

func TestASGSecondChangeWaitsThenRollsForward(t *testing.T) {
	w := newASGWorld(t)
	w.created(t, "web", nil)
	r2 := w.asg("web", w.image, nil)
	r3 := w.asg("web", w.image, func(r *ASG) { r.Type = "t3.small" })
	var err2, err3 error
	w.drive(t, "web",
		func() { _, err2 = checkASG(t, r2) },
		func() {
			testsupport.Eventually(t, "the first refresh", func() bool { return w.sim.Calls("StartInstanceRefresh") == 1 })
			_, err3 = checkASG(t, r3)
		})
	if err2 != nil || err3 != nil {
		t.Fatalf("CheckApply() = %v, %v; want nil, nil", err2, err3)
	}
	if got := w.versions(t, "web"); got["3"] != 10 || len(got) != 1 {
		t.Errorf("instances per version = %v; want all 10 on 3", got)
	}
	if g := w.group(t, "web"); aws.ToString(g.LaunchTemplate.Version) != "3" {
		t.Errorf("group version = %s; want 3", aws.ToString(g.LaunchTemplate.Version))
	}
	if n := w.sim.Calls("StartInstanceRefresh"); n != 2 {
		t.Errorf("StartInstanceRefresh calls = %d; want 2 (one per change, never two at once)", n)
	}
}

func TestASGDriftPutBack(t *testing.T) {
	w := newASGWorld(t)
	small := func(r *ASG) { r.Min, r.Max, r.Desired = 2, 6, aws.Int(4) }
	r := w.created(t, "web", small)
	ctx := t.Context()
	ltID := r.Outputs()["launch_template_id"]

	// Watch sees a hand change and says so.
	ev := newChanges()
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	r.SetPoll(5 * time.Millisecond)
	wg.Go(func() { _ = r.Watch(wctx, ev) })
	<-ev.running

	if _, err := w.as.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String("web"), MaxSize: aws.Int32(8), DesiredCapacity: aws.Int32(7),
	}); err != nil {
		t.Fatal(err)
	}
	// No event is pushed for this: Watch's poll finds it.
	testsupport.Eventually(t, "Watch to report the capacity change", func() bool {
		select {
		case <-ev.changed:
			return true
		default:
			return false
		}
	})
	if ok, err := checkASG(t, r); ok || err != nil {
		t.Fatalf("CheckApply() after a capacity change = %v, %v; want false, nil", ok, err)
	}
	g := w.group(t, "web")
	if aws.ToInt32(g.MinSize) != 2 || aws.ToInt32(g.MaxSize) != 6 || aws.ToInt32(g.DesiredCapacity) != 4 {
		t.Errorf("capacity = %d/%d/%d; want 2/6/4", aws.ToInt32(g.MinSize), aws.ToInt32(g.MaxSize), aws.ToInt32(g.DesiredCapacity))
	}

	// Someone points the group at a version of their own.
	w.warm(t, "web", 4)
	if _, err := w.client.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{
		LaunchTemplateId: aws.String(ltID), SourceVersion: aws.String("1"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{InstanceType: types.InstanceTypeT3Large},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.as.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String("web"),
		LaunchTemplate:       &astypes.LaunchTemplateSpecification{LaunchTemplateId: aws.String(ltID), Version: aws.String("2")},
	}); err != nil {
		t.Fatal(err)
	}
	if ok, err := checkASG(t, r); ok || err != nil {
		t.Fatalf("CheckApply() after a template change = %v, %v; want false, nil", ok, err)
	}
	if g := w.group(t, "web"); aws.ToString(g.LaunchTemplate.Version) != "1" {
		t.Errorf("group version = %s; want 1 back", aws.ToString(g.LaunchTemplate.Version))
	}
	if n := w.sim.Calls("CreateLaunchTemplateVersion"); n != 1 {
		t.Errorf("CreateLaunchTemplateVersion calls = %d; want 1 (the hand-made one; kiln reuses version 1)", n)
	}
	if n := w.sim.Calls("StartInstanceRefresh"); n != 0 {
		t.Errorf("StartInstanceRefresh calls = %d; want 0 (no instance ran the hand-made version)", n)
	}
	if ok, err := checkASG(t, r); !ok || err != nil {
		t.Errorf("CheckApply() = %v, %v; want true, nil", ok, err)
	}
}

func TestASGValidate(t *testing.T) {
	bad := 120
	tests := []struct {
		name string
		mod  func(*ASG)
		want string
	}{
		{"ok", func(*ASG) {}, ""},
		{"no image", func(r *ASG) { r.Image = "" }, "image"},
		{"bad image", func(r *ASG) { r.Image = "web" }, "image"},
		{"max below min", func(r *ASG) { r.Max = 1 }, "max"},
		{"desired above max", func(r *ASG) { r.Desired = aws.Int(11) }, "desired"},
		{"min healthy", func(r *ASG) { r.Rollout.MinHealthyPercent = &bad }, "rollout.min_healthy_percent"},
		{"checkpoints", func(r *ASG) { r.Rollout.Checkpoints = []int{50, 20} }, "rollout.checkpoints"},
		{"delay without checkpoints", func(r *ASG) { r.Rollout.CheckpointDelay = time.Minute }, "rollout.checkpoint_delay"},
		{"subnet", func(r *ASG) { r.Subnets = []string{"web"} }, "subnets[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &ASG{Image: "ami-1", Type: "t3.micro", Min: 2, Max: 10}
			tt.mod(r)
			err := r.Validate()
			if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want+":")) {
				t.Errorf("Validate() = %v; want an error on %q", err, tt.want)
			}
		})
	}
}

func TestRollOut(t *testing.T) {
	w := newASGWorld(t)
	w.created(t, "web", nil)
	inUse, err := w.hubs.ImagesInUse(t.Context(), "")
	if err != nil || !inUse[w.image2] || inUse[w.image] {
		t.Fatalf("ImagesInUse() before = %v, %v; want only %s", inUse, err, w.image2)
	}
	prefs := Rollout{Warmup: 60 * time.Second}
	var res RolloutResult
	minHealthy := w.drive(t, "web", func() { res, err = RollOut(t.Context(), w.hubs, "", "web", w.image, prefs, testLog) })
	if err != nil || !res.Changed || res.Version != "2" || res.Refreshes != 1 {
		t.Fatalf("RollOut() = %+v, %v; want version 2 after one refresh", res, err)
	}
	if got := w.versions(t, "web"); got["2"] != 10 || len(got) != 1 {
		t.Errorf("instances per version = %v; want all 10 on 2", got)
	}
	if minHealthy < 9 {
		t.Errorf("fewest healthy during the rollout = %d; want >= 9", minHealthy)
	}
	inUse, err = w.hubs.ImagesInUse(t.Context(), "")
	if err != nil || !inUse[w.image] || inUse[w.image2] {
		t.Errorf("ImagesInUse() after = %v, %v; want only %s", inUse, err, w.image)
	}

	// Again: nothing to do, no new version.
	versions := w.sim.Calls("CreateLaunchTemplateVersion")
	res, err = RollOut(t.Context(), w.hubs, "", "web", w.image, prefs, testLog)
	if err != nil || res.Changed {
		t.Errorf("second RollOut() = %+v, %v; want no change", res, err)
	}
	if n := w.sim.Calls("CreateLaunchTemplateVersion"); n != versions {
		t.Errorf("CreateLaunchTemplateVersion calls = %d; want %d", n, versions)
	}

	// A group that does not exist is a permanent error.
	if _, err := RollOut(t.Context(), w.hubs, "", "nope", w.image, prefs, testLog); !engine.IsPermanent(err) {
		t.Errorf("RollOut(no group) = %v; want a permanent error", err)
	}
}

// TestEngineRunsASGExample converges examples/asg.yaml (aws:ami → aws:asg)
// through the config parser and the engine against the simulator.
func TestEngineRunsASGExample(t *testing.T) {
	w := newWorld(t, worldOpts{})
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "asg.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	kinds := config.Kinds{
		"aws:ami": func() engine.Resource { return NewAMI(w.hubs) },
		"aws:asg": func() engine.Resource { return NewASG(w.hubs) },
	}
	g, err := config.Parse("asg.yaml", data, kinds)
	if err != nil {
		t.Fatal(err)
	}
	if err := engine.New(g, engine.Options{Once: true, Log: testLog}).Run(t.Context()); err != nil {
		t.Fatalf("Run() = %v", err)
	}
	gi, ok := w.sim.AutoScalingGroup("web")
	if !ok || gi.Desired != 4 || len(gi.Instances) != 4 {
		t.Fatalf("group = %+v, %v; want 4 instances", gi, ok)
	}
	for _, in := range gi.Instances {
		if in.LaunchTemplateVersion != "1" {
			t.Errorf("instance %s on version %s; want 1", in.ID, in.LaunchTemplateVersion)
		}
	}
	// A second run finds everything converged.
	if err := engine.New(g, engine.Options{Once: true, Log: testLog}).Run(t.Context()); err != nil {
		t.Fatalf("second Run() = %v", err)
	}
	for _, a := range []string{"CreateLaunchTemplate", "CreateAutoScalingGroup", "CreateImage"} {
		if n := w.sim.Calls(a); n != 1 {
			t.Errorf("%s calls = %d; want 1", a, n)
		}
	}
	if n := w.sim.Calls("CreateLaunchTemplateVersion") + w.sim.Calls("StartInstanceRefresh"); n != 0 {
		t.Errorf("CreateLaunchTemplateVersion + StartInstanceRefresh calls = %d; want 0", n)
	}
}

func TestASGCheckOnlyChangesNothing(t *testing.T) {
	w := newASGWorld(t)
	fresh := w.asg("web", w.image2, nil)
	if ok, err := fresh.CheckApply(t.Context(), false); ok || err != nil {
		t.Fatalf("CheckApply(noop) of a missing group = %v, %v; want false, nil", ok, err)
	}
	if n := w.sim.Calls("CreateLaunchTemplate") + w.sim.Calls("CreateAutoScalingGroup"); n != 0 {
		t.Fatalf("noop made %d create calls", n)
	}
	w.created(t, "web", nil)
	before, _ := w.sim.CallCounts()
	r2 := w.asg("web", w.image, nil)
	if ok, err := r2.CheckApply(t.Context(), false); ok || err != nil {
		t.Fatalf("CheckApply(noop) of a new image = %v, %v; want false, nil", ok, err)
	}
	after, _ := w.sim.CallCounts()
	for _, a := range []string{"CreateLaunchTemplateVersion", "StartInstanceRefresh", "UpdateAutoScalingGroup"} {
		if after[a] != before[a] {
			t.Errorf("noop called %s", a)
		}
	}
}
