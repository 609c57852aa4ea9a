package bakery_test

// These tests run in package bake_test: they roll out through awsres, which
// imports bake.

import (
	"context"
	"log/slog"
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

	"kiln/internal/awsapi"
	"kiln/internal/awssim"
	"kiln/internal/bakery"
	"kiln/internal/pipeline"
	"kiln/internal/store"
	"kiln/internal/testsupport"
)

// rolloutWorld is a simulator on a tiny time scale (a boot takes 15 ms, a
// 60 s warm-up 60 ms), hubs pointed at it, a store and a running Service
// that rolls out through awsres.RollOut as kiln serve does.
type rolloutWorld struct {
	sim  *awssim.Sim
	hubs *awsapi.Hubs
	ec2  *ec2.Client
	st   *store.Store
	svc  *bakery.Service
	stop func() // stops svc
}

func newRolloutWorld(t *testing.T) *rolloutWorld {
	t.Helper()
	sim, hubs, client := bakery.NewTestWorld(t, awssim.Options{TimeScale: 0.001, Durations: awssim.Durations{TerminatedVisible: 1000 * time.Hour}})
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "kiln.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w := &rolloutWorld{sim: sim, hubs: hubs, ec2: client, st: st}
	w.svc, w.stop = w.serve(t)
	return w
}

// serve starts a Service on the world's store; stop stops it (as a
// shutdown or a crash: running bakes stay running for the next one).
func (w *rolloutWorld) serve(t *testing.T) (svc *bakery.Service, stop func()) {
	t.Helper()
	return w.serveLogging(t, slog.New(slog.DiscardHandler))
}

// serveLogging is serve with the service logging to log.
func (w *rolloutWorld) serveLogging(t *testing.T, log *slog.Logger) (svc *bakery.Service, stop func()) {
	t.Helper()
	svc, err := bakery.NewService(w.st, w.hubs, log, bakery.Options{
		FetchPollInterval: 20 * time.Millisecond,
		BusySnooze:        50 * time.Millisecond,
		SweepInterval:     time.Hour,
		Pipeline:          pipeline.PipelineOptions{ConsoleWait: 2 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	var swg sync.WaitGroup
	swg.Go(func() {
		if err := svc.Run(sctx); err != nil {
			t.Errorf("Run() = %v", err)
		}
	})
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); swg.Wait() }) }
	t.Cleanup(stop)
	return svc, stop
}

// group makes Auto Scaling group "web" of n instances on the base image
// (launch template version 1) and waits until all are warmed up.
func (w *rolloutWorld) group(t *testing.T, n int) {
	t.Helper()
	imgs, err := w.ec2.DescribeImages(t.Context(), &ec2.DescribeImagesInput{
		Owners: []string{"amazon"}, Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"al2023-ami-2023.*-x86_64"}}},
	})
	if err != nil || len(imgs.Images) == 0 {
		t.Fatalf("DescribeImages(base) = %v, %v", imgs, err)
	}
	if _, err := w.ec2.CreateLaunchTemplate(t.Context(), &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String("web"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: imgs.Images[0].ImageId, InstanceType: types.InstanceTypeT3Micro},
	}); err != nil {
		t.Fatal(err)
	}
	as, err := w.hubs.AutoScaling(t.Context(), "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := as.CreateAutoScalingGroup(t.Context(), &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String("web"),
		LaunchTemplate:       &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String("web"), Version: aws.String("1")},
		MinSize:              aws.Int32(int32(n)), MaxSize: aws.Int32(int32(n)),
		AvailabilityZones: []string{"us-east-1a"},
	}); err != nil {
		t.Fatal(err)
	}
	testsupport.Eventually(t, "the group to be warmed up", func() bool {
		gi, ok := w.sim.AutoScalingGroup("web")
		return ok && gi.Healthy() == n && len(gi.Instances) == n
	})
}

// bake stores project web rolling out to group web and bakes it.
func (w *rolloutWorld) bake(t *testing.T) *store.Bake {
	t.Helper()
	return w.waitFinal(t, w.trigger(t, 60*time.Second))
}

