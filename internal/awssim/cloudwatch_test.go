package awssim

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/fxamacker/cbor/v2"
)

func putAlarm(t *testing.T, c *cloudwatch.Client, name string) {
	t.Helper()
	_, err := c.PutMetricAlarm(t.Context(), &cloudwatch.PutMetricAlarmInput{
		AlarmName: aws.String(name), MetricName: aws.String("5XXError"), Namespace: aws.String("AWS/ApplicationELB"),
		Statistic: cwtypes.StatisticSum, Period: aws.Int32(60), EvaluationPeriods: aws.Int32(2), Threshold: aws.Float64(5),
		ComparisonOperator: cwtypes.ComparisonOperatorGreaterThanThreshold,
		Dimensions:         []cwtypes.Dimension{{Name: aws.String("LoadBalancer"), Value: aws.String("app/web/123")}},
	})
	if err != nil {
		t.Fatalf("PutMetricAlarm(%s) = %v", name, err)
	}
}

// The Go SDK's cloudwatch client speaks RPC v2 CBOR: its serializers,
// error decoding and paginator run against the simulator.
func TestCloudWatchAlarmsSDK(t *testing.T) {
	s := New(Options{})
	srv := httptest.NewServer(s)
	defer srv.Close()
	c := cloudwatch.NewFromConfig(ClientConfig(srv.URL), func(o *cloudwatch.Options) { o.RetryMaxAttempts = 1 })
	ctx := t.Context()
	for _, n := range []string{"web-5xx", "web-latency", "api-5xx", "web-cpu", "db-cpu"} {
		putAlarm(t, c, n)
	}
	out, err := c.DescribeAlarms(ctx, &cloudwatch.DescribeAlarmsInput{AlarmNames: []string{"web-5xx", "missing"}})
	if err != nil || len(out.MetricAlarms) != 1 {
		t.Fatalf("DescribeAlarms(web-5xx, missing) = %v, %v; want one alarm", out, err)
	}
	a := out.MetricAlarms[0]
	if a.StateValue != cwtypes.StateValueInsufficientData || aws.ToFloat64(a.Threshold) != 5 || aws.ToInt32(a.Period) != 60 ||
		len(a.Dimensions) != 1 || a.StateUpdatedTimestamp == nil || !strings.HasSuffix(aws.ToString(a.AlarmArn), ":alarm:web-5xx") {
		t.Fatalf("alarm = %+v; want INSUFFICIENT_DATA, threshold 5, period 60, one dimension, a state time and an ARN", a)
	}
	if d := time.Since(*a.StateUpdatedTimestamp); d < 0 || d > time.Minute {
		t.Fatalf("StateUpdatedTimestamp = %v; want about now", a.StateUpdatedTimestamp)
	}

	// Pagination: 2 at a time, in name order.
	var names []string
	pages := 0
	for p := cloudwatch.NewDescribeAlarmsPaginator(c, &cloudwatch.DescribeAlarmsInput{MaxRecords: aws.Int32(2)}); p.HasMorePages(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("DescribeAlarms page = %v", err)
		}
		pages++
		for _, a := range page.MetricAlarms {
			names = append(names, aws.ToString(a.AlarmName))
		}
	}
	if pages != 3 || strings.Join(names, ",") != "api-5xx,db-cpu,web-5xx,web-cpu,web-latency" {
		t.Fatalf("paginated DescribeAlarms: %d pages, %v; want 3 pages in name order", pages, names)
	}

	if _, err := c.SetAlarmState(ctx, &cloudwatch.SetAlarmStateInput{AlarmName: aws.String("web-5xx"), StateValue: cwtypes.StateValueAlarm,
		StateReason: aws.String("testing"), StateReasonData: aws.String(`{"version":"1.0"}`)}); err != nil {
		t.Fatalf("SetAlarmState() = %v", err)
	}
	if got := s.AlarmState("web-5xx"); got != AlarmAlarm {
		t.Fatalf("AlarmState(web-5xx) = %q; want ALARM", got)
	}
	out, err = c.DescribeAlarms(ctx, &cloudwatch.DescribeAlarmsInput{StateValue: cwtypes.StateValueAlarm, AlarmNamePrefix: aws.String("web-")})
	if err != nil || len(out.MetricAlarms) != 1 || aws.ToString(out.MetricAlarms[0].StateReason) != "testing" {
		t.Fatalf("DescribeAlarms(ALARM, web-) = %+v, %v; want web-5xx with its reason", out, err)
	}
	// An update keeps the state.
	putAlarm(t, c, "web-5xx")
	if got := s.AlarmState("web-5xx"); got != AlarmAlarm {
		t.Fatalf("after an update, AlarmState(web-5xx) = %q; want ALARM kept", got)
	}

	for _, tc := range []struct {
		name string
		call func() error
		code string
	}{
		{"unknown alarm", func() error {
			_, err := c.SetAlarmState(ctx, &cloudwatch.SetAlarmStateInput{AlarmName: aws.String("nope"), StateValue: cwtypes.StateValueOk, StateReason: aws.String("x")})
			return err
		}, "ResourceNotFound"},
		{"bad reason data", func() error {
			_, err := c.SetAlarmState(ctx, &cloudwatch.SetAlarmStateInput{AlarmName: aws.String("web-cpu"), StateValue: cwtypes.StateValueOk, StateReason: aws.String("x"), StateReasonData: aws.String("{")})
			return err
		}, "InvalidFormat"},
		{"names and prefix", func() error {
			_, err := c.DescribeAlarms(ctx, &cloudwatch.DescribeAlarmsInput{AlarmNames: []string{"a"}, AlarmNamePrefix: aws.String("a")})
			return err
		}, "InvalidParameterCombination"},
		{"bad token", func() error {
			_, err := c.DescribeAlarms(ctx, &cloudwatch.DescribeAlarmsInput{NextToken: aws.String("garbage")})
			return err
		}, "InvalidNextToken"},
		{"no metric", func() error {
			_, err := c.PutMetricAlarm(ctx, &cloudwatch.PutMetricAlarmInput{AlarmName: aws.String("x"), EvaluationPeriods: aws.Int32(1),
				ComparisonOperator: cwtypes.ComparisonOperatorGreaterThanThreshold, Threshold: aws.Float64(1)})
			return err
		}, "MissingParameter"},
		{"delete a missing one", func() error {
			_, err := c.DeleteAlarms(ctx, &cloudwatch.DeleteAlarmsInput{AlarmNames: []string{"web-cpu", "nope"}})
			return err
		}, "ResourceNotFound"},
	} {
		if got := errCode(tc.call()); got != tc.code {
			t.Errorf("%s: error code %q; want %q", tc.name, got, tc.code)
		}
	}
	if s.AlarmState("web-cpu") == "" {
		t.Fatal("a refused DeleteAlarms deleted web-cpu")
	}
	if _, err := c.DeleteAlarms(ctx, &cloudwatch.DeleteAlarmsInput{AlarmNames: []string{"web-cpu", "db-cpu"}}); err != nil {
		t.Fatalf("DeleteAlarms() = %v", err)
	}
	out, err = c.DescribeAlarms(ctx, &cloudwatch.DescribeAlarmsInput{})
	if err != nil || len(out.MetricAlarms) != 3 {
		t.Fatalf("DescribeAlarms() after delete = %d alarms, %v; want 3", len(out.MetricAlarms), err)
	}
	if n := s.Calls("SetAlarmState"); n != 3 {
		t.Errorf("Calls(SetAlarmState) = %d; want 3", n)
	}
}

