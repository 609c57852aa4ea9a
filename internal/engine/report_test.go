package engine

import (
	"context"
	"testing"
	"testing/synctest"
)

// TestReportShowsWhyACheckIsNotDone: a CheckApply that waits (an AWS call
// being retried) says why through Report; Status shows it as the vertex's
// LastError while the check runs, and a converged check clears it.
func TestReportShowsWhyACheckIsNotDone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		f := &fake{check: func(ctx context.Context, _ bool, n int) (bool, error) {
			Report(ctx, "retrying ec2:DescribeKeyPairs (attempt 3): InternalError")
			<-release
			return true, nil
		}}
		e := New(mustGraph(t, spec("a", f)), Options{})
		stop := start(t, e)
		synctest.Wait()
		if s := stateOf(t, e, id("a")); s.State != StateChecking || s.LastError != "retrying ec2:DescribeKeyPairs (attempt 3): InternalError" {
			t.Errorf("while checking: state %s, last error %q; want checking, the reported reason", s.State, s.LastError)
		}
		close(release)
		synctest.Wait()
		if s := stateOf(t, e, id("a")); s.State != StateConverged || s.LastError != "" {
			t.Errorf("after the check: state %s, last error %q; want converged, none", s.State, s.LastError)
		}
		Report(t.Context(), "outside any check") // does nothing
		_ = stop()
	})
}
