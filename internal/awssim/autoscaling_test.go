package awssim

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// asgFixture is a simulator with a manual clock behind httptest, both SDK
// clients, and a launch template "web" with versions 1 and 2 (two stock
// images).
type asgFixture struct {
	s       *Sim
	url     string
	ec2     *ec2.Client
	as      *autoscaling.Client
	ltID    string
	ami1    string
	ami2    string
	subnets string
}

func newASGFixture(t *testing.T) *asgFixture {
	t.Helper()
	s := New(Options{ManualClock: true, TimeScale: 1})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	f := &asgFixture{
		s: s, url: srv.URL,
		ec2: ec2.NewFromConfig(ClientConfig(srv.URL), func(o *ec2.Options) { o.RetryMaxAttempts = 1 }),
		as:  autoscaling.NewFromConfig(ClientConfig(srv.URL), func(o *autoscaling.Options) { o.RetryMaxAttempts = 1 }),
	}
	ctx := t.Context()
	out, err := f.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"}, Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"al2023-ami-2023.*-x86_64"}}}})
	if err != nil || len(out.Images) < 2 {
		t.Fatalf("DescribeImages() = %v (%d images); want two stock images", err, len(out.Images))
	}
	f.ami1, f.ami2 = aws.ToString(out.Images[0].ImageId), aws.ToString(out.Images[1].ImageId)
	lt, err := f.ec2.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String("web"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: aws.String(f.ami1), InstanceType: types.InstanceTypeT3Micro},
	})
	if err != nil {
		t.Fatalf("CreateLaunchTemplate() = %v", err)
	}
	f.ltID = aws.ToString(lt.LaunchTemplate.LaunchTemplateId)
	if _, err := f.ec2.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{
		LaunchTemplateId: aws.String(f.ltID), SourceVersion: aws.String("1"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: aws.String(f.ami2)},
	}); err != nil {
		t.Fatalf("CreateLaunchTemplateVersion() = %v", err)
	}
	f.subnets = strings.Join(s.DefaultSubnets()[:3], ",")
	return f
}

// group creates a group of n instances on version 1 and waits until they
// are all InService.
func (f *asgFixture) group(t *testing.T, name string, n int32) {
	t.Helper()
	_, err := f.as.CreateAutoScalingGroup(t.Context(), &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String(name),
		LaunchTemplate:       &astypes.LaunchTemplateSpecification{LaunchTemplateId: aws.String(f.ltID), Version: aws.String("1")},
		MinSize:              aws.Int32(n), MaxSize: aws.Int32(n + 2), DesiredCapacity: aws.Int32(n),
		VPCZoneIdentifier: aws.String(f.subnets),
		Tags:              []astypes.Tag{{Key: aws.String("app"), Value: aws.String("web"), PropagateAtLaunch: aws.Bool(true)}},
	})
	if err != nil {
		t.Fatalf("CreateAutoScalingGroup(%s) = %v", name, err)
	}
	f.s.Advance(20 * time.Second)
	if g := f.describe(t, name); len(g.Instances) != int(n) || inService(g) != int(n) {
		t.Fatalf("group %s after boot: %d instances, %d InService; want %d", name, len(g.Instances), inService(g), n)
	}
}

func (f *asgFixture) describe(t *testing.T, name string) astypes.AutoScalingGroup {
	t.Helper()
	out, err := f.as.DescribeAutoScalingGroups(t.Context(), &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{name}})
	if err != nil || len(out.AutoScalingGroups) != 1 {
		t.Fatalf("DescribeAutoScalingGroups(%s) = %v, %v; want one group", name, out, err)
	}
	return out.AutoScalingGroups[0]
}

func (f *asgFixture) refresh(t *testing.T, name string) astypes.InstanceRefresh {
	t.Helper()
	out, err := f.as.DescribeInstanceRefreshes(t.Context(), &autoscaling.DescribeInstanceRefreshesInput{AutoScalingGroupName: aws.String(name)})
	if err != nil || len(out.InstanceRefreshes) == 0 {
		t.Fatalf("DescribeInstanceRefreshes(%s) = %v, %v; want a refresh", name, out, err)
	}
	return out.InstanceRefreshes[0]
}

