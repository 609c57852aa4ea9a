package awssim

import (
	"cmp"
	"container/heap"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Auto Scaling (awsquery protocol, Version 2011-01-01): groups here,
// instance refreshes in autoscaling_refresh.go. A group keeps its desired
// capacity of instances launched from its launch template: a reconcile
// pass runs at every health-check interval and whenever one of its
// instances boots or warms up. It marks stopped or failed instances
// Unhealthy and terminates them, launches replacements, removes surplus,
// and drives the group's instance refresh. AWS throttles Auto Scaling too;
// the simulator does not.

const (
	autoscalingVersion = "2011-01-01"
	autoscalingNS      = "http://autoscaling.amazonaws.com/doc/2011-01-01/"
)

var autoscalingService = &service{
	name:    "autoscaling",
	version: autoscalingVersion,
	proto:   awsQuery{namespace: autoscalingNS},
	actions: autoscalingActions,
	control: (*Sim).serveAutoScalingControl, // autoscaling_refresh.go
}

// autoscalingActions is the Auto Scaling API, one line per action.
var autoscalingActions = map[string]action{
	"CreateAutoScalingGroup":    (*Sim).createAutoScalingGroup,
	"DescribeAutoScalingGroups": (*Sim).describeAutoScalingGroups,
	"UpdateAutoScalingGroup":    (*Sim).updateAutoScalingGroup,
	"DeleteAutoScalingGroup":    (*Sim).deleteAutoScalingGroup,
	"CreateOrUpdateTags":        (*Sim).createOrUpdateTags, // autoscaling_tags.go

	// Instance refreshes (autoscaling_refresh.go).
	"StartInstanceRefresh":      (*Sim).startInstanceRefresh,
	"DescribeInstanceRefreshes": (*Sim).describeInstanceRefreshes,
	"CancelInstanceRefresh":     (*Sim).cancelInstanceRefresh,
	"RollbackInstanceRefresh":   (*Sim).rollbackInstanceRefresh,
}

// Lifecycle and health states, as DescribeAutoScalingGroups reports them.
const (
	lifecyclePending     = "Pending"
	lifecycleInService   = "InService"
	lifecycleTerminating = "Terminating"
	healthHealthy        = "Healthy"
	healthUnhealthy      = "Unhealthy"
)

// healthCheckInterval is how often (simulated, scaled) a group checks its
// instances; AWS checks EC2 status about this often.
const healthCheckInterval = 10 * time.Second

// autoScalingRequester is the requester id EC2 reports for instances that
// Auto Scaling launched.
const autoScalingRequester = "940372691376"

// asgState is the Auto Scaling and launch-template state of a Sim; s.mu
// guards it.
type asgState struct {
	templates templates
	groups    map[string]*asGroup
	order     []*asGroup
	seq       uint64
	// failNext makes the next instance refresh fail partway; see
	// FailNextRefresh.
	failNext *refreshFault
}

func (a *asgState) init() {
	a.templates.init()
	a.groups = map[string]*asGroup{}
}

// ltRef names a launch template and version as a group or a refresh
// configuration holds it (Version as given: "3", "$Latest", "$Default").
type ltRef struct {
	id, name, version string
}

type asGroup struct {
	seq             uint64
	name, arn       string
	created         time.Time
	lt              ltRef
	min, max        int
	desired         int
	subnets         []string
	zones           []string
	healthCheckType string
	gracePeriod     int
	defaultWarmup   int // -1: not set
	defaultCooldown int
	tags            []asgTag
	members         []*member
	refreshes       []*refresh // newest first
	deleting        bool
	gone            bool
	nextSubnet      int
	visibleAt       time.Time // eventual consistency: Describe lists it from then on
}

type asgTag struct {
	key, value string
	propagate  bool
}

// member is an instance of a group.
type member struct {
	in        *instance
	lt        ltRef // resolved: version is a number
	lifecycle string
	health    string
	warmAt    time.Time // InService and warmed up from then on
	refresh   *refresh  // the refresh whose configuration launched it
	rollback  bool      // launched by that refresh's rollback
	failAt    time.Time // injected: fails its health check from then on
	ordinal   int       // 1 for the first instance its refresh launched, ...
}

// groupNamedLocked finds a group or answers ValidationError as AWS does.
func (s *Sim) groupNamedLocked(name string) (*asGroup, error) {
	if name == "" {
		return nil, validation("1 validation error detected: Value null at 'autoScalingGroupName' failed to satisfy constraint: Member must not be null")
	}
	g, ok := s.asg.groups[name]
	if !ok || g.gone {
		return nil, validation("AutoScalingGroup name not found - AutoScalingGroup '%s' not found", name)
	}
	return g, nil
}

func validation(format string, args ...any) *APIError {
	return apiErr("ValidationError", format, args...)
}

// resolveLocked finds the template and version a reference names now.
func (s *Sim) resolveLocked(ref ltRef) (*launchTemplate, *ltVersion, error) {
	id, name := ref.id, ref.name
	if id != "" {
		name = ""
	}
	lt, err := s.templateLocked(id, name)
	if err != nil {
		return nil, nil, validation("You must use a valid fully-formed launch template. %s", errMessage(err))
	}
	v, err := lt.version(ref.version)
	if err != nil {
		return nil, nil, validation("You must use a valid fully-formed launch template. %s", errMessage(err))
	}
	return lt, v, nil
}

// launchTarget is the configuration new instances of g get now: the
// refresh's while one is rolling forward, the original one during a
// rollback, else the group's.
func (g *asGroup) launchTarget() (ltRef, *refresh, bool) {
	if r := g.activeRefresh(); r != nil {
		switch r.status {
		case refreshPending, refreshInProgress, refreshBaking:
			return r.target(), r, false
		case refreshRollbackInProgress:
			return r.original, r, true
		}
	}
	return g.lt, nil, false
}

// reconcileLocked brings g towards its desired state; s.mu is held.
func (s *Sim) reconcileLocked(g *asGroup, now time.Time) {
	if g.gone {
		return
	}
	s.checkMembersLocked(g, now)
	if r := g.activeRefresh(); r != nil {
		s.stepRefreshLocked(g, r, now)
	}
	s.fillCapacityLocked(g, now)
	if g.deleting && len(g.members) == 0 {
		g.gone = true
		delete(s.asg.groups, g.name)
		s.asg.order = slices.DeleteFunc(s.asg.order, func(x *asGroup) bool { return x == g })
	}
}

// checkMembersLocked follows each member's EC2 state: Pending until it
// runs, InService then; stopped or failing instances turn Unhealthy and are
// terminated; terminated ones leave the group.
func (s *Sim) checkMembersLocked(g *asGroup, now time.Time) {
	kept := g.members[:0]
	for _, m := range g.members {
		in := m.in
		switch in.state {
		case StateTerminated:
			continue
		case StateShuttingDown:
			m.lifecycle = lifecycleTerminating
		case StatePending:
			m.lifecycle = lifecyclePending
		case StateRunning:
			if m.lifecycle == lifecyclePending {
				m.lifecycle = lifecycleInService
				m.warmAt = in.runningSince.Add(s.scaled(s.warmupFor(g, m)))
				if m.warmAt.After(now) {
					s.after(m.warmAt, 0, func(at time.Time) { s.reconcileLocked(g, at) })
				}
				if m.injectedFailure() {
					m.failAt = in.runningSince
				}
			}
			if !m.failAt.IsZero() && !now.Before(m.failAt) {
				m.health = healthUnhealthy
			}
		case StateStopping, StateStopped:
			m.health = healthUnhealthy
		}
		if in.removed {
			continue
		}
		if m.health == healthUnhealthy && m.lifecycle != lifecycleTerminating {
			s.terminateLocked(in, now, "Auto Scaling: instance failed its health check ("+now.UTC().Format("2006-01-02 15:04:05 MST")+")")
			m.lifecycle = lifecycleTerminating
			if r := m.refresh; r != nil && !m.rollback {
				s.failRefreshLocked(g, r, now, fmt.Sprintf("Instance refresh failed: the replacement instance %s failed its health checks.", in.id))
			}
		}
		kept = append(kept, m)
	}
	clear(g.members[len(kept):])
	g.members = kept
}

// warmupFor is the warm-up of a member: its refresh's InstanceWarmup, else
// the group's DefaultInstanceWarmup, else its health-check grace period.
func (s *Sim) warmupFor(g *asGroup, m *member) time.Duration {
	sec := g.gracePeriod
	if g.defaultWarmup >= 0 {
		sec = g.defaultWarmup
	}
	if m.refresh != nil && m.refresh.prefs.warmup >= 0 {
		sec = m.refresh.prefs.warmup
	}
	return time.Duration(sec) * time.Second
}

// active counts the members that are not on their way out.
func (g *asGroup) active() int {
	n := 0
	for _, m := range g.members {
		if m.lifecycle != lifecycleTerminating {
			n++
		}
	}
	return n
}

// fillCapacityLocked launches or terminates instances until the group has
// its desired capacity.
func (s *Sim) fillCapacityLocked(g *asGroup, now time.Time) {
	want := g.desired
	if g.deleting {
		want = 0
	}
	n := g.active()
	if n > want {
		if r := g.activeRefresh(); r != nil && r.prefs.maxHealthy > 100 && r.status != refreshCancelling {
			return // a launch-first refresh retires the surplus itself
		}
		s.scaleInLocked(g, n-want, now)
		return
	}
	for range want - n {
		if err := s.launchMemberLocked(g, now); err != nil {
			s.log.Debug("auto scaling launch failed", "group", g.name, "err", err)
			return
		}
	}
}

// scaleInLocked terminates n members: not yet in service first, then those
// not on the group's configuration, then the oldest (AWS's default
// termination policy, without the zone balancing).
func (s *Sim) scaleInLocked(g *asGroup, n int, now time.Time) {
	target, _, _ := g.launchTarget()
	cands := slices.DeleteFunc(slices.Clone(g.members), func(m *member) bool { return m.lifecycle == lifecycleTerminating })
	rank := func(m *member) int {
		switch {
		case m.lifecycle != lifecycleInService || m.health != healthHealthy:
			return 0
		case m.lt.id != target.id || (target.version != "" && !strings.HasPrefix(target.version, "$") && m.lt.version != target.version):
			return 1
		}
		return 2
	}
	slices.SortStableFunc(cands, func(a, b *member) int { return rank(a) - rank(b) })
	for _, m := range cands[:min(n, len(cands))] {
		s.terminateMemberLocked(m, now)
	}
}

func (s *Sim) terminateMemberLocked(m *member, now time.Time) {
	s.terminateLocked(m.in, now, "Auto Scaling: terminating instance ("+now.UTC().Format("2006-01-02 15:04:05 MST")+")")
	m.lifecycle = lifecycleTerminating
}

// launchMemberLocked launches one instance into g from its current launch
// target, in the next subnet (round robin, to spread zones).
func (s *Sim) launchMemberLocked(g *asGroup, now time.Time) error {
	ref, r, rollback := g.launchTarget()
	lt, v, err := s.resolveLocked(ref)
	if err == nil {
		var sp launchSpec
		sp, err = s.specFromVersion(v)
		if err == nil {
			sp.SubnetID = g.subnets[g.nextSubnet%len(g.subnets)]
			g.nextSubnet++
			sp.RequesterID = autoScalingRequester
			for _, t := range g.tags {
				if t.propagate {
					sp.Tags = append(sp.Tags, Tag{Key: t.key, Value: t.value})
				}
			}
			var ins []*instance
			ins, err = s.launchLocked(sp, 1, 1, now)
			if err == nil {
				in := ins[0]
				s.tagTemplateInstances(ins, lt, v)
				s.tags.set(in.id, "aws:autoscaling:groupName", g.name)
				m := &member{in: in, lt: ltRef{id: lt.id, name: lt.name, version: strconv.Itoa(v.number)}, lifecycle: lifecyclePending, health: healthHealthy, refresh: r, rollback: rollback}
				g.members = append(g.members, m)
				if r != nil && !rollback {
					r.launched++
					m.ordinal = r.launched
				}
				s.after(now, s.opts.Durations.Boot, func(at time.Time) { s.reconcileLocked(g, at) })
				return nil
			}
		}
	}
	if r != nil && !rollback {
		s.failRefreshLocked(g, r, now, "Instance refresh failed: "+errMessage(err))
	}
	return err
}

// errMessage is the message of an *APIError, or the error's text.
func errMessage(err error) string {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Message
	}
	return err.Error()
}