// The wire format as the rpcv2Cbor spec has it: the smithy-protocol
// header on the answer, a CBOR error body with __type, the Query-era code
// in x-amzn-query-error.
func TestCloudWatchCBORWire(t *testing.T) {
	s := New(Options{})
	srv := httptest.NewServer(s)
	defer srv.Close()
	body, _ := cbor.Marshal(map[string]any{"AlarmName": "nope", "StateValue": "OK", "StateReason": "x"})
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/service/GraniteServiceVersion20100801/operation/SetAlarmState", strings.NewReader(string(body)))
	req.Header.Set("Smithy-Protocol", "rpc-v2-cbor")
	req.Header.Set("Content-Type", "application/cbor")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e map[string]string
	if err := cbor.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatalf("error body is not CBOR: %v", err)
	}
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Smithy-Protocol") != "rpc-v2-cbor" ||
		e["__type"] != "com.amazonaws.cloudwatch#ResourceNotFound" || resp.Header.Get("X-Amzn-Query-Error") != "ResourceNotFound;Sender" {
		t.Fatalf("answer %d %v, body %v; want 404, smithy-protocol, __type ResourceNotFound, query error header", resp.StatusCode, resp.Header, e)
	}
}

// cwCLI runs the aws CLI (awsCLI, route53_cli_test.go) against url; the
// test is skipped where it is not installed.
func cwCLI(t *testing.T, url string) func(args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("aws"); err != nil {
		t.Skip("the aws CLI is not installed")
	}
	return func(args ...string) (string, error) {
		out, stderr, err := awsCLI(t, url, args...)
		return out + stderr, err
	}
}