func (f *asgFixture) startRefresh(t *testing.T, name string, prefs *astypes.RefreshPreferences) {
	t.Helper()
	_, err := f.as.StartInstanceRefresh(t.Context(), &autoscaling.StartInstanceRefreshInput{
		AutoScalingGroupName: aws.String(name),
		Strategy:             astypes.RefreshStrategyRolling,
		DesiredConfiguration: &astypes.DesiredConfiguration{LaunchTemplate: &astypes.LaunchTemplateSpecification{LaunchTemplateId: aws.String(f.ltID), Version: aws.String("2")}},
		Preferences:          prefs,
	})
	if err != nil {
		t.Fatalf("StartInstanceRefresh(%s) = %v", name, err)
	}
}

// advanceUntil steps the clock until the refresh of name reaches one of the
// statuses, checking the group after every step; it gives up after limit.
func (f *asgFixture) advanceUntil(t *testing.T, name string, step, limit time.Duration, check func(GroupInfo), statuses ...astypes.InstanceRefreshStatus) astypes.InstanceRefresh {
	t.Helper()
	for elapsed := time.Duration(0); elapsed <= limit; elapsed += step {
		f.s.Advance(step)
		if check != nil {
			gi, _ := f.s.AutoScalingGroup(name)
			check(gi)
		}
		r := f.refresh(t, name)
		for _, st := range statuses {
			if r.Status == st {
				return r
			}
		}
	}
	r := f.refresh(t, name)
	t.Fatalf("refresh of %s after %v: %s (%s); want %v", name, limit, r.Status, aws.ToString(r.StatusReason), statuses)
	return r
}

func inService(g astypes.AutoScalingGroup) int {
	n := 0
	for _, in := range g.Instances {
		if in.LifecycleState == astypes.LifecycleStateInService && aws.ToString(in.HealthStatus) == "Healthy" {
			n++
		}
	}
	return n
}

func versions(g astypes.AutoScalingGroup) map[string]int {
	out := map[string]int{}
	for _, in := range g.Instances {
		out[aws.ToString(in.LaunchTemplate.Version)]++
	}
	return out
}

func (f *asgFixture) eventTypes() []string {
	var out []string
	for _, e := range f.s.Events() {
		if e.Source == "aws.autoscaling" {
			out = append(out, e.DetailType)
		}
	}
	return out
}

func TestAutoScalingGroupKeepsCapacity(t *testing.T) {
	f := newASGFixture(t)
	ctx := t.Context()
	f.group(t, "web", 3)
	g := f.describe(t, "web")
	if v := aws.ToString(g.LaunchTemplate.Version); v != "1" || aws.ToString(g.LaunchTemplate.LaunchTemplateName) != "web" {
		t.Fatalf("group launch template = %s v%s; want web v1", aws.ToString(g.LaunchTemplate.LaunchTemplateName), v)
	}
	first := aws.ToString(g.Instances[0].InstanceId)
	info, _ := f.s.Instance(first)
	if info.Tags["aws:autoscaling:groupName"] != "web" || info.Tags["app"] != "web" || info.ImageID != f.ami1 {
		t.Fatalf("instance %s = %+v; want tags aws:autoscaling:groupName=web, app=web and image %s", first, info, f.ami1)
	}

	// Someone terminates an instance by hand: the group replaces it.
	if err := f.s.TerminateInstance(first); err != nil {
		t.Fatalf("TerminateInstance() = %v", err)
	}
	f.s.Advance(time.Minute)
	g = f.describe(t, "web")
	if len(g.Instances) != 3 || inService(g) != 3 {
		t.Fatalf("after out-of-band terminate: %d instances, %d InService; want 3", len(g.Instances), inService(g))
	}
	for _, in := range g.Instances {
		if aws.ToString(in.InstanceId) == first {
			t.Fatalf("terminated instance %s still in the group", first)
		}
	}
	// A stopped instance fails its EC2 health check and is replaced too.
	stopped := aws.ToString(g.Instances[0].InstanceId)
	if err := f.s.StopInstance(stopped); err != nil {
		t.Fatalf("StopInstance() = %v", err)
	}
	f.s.Advance(time.Minute)
	if st, _ := f.s.Instance(stopped); st.State != StateShuttingDown && st.State != StateTerminated {
		t.Fatalf("stopped group instance is %s; want terminated by the group", st.State)
	}
	if g = f.describe(t, "web"); inService(g) != 3 {
		t.Fatalf("after stop: %d InService; want 3", inService(g))
	}

	if _, err := f.as.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{AutoScalingGroupName: aws.String("web"), MinSize: aws.Int32(1), DesiredCapacity: aws.Int32(1)}); err != nil {
		t.Fatalf("UpdateAutoScalingGroup(desired 1) = %v", err)
	}
	f.s.Advance(time.Minute)
	if g = f.describe(t, "web"); len(g.Instances) != 1 || aws.ToInt32(g.DesiredCapacity) != 1 {
		t.Fatalf("after scale-in: %d instances, desired %d; want 1", len(g.Instances), aws.ToInt32(g.DesiredCapacity))
	}
	_, err := f.as.DeleteAutoScalingGroup(ctx, &autoscaling.DeleteAutoScalingGroupInput{AutoScalingGroupName: aws.String("web")})
	if errCode(err) != "ResourceInUse" {
		t.Fatalf("DeleteAutoScalingGroup(with instances) = %q; want ResourceInUse", errCode(err))
	}
	if _, err := f.as.DeleteAutoScalingGroup(ctx, &autoscaling.DeleteAutoScalingGroupInput{AutoScalingGroupName: aws.String("web"), ForceDelete: aws.Bool(true)}); err != nil {
		t.Fatalf("DeleteAutoScalingGroup(force) = %v", err)
	}
	f.s.Advance(time.Minute)
	out, err := f.as.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{})
	if err != nil || len(out.AutoScalingGroups) != 0 {
		t.Fatalf("DescribeAutoScalingGroups() after delete = %v, %v; want none", out, err)
	}
}