// heartbeatLocked schedules g's periodic health check. The interval has a
// floor of one second so that TimeScale 0 cannot spin the timer loop.
func (s *Sim) heartbeatLocked(g *asGroup, now time.Time) {
	due := now.Add(max(s.scaled(healthCheckInterval), time.Second))
	s.timerSeq++
	heap.Push(&s.timers, &timer{at: due, seq: s.timerSeq, fn: func(at time.Time) {
		if g.gone {
			return
		}
		s.reconcileLocked(g, at)
		s.heartbeatLocked(g, at)
	}})
	if s.timers[0].seq == s.timerSeq {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// --- request validation ---

// checkRefLocked validates a reference and fills in id and name.
func (s *Sim) checkRefLocked(ref ltRef) (ltRef, error) {
	if ref.id != "" && ref.name != "" {
		return ref, validation("Valid requests must contain either launchTemplateId or LaunchTemplateName but not both.")
	}
	lt, v, err := s.resolveLocked(ref)
	if err != nil {
		return ref, err
	}
	if err := s.templateArchLocked(v); err != nil {
		return ref, validation("You must use a valid fully-formed launch template. %s", errMessage(err))
	}
	ref.id, ref.name = lt.id, lt.name
	if ref.version == "" {
		ref.version = "$Default"
	}
	return ref, nil
}

func checkBounds(minS, maxS, desired int) error {
	switch {
	case minS < 0 || maxS < 0 || desired < 0:
		return validation("Group sizes must not be negative")
	case minS > maxS:
		return validation("Max bound, %d, must be greater than or equal to min bound, %d", maxS, minS)
	case desired < minS || desired > maxS:
		return validation("Desired capacity:%d must be between the specified min size:%d and max size:%d", desired, minS, maxS)
	}
	return nil
}

// subnetsLocked resolves VPCZoneIdentifier (comma-separated subnet ids) or
// AvailabilityZones to subnets and their zones.
func (s *Sim) subnetsLocked(vpcZones string, zones []string) ([]string, []string, error) {
	var ids, azs []string
	if vpcZones != "" {
		for _, id := range strings.Split(vpcZones, ",") {
			id = strings.TrimSpace(id)
			i := slices.IndexFunc(s.subnets, func(sn subnet) bool { return sn.id == id })
			if i < 0 {
				return nil, nil, validation("The subnet ID '%s' does not exist", id)
			}
			ids = append(ids, id)
			if !slices.Contains(azs, s.subnets[i].az) {
				azs = append(azs, s.subnets[i].az)
			}
		}
		return ids, azs, nil
	}
	if len(zones) == 0 {
		return nil, nil, validation("At least one Availability Zone or VPC Subnet is required.")
	}
	for _, z := range zones {
		i := slices.IndexFunc(s.subnets, func(sn subnet) bool { return sn.az == z })
		if i < 0 {
			return nil, nil, validation("Invalid Availability Zone: %s", z)
		}
		ids, azs = append(ids, s.subnets[i].id), append(azs, z)
	}
	return ids, azs, nil
}

// --- CreateAutoScalingGroup ---

func (s *Sim) createAutoScalingGroup(r *request) (any, error) {
	name := r.str("AutoScalingGroupName")
	if name == "" || len(name) > 255 {
		return nil, validation("1 validation error detected: Value at 'autoScalingGroupName' failed to satisfy constraint: Member must have length between 1 and 255")
	}
	ref, hasLT := r.ltRefParam("LaunchTemplate")
	if !hasLT {
		return nil, validation("Valid requests must contain either LaunchTemplate, LaunchConfigurationName, InstanceId or MixedInstancesPolicy parameter.")
	}
	minS, hasMin, err := r.optInt("MinSize")
	if err != nil {
		return nil, err
	}
	maxS, hasMax, err := r.optInt("MaxSize")
	if err != nil {
		return nil, err
	}
	if !hasMin || !hasMax {
		return nil, validation("1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null", map[bool]string{true: "maxSize", false: "minSize"}[hasMin])
	}
	desired, hasDesired, err := r.optInt("DesiredCapacity")
	if err != nil {
		return nil, err
	}
	if !hasDesired {
		desired = minS
	}
	if err := checkBounds(minS, maxS, desired); err != nil {
		return nil, err
	}
	grace, _, err := r.optInt("HealthCheckGracePeriod")
	if err != nil {
		return nil, err
	}
	warm, hasWarm, err := r.optInt("DefaultInstanceWarmup")
	if err != nil {
		return nil, err
	}
	if !hasWarm {
		warm = -1
	}
	cooldown, hasCooldown, err := r.optInt("DefaultCooldown")
	if err != nil {
		return nil, err
	}
	if !hasCooldown {
		cooldown = 300
	}
	hct := cmp.Or(r.str("HealthCheckType"), "EC2")
	if hct != "EC2" && hct != "ELB" && hct != "EBS" && hct != "VPC_LATTICE" {
		return nil, validation("Invalid health check type: %s", hct)
	}
	var tags []asgTag
	for _, p := range r.memberPrefixes("Tags") {
		k := r.str(p + ".Key")
		if k == "" {
			return nil, validation("Tag key must not be empty")
		}
		if strings.HasPrefix(strings.ToLower(k), "aws:") {
			return nil, validation("Tag keys starting with 'aws:' are reserved for internal use")
		}
		prop, err := r.boolean(p + ".PropagateAtLaunch")
		if err != nil {
			return nil, err
		}
		tags = append(tags, asgTag{key: k, value: r.str(p + ".Value"), propagate: prop})
	}

	now := s.lock()
	defer s.mu.Unlock()
	if g, ok := s.asg.groups[name]; ok && !g.gone {
		return nil, apiErr("AlreadyExists", "AutoScalingGroup by this name already exists - A group with the name %s already exists", name)
	}
	if ref, err = s.checkRefLocked(ref); err != nil {
		return nil, err
	}
	subnets, zones, err := s.subnetsLocked(r.str("VPCZoneIdentifier"), r.members("AvailabilityZones"))
	if err != nil {
		return nil, err
	}
	s.asg.seq++
	g := &asGroup{
		seq: s.asg.seq, name: name, created: now, lt: ref, min: minS, max: maxS, desired: desired,
		subnets: subnets, zones: zones, healthCheckType: hct, gracePeriod: grace, defaultWarmup: warm,
		defaultCooldown: cooldown, tags: tags, visibleAt: s.eventualLocked(now),
	}
	g.arn = fmt.Sprintf("arn:aws:autoscaling:%s:%s:autoScalingGroup:%s:autoScalingGroupName/%s", s.opts.Region, s.opts.Account, s.uuidLocked(), name)
	s.asg.groups[name] = g
	s.asg.order = append(s.asg.order, g)
	s.fillCapacityLocked(g, now)
	s.heartbeatLocked(g, now)
	return nil, nil
}

// uuidLocked makes a random UUID from the simulator's generator.
func (s *Sim) uuidLocked() string {
	a, b := s.rng.Uint64(), s.rng.Uint64()
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", uint32(a>>32), uint16(a>>16), uint16(a)&0xfff, 0x8000|uint16(b>>48)&0x3fff, b&0xffffffffffff)
}

// --- UpdateAutoScalingGroup ---

func (s *Sim) updateAutoScalingGroup(r *request) (any, error) {
	name := r.str("AutoScalingGroupName")
	minS, hasMin, err := r.optInt("MinSize")
	if err != nil {
		return nil, err
	}
	maxS, hasMax, err := r.optInt("MaxSize")
	if err != nil {
		return nil, err
	}
	desired, hasDesired, err := r.optInt("DesiredCapacity")
	if err != nil {
		return nil, err
	}
	grace, hasGrace, err := r.optInt("HealthCheckGracePeriod")
	if err != nil {
		return nil, err
	}
	warm, hasWarm, err := r.optInt("DefaultInstanceWarmup")
	if err != nil {
		return nil, err
	}
	ref, hasLT := r.ltRefParam("LaunchTemplate")

	now := s.lock()
	defer s.mu.Unlock()
	g, err := s.groupNamedLocked(name)
	if err != nil {
		return nil, err
	}
	if g.deleting {
		return nil, apiErr("ScalingActivityInProgress", "The group %s is being deleted.", name)
	}
	nmin, nmax, ndes := g.min, g.max, g.desired
	if hasMin {
		nmin = minS
	}
	if hasMax {
		nmax = maxS
	}
	if hasDesired {
		ndes = desired
	} else {
		// A new bound moves the desired capacity with it, as on AWS.
		ndes = max(min(ndes, nmax), nmin)
	}
	if err := checkBounds(nmin, nmax, ndes); err != nil {
		return nil, err
	}
	if hasLT {
		if ref, err = s.checkRefLocked(ref); err != nil {
			return nil, err
		}
	}
	if r.has("VPCZoneIdentifier") || len(r.members("AvailabilityZones")) > 0 {
		subnets, zones, err := s.subnetsLocked(r.str("VPCZoneIdentifier"), r.members("AvailabilityZones"))
		if err != nil {
			return nil, err
		}
		g.subnets, g.zones = subnets, zones
	}
	g.min, g.max, g.desired = nmin, nmax, ndes
	if hasLT {
		g.lt = ref
	}
	if hasGrace {
		g.gracePeriod = grace
	}
	if hasWarm {
		g.defaultWarmup = warm
	}
	if hct := r.str("HealthCheckType"); hct != "" {
		g.healthCheckType = hct
	}
	s.reconcileLocked(g, now)
	return nil, nil
}

// --- DeleteAutoScalingGroup ---

func (s *Sim) deleteAutoScalingGroup(r *request) (any, error) {
	force, err := r.boolean("ForceDelete")
	if err != nil {
		return nil, err
	}
	now := s.lock()
	defer s.mu.Unlock()
	g, err := s.groupNamedLocked(r.str("AutoScalingGroupName"))
	if err != nil {
		return nil, err
	}
	if !force {
		for _, m := range g.members {
			if m.lifecycle == lifecycleInService {
				return nil, apiErr("ResourceInUse", "You cannot delete an AutoScalingGroup while there are instances or pending Spot instance request(s) still in the group.")
			}
		}
		if len(g.members) > 0 {
			return nil, apiErr("ScalingActivityInProgress", "You cannot delete an AutoScalingGroup while there are scaling activities in progress for that group.")
		}
	}
	g.deleting = true
	for _, m := range g.members {
		if m.lifecycle != lifecycleTerminating {
			s.terminateMemberLocked(m, now)
		}
	}
	if r := g.activeRefresh(); r != nil {
		r.finish(refreshCancelled, "The Auto Scaling group was deleted.", now)
	}
	s.reconcileLocked(g, now)
	return nil, nil
}

// --- DescribeAutoScalingGroups ---

type xASGLaunchTemplate struct {
	ID      string `xml:"LaunchTemplateId"`
	Name    string `xml:"LaunchTemplateName"`
	Version string `xml:"Version"`
}

type xASGInstance struct {
	InstanceID       string             `xml:"InstanceId"`
	InstanceType     string             `xml:"InstanceType"`
	AvailabilityZone string             `xml:"AvailabilityZone"`
	LifecycleState   string             `xml:"LifecycleState"`
	HealthStatus     string             `xml:"HealthStatus"`
	LaunchTemplate   xASGLaunchTemplate `xml:"LaunchTemplate"`
	Protected        bool               `xml:"ProtectedFromScaleIn"`
}

type xASGTag struct {
	ResourceID   string `xml:"ResourceId"`
	ResourceType string `xml:"ResourceType"`
	Key          string `xml:"Key"`
	Value        string `xml:"Value"`
	Propagate    bool   `xml:"PropagateAtLaunch"`
}

type xASG struct {
	Name                string             `xml:"AutoScalingGroupName"`
	ARN                 string             `xml:"AutoScalingGroupARN"`
	LaunchTemplate      xASGLaunchTemplate `xml:"LaunchTemplate"`
	MinSize             int                `xml:"MinSize"`
	MaxSize             int                `xml:"MaxSize"`
	DesiredCapacity     int                `xml:"DesiredCapacity"`
	DefaultCooldown     int                `xml:"DefaultCooldown"`
	AvailabilityZones   []string           `xml:"AvailabilityZones>member"`
	HealthCheckType     string             `xml:"HealthCheckType"`
	HealthCheckGrace    int                `xml:"HealthCheckGracePeriod"`
	Instances           []xASGInstance     `xml:"Instances>member"`
	CreatedTime         string             `xml:"CreatedTime"`
	VPCZoneIdentifier   string             `xml:"VPCZoneIdentifier"`
	Status              string             `xml:"Status,omitempty"`
	Tags                []xASGTag          `xml:"Tags>member"`
	TerminationPolicies []string           `xml:"TerminationPolicies>member"`
	NewProtected        bool               `xml:"NewInstancesProtectedFromScaleIn"`
	ServiceLinkedRole   string             `xml:"ServiceLinkedRoleARN"`
	DefaultWarmup       *int               `xml:"DefaultInstanceWarmup,omitempty"`
	CapacityRebalance   bool               `xml:"CapacityRebalance"`
}

type describeAutoScalingGroupsResult struct {
	Groups    []xASG `xml:"AutoScalingGroups>member"`
	NextToken string `xml:"NextToken,omitempty"`
}

func (s *Sim) xmlGroupLocked(g *asGroup) xASG {
	x := xASG{
		Name: g.name, ARN: g.arn, LaunchTemplate: xASGLaunchTemplate{ID: g.lt.id, Name: g.lt.name, Version: g.lt.version},
		MinSize: g.min, MaxSize: g.max, DesiredCapacity: g.desired, DefaultCooldown: g.defaultCooldown,
		AvailabilityZones: g.zones, HealthCheckType: g.healthCheckType, HealthCheckGrace: g.gracePeriod,
		CreatedTime: isoTime(g.created), VPCZoneIdentifier: strings.Join(g.subnets, ","),
		TerminationPolicies: []string{"Default"},
		ServiceLinkedRole:   "arn:aws:iam::" + s.opts.Account + ":role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling",
	}
	if g.deleting {
		x.Status = "Delete in progress"
	}
	if g.defaultWarmup >= 0 {
		w := g.defaultWarmup
		x.DefaultWarmup = &w
	}
	for _, m := range g.members {
		x.Instances = append(x.Instances, xASGInstance{
			InstanceID: m.in.id, InstanceType: m.in.spec.InstanceType, AvailabilityZone: m.in.az,
			LifecycleState: m.lifecycle, HealthStatus: m.health,
			LaunchTemplate: xASGLaunchTemplate{ID: m.lt.id, Name: m.lt.name, Version: m.lt.version},
		})
	}
	for _, t := range g.tags {
		x.Tags = append(x.Tags, xASGTag{ResourceID: g.name, ResourceType: "auto-scaling-group", Key: t.key, Value: t.value, Propagate: t.propagate})
	}
	return x
}

func (s *Sim) describeAutoScalingGroups(r *request) (any, error) {
	names := r.members("AutoScalingGroupNames")
	max, start, err := r.records("asg")
	if err != nil {
		return nil, err
	}
	fs, err := r.memberFilters(isTagFilter)
	if err != nil {
		return nil, err
	}
	now := s.lock()
	defer s.mu.Unlock()
	out := &describeAutoScalingGroupsResult{}
	for _, g := range s.asg.order {
		if g.gone || g.seq < start || now.Before(g.visibleAt) || (len(names) > 0 && !slices.Contains(names, g.name)) || !g.matches(fs) {
			continue
		}
		if len(out.Groups) == max {
			out.NextToken = pageToken("asg", g.seq)
			break
		}
		out.Groups = append(out.Groups, s.xmlGroupLocked(g))
	}
	return out, nil
}

func (g *asGroup) matches(fs []filter) bool {
	tags := map[string]string{}
	for _, t := range g.tags {
		tags[t.key] = t.value
	}
	for _, f := range fs {
		if ok, _ := matchTags(f, tags); !ok {
			return false
		}
	}
	return true
}

// --- Go API ---

// GroupInstance is one instance of an Auto Scaling group, for tests.
type GroupInstance struct {
	ID             string `json:"id"`
	LifecycleState string `json:"lifecycle_state"`
	HealthStatus   string `json:"health_status"`
	// LaunchTemplateVersion is the number of the version it was launched from.
	LaunchTemplateVersion string `json:"launch_template_version"`
	// WarmedUp reports InService, Healthy and past its warm-up: what an
	// instance refresh counts as healthy capacity.
	WarmedUp bool `json:"warmed_up"`
}

// GroupInfo is a snapshot of an Auto Scaling group, for tests and the
// control API.
type GroupInfo struct {
	Name      string          `json:"name"`
	Desired   int             `json:"desired"`
	Instances []GroupInstance `json:"instances"`
}

// Healthy counts the instances that are InService, Healthy and warmed up.
func (gi GroupInfo) Healthy() int {
	n := 0
	for _, in := range gi.Instances {
		if in.WarmedUp {
			n++
		}
	}
	return n
}

// AutoScalingGroup returns a snapshot of a group.
func (s *Sim) AutoScalingGroup(name string) (GroupInfo, bool) {
	now := s.lock()
	defer s.mu.Unlock()
	g, ok := s.asg.groups[name]
	if !ok || g.gone {
		return GroupInfo{}, false
	}
	return s.groupInfoLocked(g, now), true
}

func (s *Sim) groupInfoLocked(g *asGroup, now time.Time) GroupInfo {
	gi := GroupInfo{Name: g.name, Desired: g.desired}
	for _, m := range g.members {
		gi.Instances = append(gi.Instances, GroupInstance{
			ID: m.in.id, LifecycleState: m.lifecycle, HealthStatus: m.health, LaunchTemplateVersion: m.lt.version,
			WarmedUp: m.warmedUp(now),
		})
	}
	return gi
}

func (m *member) warmedUp(now time.Time) bool {
	return m.lifecycle == lifecycleInService && m.health == healthHealthy && !now.Before(m.warmAt)
}