// The aws CLI (botocore) is a second client, with its own encoder and
// decoder: its model lists RPC v2 CBOR first, but the CLI v1 speaks AWS
// JSON 1.0, the next one.
func TestCloudWatchWithAWSCLI(t *testing.T) {
	s := New(Options{})
	srv := httptest.NewServer(s)
	defer srv.Close()
	cli := cwCLI(t, srv.URL)
	if out, err := cli("cloudwatch", "put-metric-alarm", "--alarm-name", "web-5xx", "--metric-name", "5XXError",
		"--namespace", "AWS/ApplicationELB", "--statistic", "Sum", "--period", "60", "--evaluation-periods", "2",
		"--threshold", "5.5", "--comparison-operator", "GreaterThanThreshold", "--dimensions", "Name=LoadBalancer,Value=app/web/1"); err != nil {
		t.Fatalf("put-metric-alarm: %v\n%s", err, out)
	}
	if out, err := cli("cloudwatch", "set-alarm-state", "--alarm-name", "web-5xx", "--state-value", "ALARM", "--state-reason", "by hand"); err != nil {
		t.Fatalf("set-alarm-state: %v\n%s", err, out)
	}
	out, err := cli("cloudwatch", "describe-alarms", "--alarm-names", "web-5xx")
	if err != nil {
		t.Fatalf("describe-alarms: %v\n%s", err, out)
	}
	var got struct {
		MetricAlarms []struct {
			AlarmName, StateValue, StateReason string
			Threshold, StateUpdatedTimestamp   float64 // the CLI v1 prints timestamps as sent
			Dimensions                         []struct{ Name, Value string }
		}
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got.MetricAlarms) != 1 {
		t.Fatalf("describe-alarms answered %q (%v); want one alarm", out, err)
	}
	a := got.MetricAlarms[0]
	if a.StateValue != "ALARM" || a.StateReason != "by hand" || a.Threshold != 5.5 || len(a.Dimensions) != 1 || time.Since(time.Unix(int64(a.StateUpdatedTimestamp), 0)).Abs() > time.Minute {
		t.Fatalf("alarm = %+v; want ALARM by hand, threshold 5.5, one dimension, a state time", a)
	}
	out, err = cli("cloudwatch", "set-alarm-state", "--alarm-name", "nope", "--state-value", "OK", "--state-reason", "x")
	if err == nil || !strings.Contains(out, "ResourceNotFound") {
		t.Fatalf("set-alarm-state of a missing alarm: %v\n%s; want ResourceNotFound", err, out)
	}
	if out, err := cli("cloudwatch", "delete-alarms", "--alarm-names", "web-5xx"); err != nil {
		t.Fatalf("delete-alarms: %v\n%s", err, out)
	}
	if st := s.AlarmState("web-5xx"); st != "" {
		t.Fatalf("after delete-alarms the alarm is %q", st)
	}
}

// An alarm of a refresh's AlarmSpecification that goes to ALARM (set by
// the aws CLI) fails the refresh: rolled back to the previous version and
// instances with AutoRollback, Failed without. One that stays OK lets it
// succeed.
func TestInstanceRefreshAlarm(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fire     bool
		rollback bool
		want     astypes.InstanceRefreshStatus
	}{
		{"alarm rolls back", true, true, astypes.InstanceRefreshStatusRollbackSuccessful},
		{"alarm fails", true, false, astypes.InstanceRefreshStatusFailed},
		{"alarm stays OK", false, true, astypes.InstanceRefreshStatusSuccessful},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newASGFixture(t)
			cli := cwCLI(t, f.url)
			cw := cloudwatch.NewFromConfig(ClientConfig(f.url))
			putAlarm(t, cw, "web-5xx")
			if _, err := cw.SetAlarmState(t.Context(), &cloudwatch.SetAlarmStateInput{AlarmName: aws.String("web-5xx"), StateValue: cwtypes.StateValueOk, StateReason: aws.String("healthy")}); err != nil {
				t.Fatal(err)
			}
			f.group(t, "web", 4)
			f.startRefresh(t, "web", &astypes.RefreshPreferences{MinHealthyPercentage: aws.Int32(75), InstanceWarmup: aws.Int32(30),
				AutoRollback: aws.Bool(tc.rollback), AlarmSpecification: &astypes.AlarmSpecification{Alarms: []string{"web-5xx"}}})
			f.s.Advance(time.Minute)
			if r := f.refresh(t, "web"); r.Status != astypes.InstanceRefreshStatusInProgress || r.Preferences.AlarmSpecification == nil {
				t.Fatalf("refresh after a minute = %s, alarms %+v; want InProgress with the alarm", r.Status, r.Preferences.AlarmSpecification)
			}
			if tc.fire {
				if out, err := cli("cloudwatch", "set-alarm-state", "--alarm-name", "web-5xx", "--state-value", "ALARM", "--state-reason", "5XX above 5"); err != nil {
					t.Fatalf("set-alarm-state: %v\n%s", err, out)
				}
			}
			r := f.advanceUntil(t, "web", 5*time.Second, time.Hour, nil, astypes.InstanceRefreshStatusRollbackSuccessful,
				astypes.InstanceRefreshStatusFailed, astypes.InstanceRefreshStatusSuccessful)
			if r.Status != tc.want {
				t.Fatalf("refresh = %s (%s); want %s", r.Status, aws.ToString(r.StatusReason), tc.want)
			}
			f.s.Advance(5 * time.Minute)
			g := f.describe(t, "web")
			switch tc.want {
			case astypes.InstanceRefreshStatusRollbackSuccessful:
				if !strings.Contains(aws.ToString(r.RollbackDetails.RollbackReason), "web-5xx") {
					t.Errorf("rollback reason %q does not name the alarm", aws.ToString(r.RollbackDetails.RollbackReason))
				}
				if v := versions(g); v["1"] != 4 || aws.ToString(g.LaunchTemplate.Version) != "1" {
					t.Fatalf("after rollback: versions %v, group v%s; want all 4 on version 1", v, aws.ToString(g.LaunchTemplate.Version))
				}
			case astypes.InstanceRefreshStatusFailed:
				if !strings.Contains(aws.ToString(r.StatusReason), "web-5xx") {
					t.Errorf("status reason %q does not name the alarm", aws.ToString(r.StatusReason))
				}
				if aws.ToString(g.LaunchTemplate.Version) != "1" {
					t.Fatalf("after failure: group v%s; want v1", aws.ToString(g.LaunchTemplate.Version))
				}
			default:
				if v := versions(g); v["2"] != 4 || aws.ToString(g.LaunchTemplate.Version) != "2" {
					t.Fatalf("after success: versions %v, group v%s; want all 4 on version 2", v, aws.ToString(g.LaunchTemplate.Version))
				}
			}
		})
	}
}