func TestAutoScalingErrors(t *testing.T) {
	f := newASGFixture(t)
	ctx := t.Context()
	f.group(t, "web", 1)
	lt := &astypes.LaunchTemplateSpecification{LaunchTemplateId: aws.String(f.ltID)}
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"duplicate", func() error {
			_, err := f.as.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("web"), LaunchTemplate: lt, MinSize: aws.Int32(0), MaxSize: aws.Int32(1), VPCZoneIdentifier: aws.String(f.subnets)})
			return err
		}, "AlreadyExists"},
		{"min above max", func() error {
			_, err := f.as.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("x"), LaunchTemplate: lt, MinSize: aws.Int32(3), MaxSize: aws.Int32(1), VPCZoneIdentifier: aws.String(f.subnets)})
			return err
		}, "ValidationError"},
		{"unknown template", func() error {
			_, err := f.as.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("x"), LaunchTemplate: &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String("nope")}, MinSize: aws.Int32(0), MaxSize: aws.Int32(1), VPCZoneIdentifier: aws.String(f.subnets)})
			return err
		}, "ValidationError"},
		{"no subnet", func() error {
			_, err := f.as.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("x"), LaunchTemplate: lt, MinSize: aws.Int32(0), MaxSize: aws.Int32(1)})
			return err
		}, "ValidationError"},
		{"update unknown", func() error {
			_, err := f.as.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{AutoScalingGroupName: aws.String("nope"), MaxSize: aws.Int32(1)})
			return err
		}, "ValidationError"},
		{"cancel without refresh", func() error {
			_, err := f.as.CancelInstanceRefresh(ctx, &autoscaling.CancelInstanceRefreshInput{AutoScalingGroupName: aws.String("web")})
			return err
		}, "ActiveInstanceRefreshNotFound"},
		{"rollback without refresh", func() error {
			_, err := f.as.RollbackInstanceRefresh(ctx, &autoscaling.RollbackInstanceRefreshInput{AutoScalingGroupName: aws.String("web")})
			return err
		}, "ActiveInstanceRefreshNotFound"},
		{"bad checkpoints", func() error {
			_, err := f.as.StartInstanceRefresh(ctx, &autoscaling.StartInstanceRefreshInput{AutoScalingGroupName: aws.String("web"), Preferences: &astypes.RefreshPreferences{CheckpointPercentages: []int32{50, 20}}})
			return err
		}, "ValidationError"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errCode(tt.call()); got != tt.want {
				t.Fatalf("code = %q; want %q", got, tt.want)
			}
		})
	}
}

