package awssim

import (
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// Instance state names and codes, as EC2 reports them.
const (
	StatePending      = "pending"
	StateRunning      = "running"
	StateShuttingDown = "shutting-down"
	StateTerminated   = "terminated"
	StateStopping     = "stopping"
	StateStopped      = "stopped"
)

var stateCodes = map[string]int{
	StatePending: 0, StateRunning: 16, StateShuttingDown: 32,
	StateTerminated: 48, StateStopping: 64, StateStopped: 80,
}

const consoleMax = 64 << 10

type volume struct {
	id, device, volType string
	size                int
	snapshotID          string // the snapshot it was created from
	attached            time.Time
}

type instance struct {
	seq           uint64
	id            string
	reservationID string
	requesterID   string
	launchIndex   int
	spec          launchSpec
	arch          string
	rootDevice    string
	az, vpcID     string
	privateIP     string
	publicIP      string
	volumes       []volume
	assoc         *iamAssoc // the active instance profile association, nil for none

	state        string
	gen          uint64 // bumped on every state change; timers check it
	boot         uint64 // bumped on every boot and reboot; the guest checks it
	launchTime   time.Time
	runningSince time.Time
	reason       string // stateTransitionReason
	stateReason  *xStateReason
	visibleAt    time.Time // eventual consistency
	removed      bool

	console  []byte // what the guest wrote, last 64 KB
	posted   []byte // what GetConsoleOutput shows
	postedAt time.Time
	ranUser  bool // user data runs on the first boot only
	exitCode int  // the user-data script's status, -1 while running
}

func (in *instance) visible(now time.Time) bool { return !now.Before(in.visibleAt) }

// launchSpec is everything an instance is launched from: the RunInstances
// parameters, or a launch template's data (launchtemplate*.go and
// autoscaling*.go build one and call launchLocked).
type launchSpec struct {
	ImageID          string
	InstanceType     string
	KeyName          string
	SubnetID         string
	SecurityGroupIDs []string
	UserData         []byte
	ShutdownBehavior string // stop (default) | terminate
	IamProfile       string // instance profile name or ARN
	Tags             []Tag  // instance tags
	VolumeTags       []Tag
	DisableAPIStop   bool
	NoTerminate      bool // DisableApiTermination
	ClientToken      string
	RequesterID      string // set for instances launched by a service (Auto Scaling)
	Zone             string // Placement.AvailabilityZone, when no subnet is given
}

type tokenEntry struct {
	hash          string
	reservationID string
	instances     []*instance
}

var idRE = regexp.MustCompile(`^[a-z]+-([0-9a-f]{8}|[0-9a-f]{17})$`)

// wellFormed reports whether id is prefix- and 8 or 17 hex digits.
func wellFormed(prefix, id string) bool {
	return strings.HasPrefix(id, prefix+"-") && idRE.MatchString(id)
}

// instanceLocked finds an instance the caller can see; s.mu is held.
func (s *Sim) instanceLocked(id string, now time.Time) (*instance, error) {
	if !wellFormed("i", id) {
		return nil, apiErr("InvalidInstanceID.Malformed", "Invalid id: \"%s\"", id)
	}
	in, ok := s.instances[id]
	if !ok || !in.visible(now) {
		return nil, apiErr("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
	}
	return in, nil
}

// instancesLocked finds every id, or reports the malformed or missing ones
// as AWS does (all missing ids in one message).
func (s *Sim) instancesLocked(ids []string, now time.Time) ([]*instance, error) {
	out := make([]*instance, 0, len(ids))
	var missing []string
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		if !wellFormed("i", id) {
			return nil, apiErr("InvalidInstanceID.Malformed", "Invalid id: \"%s\"", id)
		}
		in, ok := s.instances[id]
		if !ok || !in.visible(now) {
			missing = append(missing, id)
			continue
		}
		out = append(out, in)
	}
	switch len(missing) {
	case 0:
		return out, nil
	case 1:
		return nil, apiErr("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", missing[0])
	}
	return nil, apiErr("InvalidInstanceID.NotFound", "The instance IDs '%s' do not exist", strings.Join(missing, ", "))
}

// validateLaunchLocked checks a spec against the world and fills defaults.
func (s *Sim) validateLaunchLocked(sp *launchSpec, now time.Time) (*image, *subnet, error) {
	if sp.ImageID == "" {
		return nil, nil, apiErr("MissingParameter", "The request must contain the parameter ImageId")
	}
	if !wellFormed("ami", sp.ImageID) {
		return nil, nil, apiErr("InvalidAMIID.Malformed", "Invalid id: \"%s\" (expecting \"ami-...\")", sp.ImageID)
	}
	im, ok := s.launchImageLocked(sp.ImageID, now) // accounts.go: its own, or shared with it
	if !ok {
		return nil, nil, apiErr("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", sp.ImageID)
	}
	if im.state != imageAvailable {
		return nil, nil, apiErr("InvalidAMIID.Unavailable", "The image id '[%s]' is not available", sp.ImageID)
	}
	if sp.InstanceType == "" {
		sp.InstanceType = "m1.small"
	}
	ti, ok := lookupType(sp.InstanceType)
	if !ok {
		return nil, nil, apiErr("InvalidParameterValue", "Invalid value '%s' for InstanceType.", sp.InstanceType)
	}
	if err := archMismatch(ti, im.arch); err != nil {
		return nil, nil, err
	}
	switch sp.ShutdownBehavior {
	case "":
		sp.ShutdownBehavior = "stop"
	case "stop", "terminate":
	default:
		return nil, nil, apiErr("InvalidParameterValue", "Invalid value '%s' for instanceInitiatedShutdownBehavior", sp.ShutdownBehavior)
	}
	sn := &s.subnets[0]
	if sp.SubnetID == "" && sp.Zone != "" {
		sn = nil
		for i := range s.subnets {
			if s.subnets[i].az == sp.Zone {
				sn = &s.subnets[i]
			}
		}
		if sn == nil {
			return nil, nil, apiErr("InvalidParameterValue", "Invalid availability zone: [%s]", sp.Zone)
		}
	}
	if sp.SubnetID != "" {
		if !wellFormed("subnet", sp.SubnetID) {
			return nil, nil, apiErr("InvalidSubnetID.Malformed", "Invalid id: \"%s\"", sp.SubnetID)
		}
		sn = nil
		for i := range s.subnets {
			if s.subnets[i].id == sp.SubnetID {
				sn = &s.subnets[i]
			}
		}
		if sn == nil {
			return nil, nil, apiErr("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", sp.SubnetID)
		}
	}
	sp.SubnetID = sn.id
	if len(sp.SecurityGroupIDs) == 0 {
		sp.SecurityGroupIDs = []string{s.defaultGroupID()}
	}
	for _, g := range sp.SecurityGroupIDs {
		if _, err := s.groupLocked(g); err != nil {
			return nil, nil, err
		}
	}
	if len(sp.UserData) > 16<<10 {
		return nil, nil, apiErr("InvalidParameterValue", "User data is limited to 16384 bytes")
	}
	if err := validateTags(sp.Tags, true); err != nil {
		return nil, nil, err
	}
	if sp.IamProfile != "" {
		if _, err := s.checkProfile(sp.IamProfile, false); err != nil {
			return nil, nil, err
		}
	}
	return im, sn, nil
}

// launchLocked launches between min and max instances from sp (validated
// here) in one reservation, all pending. s.mu is held. Shared with the
// Auto Scaling and launch-template files.
func (s *Sim) launchLocked(sp launchSpec, minN, maxN int, now time.Time) ([]*instance, error) {
	im, sn, err := s.validateLaunchLocked(&sp, now)
	if err != nil {
		return nil, err
	}
	if minN < 1 || maxN < 1 {
		return nil, apiErr("InvalidParameterValue", "MinCount and MaxCount must be at least 1")
	}
	if minN > maxN {
		return nil, apiErr("InvalidParameterValue", "MinCount (%d) must be less than or equal to MaxCount (%d)", minN, maxN)
	}
	if sp.RequesterID == "" { // a shortage refuses RunInstances; Auto Scaling retries on its own
		if err := s.capacityLocked(sp.InstanceType, sn.az, now); err != nil { // profiles.go
			return nil, err
		}
	}
	live := s.live
	room := s.opts.InstanceLimit - live
	if room < minN {
		return nil, apiErr("InstanceLimitExceeded", "You have requested more instances (%d) than your current instance limit of %d allows.", minN+live, s.opts.InstanceLimit)
	}
	n := min(maxN, room)
	rid := s.newID("r")
	out := make([]*instance, 0, n)
	for i := range n {
		s.instSeq++
		in := &instance{
			seq:           s.instSeq,
			id:            s.newID("i"),
			reservationID: rid,
			requesterID:   sp.RequesterID,
			launchIndex:   i,
			spec:          sp,
			arch:          im.arch,
			rootDevice:    im.rootDevice,
			az:            sn.az,
			vpcID:         sn.vpcID,
			privateIP:     s.nextPrivateIP(sn),
			launchTime:    now,
			visibleAt:     s.notYetLocked(now),
			exitCode:      -1,
		}
		in.spec.SecurityGroupIDs = slices.Clone(sp.SecurityGroupIDs)
		for _, b := range im.bdms {
			in.volumes = append(in.volumes, volume{id: s.newID("vol"), device: b.device, size: b.size, volType: b.volType, snapshotID: b.snapshotID, attached: now})
		}
		for _, tg := range sp.Tags {
			s.tags.set(in.id, tg.Key, tg.Value)
		}
		for _, v := range in.volumes {
			for _, tg := range sp.VolumeTags {
				s.tags.set(v.id, tg.Key, tg.Value)
			}
		}
		s.instances[in.id] = in
		s.instOrder = append(s.instOrder, in)
		s.live++
		if sp.IamProfile != "" {
			// A profile given at launch is associated with the launch.
			arn, _ := s.checkProfile(sp.IamProfile, false)
			s.associateLocked(in, arn, assocAssociated, now)
		}
		s.setStateLocked(in, StatePending, now, "")
		out = append(out, in)
	}
	return out, nil
}

func (s *Sim) nextPrivateIP(sn *subnet) string {
	s.ipSeq++
	n := s.ipSeq
	return fmt.Sprintf("%s.%d.%d", sn.prefix, (n/250)%250, n%250+4)
}

func (s *Sim) nextPublicIP() string {
	s.ipSeq++
	n := s.ipSeq
	return fmt.Sprintf("54.%d.%d.%d", 160+(n>>16)%64, (n>>8)%256, n%254+1)
}

// setStateLocked moves an instance to state at now, pushes the state-change
// event and schedules what follows. reason is the state transition reason
// ("" keeps none). s.mu is held.
func (s *Sim) setStateLocked(in *instance, state string, now time.Time, reason string) {
	in.state = state
	in.gen++
	g := in.gen
	in.reason = reason
	d := s.opts.Durations
	next := func(dur time.Duration, to string) {
		s.after(now, dur, func(at time.Time) {
			if in.gen == g && !in.removed {
				s.setStateLocked(in, to, at, in.reason)
			}
		})
	}
	switch state {
	case StatePending:
		in.stateReason = nil
		in.appendConsole(bootBanner(in, now))
		next(d.Boot, StateRunning)
	case StateRunning:
		in.runningSince = now
		in.stateReason = nil
		in.reason = ""
		in.publicIP = s.nextPublicIP()
		in.boot++
		in.appendConsole(cloudInitStart(now))
		s.postConsoleAfter(in, now)
		if !in.ranUser {
			in.ranUser = true
			s.startGuestLocked(in, now)
		}
	case StateStopping:
		next(d.Stop, StateStopped)
	case StateStopped:
		in.publicIP = ""
		in.appendConsole(powerDownLines)
		s.postConsoleAfter(in, now)
	case StateShuttingDown:
		s.live--
		next(d.Terminate, StateTerminated)
	case StateTerminated:
		in.publicIP = ""
		s.dropAssocsLocked(in)
		in.appendConsole(powerDownLines)
		s.postConsoleAfter(in, now)
		s.after(now, d.TerminatedVisible, func(time.Time) {
			if in.gen == g {
				s.removeInstanceLocked(in)
			}
		})
	}
	s.instanceEventLocked(in, now)
}

// removeInstanceLocked forgets a terminated instance.
func (s *Sim) removeInstanceLocked(in *instance) {
	in.removed = true
	s.dropAssocsLocked(in)
	delete(s.instances, in.id)
	s.tags.drop(in.id)
	for _, v := range in.volumes {
		s.tags.drop(v.id)
	}
	if len(s.instOrder) > 64 && len(s.instances) < len(s.instOrder)/2 {
		s.instOrder = slices.DeleteFunc(s.instOrder, func(x *instance) bool { return x.removed })
	}
}

// stopLocked begins a stop (or, for an OS power-off with shutdown
// behaviour terminate, a termination).
func (s *Sim) stopLocked(in *instance, now time.Time, reason string) {
	s.setStateLocked(in, StateStopping, now, reason)
}

// terminateLocked begins a termination; a no-op when already on the way.
// Shared with autoscaling*.go.
func (s *Sim) terminateLocked(in *instance, now time.Time, reason string) {
	if in.state == StateShuttingDown || in.state == StateTerminated {
		return
	}
	s.setStateLocked(in, StateShuttingDown, now, reason)
}

func userReason(now time.Time) string {
	return "User initiated (" + now.UTC().Format("2006-01-02 15:04:05 MST") + ")"
}

func (in *instance) appendConsole(s string) {
	in.console = append(in.console, s...)
	if len(in.console) > consoleMax {
		in.console = slices.Clone(in.console[len(in.console)-consoleMax:])
	}
}

// postConsoleAfter makes the console output visible to GetConsoleOutput a
// little later, as AWS posts it after boot, stop and termination.
func (s *Sim) postConsoleAfter(in *instance, now time.Time) {
	s.after(now, s.opts.Durations.Console, func(at time.Time) {
		in.posted = slices.Clone(in.console)
		in.postedAt = at
	})
}

// --- XML shapes ---

type xState struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

func stateOf(name string) xState { return xState{Code: stateCodes[name], Name: name} }

type xGroup struct {
	GroupID   string `xml:"groupId"`
	GroupName string `xml:"groupName"`
}

type xStateReason struct {
	Code    string `xml:"code"`
	Message string `xml:"message"`
}

type xInstance struct {
	InstanceID         string          `xml:"instanceId"`
	ImageID            string          `xml:"imageId"`
	State              xState          `xml:"instanceState"`
	PrivateDNSName     string          `xml:"privateDnsName"`
	DNSName            string          `xml:"dnsName"`
	Reason             string          `xml:"reason"`
	KeyName            string          `xml:"keyName,omitempty"`
	AmiLaunchIndex     int             `xml:"amiLaunchIndex"`
	InstanceType       string          `xml:"instanceType"`
	LaunchTime         string          `xml:"launchTime"`
	AvailabilityZone   string          `xml:"placement>availabilityZone"`
	Tenancy            string          `xml:"placement>tenancy"`
	Monitoring         string          `xml:"monitoring>state"`
	SubnetID           string          `xml:"subnetId"`
	VpcID              string          `xml:"vpcId"`
	PrivateIP          string          `xml:"privateIpAddress"`
	PublicIP           string          `xml:"ipAddress,omitempty"`
	SourceDestCheck    bool            `xml:"sourceDestCheck"`
	Groups             []xGroup        `xml:"groupSet>item"`
	StateReason        *xStateReason   `xml:"stateReason,omitempty"`
	Architecture       string          `xml:"architecture"`
	RootDeviceType     string          `xml:"rootDeviceType"`
	RootDeviceName     string          `xml:"rootDeviceName"`
	BlockDevices       []xInstanceBDM  `xml:"blockDeviceMapping>item"`
	VirtualizationType string          `xml:"virtualizationType"`
	ClientToken        string          `xml:"clientToken,omitempty"`
	Tags               []Tag           `xml:"tagSet>item"`
	Hypervisor         string          `xml:"hypervisor"`
	IamInstanceProfile *xIamProfile    `xml:"iamInstanceProfile,omitempty"`
	EbsOptimized       bool            `xml:"ebsOptimized"`
	EnaSupport         bool            `xml:"enaSupport"`
	PlatformDetails    string          `xml:"platformDetails"`
	BootMode           string          `xml:"currentInstanceBootMode"`
	MetadataOptions    xMetadataOption `xml:"metadataOptions"`
}

type xMetadataOption struct {
	State        string `xml:"state"`
	HTTPTokens   string `xml:"httpTokens"`
	HTTPEndpoint string `xml:"httpEndpoint"`
}

type xInstanceBDM struct {
	DeviceName string `xml:"deviceName"`
	VolumeID   string `xml:"ebs>volumeId"`
	Status     string `xml:"ebs>status"`
	AttachTime string `xml:"ebs>attachTime"`
	DeleteOnT  bool   `xml:"ebs>deleteOnTermination"`
}

type xIamProfile struct {
	Arn string `xml:"arn"`
	ID  string `xml:"id"`
}

type xReservation struct {
	ReservationID string      `xml:"reservationId"`
	OwnerID       string      `xml:"ownerId"`
	RequesterID   string      `xml:"requesterId,omitempty"`
	Groups        []xGroup    `xml:"groupSet>item"`
	Instances     []xInstance `xml:"instancesSet>item"`
}

// xmlLocked copies an instance into its XML shape; s.mu is held.
func (s *Sim) xmlLocked(in *instance) xInstance {
	x := xInstance{
		InstanceID:         in.id,
		ImageID:            in.spec.ImageID,
		State:              stateOf(in.state),
		PrivateDNSName:     "ip-" + strings.ReplaceAll(in.privateIP, ".", "-") + ".ec2.internal",
		Reason:             in.reason,
		KeyName:            in.spec.KeyName,
		AmiLaunchIndex:     in.launchIndex,
		InstanceType:       in.spec.InstanceType,
		LaunchTime:         isoTime(in.launchTime),
		AvailabilityZone:   in.az,
		Tenancy:            "default",
		Monitoring:         "disabled",
		SubnetID:           in.spec.SubnetID,
		VpcID:              in.vpcID,
		PrivateIP:          in.privateIP,
		PublicIP:           in.publicIP,
		SourceDestCheck:    true,
		StateReason:        in.stateReason,
		Architecture:       in.arch,
		RootDeviceType:     "ebs",
		RootDeviceName:     in.rootDevice,
		VirtualizationType: "hvm",
		ClientToken:        in.spec.ClientToken,
		Tags:               s.tags.list(in.id),
		Hypervisor:         "xen",
		EnaSupport:         true,
		PlatformDetails:    "Linux/UNIX",
		BootMode:           "uefi",
		MetadataOptions:    xMetadataOption{State: "applied", HTTPTokens: "required", HTTPEndpoint: "enabled"},
	}
	if in.state == StateTerminated {
		x.PrivateDNSName = ""
	}
	if in.publicIP != "" {
		x.DNSName = "ec2-" + strings.ReplaceAll(in.publicIP, ".", "-") + ".compute-1.amazonaws.com"
	}
	for _, g := range in.spec.SecurityGroupIDs {
		name := ""
		if sg := s.groups[g]; sg != nil {
			name = sg.name
		}
		x.Groups = append(x.Groups, xGroup{GroupID: g, GroupName: name})
	}
	if in.state != StateTerminated {
		for _, v := range in.volumes {
			x.BlockDevices = append(x.BlockDevices, xInstanceBDM{DeviceName: v.device, VolumeID: v.id, Status: "attached", AttachTime: isoTime(v.attached), DeleteOnT: true})
		}
	}
	if a := in.assoc; a != nil {
		x.IamInstanceProfile = &xIamProfile{Arn: a.arn, ID: profileID(a.arn)}
	}
	return x
}

func (s *Sim) profileArn(p string) string {
	if strings.HasPrefix(p, "arn:") {
		return p
	}
	return "arn:aws:iam::" + s.opts.Account + ":instance-profile/" + p
}

// reservationsLocked groups instances (in order) by reservation.
func (s *Sim) reservationsLocked(ins []*instance) []xReservation {
	var out []xReservation
	for _, in := range ins {
		if n := len(out); n > 0 && out[n-1].ReservationID == in.reservationID {
			out[n-1].Instances = append(out[n-1].Instances, s.xmlLocked(in))
			continue
		}
		out = append(out, xReservation{ReservationID: in.reservationID, OwnerID: s.opts.Account, RequesterID: in.requesterID, Instances: []xInstance{s.xmlLocked(in)}})
	}
	return out
}

// --- RunInstances ---

type runInstancesResponse struct {
	ec2Meta
	xReservation
}

func (s *Sim) runInstances(r *request) (any, error) {
	minC, err := r.integer("MinCount", -1)
	if err != nil {
		return nil, err
	}
	maxC, err := r.integer("MaxCount", -1)
	if err != nil {
		return nil, err
	}
	if minC == -1 {
		return nil, apiErr("MissingParameter", "The request must contain the parameter MinCount")
	}
	if maxC == -1 {
		return nil, apiErr("MissingParameter", "The request must contain the parameter MaxCount")
	}
	sp := launchSpec{
		ImageID:          r.str("ImageId"),
		InstanceType:     r.str("InstanceType"),
		KeyName:          r.str("KeyName"),
		SubnetID:         r.str("SubnetId"),
		SecurityGroupIDs: r.list("SecurityGroupId"),
		ShutdownBehavior: r.str("InstanceInitiatedShutdownBehavior"),
		IamProfile:       cmp.Or(r.str("IamInstanceProfile.Arn"), r.str("IamInstanceProfile.Name")),
		ClientToken:      r.str("ClientToken"),
	}
	if sp.NoTerminate, err = r.boolean("DisableApiTermination"); err != nil {
		return nil, err
	}
	if sp.DisableAPIStop, err = r.boolean("DisableApiStop"); err != nil {
		return nil, err
	}
	sp.Zone = r.str("Placement.AvailabilityZone")
	if len(sp.ClientToken) > 64 {
		return nil, apiErr("InvalidParameterValue", "Value (%s) for parameter clientToken is invalid. The token must be 64 characters or less.", sp.ClientToken)
	}
	if ud := r.str("UserData"); ud != "" {
		b, err := base64.StdEncoding.DecodeString(ud)
		if err != nil {
			return nil, apiErr("InvalidParameterValue", "Invalid BASE64 encoding of user data.")
		}
		sp.UserData = b
	}
	specs, err := r.tagSpecs("", anyTagType)
	if err != nil {
		return nil, err
	}
	if sp.Tags, err = tagsFor(specs, "instance", "instance", "volume", "network-interface", "spot-instances-request", "elastic-gpu"); err != nil {
		return nil, err
	}
	sp.VolumeTags, _ = tagsFor(specs, "volume", "instance", "volume", "network-interface", "spot-instances-request", "elastic-gpu")
	names := r.list("SecurityGroup")

	now := s.lock()
	defer s.mu.Unlock()
	if err := s.fillFromTemplateLocked(r, &sp); err != nil {
		return nil, err
	}
	for _, n := range names {
		g := s.groupByNameLocked(n)
		if g == nil {
			return nil, apiErr("InvalidGroup.NotFound", "The security group '%s' does not exist in default VPC '%s'", n, s.subnets[0].vpcID)
		}
		sp.SecurityGroupIDs = append(sp.SecurityGroupIDs, g.id)
	}
	var hash string
	if sp.ClientToken != "" {
		hash = paramsHash(r)
		if te, ok := s.tokens[sp.ClientToken]; ok {
			if te.hash != hash {
				return nil, tokenMismatch()
			}
			res := s.reservationsLocked(te.instances)
			return &runInstancesResponse{xReservation: res[0]}, nil
		}
	}
	ins, err := s.launchLocked(sp, minC, maxC, now)
	if err != nil {
		return nil, err
	}
	if sp.ClientToken != "" {
		s.tokens[sp.ClientToken] = &tokenEntry{hash: hash, reservationID: ins[0].reservationID, instances: ins}
	}
	res := s.reservationsLocked(ins)
	return &runInstancesResponse{xReservation: res[0]}, nil
}

// tokenMismatch is the error for a client token used again with other
// parameters (paramsHash differs).
func tokenMismatch() *APIError {
	return apiErr("IdempotentParameterMismatch", "Arguments on this idempotent request are inconsistent with arguments used in previous request(s).")
}

// paramsHash identifies a request's parameters apart from the token.
func paramsHash(r *request) string {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(r.Params)) {
		switch k {
		case "ClientToken", "Action", "Version", "DryRun":
			continue
		}
		fmt.Fprintf(h, "%s=%q\n", k, r.Params[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// --- DescribeInstances ---

type describeInstancesResponse struct {
	ec2Meta
	Reservations []xReservation `xml:"reservationSet>item"`
	NextToken    string         `xml:"nextToken,omitempty"`
}

var instanceFilters = map[string]func(s *Sim, in *instance) []string{
	"instance-id":         func(_ *Sim, in *instance) []string { return []string{in.id} },
	"instance-state-name": func(_ *Sim, in *instance) []string { return []string{in.state} },
	"instance-state-code": func(_ *Sim, in *instance) []string { return []string{fmt.Sprint(stateCodes[in.state])} },
	"image-id":            func(_ *Sim, in *instance) []string { return []string{in.spec.ImageID} },
	"instance-type":       func(_ *Sim, in *instance) []string { return []string{in.spec.InstanceType} },
	"subnet-id":           func(_ *Sim, in *instance) []string { return []string{in.spec.SubnetID} },
	"vpc-id":              func(_ *Sim, in *instance) []string { return []string{in.vpcID} },
	"key-name":            func(_ *Sim, in *instance) []string { return []string{in.spec.KeyName} },
	"reservation-id":      func(_ *Sim, in *instance) []string { return []string{in.reservationID} },
	"availability-zone":   func(_ *Sim, in *instance) []string { return []string{in.az} },
	"private-ip-address":  func(_ *Sim, in *instance) []string { return []string{in.privateIP} },
	"ip-address":          func(_ *Sim, in *instance) []string { return []string{in.publicIP} },
	"client-token":        func(_ *Sim, in *instance) []string { return []string{in.spec.ClientToken} },
	"architecture":        func(_ *Sim, in *instance) []string { return []string{in.arch} },
	"instance.group-id":   func(_ *Sim, in *instance) []string { return in.spec.SecurityGroupIDs },
	"launch-time":         func(_ *Sim, in *instance) []string { return []string{isoTime(in.launchTime)} },
}

// matchInstance applies every filter (ANDed) to an instance.
func (s *Sim) matchInstance(fs []filter, in *instance, known map[string]func(*Sim, *instance) []string) bool {
	return matchFilters(fs, s.tags.get(in.id), func(f filter) bool {
		return slices.ContainsFunc(known[f.Name](s, in), func(v string) bool { return matchAny(f.Values, v) })
	})
}

// candidatesLocked narrows the instances to scan with the tag index, in
// creation order; nil means "all of them".
func (s *Sim) candidatesLocked(fs []filter) []*instance {
	var best map[string]struct{}
	for _, f := range fs {
		k, ok := tagFilterKey(f)
		if !ok {
			continue
		}
		set := s.tags.matching(k, f.Values)
		if best == nil || len(set) < len(best) {
			best = set
		}
	}
	if best == nil {
		return nil
	}
	out := make([]*instance, 0, len(best))
	for id := range best {
		if in, ok := s.instances[id]; ok {
			out = append(out, in)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

// selectInstancesLocked returns the instances a describe call reports:
// by id (NotFound for unknown ones) or by filter, paged from the token.
func (s *Sim) selectInstancesLocked(ids []string, fs []filter, max int, start uint64, now time.Time, known map[string]func(*Sim, *instance) []string, keep func(*instance) bool) ([]*instance, string, error) {
	if len(ids) > 0 {
		ins, err := s.instancesLocked(ids, now)
		if err != nil {
			return nil, "", err
		}
		out := ins[:0]
		for _, in := range ins {
			if keep(in) && s.matchInstance(fs, in, known) {
				out = append(out, in)
			}
		}
		return out, "", nil
	}
	cands := s.candidatesLocked(fs)
	if cands == nil {
		cands = s.instOrder
	}
	i := sort.Search(len(cands), func(i int) bool { return cands[i].seq >= start })
	var out []*instance
	for ; i < len(cands); i++ {
		in := cands[i]
		if in.removed || !in.visible(now) || !keep(in) || !s.matchInstance(fs, in, known) {
			continue
		}
		if max > 0 && len(out) == max {
			return out, pageToken("i", in.seq), nil
		}
		out = append(out, in)
	}
	return out, "", nil
}

func (s *Sim) describeInstances(r *request) (any, error) {
	ids := r.list("InstanceId")
	fs, err := r.filters(filterNames(instanceFilters, true))
	if err != nil {
		return nil, err
	}
	max, start, err := r.page("i", 5, 1000, "instanceIds", len(ids) > 0)
	if err != nil {
		return nil, err
	}
	now := s.lock()
	defer s.mu.Unlock()
	ins, next, err := s.selectInstancesLocked(ids, fs, max, start, now, instanceFilters, func(*instance) bool { return true })
	if err != nil {
		return nil, err
	}
	return &describeInstancesResponse{Reservations: s.reservationsLocked(ins), NextToken: next}, nil
}

// --- DescribeInstanceStatus ---

type xInstanceStatus struct {
	InstanceID       string  `xml:"instanceId"`
	AvailabilityZone string  `xml:"availabilityZone"`
	State            xState  `xml:"instanceState"`
	SystemStatus     xStatus `xml:"systemStatus"`
	InstanceStatus   xStatus `xml:"instanceStatus"`
}

type xStatus struct {
	Status  string          `xml:"status"`
	Details []xStatusDetail `xml:"details>item"`
}

type xStatusDetail struct {
	Name   string `xml:"name"`
	Status string `xml:"status"`
}

type describeInstanceStatusResponse struct {
	ec2Meta
	Statuses  []xInstanceStatus `xml:"instanceStatusSet>item"`
	NextToken string            `xml:"nextToken,omitempty"`
}

// statusChecks is "initializing" for a while after boot, then "ok";
// "not-applicable" when not running.
func (s *Sim) statusChecks(in *instance, now time.Time) string {
	if in.state != StateRunning {
		return "not-applicable"
	}
	if now.Sub(in.runningSince) < s.scaled(s.opts.Durations.StatusChecks) {
		return "initializing"
	}
	return "ok"
}

var statusFilters = map[string]func(s *Sim, in *instance) []string{
	"instance-state-name": instanceFilters["instance-state-name"],
	"instance-state-code": instanceFilters["instance-state-code"],
	"availability-zone":   instanceFilters["availability-zone"],
	"instance-status.status": func(s *Sim, in *instance) []string {
		return []string{s.statusChecks(in, s.nowLocked())}
	},
	"system-status.status": func(s *Sim, in *instance) []string {
		return []string{s.statusChecks(in, s.nowLocked())}
	},
}

func (s *Sim) describeInstanceStatus(r *request) (any, error) {
	ids := r.list("InstanceId")
	fs, err := r.filters(filterNames(statusFilters, false))
	if err != nil {
		return nil, err
	}
	all, err := r.boolean("IncludeAllInstances")
	if err != nil {
		return nil, err
	}
	max, start, err := r.page("i", 5, 1000, "instanceIds", len(ids) > 0)
	if err != nil {
		return nil, err
	}
	now := s.lock()
	defer s.mu.Unlock()
	keep := func(in *instance) bool { return all || in.state == StateRunning }
	ins, next, err := s.selectInstancesLocked(ids, fs, max, start, now, statusFilters, keep)
	if err != nil {
		return nil, err
	}
	out := &describeInstanceStatusResponse{NextToken: next}
	for _, in := range ins {
		st := s.statusChecks(in, now)
		detail := st // the reachability check: initializing, then passed
		if st == "ok" {
			detail = "passed"
		}
		x := xInstanceStatus{InstanceID: in.id, AvailabilityZone: in.az, State: stateOf(in.state),
			SystemStatus:   xStatus{Status: st},
			InstanceStatus: xStatus{Status: st},
		}
		if st != "not-applicable" {
			x.SystemStatus.Details = []xStatusDetail{{Name: "reachability", Status: detail}}
			x.InstanceStatus.Details = []xStatusDetail{{Name: "reachability", Status: detail}}
		}
		out.Statuses = append(out.Statuses, x)
	}
	return out, nil
}

// --- Start / Stop / Reboot / Terminate ---

type xStateChange struct {
	InstanceID string `xml:"instanceId"`
	Current    xState `xml:"currentState"`
	Previous   xState `xml:"previousState"`
}

type stateChangeResponse struct {
	ec2Meta
	Changes []xStateChange `xml:"instancesSet>item"`
}

// changeStates runs fn on every instance of the request, after checking
// them all, and reports previous and current states.
func (s *Sim) changeStates(r *request, fn func(in *instance, now time.Time) error) (any, error) {
	ids, err := r.requiredList("InstanceId", "InstanceId")
	if err != nil {
		return nil, err
	}
	now := s.lock()
	defer s.mu.Unlock()
	ins, err := s.instancesLocked(ids, now)
	if err != nil {
		return nil, err
	}
	prev := make([]string, len(ins))
	for i, in := range ins {
		prev[i] = in.state
		if err := fn(in, time.Time{}); err != nil {
			return nil, err
		}
	}
	out := &stateChangeResponse{}
	for i, in := range ins {
		_ = fn(in, now)
		out.Changes = append(out.Changes, xStateChange{InstanceID: in.id, Current: stateOf(in.state), Previous: stateOf(prev[i])})
	}
	return out, nil
}

// Each state function checks when now is zero and acts otherwise.

func (s *Sim) startInstances(r *request) (any, error) {
	return s.changeStates(r, func(in *instance, now time.Time) error {
		switch in.state {
		case StateStopped:
			if !now.IsZero() {
				s.setStateLocked(in, StatePending, now, "")
			}
		case StatePending, StateRunning:
		default:
			return apiErr("IncorrectInstanceState", "The instance '%s' is not in a state from which it can be started.", in.id)
		}
		return nil
	})
}

func (s *Sim) stopInstances(r *request) (any, error) {
	return s.changeStates(r, func(in *instance, now time.Time) error {
		switch in.state {
		case StateRunning:
			if in.spec.DisableAPIStop {
				return &APIError{Status: http.StatusBadRequest, Code: "OperationNotPermitted", Message: fmt.Sprintf("The instance '%s' may not be stopped. Modify its 'disableApiStop' instance attribute and try again.", in.id)}
			}
			if !now.IsZero() {
				s.stopLocked(in, now, userReason(now))
			}
		case StateStopping, StateStopped:
		default:
			return apiErr("IncorrectInstanceState", "This instance '%s' is not in a state from which it can be stopped.", in.id)
		}
		return nil
	})
}

func (s *Sim) terminateInstances(r *request) (any, error) {
	return s.changeStates(r, func(in *instance, now time.Time) error {
		if in.spec.NoTerminate && in.state != StateTerminated {
			return &APIError{Status: http.StatusBadRequest, Code: "OperationNotPermitted", Message: fmt.Sprintf("The instance '%s' may not be terminated. Modify its 'disableApiTermination' instance attribute and try again.", in.id)}
		}
		if !now.IsZero() {
			s.terminateLocked(in, now, userReason(now))
		}
		return nil
	})
}

func (s *Sim) rebootInstances(r *request) (any, error) {
	ids, err := r.requiredList("InstanceId", "InstanceId")
	if err != nil {
		return nil, err
	}
	now := s.lock()
	defer s.mu.Unlock()
	ins, err := s.instancesLocked(ids, now)
	if err != nil {
		return nil, err
	}
	for _, in := range ins {
		if in.state != StateRunning {
			return nil, apiErr("IncorrectInstanceState", "The instance '%s' is not in a state from which it can be rebooted.", in.id)
		}
	}
	for _, in := range ins {
		s.rebootLocked(in, now)
	}
	return &returnResponse{Return: true}, nil
}

// rebootLocked restarts the guest OS of a running instance: the state stays
// running, a user-data script in progress dies and does not run again.
func (s *Sim) rebootLocked(in *instance, now time.Time) {
	in.boot++
	in.appendConsole(powerDownLines)
	in.appendConsole(bootBanner(in, now))
	in.appendConsole(cloudInitStart(now))
	s.postConsoleAfter(in, now.Add(s.scaled(s.opts.Durations.Reboot)))
}

// --- Attributes ---

func (s *Sim) modifyInstanceAttribute(r *request) (any, error) {
	id, err := r.required("InstanceId")
	if err != nil {
		return nil, err
	}
	attr, value := r.str("Attribute"), r.str("Value")
	// An attribute is given as Name.Value, or as Attribute=name&Value=v.
	attrValue := func(field, name string) string {
		return cmp.Or(r.str(field+".Value"), map[bool]string{true: value}[attr == name])
	}
	typ := attrValue("InstanceType", "instanceType")
	var userData []byte
	hasUD := r.has("UserData.Value") || attr == "userData"
	if hasUD {
		raw := cmp.Or(r.str("UserData.Value"), value)
		if userData, err = base64.StdEncoding.DecodeString(raw); err != nil {
			userData = []byte(raw)
		}
	}
	shutdown := attrValue("InstanceInitiatedShutdownBehavior", "instanceInitiatedShutdownBehavior")
	noTerm := attrValue("DisableApiTermination", "disableApiTermination")
	groups := r.list("GroupId")
	if typ == "" && !hasUD && shutdown == "" && noTerm == "" && len(groups) == 0 {
		if attr != "" {
			return nil, apiErr("InvalidParameterValue", "Value (%s) for parameter attribute is invalid. Unknown attribute.", attr)
		}
		return nil, apiErr("MissingParameter", "The request must contain the parameter Attribute")
	}
	now := s.lock()
	defer s.mu.Unlock()
	in, err := s.instanceLocked(id, now)
	if err != nil {
		return nil, err
	}
	if (typ != "" || hasUD) && in.state != StateStopped {
		return nil, apiErr("IncorrectInstanceState", "The instance '%s' is not in the 'stopped' state.", id)
	}
	if typ != "" {
		ti, ok := lookupType(typ)
		if !ok {
			return nil, apiErr("InvalidParameterValue", "Invalid value '%s' for InstanceType.", typ)
		}
		if err := archMismatch(ti, in.arch); err != nil {
			return nil, err
		}
	}
	if shutdown != "" && shutdown != "stop" && shutdown != "terminate" {
		return nil, apiErr("InvalidParameterValue", "Invalid value '%s' for instanceInitiatedShutdownBehavior", shutdown)
	}
	if len(userData) > 16<<10 {
		return nil, apiErr("InvalidParameterValue", "User data is limited to 16384 bytes")
	}
	for _, g := range groups {
		if _, err := s.groupLocked(g); err != nil {
			return nil, err
		}
	}
	if typ != "" {
		in.spec.InstanceType = typ
	}
	if hasUD {
		in.spec.UserData = userData
	}
	if shutdown != "" {
		in.spec.ShutdownBehavior = shutdown
	}
	if noTerm != "" {
		in.spec.NoTerminate = noTerm == "true"
	}
	if len(groups) > 0 {
		in.spec.SecurityGroupIDs = groups
	}
	return &returnResponse{Return: true}, nil
}

type xValue struct {
	Value string `xml:"value"`
}

type describeInstanceAttributeResponse struct {
	ec2Meta
	InstanceID            string   `xml:"instanceId"`
	InstanceType          *xValue  `xml:"instanceType,omitempty"`
	UserData              *xValue  `xml:"userData,omitempty"`
	ShutdownBehavior      *xValue  `xml:"instanceInitiatedShutdownBehavior,omitempty"`
	DisableAPITermination *xValue  `xml:"disableApiTermination,omitempty"`
	DisableAPIStop        *xValue  `xml:"disableApiStop,omitempty"`
	RootDeviceName        *xValue  `xml:"rootDeviceName,omitempty"`
	Groups                []xGroup `xml:"groupSet>item"`
}

func (s *Sim) describeInstanceAttribute(r *request) (any, error) {
	id, err := r.required("InstanceId")
	if err != nil {
		return nil, err
	}
	attr, err := r.required("Attribute")
	if err != nil {
		return nil, err
	}
	now := s.lock()
	defer s.mu.Unlock()
	in, err := s.instanceLocked(id, now)
	if err != nil {
		return nil, err
	}
	out := &describeInstanceAttributeResponse{InstanceID: in.id}
	switch attr {
	case "instanceType":
		out.InstanceType = &xValue{in.spec.InstanceType}
	case "userData":
		out.UserData = &xValue{}
		if len(in.spec.UserData) > 0 {
			out.UserData.Value = base64.StdEncoding.EncodeToString(in.spec.UserData)
		}
	case "instanceInitiatedShutdownBehavior":
		out.ShutdownBehavior = &xValue{in.spec.ShutdownBehavior}
	case "disableApiTermination":
		out.DisableAPITermination = &xValue{fmt.Sprint(in.spec.NoTerminate)}
	case "disableApiStop":
		out.DisableAPIStop = &xValue{fmt.Sprint(in.spec.DisableAPIStop)}
	case "rootDeviceName":
		out.RootDeviceName = &xValue{in.rootDevice}
	case "groupSet":
		for _, g := range in.spec.SecurityGroupIDs {
			out.Groups = append(out.Groups, xGroup{GroupID: g})
		}
	default:
		return nil, apiErr("InvalidParameterValue", "Value (%s) for parameter attribute is invalid. Unknown attribute.", attr)
	}
	return out, nil
}

// --- Console ---

type consoleOutputResponse struct {
	ec2Meta
	InstanceID string `xml:"instanceId"`
	Timestamp  string `xml:"timestamp,omitempty"`
	Output     string `xml:"output,omitempty"`
}

func (s *Sim) getConsoleOutput(r *request) (any, error) {
	id, err := r.required("InstanceId")
	if err != nil {
		return nil, err
	}
	latest, err := r.boolean("Latest")
	if err != nil {
		return nil, err
	}
	now := s.lock()
	defer s.mu.Unlock()
	in, err := s.instanceLocked(id, now)
	if err != nil {
		return nil, err
	}
	out := &consoleOutputResponse{InstanceID: in.id}
	data, at := in.posted, in.postedAt
	if latest && in.state == StateRunning {
		data, at = in.console, now
	}
	if len(data) > 0 {
		out.Output = base64.StdEncoding.EncodeToString(data)
		out.Timestamp = isoTime(at)
	}
	return out, nil
}

// --- console text ---

func bootBanner(in *instance, now time.Time) string {
	return "[    0.000000] Linux version 6.1.112-124.190.amzn2023." + in.arch + " (mockbuild@ip-10-0-1-1) #1 SMP\n" +
		"[    0.000000] Command line: BOOT_IMAGE=(hd0,gpt1)/boot/vmlinuz root=UUID=" + in.id + " ro console=tty0 console=ttyS0,115200n8\n" +
		"[    1.204311] systemd[1]: Detected virtualization amazon.\n"
}

func cloudInitStart(now time.Time) string {
	return "[   " + "12.483921] cloud-init[1867]: Cloud-init v. 22.2.2 running 'modules:final' at " + now.UTC().Format(time.RFC1123Z) + ".\n"
}

const powerDownLines = "[  OK  ] Reached target System Power Off.\n[ 1312.227015] reboot: Power down\n"
