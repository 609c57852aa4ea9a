package awssim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Instance refresh (Strategy Rolling): StartInstanceRefresh,
// DescribeInstanceRefreshes, CancelInstanceRefresh and
// RollbackInstanceRefresh.
//
// A refresh replaces instances in batches. With MaxHealthyPercentage 100
// (the default) it terminates first and then launches: a batch is as large
// as the instances that are InService, Healthy and warmed up allow above
// MinHealthyPercentage of the desired capacity (rounded up), and at least
// one when nothing else is in flight, as AWS does even at 100 %. Above 100
// it launches first, up to MaxHealthyPercentage of the desired capacity,
// and terminates old instances as the new ones warm up, so capacity never
// drops. Each new instance counts once it has been InService for
// InstanceWarmup.
// Checkpoints pause the refresh for CheckpointDelay once their share of
// the group is new (an "Instance Refresh Checkpoint Reached" event for
// every checkpoint but 100 %). On success the group takes the desired
// configuration. A new instance that fails its health checks fails the
// refresh; with AutoRollback, or on RollbackInstanceRefresh, the
// instances already replaced are replaced again with the original
// configuration under the same rules. With BakeTime the refresh stays
// Baking that long before it is Successful. Alarms are accepted and
// reported, not watched.

// Instance refresh statuses.
const (
	refreshPending            = "Pending"
	refreshInProgress         = "InProgress"
	refreshSuccessful         = "Successful"
	refreshFailed             = "Failed"
	refreshCancelling         = "Cancelling"
	refreshCancelled          = "Cancelled"
	refreshRollbackInProgress = "RollbackInProgress"
	refreshRollbackSuccessful = "RollbackSuccessful"
	refreshBaking             = "Baking"
)

type refreshPrefs struct {
	minHealthy      int // default 90
	maxHealthy      int // 0: not given
	warmup          int // seconds; -1: not given
	checkpoints     []int
	checkpointDelay int // seconds; default 3600
	skipMatching    bool
	autoRollback    bool
	bakeTime        int
	alarms          []string
}

type refresh struct {
	id        string
	status    string
	reason    string
	start     time.Time
	end       time.Time
	prefs     refreshPrefs
	desired   *ltRef // DesiredConfiguration.LaunchTemplate; nil: the group's
	original  ltRef  // the group's configuration when it started
	toReplace map[*member]bool
	total     int // desired capacity at the start
	skipped   int // instances SkipMatching left alone
	launched  int // instances launched with the new configuration
	fault     *refreshFault

	checkpoint int       // index of the next checkpoint
	waitUntil  time.Time // end of a checkpoint's delay

	rollbackReason string
	rollbackStart  time.Time
	rollbackTotal  int
}

// refreshFault makes a refresh fail partway: the first after instances it
// launches are healthy, every later one fails its health checks.
type refreshFault struct {
	after int
}

func (r *refresh) target() ltRef {
	if r.desired != nil {
		return *r.desired
	}
	return r.original
}

func (r *refresh) finish(status, reason string, now time.Time) {
	r.status, r.reason, r.end = status, reason, now
	r.waitUntil = time.Time{}
}

// activeRefresh is the group's refresh that is not over, or nil.
func (g *asGroup) activeRefresh() *refresh {
	if len(g.refreshes) == 0 {
		return nil
	}
	switch r := g.refreshes[0]; r.status {
	case refreshPending, refreshInProgress, refreshBaking, refreshCancelling, refreshRollbackInProgress:
		return r
	}
	return nil
}

func (m *member) injectedFailure() bool {
	r := m.refresh
	return r != nil && !m.rollback && r.fault != nil && m.ordinal > r.fault.after
}

// progress is where a refresh stands in the group now.
type progress struct {
	old      []*member // still to be replaced by this pass
	healthy  int       // InService, Healthy, warmed up
	done     int       // new instances of this pass, warmed up
	inFlight int       // new instances of this pass, not yet warmed up
	warming  string    // one of them
}