func TestInstanceRefreshReplacesEveryInstance(t *testing.T) {
	f := newASGFixture(t)
	f.group(t, "web", 10)
	f.startRefresh(t, "web", &astypes.RefreshPreferences{InstanceWarmup: aws.Int32(60)})
	_, err := f.as.StartInstanceRefresh(t.Context(), &autoscaling.StartInstanceRefreshInput{AutoScalingGroupName: aws.String("web")})
	if errCode(err) != "InstanceRefreshInProgress" {
		t.Fatalf("second StartInstanceRefresh() = %q; want InstanceRefreshInProgress", errCode(err))
	}
	r := f.refresh(t, "web")
	if aws.ToInt32(r.Preferences.MinHealthyPercentage) != 90 || aws.ToInt32(r.InstancesToUpdate) != 10 {
		t.Fatalf("refresh = min healthy %d, to update %d; want 90 (default), 10", aws.ToInt32(r.Preferences.MinHealthyPercentage), aws.ToInt32(r.InstancesToUpdate))
	}
	lowest := 10
	r = f.advanceUntil(t, "web", 5*time.Second, time.Hour, func(gi GroupInfo) {
		lowest = min(lowest, gi.Healthy())
	}, astypes.InstanceRefreshStatusSuccessful, astypes.InstanceRefreshStatusFailed)
	if r.Status != astypes.InstanceRefreshStatusSuccessful || aws.ToInt32(r.PercentageComplete) != 100 || aws.ToInt32(r.InstancesToUpdate) != 0 {
		t.Fatalf("refresh = %s %d%% (%d to update); want Successful 100%% (0)", r.Status, aws.ToInt32(r.PercentageComplete), aws.ToInt32(r.InstancesToUpdate))
	}
	if lowest < 9 {
		t.Fatalf("healthy instances fell to %d during the refresh; want at least 9 (90%% of 10)", lowest)
	}
	g := f.describe(t, "web")
	if got := versions(g); got["2"] != 10 || len(g.Instances) != 10 {
		t.Fatalf("versions after refresh = %v; want all 10 on version 2", got)
	}
	if v := aws.ToString(g.LaunchTemplate.Version); v != "2" {
		t.Fatalf("group launch template version after refresh = %s; want 2", v)
	}
	// One at a time, each 15 s boot + 60 s warm-up: at least 750 s.
	if took := r.EndTime.Sub(*r.StartTime); took < 750*time.Second {
		t.Fatalf("refresh took %v; want at least 750s (10 batches of boot + warm-up)", took)
	}
	if ev := f.eventTypes(); !slices.Contains(ev, DetailRefreshSucceeded) {
		t.Fatalf("events = %v; want %q", ev, DetailRefreshSucceeded)
	}
}

func TestInstanceRefreshCheckpoints(t *testing.T) {
	f := newASGFixture(t)
	f.group(t, "web", 4)
	f.startRefresh(t, "web", &astypes.RefreshPreferences{
		MinHealthyPercentage: aws.Int32(50), InstanceWarmup: aws.Int32(30),
		CheckpointPercentages: []int32{50, 100}, CheckpointDelay: aws.Int32(600),
	})
	f.s.Advance(2 * time.Minute)
	r := f.refresh(t, "web")
	if r.Status != astypes.InstanceRefreshStatusInProgress || aws.ToInt32(r.PercentageComplete) != 50 || !slices.Contains(f.eventTypes(), DetailRefreshCheckpoint) {
		t.Fatalf("at the checkpoint: %s %d%%, events %v; want InProgress 50%% and a checkpoint event", r.Status, aws.ToInt32(r.PercentageComplete), f.eventTypes())
	}
	f.s.Advance(5 * time.Minute)
	if got := versions(f.describe(t, "web")); got["2"] != 2 {
		t.Fatalf("versions during the checkpoint delay = %v; want 2 new, the refresh paused", got)
	}
	r = f.advanceUntil(t, "web", 10*time.Second, 30*time.Minute, nil, astypes.InstanceRefreshStatusSuccessful)
	if got := versions(f.describe(t, "web")); got["2"] != 4 {
		t.Fatalf("versions after refresh = %v; want all 4 on version 2", got)
	}
}