// trigger stores project web rolling out to group web with the given
// warm-up and triggers a bake of it.
func (w *rolloutWorld) trigger(t *testing.T, warmup time.Duration) int64 {
	t.Helper()
	p := store.Project{
		Name: "web", Region: "us-east-1", BaseOwner: "amazon", BaseName: "al2023-ami-2023.*-x86_64", BaseMostRecent: true,
		Type: "t3.small", Script: "#!/bin/sh\ntrue\n", Keep: 5, ScriptTimeout: 20 * time.Second, ImageTimeout: 20 * time.Second,
		Rollout: &store.Rollout{Group: "web", Warmup: warmup},
	}
	if _, err := w.st.PutProject(t.Context(), p, "0123456789abcdef0123"); err != nil {
		t.Fatal(err)
	}
	res, err := w.svc.Trigger(t.Context(), "web", "c0ffee", "refs/heads/main")
	if err != nil {
		t.Fatal(err)
	}
	return res.BakeID
}

func (w *rolloutWorld) waitFinal(t *testing.T, id int64) *store.Bake {
	t.Helper()
	var b *store.Bake
	testsupport.Eventually(t, "the bake to finish", func() bool {
		var err error
		b, err = w.st.Bake(t.Context(), id)
		return err == nil && b.State.Final()
	})
	return b
}

// lastStep is the bake's last recorded step.
func (w *rolloutWorld) lastStep(t *testing.T, id int64) store.Step {
	t.Helper()
	steps, err := w.st.Steps(t.Context(), id)
	if err != nil || len(steps) == 0 {
		t.Fatalf("Steps() = %v, %v", steps, err)
	}
	return steps[len(steps)-1]
}

// TestBakeRollsOut: a successful bake of a project with a rollout target
// ends with the group's instances all running the new image, the bake's
// last step "rollout" succeeded.
func TestBakeRollsOut(t *testing.T) {
	w := newRolloutWorld(t)
	w.group(t, 4)
	b := w.bake(t)
	if b.State != store.Succeeded || b.ImageID == "" {
		t.Fatalf("bake = %s (%s), image %q; want succeeded with an image", b.State, b.Reason, b.ImageID)
	}
	if st := w.lastStep(t, b.ID); st.Name != pipeline.StepRollout || st.State != store.StepSucceeded {
		t.Errorf("last step = %q %s (%s); want %q succeeded", st.Name, st.State, st.Detail, pipeline.StepRollout)
	}
	gi, _ := w.sim.AutoScalingGroup("web")
	if len(gi.Instances) != 4 {
		t.Fatalf("group has %d instances; want 4", len(gi.Instances))
	}
	images := map[string]string{}
	for _, in := range w.sim.Instances() {
		images[in.ID] = in.ImageID
	}
	for _, in := range gi.Instances {
		if images[in.ID] != b.ImageID || in.LaunchTemplateVersion != "2" {
			t.Errorf("instance %s runs %s (version %s); want %s (version 2)", in.ID, images[in.ID], in.LaunchTemplateVersion, b.ImageID)
		}
	}
	inUse, err := w.hubs.ImagesInUse(t.Context(), "us-east-1")
	if err != nil || !inUse[b.ImageID] {
		t.Errorf("ImagesInUse() = %v, %v; want %s among them", inUse, err, b.ImageID)
	}
}

// TestBakeRolloutFails: a failed instance refresh fails the bake with the
// rollout's reason and keeps its image.
func TestBakeRolloutFails(t *testing.T) {
	w := newRolloutWorld(t)
	w.group(t, 4)
	w.sim.FailNextRefresh(1)
	b := w.bake(t)
	if b.State != store.Failed || !strings.Contains(b.Reason, "instance refresh") {
		t.Fatalf("bake = %s (%s); want failed with the refresh's reason", b.State, b.Reason)
	}
	if st := w.lastStep(t, b.ID); st.Name != pipeline.StepRollout || st.State != store.StepFailed {
		t.Errorf("last step = %q %s (%s); want %q failed", st.Name, st.State, st.Detail, pipeline.StepRollout)
	}
	if b.ImageID == "" {
		t.Fatal("the failed bake has no image id; want it kept")
	}
	out, err := w.ec2.DescribeImages(t.Context(), &ec2.DescribeImagesInput{ImageIds: []string{b.ImageID}})
	if err != nil || len(out.Images) != 1 || out.Images[0].State != types.ImageStateAvailable {
		t.Errorf("DescribeImages(%s) = %v, %v; want it available", b.ImageID, out, err)
	}
	recorded, err := w.st.Images(t.Context(), "web")
	if err != nil || len(recorded) != 1 || recorded[0].ImageID != b.ImageID {
		t.Errorf("store images = %v, %v; want %s", recorded, err, b.ImageID)
	}
}