func (r *refresh) progressIn(g *asGroup, now time.Time) progress {
	var p progress
	rollback := r.status == refreshRollbackInProgress
	for _, m := range g.members {
		if m.lifecycle == lifecycleTerminating {
			continue
		}
		isNew := m.refresh == r && m.rollback == rollback
		if (rollback && m.refresh == r && !m.rollback) || (!rollback && r.toReplace[m]) {
			p.old = append(p.old, m)
		}
		switch {
		case m.warmedUp(now):
			p.healthy++
			if isNew {
				p.done++
			}
		case isNew:
			p.inFlight++
			p.warming = m.in.id
		}
	}
	return p
}

// stepRefreshLocked moves a refresh on: it terminates the next batch of
// old instances (fillCapacityLocked then launches their replacements),
// pauses at checkpoints and ends the refresh. s.mu is held.
func (s *Sim) stepRefreshLocked(g *asGroup, r *refresh, now time.Time) {
	if a := s.firingAlarmLocked(r); a != "" {
		s.failRefreshLocked(g, r, now, alarmReason(a))
		return
	}
	switch r.status {
	case refreshPending:
		r.status = refreshInProgress
	case refreshCancelling:
		if r.progressIn(g, now).inFlight > 0 {
			return
		}
		r.finish(refreshCancelled, "Instance refresh was cancelled.", now)
		s.refreshEventLocked(g, r, DetailRefreshCancelled, nil, now)
		return
	case refreshBaking:
		if !now.Before(r.waitUntil) {
			s.succeedLocked(g, r, now)
		}
		return
	case refreshInProgress, refreshRollbackInProgress:
	default:
		return
	}
	rollback := r.status == refreshRollbackInProgress
	p := r.progressIn(g, now)
	launchFirst := r.prefs.maxHealthy > 100
	if launchFirst && s.retireLocked(g, p, now) {
		p = r.progressIn(g, now)
	}
	if len(p.old) == 0 && p.inFlight == 0 && g.active() >= g.desired {
		if rollback {
			r.finish(refreshRollbackSuccessful, "Instance refresh was rolled back: "+r.rollbackReason, now)
			return
		}
		s.succeedLocked(g, r, now)
		return
	}
	limit := len(p.old)
	if !rollback && r.checkpoint < len(r.prefs.checkpoints) {
		if !r.waitUntil.IsZero() {
			if now.Before(r.waitUntil) {
				return
			}
			r.waitUntil = time.Time{}
			r.checkpoint++
			if r.checkpoint == len(r.prefs.checkpoints) {
				// The last checkpoint was below 100 %: the refresh ends there.
				s.succeedLocked(g, r, now)
				return
			}
		}
		pct := r.prefs.checkpoints[r.checkpoint]
		want := ceilDiv(r.total*pct, 100)
		if pct < 100 && r.skipped+p.done >= want && p.inFlight == 0 {
			delay := time.Duration(r.prefs.checkpointDelay) * time.Second
			r.waitUntil = now.Add(s.scaled(delay))
			r.reason = fmt.Sprintf("Checkpoint %d%% reached; waiting %d seconds before continuing.", pct, r.prefs.checkpointDelay)
			s.after(now, delay, func(at time.Time) { s.reconcileLocked(g, at) })
			s.refreshEventLocked(g, r, DetailRefreshCheckpoint, map[string]any{
				"CheckpointPercentage": pct, "CheckpointDelay": r.prefs.checkpointDelay,
			}, now)
			return
		}
		limit = want - r.skipped - p.done - p.inFlight
	}
	r.reason = ""
	if p.inFlight > 0 {
		r.reason = fmt.Sprintf("Waiting for instances to warm up before continuing. For example: %s is warming up.", p.warming)
	}
	if launchFirst {
		s.launchAheadLocked(g, r, p, limit, now)
		return
	}
	minHealthy := ceilDiv(g.desired*r.prefs.minHealthy, 100)
	batch := p.healthy - minHealthy
	if batch < 1 && p.inFlight == 0 && g.active() >= g.desired {
		batch = 1
	}
	s.retireOldLocked(p.old, min(batch, limit, len(p.old)), now)
}

// retireOldLocked terminates n of the old instances: those that are not
// healthy first, then the oldest.
func (s *Sim) retireOldLocked(old []*member, n int, now time.Time) {
	if n <= 0 {
		return
	}
	slices.SortStableFunc(old, func(a, b *member) int {
		return boolInt(a.warmedUp(now)) - boolInt(b.warmedUp(now))
	})
	for _, m := range old[:n] {
		s.terminateMemberLocked(m, now)
	}
}

