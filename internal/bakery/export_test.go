package bakery

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"kiln/internal/awsapi"
	"kiln/internal/awssim"
)

// What package bake_test (rollout_test.go) shares of this package's test
// helpers.

// NewTestWorld is newWorld for the external tests: the simulator served over
// HTTP, hubs pointed at it (running) and their EC2 client, all stopped at the
// end of the test.
func NewTestWorld(t *testing.T, o awssim.Options) (*awssim.Sim, *awsapi.Hubs, *ec2.Client) {
	t.Helper()
	w := newWorld(t, o)
	return w.sim, w.hubs, w.client
}

// Deploying reports whether promotion id's rollout (with the soak and the
// follow-ups after it) is still running on s: once it is not, whatever it
// was going to start has been recorded.
func Deploying(s *Service, id int64) bool {
	s.deploys.mu.Lock()
	defer s.deploys.mu.Unlock()
	return s.deploys.running[promotionLease(id)]
}
