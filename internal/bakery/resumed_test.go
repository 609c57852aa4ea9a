package bakery

import (
	"strings"
	"testing"

	"kiln/internal/awssim"
	"kiln/internal/pipeline"
	"kiln/internal/store"
)

// TestResumedStepSaysItsTimeIncludesDowntime: a step that a dead process
// left running keeps its first start (its timeouts run from it), so the
// process that takes it over says, in the step's detail from start to
// finish, that its time includes the downtime; a step it starts afresh
// says nothing of the kind.
func TestResumedStepSaysItsTimeIncludesDowntime(t *testing.T) {
	w := newWorld(t, awssim.Options{})
	st := w.open(t)
	putProject(t, st, "web", "#!/bin/sh\necho hello\n", nil)
	res, err := st.CreateBake(t.Context(), "web", "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.Bake(t.Context(), res.BakeID)
	if err != nil {
		t.Fatal(err)
	}
	// The dead process: it started waiting, and never finished.
	if err := st.StartStep(t.Context(), b.ID, pipeline.StepWaitStopped, "i-0abc"); err != nil {
		t.Fatal(err)
	}
	first := stepOf(t, st, b.ID, pipeline.StepWaitStopped).Started

	rec := &storeRecorder{s: &Service{store: st}, bake: b}
	ctx := t.Context()
	if err := rec.StartStep(ctx, pipeline.StepWaitStopped, "i-0abc"); err != nil {
		t.Fatal(err)
	}
	got := stepOf(t, st, b.ID, pipeline.StepWaitStopped)
	if !strings.HasPrefix(got.Detail, "i-0abc; resumed after a restart at ") || !strings.HasSuffix(got.Detail, ": its time includes the downtime") {
		t.Errorf("resumed step's detail = %q; want the instance and the resume note", got.Detail)
	}
	if !got.Started.Equal(first) {
		t.Errorf("resumed step started %v; want its first start %v kept", got.Started, first)
	}
	if err := rec.FinishStep(ctx, pipeline.StepWaitStopped, pipeline.StepSucceeded, "stopped"); err != nil {
		t.Fatal(err)
	}
	if got := stepOf(t, st, b.ID, pipeline.StepWaitStopped); got.State != store.StepSucceeded || !strings.HasPrefix(got.Detail, "stopped; resumed after a restart at ") {
		t.Errorf("finished resumed step = %s %q; want succeeded, the note kept", got.State, got.Detail)
	}

	// A step this process starts itself carries no note, then or later.
	if err := rec.StartStep(ctx, pipeline.StepCreateImage, ""); err != nil {
		t.Fatal(err)
	}
	if err := rec.FinishStep(ctx, pipeline.StepCreateImage, pipeline.StepSucceeded, "ami-0def"); err != nil {
		t.Fatal(err)
	}
	if got := stepOf(t, st, b.ID, pipeline.StepCreateImage); got.Detail != "ami-0def" {
		t.Errorf("fresh step's detail = %q; want ami-0def alone", got.Detail)
	}
}

func stepOf(t *testing.T, st *store.Store, bakeID int64, name string) store.Step {
	t.Helper()
	steps, err := st.Steps(t.Context(), bakeID)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range steps {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no step %q", name)
	return store.Step{}
}
