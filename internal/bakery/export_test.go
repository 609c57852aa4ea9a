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

// Eventually is eventually for the external tests.
var Eventually = eventually
