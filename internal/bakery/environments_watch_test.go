package bakery_test

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"

	"kiln/internal/awsapi"
	"kiln/internal/awssim"
	"kiln/internal/bakery"
	"kiln/internal/store"
	"kiln/internal/testsupport"
)

// TestEnvironmentDriftRepaired: an environment's group set to 0 by hand
// shows as drifted, with what differs beside the live count, and the
// bakery puts the declared size back (woken by the group's Auto Scaling
// event).
func TestEnvironmentDriftRepaired(t *testing.T) {
	w := newEnvWorld(t)
	w.apply(t, envProject("manual", "debug"))
	image := w.bakeImage(t)
	if p := w.waitEnv(t, "staging", image); p.State != store.PromotionSucceeded {
		t.Fatalf("staging: %+v", p)
	}
	statuses := func() bakery.EnvStatus {
		t.Helper()
		envs, err := w.st.Environments(t.Context(), "web")
		if err != nil {
			t.Fatal(err)
		}
		promos, err := w.st.Promotions(t.Context(), store.PromotionQuery{Project: "web"})
		if err != nil {
			t.Fatal(err)
		}
		return w.svc.LiveStatuses(t.Context(), "web", bakery.EnvStatuses("web", envs, promos))[0]
	}
	testsupport.Eventually(t, "the staging watch to look at its group once", func() bool {
		return strings.Contains(w.logs.String(), `msg="environment checked" project=web env=staging`)
	})
	// A status is the watch's last look: showing it reads nothing from AWS.
	reads := w.sim.Calls("DescribeAutoScalingGroups")
	if st := statuses(); st.State != bakery.EnvLive || st.Live == nil || st.Live.InService != 2 || len(st.Drift) != 0 || st.Live.Seen.IsZero() {
		t.Fatalf("staging before = %s %+v drift %v; want live with 2 in service, and when it was seen", st.State, st.Live, st.Drift)
	}
	if n := w.sim.Calls("DescribeAutoScalingGroups") - reads; n != 0 {
		t.Errorf("statuses made %d DescribeAutoScalingGroups; want 0", n)
	}

	as, err := w.hubs.AutoScaling(t.Context(), "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := as.UpdateAutoScalingGroup(t.Context(), &autoscaling.UpdateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String("web-staging"), MinSize: aws.Int32(0), DesiredCapacity: aws.Int32(0),
	}); err != nil {
		t.Fatal(err)
	}
	// Auto Scaling's event for the group wakes the watch, which sees the
	// drift and puts it back; throttled, the repair waits, and the status
	// shows the drift meanwhile.
	w.sim.InjectFault(awssim.Fault{Action: "UpdateAutoScalingGroup", Code: "Throttling"})
	w.hubs.Deliver(awsapi.Event{Region: "us-east-1", Source: "aws.autoscaling", Resource: "web-staging"})
	var st bakery.EnvStatus
	testsupport.Eventually(t, "staging shown drifted", func() bool {
		st = statuses()
		return st.State == bakery.EnvDrifted
	})
	if !strings.Contains(st.Detail, "desired capacity 0 (declared 2)") ||
		!strings.Contains(st.Detail, "size 0-2 (declared 2-2)") || st.Live == nil || st.Live.Desired != 0 {
		t.Errorf("staging after a hand change = %s (%s) live %+v; want drifted, naming desired capacity and size", st.State, st.Detail, st.Live)
	}
	w.sim.ClearFaults()
	w.hubs.Deliver(awsapi.Event{Region: "us-east-1", Source: "aws.autoscaling", Resource: "web-staging"})
	testsupport.Eventually(t, "staging repaired", func() bool {
		st := statuses()
		return st.State == bakery.EnvLive && st.Live != nil && st.Live.Min == 2 && st.Live.Desired == 2 && st.Live.InService == 2
	})
	// The group is right before the watch logs its repair: wait for the line.
	testsupport.Eventually(t, "the logs to say the drift and the repair", func() bool {
		logs := w.logs.String()
		return strings.Contains(logs, "environment drifted: putting it back") && strings.Contains(logs, "environment repaired")
	})
	gi, _ := w.sim.AutoScalingGroup("web-staging")
	if gi.Desired != 2 {
		t.Errorf("simulator group desired = %d; want 2", gi.Desired)
	}
}
