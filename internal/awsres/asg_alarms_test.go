package awsres

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"kiln/internal/engine"
)

func putAlarm(t *testing.T, w *asgWorld, name string, state cwtypes.StateValue) {
	t.Helper()
	cw, err := w.hubs.CloudWatch(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cw.PutMetricAlarm(t.Context(), &cloudwatch.PutMetricAlarmInput{
		AlarmName: aws.String(name), MetricName: aws.String("5XXError"), Namespace: aws.String("AWS/ApplicationELB"),
		Statistic: cwtypes.StatisticSum, Period: aws.Int32(60), EvaluationPeriods: aws.Int32(1), Threshold: aws.Float64(5),
		ComparisonOperator: cwtypes.ComparisonOperatorGreaterThanThreshold,
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := cw.SetAlarmState(t.Context(), &cloudwatch.SetAlarmStateInput{AlarmName: aws.String(name), StateValue: state, StateReason: aws.String("5XX above 5")}); err != nil {
		t.Fatal(err)
	}
}

// An alarm of rollout.alarms in ALARM fails the refresh (Auto Scaling's
// AlarmSpecification): the group goes back to its version, by Auto
// Scaling with auto_rollback, else by kiln's refresh back (which does not
// carry the alarm, or it would fail too), and the resource fails for good
// naming the alarm.
func TestASGAlarmFailsRollout(t *testing.T) {
	for _, auto := range []bool{true, false} {
		t.Run(map[bool]string{true: "auto_rollback", false: "kiln_rollback"}[auto], func(t *testing.T) {
			w := newASGWorld(t)
			w.created(t, "web", nil)
			putAlarm(t, w, "web-5xx", cwtypes.StateValueAlarm)
			r2 := w.asg("web", w.image, func(r *ASG) { r.Rollout.AutoRollback, r.Rollout.Alarms = &auto, []string{"web-5xx"} })
			var err error
			w.drive(t, "web", func() { _, err = checkASG(t, r2) })
			var rf *RolloutError
			if !errors.As(err, &rf) || !engine.IsPermanent(err) || !strings.Contains(rf.Reason, "web-5xx") {
				t.Fatalf("CheckApply() error = %v; want a permanent *RolloutError naming web-5xx", err)
			}
			if got := w.versions(t, "web"); got["1"] != 10 || len(got) != 1 {
				t.Errorf("instances per version = %v; want all 10 back on 1", got)
			}
			if g := w.group(t, "web"); aws.ToString(g.LaunchTemplate.Version) != "1" {
				t.Errorf("group version = %s; want 1", aws.ToString(g.LaunchTemplate.Version))
			}
			t.Logf("%s", err)
		})
	}
}

func TestAlarms(t *testing.T) {
	w := newASGWorld(t)
	putAlarm(t, w, "calm", cwtypes.StateValueOk)
	putAlarm(t, w, "firing", cwtypes.StateValueAlarm)
	g, err := Alarms(t.Context(), w.hubs, "", []string{"calm", "gone"})
	if err != nil || g.Firing != "" || !slices.Equal(g.Missing, []string{"gone"}) || g.Error() != "" {
		t.Fatalf("Alarms(calm, gone) = %+v, %v; want none firing, gone missing", g, err)
	}
	g, err = Alarms(t.Context(), w.hubs, "", []string{"calm", "firing"})
	if err != nil || g.Firing != "firing" || g.Error() != "CloudWatch alarm firing is in ALARM: 5XX above 5" {
		t.Fatalf("Alarms(calm, firing) = %+v (%q), %v; want firing", g, g.Error(), err)
	}
	calls := w.sim.Calls("DescribeAlarms")
	if _, err := Alarms(t.Context(), w.hubs, "", nil); err != nil || w.sim.Calls("DescribeAlarms") != calls {
		t.Fatalf("Alarms(none) = %v, %d calls; want no call", err, w.sim.Calls("DescribeAlarms")-calls)
	}
	if calls != 2 {
		t.Errorf("DescribeAlarms calls = %d; want one per look", calls)
	}
}