// retireLocked is the second half of a launch-first batch
// (MaxHealthyPercentage above 100): once new instances have warmed up,
// as many old ones as the group has above its desired capacity go. It
// reports whether it terminated any.
func (s *Sim) retireLocked(g *asGroup, p progress, now time.Time) bool {
	n := min(g.active()-g.desired-p.inFlight, len(p.old))
	s.retireOldLocked(p.old, n, now)
	return n > 0
}

// launchAheadLocked is the first half of a launch-first batch: new
// instances above the desired capacity, up to MaxHealthyPercentage of it,
// one for each old instance that has no replacement in flight yet.
func (s *Sim) launchAheadLocked(g *asGroup, r *refresh, p progress, limit int, now time.Time) {
	ceiling := g.desired * r.prefs.maxHealthy / 100
	n := min(ceiling-g.active(), len(p.old)-p.inFlight, limit)
	if n < 1 && p.inFlight == 0 && len(p.old) > 0 && limit > 0 {
		n = 1
	}
	for range n {
		if s.launchMemberLocked(g, now) != nil {
			return
		}
	}
}

// succeedLocked ends a refresh that has replaced what it had to: Baking
// for BakeTime first when it is set (a rollback is still possible then),
// then Successful, and the group takes the desired configuration.
func (s *Sim) succeedLocked(g *asGroup, r *refresh, now time.Time) {
	if bake := r.prefs.bakeTime; bake > 0 && r.status != refreshBaking {
		r.status = refreshBaking
		r.reason = fmt.Sprintf("Waiting for the bake time of %d seconds before completing.", bake)
		r.waitUntil = now.Add(s.scaled(time.Duration(bake) * time.Second))
		s.after(now, time.Duration(bake)*time.Second, func(at time.Time) { s.reconcileLocked(g, at) })
		return
	}
	if r.desired != nil {
		g.lt = *r.desired
	}
	r.finish(refreshSuccessful, "", now)
	s.refreshEventLocked(g, r, DetailRefreshSucceeded, nil, now)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// failRefreshLocked ends a refresh that cannot go on: Failed, or
// RollbackInProgress with AutoRollback. A refresh that is over already
// stays as it is.
func (s *Sim) failRefreshLocked(g *asGroup, r *refresh, now time.Time, reason string) {
	if r.status != refreshInProgress && r.status != refreshPending && r.status != refreshBaking {
		return
	}
	s.refreshEventLocked(g, r, DetailRefreshFailed, map[string]any{"StatusReason": reason}, now)
	if r.prefs.autoRollback {
		s.startRollbackLocked(g, r, reason, now)
		return
	}
	r.finish(refreshFailed, reason, now)
}

func (s *Sim) startRollbackLocked(g *asGroup, r *refresh, reason string, now time.Time) {
	r.status = refreshRollbackInProgress
	r.reason = reason
	r.rollbackReason = reason
	r.rollbackStart = now
	r.waitUntil = time.Time{}
	r.rollbackTotal = len(r.progressIn(g, now).old)
	s.after(now, 0, func(at time.Time) { s.reconcileLocked(g, at) })
}

func (s *Sim) refreshEventLocked(g *asGroup, r *refresh, detailType string, extra map[string]any, now time.Time) {
	detail := map[string]any{"InstanceRefreshId": r.id, "AutoScalingGroupName": g.name}
	for k, v := range extra {
		detail[k] = v
	}
	s.PublishEvent("aws.autoscaling", detailType, []string{g.arn}, detail, now)
}

// irreversible reports why a refresh cannot be rolled back, "" if it can.
func (r *refresh) irreversible() string {
	switch {
	case r.desired == nil:
		return "The instance refresh has no desired configuration to roll back from."
	case strings.HasPrefix(r.original.version, "$"):
		return "The Auto Scaling group's launch template uses the " + r.original.version + " version; rollback needs a specific version number."
	}
	return ""
}

// firingAlarmLocked is the first alarm of r's AlarmSpecification that is
// in ALARM while r can still fail (Pending, InProgress, Baking), "" when
// there is none. s.mu is held.
func (s *Sim) firingAlarmLocked(r *refresh) string {
	switch r.status {
	case refreshPending, refreshInProgress, refreshBaking:
	default:
		return ""
	}
	for _, name := range r.prefs.alarms {
		if s.alarmStateLocked(name) == AlarmAlarm {
			return name
		}
	}
	return ""
}

// alarmReason is a refresh's status reason when alarm fails it.
func alarmReason(alarm string) string {
	return fmt.Sprintf("The instance refresh failed because the CloudWatch alarm %s is in ALARM state.", alarm)
}

// alarmFiredLocked moves on at once every refresh that alarm (now in
// ALARM) fails. s.mu is held.
func (s *Sim) alarmFiredLocked(alarm string, now time.Time) {
	for _, g := range slices.Clone(s.asg.order) {
		if r := g.activeRefresh(); r != nil && slices.Contains(r.prefs.alarms, alarm) {
			s.reconcileLocked(g, now)
		}
	}
}

// --- StartInstanceRefresh ---

type startInstanceRefreshResult struct {
	ID string `xml:"InstanceRefreshId"`
}

func (rq *request) refreshPrefs() (refreshPrefs, error) {
	p := refreshPrefs{minHealthy: 90, warmup: -1, checkpointDelay: 3600}
	const pre = "Preferences."
	var err error
	var has bool
	if p.minHealthy, has, err = rq.optInt(pre + "MinHealthyPercentage"); err != nil {
		return p, err
	} else if !has {
		p.minHealthy = 90
	}
	if p.minHealthy < 0 || p.minHealthy > 100 {
		return p, validation("MinHealthyPercentage must be between 0 and 100.")
	}
	if p.maxHealthy, has, err = rq.optInt(pre + "MaxHealthyPercentage"); err != nil {
		return p, err
	} else if has && (p.maxHealthy < 100 || p.maxHealthy > 200 || p.maxHealthy-p.minHealthy > 100) {
		return p, validation("MaxHealthyPercentage must be between 100 and 200, and at most 100 above MinHealthyPercentage.")
	}
	if p.warmup, has, err = rq.optInt(pre + "InstanceWarmup"); err != nil {
		return p, err
	} else if !has {
		p.warmup = -1
	} else if p.warmup < 0 {
		return p, validation("InstanceWarmup must not be negative.")
	}
	for _, v := range rq.members(pre + "CheckpointPercentages") {
		var n int
		if _, err := fmt.Sscanf(v, "%d", &n); err != nil || n < 1 || n > 100 {
			return p, validation("Checkpoint percentages must be between 1 and 100.")
		}
		if len(p.checkpoints) > 0 && n <= p.checkpoints[len(p.checkpoints)-1] {
			return p, validation("Checkpoint percentages must be unique and in ascending order.")
		}
		p.checkpoints = append(p.checkpoints, n)
	}
	if d, has, err := rq.optInt(pre + "CheckpointDelay"); err != nil {
		return p, err
	} else if has {
		if len(p.checkpoints) == 0 {
			return p, validation("CheckpointDelay requires CheckpointPercentages.")
		}
		if d < 0 || d > 172800 {
			return p, validation("CheckpointDelay must be between 0 and 172800 seconds.")
		}
		p.checkpointDelay = d
	}
	if p.skipMatching, err = rq.boolean(pre + "SkipMatching"); err != nil {
		return p, err
	}
	if p.autoRollback, err = rq.boolean(pre + "AutoRollback"); err != nil {
		return p, err
	}
	if p.bakeTime, _, err = rq.optInt(pre + "BakeTime"); err != nil {
		return p, err
	}
	p.alarms = rq.members(pre + "AlarmSpecification.Alarms")
	if len(p.alarms) > 10 {
		return p, validation("At most 10 alarms can be specified.")
	}
	return p, nil
}

func (s *Sim) startInstanceRefresh(rq *request) (any, error) {
	name := rq.str("AutoScalingGroupName")
	if st := rq.str("Strategy"); st != "" && st != "Rolling" {
		return nil, validation("Strategy %s is not supported; use Rolling.", st)
	}
	if len(rq.indexes("DesiredConfiguration.MixedInstancesPolicy")) > 0 || rq.has("DesiredConfiguration.MixedInstancesPolicy.LaunchTemplate.LaunchTemplateSpecification.LaunchTemplateId") {
		return nil, validation("MixedInstancesPolicy is not supported by this simulator.")
	}
	prefs, err := rq.refreshPrefs()
	if err != nil {
		return nil, err
	}
	ref, hasDesired := rq.ltRefParam("DesiredConfiguration.LaunchTemplate")

	now := s.lock()
	defer s.mu.Unlock()
	g, err := s.groupNamedLocked(name)
	if err != nil {
		return nil, err
	}
	if g.activeRefresh() != nil {
		return nil, apiErr("InstanceRefreshInProgress", "An Instance Refresh is already in progress and blocks the execution of this Instance Refresh.")
	}
	r := &refresh{
		id: s.uuidLocked(), status: refreshPending, start: now, prefs: prefs, original: g.lt,
		toReplace: map[*member]bool{}, total: g.desired,
	}
	if hasDesired {
		if ref, err = s.checkRefLocked(ref); err != nil {
			return nil, err
		}
		r.desired = &ref
	}
	if prefs.autoRollback {
		if why := r.irreversible(); why != "" {
			return nil, validation("AutoRollback cannot be used: %s", why)
		}
	}
	var matching string // the version number new instances get, for SkipMatching
	if prefs.skipMatching {
		_, v, err := s.resolveLocked(r.target())
		if err != nil {
			return nil, err
		}
		matching = fmt.Sprint(v.number)
	}
	for _, m := range g.members {
		if m.lifecycle == lifecycleTerminating {
			continue
		}
		if prefs.skipMatching && m.lt.id == r.target().id && m.lt.version == matching {
			r.skipped++
			continue
		}
		r.toReplace[m] = true
	}
	r.fault, s.asg.failNext = s.asg.failNext, nil
	g.refreshes = append([]*refresh{r}, g.refreshes...)
	if len(g.refreshes) > 50 {
		g.refreshes = g.refreshes[:50]
	}
	s.refreshEventLocked(g, r, DetailRefreshStarted, nil, now)
	s.after(now, 0, func(at time.Time) { s.reconcileLocked(g, at) })
	return &startInstanceRefreshResult{ID: r.id}, nil
}

// --- CancelInstanceRefresh, RollbackInstanceRefresh ---

func (s *Sim) cancelInstanceRefresh(rq *request) (any, error) {
	now := s.lock()
	defer s.mu.Unlock()
	g, err := s.groupNamedLocked(rq.str("AutoScalingGroupName"))
	if err != nil {
		return nil, err
	}
	r := g.activeRefresh()
	if r == nil || r.status == refreshCancelling {
		return nil, apiErr("ActiveInstanceRefreshNotFound", "No in progress or pending Instance Refresh found for Auto Scaling group %s", g.name)
	}
	r.status, r.reason = refreshCancelling, "Instance refresh is being cancelled."
	r.waitUntil = time.Time{}
	s.reconcileLocked(g, now)
	return &startInstanceRefreshResult{ID: r.id}, nil
}

func (s *Sim) rollbackInstanceRefresh(rq *request) (any, error) {
	now := s.lock()
	defer s.mu.Unlock()
	g, err := s.groupNamedLocked(rq.str("AutoScalingGroupName"))
	if err != nil {
		return nil, err
	}
	r := g.activeRefresh()
	if r == nil || (r.status != refreshPending && r.status != refreshInProgress && r.status != refreshBaking) {
		return nil, apiErr("ActiveInstanceRefreshNotFound", "No in progress or pending Instance Refresh found for Auto Scaling group %s", g.name)
	}
	if why := r.irreversible(); why != "" {
		return nil, apiErr("IrreversibleInstanceRefresh", "The instance refresh cannot be rolled back. %s", why)
	}
	s.startRollbackLocked(g, r, "Rollback started by user request.", now)
	s.reconcileLocked(g, now)
	return &startInstanceRefreshResult{ID: r.id}, nil
}

// --- DescribeInstanceRefreshes ---

type xLivePool struct {
	PercentageComplete int `xml:"PercentageComplete"`
	InstancesToUpdate  int `xml:"InstancesToUpdate"`
}

type xRefreshPrefs struct {
	MinHealthy      int      `xml:"MinHealthyPercentage"`
	MaxHealthy      *int     `xml:"MaxHealthyPercentage,omitempty"`
	Warmup          *int     `xml:"InstanceWarmup,omitempty"`
	Checkpoints     []int    `xml:"CheckpointPercentages>member,omitempty"`
	CheckpointDelay *int     `xml:"CheckpointDelay,omitempty"`
	SkipMatching    bool     `xml:"SkipMatching"`
	AutoRollback    bool     `xml:"AutoRollback"`
	ScaleInProt     string   `xml:"ScaleInProtectedInstances"`
	Standby         string   `xml:"StandbyInstances"`
	BakeTime        int      `xml:"BakeTime"`
	Alarms          []string `xml:"AlarmSpecification>Alarms>member,omitempty"`
}

type xRollbackDetails struct {
	Reason             string    `xml:"RollbackReason"`
	StartTime          string    `xml:"RollbackStartTime"`
	PercentageComplete int       `xml:"PercentageCompleteOnRollback"`
	InstancesToUpdate  int       `xml:"InstancesToUpdateOnRollback"`
	Progress           xLivePool `xml:"ProgressDetailsOnRollback>LivePoolProgress"`
}

type xInstanceRefresh struct {
	ID                 string              `xml:"InstanceRefreshId"`
	Group              string              `xml:"AutoScalingGroupName"`
	Status             string              `xml:"Status"`
	StatusReason       string              `xml:"StatusReason,omitempty"`
	StartTime          string              `xml:"StartTime"`
	EndTime            string              `xml:"EndTime,omitempty"`
	PercentageComplete int                 `xml:"PercentageComplete"`
	InstancesToUpdate  int                 `xml:"InstancesToUpdate"`
	Progress           xLivePool           `xml:"ProgressDetails>LivePoolProgress"`
	Preferences        xRefreshPrefs       `xml:"Preferences"`
	Desired            *xASGLaunchTemplate `xml:"DesiredConfiguration>LaunchTemplate,omitempty"`
	Rollback           *xRollbackDetails   `xml:"RollbackDetails,omitempty"`
	Strategy           string              `xml:"Strategy"`
}

type describeInstanceRefreshesResult struct {
	Refreshes []xInstanceRefresh `xml:"InstanceRefreshes>member"`
	NextToken string             `xml:"NextToken,omitempty"`
}

func (s *Sim) xmlRefreshLocked(g *asGroup, r *refresh, now time.Time) xInstanceRefresh {
	x := xInstanceRefresh{
		ID: r.id, Group: g.name, Status: r.status, StatusReason: r.reason,
		StartTime: isoTime(r.start), EndTime: isoTime(r.end), Strategy: "Rolling",
		Preferences: xRefreshPrefs{
			MinHealthy: r.prefs.minHealthy, Checkpoints: r.prefs.checkpoints, SkipMatching: r.prefs.skipMatching,
			AutoRollback: r.prefs.autoRollback, ScaleInProt: "Ignore", Standby: "Ignore", BakeTime: r.prefs.bakeTime,
			Alarms: r.prefs.alarms,
		},
	}
	if r.prefs.maxHealthy > 0 {
		x.Preferences.MaxHealthy = &r.prefs.maxHealthy
	}
	if r.prefs.warmup >= 0 {
		x.Preferences.Warmup = &r.prefs.warmup
	}
	if len(r.prefs.checkpoints) > 0 {
		x.Preferences.CheckpointDelay = &r.prefs.checkpointDelay
	}
	if d := r.desired; d != nil {
		x.Desired = &xASGLaunchTemplate{ID: d.id, Name: d.name, Version: d.version}
	}
	total := max(r.total, 1)
	switch r.status {
	case refreshSuccessful:
		x.PercentageComplete = 100
	case refreshRollbackInProgress, refreshRollbackSuccessful:
		p := r.progressIn(g, now)
		left := len(p.old)
		if r.status == refreshRollbackSuccessful {
			left, p.done = 0, r.rollbackTotal
		}
		x.PercentageComplete = min(100, left*100/total)
		rb := &xRollbackDetails{Reason: r.rollbackReason, StartTime: isoTime(r.rollbackStart)}
		rb.InstancesToUpdate = max(0, r.rollbackTotal-p.done)
		if r.rollbackTotal > 0 {
			rb.PercentageComplete = min(100, p.done*100/r.rollbackTotal)
		} else {
			rb.PercentageComplete = 100
		}
		rb.Progress = xLivePool{PercentageComplete: rb.PercentageComplete, InstancesToUpdate: rb.InstancesToUpdate}
		x.Rollback = rb
	default:
		done := r.skipped
		if r.status != refreshPending {
			done += r.progressIn(g, now).done
		}
		if r.status == refreshPending || r.status == refreshInProgress || r.status == refreshCancelling {
			x.PercentageComplete = min(100, done*100/total)
			x.InstancesToUpdate = max(0, r.total-done)
		} else {
			x.PercentageComplete = min(100, done*100/total)
		}
	}
	x.Progress = xLivePool{PercentageComplete: x.PercentageComplete, InstancesToUpdate: x.InstancesToUpdate}
	return x
}

func (s *Sim) describeInstanceRefreshes(rq *request) (any, error) {
	ids := rq.members("InstanceRefreshIds")
	max, start, err := rq.records("ir")
	if err != nil {
		return nil, err
	}
	now := s.lock()
	defer s.mu.Unlock()
	g, err := s.groupNamedLocked(rq.str("AutoScalingGroupName"))
	if err != nil {
		if rq.str("AutoScalingGroupName") == "" {
			return nil, err
		}
		return &describeInstanceRefreshesResult{}, nil
	}
	var list []*refresh
	for _, r := range g.refreshes {
		if len(ids) == 0 || slices.Contains(ids, r.id) {
			list = append(list, r)
		}
	}
	out := &describeInstanceRefreshesResult{}
	page, next := pageOf(list, start, max, "ir")
	for _, r := range page {
		out.Refreshes = append(out.Refreshes, s.xmlRefreshLocked(g, r, now))
	}
	out.NextToken = next
	return out, nil
}

// --- faults and control ---

// FailNextRefresh makes the next instance refresh that starts fail
// partway: the first after instances it launches with the new
// configuration are healthy, and every later one fails its EC2 health
// check as soon as it is running, which fails the refresh (and starts its
// rollback with AutoRollback). Instances launched by a rollback are
// healthy.
func (s *Sim) FailNextRefresh(after int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asg.failNext = &refreshFault{after: max(after, 0)}
}

// serveAutoScalingControl answers the control API under /_sim/autoscaling/:
//
//	GET  /_sim/autoscaling/groups            every group with its instances
//	GET  /_sim/autoscaling/groups/{name}     one group
//	POST /_sim/autoscaling/refresh-failure   {"after":3}: see FailNextRefresh
func (s *Sim) serveAutoScalingControl(w http.ResponseWriter, hr *http.Request, parts []string) {
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	fail := func(status int, err error) { reply(status, map[string]string{"error": err.Error()}) }
	switch {
	case len(parts) == 1 && parts[0] == "groups" && hr.Method == http.MethodGet:
		now := s.lock()
		out := []GroupInfo{}
		for _, g := range s.asg.order {
			if !g.gone {
				out = append(out, s.groupInfoLocked(g, now))
			}
		}
		s.mu.Unlock()
		reply(http.StatusOK, out)
	case len(parts) == 2 && parts[0] == "groups" && hr.Method == http.MethodGet:
		gi, ok := s.AutoScalingGroup(parts[1])
		if !ok {
			fail(http.StatusNotFound, ErrNotFound)
			return
		}
		reply(http.StatusOK, gi)
	case len(parts) == 1 && parts[0] == "refresh-failure" && hr.Method == http.MethodPost:
		var body struct {
			After int `json:"after"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, hr.Body, 1<<20)).Decode(&body); err != nil {
			fail(http.StatusBadRequest, err)
			return
		}
		s.FailNextRefresh(body.After)
		reply(http.StatusOK, map[string]bool{"ok": true})
	default:
		fail(http.StatusNotFound, errors.New("no control endpoint "+hr.Method+" "+hr.URL.Path))
	}
}
