package bakery

import (
	"strconv"
	"testing"
	"time"

	"kiln/internal/awsapi"
	"kiln/internal/awssim"
	"kiln/internal/pipeline"
	"kiln/internal/store"
	"kiln/internal/testsupport"
)

// testersOf are the simulator's test instances of bake id.
func (w *world) testersOf(id int64) []awssim.InstanceInfo {
	var out []awssim.InstanceInfo
	for _, in := range w.sim.Instances() {
		if in.Tags[awsapi.TagBake] == strconv.FormatInt(id, 10) && in.Tags[pipeline.TagRole] == "tester" {
			out = append(out, in)
		}
	}
	return out
}

// TestImageTestCrashResume stops the server while the test instance runs
// its script (the "test image" step in flight) and starts a fresh one on
// the same database: the bake finishes with the one test instance,
// terminated, and the step recorded as succeeded.
func TestImageTestCrashResume(t *testing.T) {
	w := newWorld(t, awssim.Options{})
	st1 := w.open(t)
	putProject(t, st1, "web", "#!/bin/sh\necho hello\n", nil)
	if err := st1.PutTests(t.Context(), "web", &store.ImageTests{Script: "#!/bin/sh\nsleep 3000\necho smoke ok\n", Timeout: 20 * time.Second}); err != nil {
		t.Fatal(err)
	}
	s1 := w.serve(t, st1, nil)
	id := trigger(t, s1, "web")
	testsupport.Eventually(t, "the test instance to launch", func() bool { return len(w.testersOf(id)) == 1 })
	s1.stop()
	if got := stepOf(t, st1, id, pipeline.StepTestImage); got.State != store.StepRunning {
		t.Fatalf("step %q = %s; want running when the server stopped", pipeline.StepTestImage, got.State)
	}
	st1.Close()

	b := w.resumeSucceeds(t, id)
	ts := w.testersOf(id)
	if len(ts) != 1 {
		t.Fatalf("%d test instances of bake %d; want 1 across the restart", len(ts), id)
	}
	if !gone(ts[0]) {
		t.Errorf("test instance %s is %s; want terminated", ts[0].ID, ts[0].State)
	}
	if ts[0].ImageID != b.ImageID {
		t.Errorf("test instance ran %s; want the bake's image %s", ts[0].ImageID, b.ImageID)
	}
	w.checkOneBuilderGone(t, id)
}
