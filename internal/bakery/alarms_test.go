package bakery_test

import (
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"kiln/internal/awssim"
	"kiln/internal/bakery"
	"kiln/internal/store"
	"kiln/internal/testsupport"
)

// alarmProject is project web whose staging is gated by the CloudWatch
// alarm web-5xx (rollback: auto), and production follows staging after
// soak.
func alarmProject(soak string) string {
	return `name: web
region: us-east-1
base: {owner: amazon, name: "al2023-ami-2023.*-x86_64", most_recent: true}
type: t3.small
script: |
  #!/bin/sh
  true
keep: 1
timeouts: {script: 20s, image: 20s}
environments:
  - name: staging
    alarms: [web-5xx]
    rollback: auto
    group: {type: t3.micro, min: 2, max: 2, rollout: {min_healthy_percent: 50, warmup: 10s}}
  - name: production
    promotion: auto
    soak: ` + soak + `
    group: {type: t3.micro, min: 2, max: 2, rollout: {min_healthy_percent: 50, warmup: 10s}}
`
}

// TestAlarmGatedPromotion: an alarm that stays OK lets an image through
// staging to production; one set to ALARM with the aws CLI during
// staging's soak fails the promotion naming the alarm, takes staging back
// to the previous image and launch-template version, and production is
// not promoted; one in ALARM while the refresh runs makes Auto Scaling
// roll the refresh back (AlarmSpecification, AutoRollback).
func TestAlarmGatedPromotion(t *testing.T) {
	bin, err := exec.LookPath("aws")
	if err != nil {
		t.Skip("the aws CLI is not installed")
	}
	w := newEnvWorld(t)
	srv := httptest.NewServer(w.sim)
	t.Cleanup(srv.Close)
	cw := cloudwatch.NewFromConfig(awssim.ClientConfig(srv.URL))
	ctx := t.Context()
	if _, err := cw.PutMetricAlarm(ctx, &cloudwatch.PutMetricAlarmInput{
		AlarmName: aws.String("web-5xx"), MetricName: aws.String("5XXError"), Namespace: aws.String("AWS/ApplicationELB"),
		Statistic: cwtypes.StatisticSum, Period: aws.Int32(60), EvaluationPeriods: aws.Int32(1), Threshold: aws.Float64(5),
		ComparisonOperator: cwtypes.ComparisonOperatorGreaterThanThreshold,
	}); err != nil {
		t.Fatal(err)
	}
	setState := func(state, reason string) {
		t.Helper()
		dir := t.TempDir()
		cmd := exec.CommandContext(ctx, bin, "--endpoint-url", srv.URL, "cloudwatch", "set-alarm-state",
			"--alarm-name", "web-5xx", "--state-value", state, "--state-reason", reason)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+awssim.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+awssim.SecretAccessKey,
			"AWS_DEFAULT_REGION=us-east-1", "AWS_CONFIG_FILE="+dir+"/config", "AWS_SHARED_CREDENTIALS_FILE="+dir+"/credentials", "AWS_PAGER=")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("aws cloudwatch set-alarm-state %s: %v\n%s", state, err, out)
		}
	}
	setState("OK", "healthy")

	// OK: through staging's soak to production.
	w.apply(t, alarmProject("1s"))
	first := w.bakeImage(t)
	st1 := w.waitEnv(t, "staging", first)
	if st1.State != store.PromotionSucceeded {
		t.Fatalf("staging promotion of %s: %+v", first, st1)
	}
	if pr := w.waitEnv(t, "production", first); pr.State != store.PromotionSucceeded {
		t.Fatalf("production promotion of %s: %+v", first, pr)
	}
	if n := w.sim.Calls("DescribeAlarms"); n == 0 {
		t.Fatal("no DescribeAlarms: kiln did not watch the alarm")
	}

	// ALARM during the soak: staging goes back, production stays.
	w.apply(t, alarmProject("30s")) // looks every 3 s
	second := w.bakeImage(t)
	var st2 store.Promotion
	testsupport.Eventually(t, "staging to run "+second+" and soak", func() bool {
		ps, err := w.st.Promotions(ctx, store.PromotionQuery{Project: "web", Env: "staging", ImageID: second, Limit: 1})
		if err == nil && len(ps) == 1 {
			st2 = ps[0]
		}
		return err == nil && len(ps) == 1 && ps[0].Soak == store.SoakRunning
	})
	w.groupRuns(t, "web-staging", second)
	setState("ALARM", "5XX above 5")
	fired, calls := time.Now(), w.sim.Calls("DescribeAlarms")
	testsupport.Eventually(t, "the soak to fail on the alarm", func() bool {
		ps, err := w.st.Promotions(ctx, store.PromotionQuery{Project: "web", Env: "staging", ImageID: second, Limit: 1})
		if err == nil && len(ps) == 1 {
			st2 = ps[0]
		}
		return st2.State == store.PromotionFailed
	})
	t.Logf("alarm to failed promotion: %s, %d DescribeAlarms", time.Since(fired).Round(time.Millisecond), w.sim.Calls("DescribeAlarms")-calls)
	if st2.Soak != store.SoakFailed || !strings.Contains(st2.Reason, "web-5xx") || !strings.Contains(st2.Reason, "5XX above 5") {
		t.Fatalf("staging promotion of %s after the alarm: soak %s, reason %q; want failed naming web-5xx and its reason", second, st2.Soak, st2.Reason)
	}
	var back store.Promotion
	testsupport.Eventually(t, "staging to roll back to "+first, func() bool {
		ps, err := w.st.Promotions(ctx, store.PromotionQuery{Project: "web", Env: "staging", Limit: 1})
		if err != nil || len(ps) == 0 {
			return false
		}
		back = ps[0]
		return back.ImageID == first && back.State != store.PromotionRolling
	})
	if back.State != store.PromotionSucceeded || back.Cause != bakery.CauseRollback {
		t.Fatalf("staging's way back to %s: %+v; want a succeeded rollback", first, back)
	}
	if back.Version != st1.Version {
		t.Errorf("staging went back to launch template version %s; want %s, the version that ran %s", back.Version, st1.Version, first)
	}
	t.Logf("alarm to staging back on %s: %s", first, time.Since(fired).Round(time.Millisecond))
	w.groupRuns(t, "web-staging", first)
	as := autoscaling.NewFromConfig(awssim.ClientConfig(srv.URL))
	g, err := as.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"web-staging"}})
	if err != nil || len(g.AutoScalingGroups) != 1 || aws.ToString(g.AutoScalingGroups[0].LaunchTemplate.Version) != st1.Version {
		t.Errorf("group web-staging: %v; want it on version %s", err, st1.Version)
	}
	testsupport.Eventually(t, "the rollback to end", func() bool { return !bakery.Deploying(w.svc, back.ID) })
	if ps, _ := w.st.Promotions(ctx, store.PromotionQuery{Project: "web", Env: "production"}); len(ps) != 1 || ps[0].ImageID != first {
		t.Fatalf("production promotions = %+v; want only %s (the alarm stops the pipeline)", ps, first)
	}
	w.groupRuns(t, "web-production", first)

	// ALARM when the next refresh runs: Auto Scaling rolls it back.
	third := w.bakeImage(t)
	st3 := w.waitEnv(t, "staging", third)
	if st3.State != store.PromotionFailed || !strings.Contains(st3.Reason, "web-5xx") || !strings.Contains(st3.Reason, "RollbackSuccessful") {
		t.Fatalf("staging promotion of %s with the alarm in ALARM: %s %q; want failed, rolled back by Auto Scaling, naming web-5xx", third, st3.State, st3.Reason)
	}
	w.groupRuns(t, "web-staging", first)
	if ps, _ := w.st.Promotions(ctx, store.PromotionQuery{Project: "web", Env: "production"}); len(ps) != 1 {
		t.Fatalf("production has %d promotions; want 1", len(ps))
	}
}
