package pipeline_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"kiln/internal/awsapi"
	"kiln/internal/awssim"
	"kiln/internal/pipeline"
	"kiln/internal/testsupport"
)

func testSpec(script string) pipeline.Spec {
	return pipeline.Spec{
		ID: "b1", ImageName: "web-b1",
		Builder: pipeline.Builder{
			Region: "us-east-1", Type: "t3.small", Script: "#!/bin/sh\ntrue\n",
			Base:     pipeline.Base{Owner: "amazon", Name: alName, MostRecent: true},
			Timeouts: pipeline.Timeouts{Script: 10 * time.Second, Image: 10 * time.Second},
			Tests:    &pipeline.Tests{Script: script, Timeout: 10 * time.Second},
		},
		Match: map[string]string{pipeline.TagProject: "web"},
	}
}

// testers are the simulator's test instances (kiln:role=tester).
func testers(w *world) []awssim.InstanceInfo {
	var out []awssim.InstanceInfo
	for _, in := range w.sim.Instances() {
		if in.Tags[pipeline.TagRole] == "tester" {
			out = append(out, in)
		}
	}
	return out
}

func imageTag(t *testing.T, w *world, id, key string) string {
	t.Helper()
	c := ec2.NewFromConfig(awssim.ClientConfig(w.url, "us-east-1"))
	out, err := c.DescribeImages(t.Context(), &ec2.DescribeImagesInput{ImageIds: []string{id}})
	if err != nil || len(out.Images) != 1 {
		t.Fatalf("DescribeImages(%s) = %v, %v", id, out, err)
	}
	return awsapi.TagValue(out.Images[0].Tags, key)
}

// TestImageTests bakes with a test that passes and one that fails: the
// test instance runs from the new image, is terminated either way, and a
// failure fails the bake with the script's exit status, keeping the image
// tagged kiln:tests=failed.
func TestImageTests(t *testing.T) {
	for _, tc := range []struct {
		name, script string
		wantErr      string // "" = the bake succeeds
		wantTag      string
	}{
		{name: "passes", script: "#!/bin/sh\necho smoke ok\n", wantTag: pipeline.TestsPassed},
		{name: "fails", script: "#!/bin/sh\necho broken\nexit 3\n", wantErr: "image failed its tests: exit 3", wantTag: pipeline.TestsFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, awssim.Options{})
			p := pipeline.NewPipeline(w.hubs, slog.New(slog.DiscardHandler), pipeline.PipelineOptions{ConsoleWait: 2 * time.Second})
			rec := newRecorder()
			res, err := p.Bake(t.Context(), testSpec(tc.script), rec)
			var fe *pipeline.FailedError
			image := res.ImageID
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Bake() = %v; want success", err)
			case tc.wantErr != "":
				if !errors.As(err, &fe) || fe.Reason != tc.wantErr {
					t.Fatalf("Bake() = %v; want FailedError %q", err, tc.wantErr)
				}
				if !strings.Contains(fe.ConsoleTail, "broken") {
					t.Errorf("console tail = %q; want the test's output", fe.ConsoleTail)
				}
				image = fe.ImageID
			}
			ts := testers(w)
			if len(ts) != 1 {
				t.Fatalf("test instances = %v; want 1", ts)
			}
			if ts[0].ImageID != image || image == "" {
				t.Errorf("test instance runs %s; want the new image %s", ts[0].ImageID, image)
			}
			for _, in := range w.sim.Instances() {
				if in.State != awssim.StateTerminated && in.State != awssim.StateShuttingDown {
					t.Errorf("instance %s (%s) is %s; want terminated", in.ID, in.Tags[pipeline.TagRole], in.State)
				}
			}
			if got := imageTag(t, w, image, pipeline.TagTests); got != tc.wantTag {
				t.Errorf("image %s %s = %q; want %q", image, pipeline.TagTests, got, tc.wantTag)
			}
			if imgs := w.images(t, "us-east-1"); !slices.Equal(imgs, []string{image}) {
				t.Errorf("images = %v; want the tested one kept: %s", imgs, image)
			}
			wantState := pipeline.StepSucceeded
			if tc.wantErr != "" {
				wantState = pipeline.StepFailed
			}
			if got := rec.stepStates(pipeline.StepTestImage); !slices.Equal(got, []pipeline.StepState{wantState}) {
				t.Errorf("step %q = %v; want %s", pipeline.StepTestImage, got, wantState)
			}
		})
	}
}