// FuzzCloudWatchCBOR feeds arbitrary CBOR bodies to every CloudWatch
// action: the answer is never a 500 (a panic in an action is recovered as
// one and fails the fuzz) and always a CBOR map.
func FuzzCloudWatchCBOR(f *testing.F) {
	for _, seed := range []map[string]any{
		{"AlarmName": "a", "MetricName": "m", "Namespace": "n", "Statistic": "Sum", "Period": 60, "EvaluationPeriods": 1, "Threshold": 1.5, "ComparisonOperator": "GreaterThanThreshold"},
		{"AlarmNames": []string{"a"}, "MaxRecords": 1},
		{"AlarmName": "a", "StateValue": "ALARM", "StateReason": "x", "StateReasonData": "{}"},
		{"AlarmNames": []any{1, nil}},
	} {
		b, _ := cbor.Marshal(seed)
		f.Add("PutMetricAlarm", b)
		f.Add("DescribeAlarms", b)
	}
	f.Add("SetAlarmState", []byte{0xbf, 0x61, 0x41, 0xff})
	s := New(Options{ManualClock: true})
	f.Fuzz(func(t *testing.T, action string, body []byte) {
		if strings.ContainsAny(action, "/?#% ") {
			return
		}
		req := httptest.NewRequest(http.MethodPost, "/service/GraniteServiceVersion20100801/operation/"+action, strings.NewReader(string(body)))
		req.Header.Set("Smithy-Protocol", "rpc-v2-cbor")
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %x = %d %x", action, body, rec.Code, rec.Body.Bytes())
		}
		if rec.Body.Len() > 0 {
			var m map[string]any
			if err := cbor.Unmarshal(rec.Body.Bytes(), &m); err != nil {
				t.Fatalf("%s %x: answer is not a CBOR map: %v", action, body, err)
			}
		}
	})
}

// CloudWatch's calls are authorized as cloudwatch:ACTION; a denial is
// AccessDenied (403) in both protocols.
func TestCloudWatchAuthorization(t *testing.T) {
	s := New(Options{})
	srv := httptest.NewServer(s)
	defer srv.Close()
	p, err := ParsePolicy([]byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"cloudwatch:DescribeAlarms","Resource":"*"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	s.SetPolicy(p)
	c := cloudwatch.NewFromConfig(ClientConfig(srv.URL), func(o *cloudwatch.Options) { o.RetryMaxAttempts = 1 })
	if _, err := c.DescribeAlarms(t.Context(), &cloudwatch.DescribeAlarmsInput{}); err != nil {
		t.Fatalf("DescribeAlarms() = %v; want allowed", err)
	}
	_, err = c.SetAlarmState(t.Context(), &cloudwatch.SetAlarmStateInput{AlarmName: aws.String("a"), StateValue: cwtypes.StateValueAlarm, StateReason: aws.String("x")})
	if errCode(err) != "AccessDenied" || !strings.Contains(err.Error(), "cloudwatch:SetAlarmState") {
		t.Fatalf("SetAlarmState() = %v; want AccessDenied naming cloudwatch:SetAlarmState", err)
	}
}