func TestInstanceRefreshFailure(t *testing.T) {
	for _, rollback := range []bool{false, true} {
		name := map[bool]string{false: "fails", true: "rolls back"}[rollback]
		t.Run(name, func(t *testing.T) {
			f := newASGFixture(t)
			f.group(t, "web", 10)
			f.s.FailNextRefresh(3)
			f.startRefresh(t, "web", &astypes.RefreshPreferences{MinHealthyPercentage: aws.Int32(80), InstanceWarmup: aws.Int32(30), AutoRollback: aws.Bool(rollback)})
			if !rollback {
				r := f.advanceUntil(t, "web", 5*time.Second, time.Hour, nil, astypes.InstanceRefreshStatusFailed)
				if aws.ToString(r.StatusReason) == "" {
					t.Fatal("failed refresh has no StatusReason")
				}
				f.s.Advance(5 * time.Minute)
				g := f.describe(t, "web")
				if v := aws.ToString(g.LaunchTemplate.Version); v != "1" || inService(g) != 10 {
					t.Fatalf("after failure: group on v%s with %d InService; want v1 and 10", v, inService(g))
				}
				if !slices.Contains(f.eventTypes(), DetailRefreshFailed) {
					t.Fatalf("events = %v; want %q", f.eventTypes(), DetailRefreshFailed)
				}
				return
			}
			lowest := 10
			r := f.advanceUntil(t, "web", 5*time.Second, time.Hour, func(gi GroupInfo) {
				lowest = min(lowest, gi.Healthy())
			}, astypes.InstanceRefreshStatusRollbackSuccessful, astypes.InstanceRefreshStatusFailed, astypes.InstanceRefreshStatusSuccessful)
			if r.Status != astypes.InstanceRefreshStatusRollbackSuccessful || r.RollbackDetails == nil || aws.ToString(r.RollbackDetails.RollbackReason) == "" {
				t.Fatalf("refresh = %s, rollback details %+v; want RollbackSuccessful with a reason", r.Status, r.RollbackDetails)
			}
			if lowest < 8 {
				t.Fatalf("healthy instances fell to %d during refresh and rollback; want at least 8", lowest)
			}
			g := f.describe(t, "web")
			if got := versions(g); got["1"] != 10 || aws.ToString(g.LaunchTemplate.Version) != "1" {
				t.Fatalf("after rollback: versions %v, group v%s; want all 10 on version 1", got, aws.ToString(g.LaunchTemplate.Version))
			}
		})
	}
}

func TestRollbackAndCancelInstanceRefresh(t *testing.T) {
	f := newASGFixture(t)
	ctx := t.Context()
	f.group(t, "web", 4)
	f.startRefresh(t, "web", &astypes.RefreshPreferences{MinHealthyPercentage: aws.Int32(75), InstanceWarmup: aws.Int32(30)})
	f.s.Advance(time.Minute)
	if _, err := f.as.RollbackInstanceRefresh(ctx, &autoscaling.RollbackInstanceRefreshInput{AutoScalingGroupName: aws.String("web")}); err != nil {
		t.Fatalf("RollbackInstanceRefresh() = %v", err)
	}
	f.advanceUntil(t, "web", 5*time.Second, 30*time.Minute, nil, astypes.InstanceRefreshStatusRollbackSuccessful)
	if got := versions(f.describe(t, "web")); got["1"] != 4 {
		t.Fatalf("after manual rollback: versions %v; want all 4 on version 1", got)
	}

	f.startRefresh(t, "web", &astypes.RefreshPreferences{MinHealthyPercentage: aws.Int32(75), InstanceWarmup: aws.Int32(30)})
	f.s.Advance(time.Minute)
	if _, err := f.as.CancelInstanceRefresh(ctx, &autoscaling.CancelInstanceRefreshInput{AutoScalingGroupName: aws.String("web")}); err != nil {
		t.Fatalf("CancelInstanceRefresh() = %v", err)
	}
	r := f.advanceUntil(t, "web", 5*time.Second, 10*time.Minute, nil, astypes.InstanceRefreshStatusCancelled)
	if r.EndTime == nil {
		t.Fatal("cancelled refresh has no EndTime")
	}
	_, err := f.as.CancelInstanceRefresh(ctx, &autoscaling.CancelInstanceRefreshInput{AutoScalingGroupName: aws.String("web")})
	if errCode(err) != "ActiveInstanceRefreshNotFound" {
		t.Fatalf("second CancelInstanceRefresh() = %q; want ActiveInstanceRefreshNotFound", errCode(err))
	}
	f.s.Advance(5 * time.Minute)
	g := f.describe(t, "web")
	if inService(g) != 4 || aws.ToString(g.LaunchTemplate.Version) != "1" {
		t.Fatalf("after cancel: %d InService, group v%s; want 4 and v1 (cancel keeps the old configuration)", inService(g), aws.ToString(g.LaunchTemplate.Version))
	}
	refs, err := f.as.DescribeInstanceRefreshes(ctx, &autoscaling.DescribeInstanceRefreshesInput{AutoScalingGroupName: aws.String("web")})
	if err != nil || len(refs.InstanceRefreshes) != 2 || refs.InstanceRefreshes[0].Status != astypes.InstanceRefreshStatusCancelled {
		t.Fatalf("DescribeInstanceRefreshes() = %v; want 2, newest Cancelled", err)
	}
}