// TestBakeRolloutResumes stops the service while the instance refresh
// runs (as a crash would); the next service resumes the bake, which
// follows the same refresh (the same version, no second refresh) to the
// end.
func TestBakeRolloutResumes(t *testing.T) {
	w := newRolloutWorld(t)
	w.group(t, 4)
	id := w.trigger(t, 300*time.Second) // 300 ms per batch at this time scale
	testsupport.Eventually(t, "the instance refresh to start", func() bool { return w.sim.Calls("StartInstanceRefresh") > 0 })
	w.stop()
	if b, err := w.st.Bake(t.Context(), id); err != nil || b.State != store.Running {
		t.Fatalf("bake after the stop = %+v, %v; want running", b, err)
	}
	w.svc, w.stop = w.serve(t)
	b := w.waitFinal(t, id)
	if b.State != store.Succeeded {
		t.Fatalf("bake = %s (%s); want succeeded", b.State, b.Reason)
	}
	if st := w.lastStep(t, b.ID); st.Name != pipeline.StepRollout || st.State != store.StepSucceeded {
		t.Errorf("last step = %q %s (%s); want %q succeeded", st.Name, st.State, st.Detail, pipeline.StepRollout)
	}
	if n := w.sim.Calls("StartInstanceRefresh"); n != 1 {
		t.Errorf("StartInstanceRefresh calls = %d; want 1", n)
	}
	// The resumed rollout asks for the version again with the same client
	// token: still two versions.
	vs, err := w.ec2.DescribeLaunchTemplateVersions(t.Context(), &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateName: aws.String("web")})
	if err != nil || len(vs.LaunchTemplateVersions) != 2 {
		t.Errorf("launch template versions = %v, %v; want 2", vs, err)
	}
	gi, _ := w.sim.AutoScalingGroup("web")
	for _, in := range gi.Instances {
		if in.LaunchTemplateVersion != "2" {
			t.Errorf("instance %s on version %s; want 2", in.ID, in.LaunchTemplateVersion)
		}
	}
}

// TestBakeRolloutCancelled: a cancel while the refresh runs ends the bake
// as cancelled with its image kept (the refresh goes on in Auto Scaling).
func TestBakeRolloutCancelled(t *testing.T) {
	w := newRolloutWorld(t)
	w.group(t, 4)
	id := w.trigger(t, 300*time.Second)
	testsupport.Eventually(t, "the instance refresh to start", func() bool { return w.sim.Calls("StartInstanceRefresh") > 0 })
	if _, err := w.svc.Cancel(t.Context(), id, ""); err != nil {
		t.Fatal(err)
	}
	b := w.waitFinal(t, id)
	if b.State != store.Cancelled || b.ImageID == "" {
		t.Fatalf("bake = %s (%s), image %q; want cancelled with its image", b.State, b.Reason, b.ImageID)
	}
	if st := w.lastStep(t, b.ID); st.Name != pipeline.StepRollout || st.State != store.StepCancelled {
		t.Errorf("last step = %q %s (%s); want %q cancelled", st.Name, st.State, st.Detail, pipeline.StepRollout)
	}
	out, err := w.ec2.DescribeImages(t.Context(), &ec2.DescribeImagesInput{ImageIds: []string{b.ImageID}})
	if err != nil || len(out.Images) != 1 || out.Images[0].State != types.ImageStateAvailable {
		t.Errorf("DescribeImages(%s) = %v, %v; want it kept", b.ImageID, out, err)
	}
}
