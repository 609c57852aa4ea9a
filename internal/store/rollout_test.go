package store

import (
	"reflect"
	"testing"
	"time"
)

// TestProjectRollout round-trips a project's rollout target and its
// removal.
func TestProjectRollout(t *testing.T) { bothDrivers(t, testProjectRollout) }

func testProjectRollout(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	p := testProject("web")
	pct, skip := 75, false
	p.Rollout = &Rollout{Group: "web-asg", Region: "eu-west-1", MinHealthyPercent: &pct, Warmup: time.Minute,
		Checkpoints: []int{50, 100}, CheckpointDelay: 10 * time.Minute, SkipMatching: &skip, Alarms: []string{"5xx"}}
	if _, err := s.PutProject(ctx, p, "first-secret"); err != nil {
		t.Fatal(err)
	}
	got, err := s.Project(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Rollout, p.Rollout) {
		t.Errorf("Rollout = %+v; want %+v", got.Rollout, p.Rollout)
	}
	p.Rollout = nil
	if _, err := s.PutProject(ctx, p, ""); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Project(ctx, "web"); err != nil || got.Rollout != nil {
		t.Errorf("Rollout after removal = %+v, %v; want nil", got.Rollout, err)
	}
}