// TestImageTestTimeout: a test that never ends fails the bake once its
// timeout has passed, and its instance is terminated.
func TestImageTestTimeout(t *testing.T) {
	w := newWorld(t, awssim.Options{})
	p := pipeline.NewPipeline(w.hubs, slog.New(slog.DiscardHandler), pipeline.PipelineOptions{ConsoleWait: 200 * time.Millisecond})
	spec := testSpec("#!/bin/sh\nsleep 360000\n")
	spec.Tests.Timeout = 500 * time.Millisecond
	_, err := p.Bake(t.Context(), spec, newRecorder())
	var fe *pipeline.FailedError
	if !errors.As(err, &fe) || !strings.Contains(fe.Reason, "image failed its tests: timed out after 500ms") {
		t.Fatalf("Bake() = %v; want a timed-out test", err)
	}
	for _, in := range testers(w) {
		if in.State != awssim.StateTerminated && in.State != awssim.StateShuttingDown {
			t.Errorf("test instance %s is %s; want terminated", in.ID, in.State)
		}
	}
}

// TestImageTestResumed kills the bake (its context) while the test
// instance runs, then bakes again: the same test instance is found again,
// none is left at the end.
func TestImageTestResumed(t *testing.T) {
	w := newWorld(t, awssim.Options{})
	p := pipeline.NewPipeline(w.hubs, slog.New(slog.DiscardHandler), pipeline.PipelineOptions{ConsoleWait: 2 * time.Second})
	spec := testSpec("#!/bin/sh\nsleep 2\necho fine\n")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := p.Bake(ctx, spec, newRecorder())
		done <- err
	}()
	testsupport.Eventually(t, "a test instance is launched", func() bool { return len(testers(w)) == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted Bake() = %v; want context.Canceled", err)
	}
	rec := newRecorder()
	res, err := p.Bake(t.Context(), spec, rec)
	if err != nil {
		t.Fatalf("resumed Bake() = %v", err)
	}
	ts := testers(w)
	if len(ts) != 1 {
		t.Fatalf("test instances = %d; want 1 across the restart", len(ts))
	}
	if ts[0].State != awssim.StateTerminated && ts[0].State != awssim.StateShuttingDown {
		t.Errorf("test instance %s is %s; want terminated", ts[0].ID, ts[0].State)
	}
	if got := imageTag(t, w, res.ImageID, pipeline.TagTests); got != pipeline.TestsPassed {
		t.Errorf("image %s = %q; want passed", pipeline.TagTests, got)
	}
	// Baked again after success: not tested again.
	if _, err := p.Bake(t.Context(), spec, newRecorder()); err != nil {
		t.Fatalf("third Bake() = %v", err)
	}
	if n := len(testers(w)); n != 1 {
		t.Errorf("test instances after a repeated bake = %d; want 1", n)
	}
}

// TestRetentionRemovesFailedTestsFirst: keep 1 over an older image that
// passed and a newer one that failed its tests keeps the one that passed.
func TestRetentionRemovesFailedTestsFirst(t *testing.T) {
	w := newWorld(t, awssim.Options{})
	p := pipeline.NewPipeline(w.hubs, slog.New(slog.DiscardHandler), pipeline.PipelineOptions{ConsoleWait: 2 * time.Second})
	good, err := p.Bake(t.Context(), testSpec("#!/bin/sh\ntrue\n"), newRecorder())
	if err != nil {
		t.Fatal(err)
	}
	spec := testSpec("#!/bin/sh\nexit 1\n")
	spec.ID, spec.ImageName = "b2", "web-b2"
	_, err = p.Bake(t.Context(), spec, newRecorder())
	var fe *pipeline.FailedError
	if !errors.As(err, &fe) || fe.ImageID == "" {
		t.Fatalf("second Bake() = %v; want failed tests, image kept", err)
	}
	// An instance shutting down still uses its image: wait until all are gone.
	testsupport.Eventually(t, "the instances to terminate", func() bool {
		for _, in := range w.sim.Instances() {
			if in.State != awssim.StateTerminated {
				return false
			}
		}
		return true
	})
	ret, err := p.Retain(t.Context(), "us-east-1", map[string]string{pipeline.TagProject: "web"}, pipeline.Keep{N: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ret.Kept, []string{good.ImageID}) || !slices.Equal(ret.Removed, []string{fe.ImageID}) {
		t.Errorf("Retain() kept %v, removed %v; want %s kept, %s (failed its tests, newer) removed", ret.Kept, ret.Removed, good.ImageID, fe.ImageID)
	}
}