func TestAutoScalingControlAPI(t *testing.T) {
	f := newASGFixture(t)
	f.group(t, "web", 2)
	resp, err := http.Post(f.url+"/_sim/autoscaling/refresh-failure", "application/json", strings.NewReader(`{"after":0}`))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST refresh-failure = %v, %v; want 200", resp, err)
	}
	resp.Body.Close()
	f.startRefresh(t, "web", &astypes.RefreshPreferences{InstanceWarmup: aws.Int32(30)})
	f.advanceUntil(t, "web", 5*time.Second, 30*time.Minute, nil, astypes.InstanceRefreshStatusFailed)

	resp, err = http.Get(f.url + "/_sim/autoscaling/groups/web")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET groups/web = %v, %v; want 200", resp, err)
	}
	defer resp.Body.Close()
	var gi GroupInfo
	if err := json.NewDecoder(resp.Body).Decode(&gi); err != nil || gi.Name != "web" || len(gi.Instances) == 0 {
		t.Fatalf("GET groups/web = %+v, %v; want the group", gi, err)
	}
}

func TestInstanceRefreshSkipMatching(t *testing.T) {
	f := newASGFixture(t)
	ctx := t.Context()
	f.group(t, "web", 3)
	// The group moves to version 2 and grows by one: that one is already new.
	if _, err := f.as.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String("web"), DesiredCapacity: aws.Int32(4),
		LaunchTemplate: &astypes.LaunchTemplateSpecification{LaunchTemplateId: aws.String(f.ltID), Version: aws.String("2")},
	}); err != nil {
		t.Fatalf("UpdateAutoScalingGroup() = %v", err)
	}
	f.s.Advance(time.Minute)
	before := f.describe(t, "web")
	if got := versions(before); got["1"] != 3 || got["2"] != 1 {
		t.Fatalf("versions before refresh = %v; want 3 on v1, 1 on v2", got)
	}
	var kept string
	for _, in := range before.Instances {
		if aws.ToString(in.LaunchTemplate.Version) == "2" {
			kept = aws.ToString(in.InstanceId)
		}
	}
	f.startRefresh(t, "web", &astypes.RefreshPreferences{SkipMatching: aws.Bool(true), MinHealthyPercentage: aws.Int32(75), InstanceWarmup: aws.Int32(30)})
	if r := f.refresh(t, "web"); aws.ToInt32(r.InstancesToUpdate) != 3 || aws.ToInt32(r.PercentageComplete) != 25 {
		t.Fatalf("refresh with SkipMatching = %d to update, %d%%; want 3, 25%%", aws.ToInt32(r.InstancesToUpdate), aws.ToInt32(r.PercentageComplete))
	}
	f.advanceUntil(t, "web", 5*time.Second, 30*time.Minute, nil, astypes.InstanceRefreshStatusSuccessful)
	after := f.describe(t, "web")
	if got := versions(after); got["2"] != 4 {
		t.Fatalf("versions after refresh = %v; want all 4 on v2", got)
	}
	if !slices.ContainsFunc(after.Instances, func(in astypes.Instance) bool { return aws.ToString(in.InstanceId) == kept }) {
		t.Fatalf("instance %s already on v2 was replaced; SkipMatching should keep it", kept)
	}
	if n := f.s.Calls("StartInstanceRefresh"); n != 1 {
		t.Fatalf("Calls(StartInstanceRefresh) = %d; want 1", n)
	}
}

