package awsres

import (
	"strings"
	"testing"
	"time"

	"kiln/internal/awsapi"
	"kiln/internal/awssim"
	"kiln/internal/engine"
	"kiln/internal/pipeline"
)

// TestAMITests: an aws:ami with tests: a passing test outputs the image;
// a failing one fails the check with the exit status, keeps the image
// tagged kiln:tests=failed and never outputs it, and the next check says
// so again without baking; the test instances are gone.
func TestAMITests(t *testing.T) {
	w := newWorld(t, worldOpts{sim: awssim.Options{TimeScale: 0.001, Durations: awssim.Durations{TerminatedVisible: 1000 * time.Hour}}})
	ok := w.ami("good", "#!/bin/sh\ntrue\n", func(r *AMI) {
		r.Tests = &AMITests{Script: "#!/bin/sh\necho fine\n", Timeout: 10 * time.Second}
	})
	if _, err := ok.CheckApply(t.Context(), true); err != nil {
		t.Fatalf("CheckApply(passing tests) = %v", err)
	}
	if id := ok.Outputs()["image_id"]; id == "" {
		t.Fatalf("no image_id after passing tests")
	}
	if conv, err := ok.CheckApply(t.Context(), true); err != nil || !conv {
		t.Errorf("second CheckApply = %v, %v; want converged", conv, err)
	}

	bad := w.ami("bad", "#!/bin/sh\ntrue\n", func(r *AMI) {
		r.Tests = &AMITests{Script: "#!/bin/sh\necho smoke test broke\nexit 3\n", Timeout: 10 * time.Second}
	})
	_, err := bad.CheckApply(t.Context(), true)
	if err == nil || !strings.Contains(err.Error(), "image failed its tests: exit 3") || !strings.Contains(err.Error(), "smoke test broke") {
		t.Fatalf("CheckApply(failing tests) = %v; want the exit status and the console tail", err)
	}
	imgs := w.amiImages(t, "bad")
	if len(imgs) != 1 || awsapi.TagValue(imgs[0].Tags, pipeline.TagTests) != pipeline.TestsFailed {
		t.Fatalf("images = %+v; want the one kept, tagged failed", imgs)
	}
	runs := w.sim.Calls("RunInstances")
	_, err = bad.CheckApply(t.Context(), true)
	if err == nil || !engine.IsPermanent(err) || !strings.Contains(err.Error(), "failed its tests") {
		t.Errorf("next CheckApply = %v; want a permanent error naming the failed tests", err)
	}
	if n := w.sim.Calls("RunInstances"); n != runs {
		t.Errorf("RunInstances %d → %d; want no new bake of a spec whose image failed", runs, n)
	}
	if bad.Outputs()["image_id"] != "" {
		t.Errorf("image_id = %q; want none", bad.Outputs()["image_id"])
	}
	for _, in := range w.sim.Instances() {
		if in.State != "terminated" && in.State != "shutting-down" {
			t.Errorf("%s %s is %s; want terminated", in.Tags[pipeline.TagRole], in.ID, in.State)
		}
	}
	// The digest without tests is that of earlier versions; tests change it.
	plain := &AMI{Script: "x", Type: "t3.small"}
	tested := &AMI{Script: "x", Type: "t3.small", Tests: &AMITests{Script: "y"}}
	if plain.specDigest("") == tested.specDigest("") {
		t.Errorf("tests do not change the spec digest")
	}
}