func TestDescribeAutoScalingGroupsPaging(t *testing.T) {
	f := newASGFixture(t)
	ctx := t.Context()
	for i, name := range []string{"a", "b", "c"} {
		_, err := f.as.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
			AutoScalingGroupName: aws.String(name),
			LaunchTemplate:       &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String("web")},
			MinSize:              aws.Int32(0), MaxSize: aws.Int32(1), VPCZoneIdentifier: aws.String(f.subnets),
			Tags: []astypes.Tag{{Key: aws.String("tier"), Value: aws.String(map[bool]string{true: "front", false: "back"}[i < 2])}},
		})
		if err != nil {
			t.Fatalf("CreateAutoScalingGroup(%s) = %v", name, err)
		}
	}
	var names []string
	pages := 0
	p := autoscaling.NewDescribeAutoScalingGroupsPaginator(f.as, &autoscaling.DescribeAutoScalingGroupsInput{MaxRecords: aws.Int32(2)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("DescribeAutoScalingGroups page %d = %v", pages, err)
		}
		pages++
		for _, g := range out.AutoScalingGroups {
			names = append(names, aws.ToString(g.AutoScalingGroupName))
			if v := aws.ToString(g.LaunchTemplate.Version); v != "$Default" {
				t.Errorf("group %s launch template version = %q; want $Default when none was given", aws.ToString(g.AutoScalingGroupName), v)
			}
		}
	}
	if !slices.Equal(names, []string{"a", "b", "c"}) || pages != 2 {
		t.Fatalf("paged groups = %v in %d pages; want [a b c] in 2", names, pages)
	}
	out, err := f.as.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{
		Filters: []astypes.Filter{{Name: aws.String("tag:tier"), Values: []string{"front"}}},
	})
	if err != nil || len(out.AutoScalingGroups) != 2 {
		t.Fatalf("DescribeAutoScalingGroups(tag:tier=front) = %v, %v; want 2 groups", out, err)
	}
	_, err = f.as.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{NextToken: aws.String("garbage")})
	if errCode(err) != "InvalidNextToken" {
		t.Fatalf("DescribeAutoScalingGroups(bad token) = %q; want InvalidNextToken", errCode(err))
	}
}

func TestInstanceRefreshBakeTime(t *testing.T) {
	f := newASGFixture(t)
	f.group(t, "web", 2)
	f.startRefresh(t, "web", &astypes.RefreshPreferences{MinHealthyPercentage: aws.Int32(50), InstanceWarmup: aws.Int32(0), BakeTime: aws.Int32(600)})
	f.advanceUntil(t, "web", 5*time.Second, 10*time.Minute, nil, astypes.InstanceRefreshStatusBaking)
	if v := aws.ToString(f.describe(t, "web").LaunchTemplate.Version); v != "1" {
		t.Fatalf("group version while baking = %s; want 1 until the bake time is over", v)
	}
	r := f.advanceUntil(t, "web", 30*time.Second, 15*time.Minute, nil, astypes.InstanceRefreshStatusSuccessful)
	if took := r.EndTime.Sub(*r.StartTime); took < 600*time.Second {
		t.Fatalf("refresh with BakeTime 600 took %v; want at least 600s", took)
	}
	if v := aws.ToString(f.describe(t, "web").LaunchTemplate.Version); v != "2" {
		t.Fatalf("group version after baking = %s; want 2", v)
	}
}

func TestInstanceRefreshLaunchFirst(t *testing.T) {
	f := newASGFixture(t)
	f.group(t, "web", 10)
	f.startRefresh(t, "web", &astypes.RefreshPreferences{MinHealthyPercentage: aws.Int32(100), MaxHealthyPercentage: aws.Int32(120), InstanceWarmup: aws.Int32(60)})
	lowest, most := 10, 0
	f.advanceUntil(t, "web", 5*time.Second, time.Hour, func(gi GroupInfo) {
		lowest = min(lowest, gi.Healthy())
		live := 0
		for _, in := range gi.Instances {
			if in.LifecycleState != lifecycleTerminating {
				live++
			}
		}
		most = max(most, live)
	}, astypes.InstanceRefreshStatusSuccessful)
	if lowest < 10 || most > 12 {
		t.Fatalf("during a launch-first refresh: healthy fell to %d, capacity rose to %d; want at least 10 and at most 12", lowest, most)
	}
	f.s.Advance(time.Minute)
	if g := f.describe(t, "web"); versions(g)["2"] != 10 || len(g.Instances) != 10 {
		t.Fatalf("after refresh: versions %v; want 10 instances on version 2", versions(g))
	}
}
