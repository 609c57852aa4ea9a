package awssim

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// IAM instance profile associations: AssociateIamInstanceProfile,
// ReplaceIamInstanceProfileAssociation, DisassociateIamInstanceProfile and
// DescribeIamInstanceProfileAssociations. An instance has at most one
// association that is not on its way out; DescribeInstances shows that
// one's profile. There is no IAM in the simulator: any well-formed profile
// name or ARN exists.

// Association states, as EC2 reports them.
const (
	assocAssociating    = "associating"
	assocAssociated     = "associated"
	assocDisassociating = "disassociating"
)

type iamAssoc struct {
	seq        uint64
	id         string // iip-assoc- + 17 hex digits
	instanceID string
	arn        string
	state      string
	at         time.Time // when it was made
	gen        uint64    // bumped on every change; timers check it
	removed    bool
}

// active reports whether the association holds the instance's profile.
func (a *iamAssoc) active() bool {
	return a.state == assocAssociating || a.state == assocAssociated
}

var (
	assocIDRE = regexp.MustCompile(`^iip-assoc-[0-9a-f]{17}$`)
	// IAM's rules: names of word characters and +=,.@- (at most 128); an
	// ARN names the partition, a 12-digit account and an optional path.
	profileNameRE = regexp.MustCompile(`^[\w+=,.@-]{1,128}$`)
	profileArnRE  = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:instance-profile/([\w+=,.@/-]*/)?[\w+=,.@-]{1,128}$`)
)

// profileSpec reads prefix.Arn / prefix.Name (an IamInstanceProfileSpecification)
// and returns the profile's ARN, or MissingParameter / InvalidParameterValue.
func (s *Sim) profileSpec(r *request, prefix string) (string, error) {
	arn, name := r.str(prefix+".Arn"), r.str(prefix+".Name")
	if arn == "" && name == "" {
		return "", apiErr("MissingParameter", "The request must contain the parameter %s", prefix)
	}
	return s.checkProfile(cmp.Or(arn, name), arn != "")
}

// checkProfile turns a profile name or ARN into its ARN, as EC2 does
// (InvalidParameterValue for one IAM would not accept).
func (s *Sim) checkProfile(p string, isArn bool) (string, error) {
	if isArn || strings.HasPrefix(p, "arn:") {
		if !profileArnRE.MatchString(p) {
			return "", apiErr("InvalidParameterValue", "Value (%s) for parameter iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN", p)
		}
		return p, nil
	}
	if !profileNameRE.MatchString(p) {
		return "", apiErr("InvalidParameterValue", "Value (%s) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name", p)
	}
	return s.profileArn(p), nil
}

// profileID is the profile's unique id (AIPA + 17 characters), stable per ARN.
func profileID(arn string) string {
	sum := sha256.Sum256([]byte(arn))
	return "AIPA" + strings.ToUpper(hex.EncodeToString(sum[:]))[:17]
}

// associateLocked gives in a new association with arn in state; s.mu is
// held. An associating one settles after Durations.IamAssociation.
func (s *Sim) associateLocked(in *instance, arn, state string, now time.Time) *iamAssoc {
	s.assocSeq++
	a := &iamAssoc{seq: s.assocSeq, id: s.newID("iip-assoc"), instanceID: in.id, arn: arn, state: state, at: now}
	s.assocs[a.id] = a
	s.assocOrder = append(s.assocOrder, a)
	in.assoc = a
	if state == assocAssociating {
		g := a.gen
		s.after(now, s.opts.Durations.IamAssociation, func(time.Time) {
			if a.gen == g && !a.removed {
				a.state = assocAssociated
				a.gen++
			}
		})
	}
	return a
}

// removeAssocLocked forgets an association; s.mu is held.
func (s *Sim) removeAssocLocked(a *iamAssoc) {
	a.removed = true
	a.gen++
	delete(s.assocs, a.id)
	if in := s.instances[a.instanceID]; in != nil && in.assoc == a {
		in.assoc = nil
	}
	if len(s.assocOrder) > 64 && len(s.assocs) < len(s.assocOrder)/2 {
		s.assocOrder = slices.DeleteFunc(s.assocOrder, func(x *iamAssoc) bool { return x.removed })
	}
}

// dropAssocsLocked removes every association of a terminated instance.
func (s *Sim) dropAssocsLocked(in *instance) {
	for _, a := range slices.Clone(s.assocOrder) {
		if !a.removed && a.instanceID == in.id {
			s.removeAssocLocked(a)
		}
	}
	in.assoc = nil
}

// disassociateLocked starts an association's removal; it is gone after
// Durations.IamAssociation.
func (s *Sim) disassociateLocked(a *iamAssoc, now time.Time) {
	a.state = assocDisassociating
	a.gen++
	g := a.gen
	if in := s.instances[a.instanceID]; in != nil && in.assoc == a {
		in.assoc = nil
	}
	s.after(now, s.opts.Durations.IamAssociation, func(time.Time) {
		if a.gen == g && !a.removed {
			s.removeAssocLocked(a)
		}
	})
}

// assocLocked finds an association by id; s.mu is held.
func (s *Sim) assocLocked(id string) (*iamAssoc, error) {
	if !assocIDRE.MatchString(id) {
		return nil, apiErr("InvalidParameterValue", "Invalid value '%s' for associationId.", id)
	}
	a, ok := s.assocs[id]
	if !ok {
		return nil, apiErr("InvalidAssociationID.NotFound", "The association ID '%s' does not exist", id)
	}
	return a, nil
}

// --- XML shapes ---

type xIamAssoc struct {
	AssociationID string      `xml:"associationId"`
	InstanceID    string      `xml:"instanceId"`
	Profile       xIamProfile `xml:"iamInstanceProfile"`
	State         string      `xml:"state"`
	Timestamp     string      `xml:"timestamp"`
}

func xmlAssoc(a *iamAssoc) xIamAssoc {
	return xIamAssoc{AssociationID: a.id, InstanceID: a.instanceID, Profile: xIamProfile{Arn: a.arn, ID: profileID(a.arn)},
		State: a.state, Timestamp: isoTime(a.at)}
}

type iamAssocResponse struct {
	ec2Meta
	Association xIamAssoc `xml:"iamInstanceProfileAssociation"`
}

type describeIamAssocsResponse struct {
	ec2Meta
	Associations []xIamAssoc `xml:"iamInstanceProfileAssociationSet>item"`
	NextToken    string      `xml:"nextToken,omitempty"`
}

// --- actions ---

// associateIamInstanceProfile: a running or stopped instance without an
// association gets one, associating at first.
func (s *Sim) associateIamInstanceProfile(r *request) (any, error) {
	id, err := r.required("InstanceId")
	if err != nil {
		return nil, err
	}
	arn, err := s.profileSpec(r, "IamInstanceProfile")
	if err != nil {
		return nil, err
	}
	now := s.lock()
	defer s.mu.Unlock()
	in, err := s.instanceLocked(id, now)
	if err != nil {
		return nil, err
	}
	if in.state != StateRunning && in.state != StateStopped {
		return nil, apiErr("IncorrectInstanceState", "The instance '%s' is not in the 'running' or 'stopped' state.", id)
	}
	for _, a := range s.assocOrder {
		if !a.removed && a.instanceID == in.id {
			// Also while an earlier one is still disassociating.
			return nil, apiErr("IncorrectState", "There is an existing association for instance %s", id)
		}
	}
	a := s.associateLocked(in, arn, assocAssociating, now)
	return &iamAssocResponse{Association: xmlAssoc(a)}, nil
}

// replaceIamInstanceProfileAssociation swaps the profile of a running
// instance's active association: the answer is a new association,
// associating; the old one is gone.
func (s *Sim) replaceIamInstanceProfileAssociation(r *request) (any, error) {
	id, err := r.required("AssociationId")
	if err != nil {
		return nil, err
	}
	arn, err := s.profileSpec(r, "IamInstanceProfile")
	if err != nil {
		return nil, err
	}
	now := s.lock()
	defer s.mu.Unlock()
	old, err := s.assocLocked(id)
	if err != nil {
		return nil, err
	}
	in := s.instances[old.instanceID]
	if !old.active() || in == nil || in.state != StateRunning {
		return nil, apiErr("IncorrectState", "The association %s is not the active association", id)
	}
	s.removeAssocLocked(old)
	a := s.associateLocked(in, arn, assocAssociating, now)
	return &iamAssocResponse{Association: xmlAssoc(a)}, nil
}

// disassociateIamInstanceProfile starts removing an active association.
func (s *Sim) disassociateIamInstanceProfile(r *request) (any, error) {
	id, err := r.required("AssociationId")
	if err != nil {
		return nil, err
	}
	now := s.lock()
	defer s.mu.Unlock()
	a, err := s.assocLocked(id)
	if err != nil {
		return nil, err
	}
	if !a.active() {
		return nil, apiErr("IncorrectState", "The association %s is not the active association", id)
	}
	s.disassociateLocked(a, now)
	return &iamAssocResponse{Association: xmlAssoc(a)}, nil
}

var assocFilters = map[string]func(a *iamAssoc) string{
	"instance-id": func(a *iamAssoc) string { return a.instanceID },
	"state":       func(a *iamAssoc) string { return a.state },
}

func (s *Sim) describeIamInstanceProfileAssociations(r *request) (any, error) {
	ids := r.list("AssociationId")
	fs, err := r.filters(filterNames(assocFilters, false))
	if err != nil {
		return nil, err
	}
	max, start, err := r.page("iip", 5, 1000, "associationIds", false)
	if err != nil {
		return nil, err
	}
	match := func(a *iamAssoc) bool {
		for _, f := range fs {
			if !matchAny(f.Values, assocFilters[f.Name](a)) {
				return false
			}
		}
		return true
	}
	s.lock()
	defer s.mu.Unlock()
	cands := s.assocOrder
	if len(ids) > 0 {
		cands = nil
		for _, id := range ids {
			a, err := s.assocLocked(id)
			if err != nil {
				return nil, err
			}
			if !slices.Contains(cands, a) {
				cands = append(cands, a)
			}
		}
		sort.Slice(cands, func(i, j int) bool { return cands[i].seq < cands[j].seq })
	}
	out := &describeIamAssocsResponse{}
	for _, a := range cands {
		if a.removed || a.seq < start || !match(a) {
			continue
		}
		if max > 0 && len(out.Associations) == max {
			out.NextToken = pageToken("iip", a.seq)
			break
		}
		out.Associations = append(out.Associations, xmlAssoc(a))
	}
	return out, nil
}

// --- control ---

// SetInstanceProfile changes an instance's profile out of band, as someone
// with the console would: profile (a name or an ARN) replaces the current
// association at once (associated), "" removes it. ErrNotFound for an
// unknown instance, ErrState for one that is shutting down or terminated.
func (s *Sim) SetInstanceProfile(id, profile string) error {
	now := s.lock()
	defer s.mu.Unlock()
	in, ok := s.instances[id]
	if !ok {
		return fmt.Errorf("instance %s: %w", id, ErrNotFound)
	}
	if in.state == StateShuttingDown || in.state == StateTerminated {
		return fmt.Errorf("set profile of %s in state %s: %w", id, in.state, ErrState)
	}
	arn := ""
	if profile != "" {
		var err error
		if arn, err = s.checkProfile(profile, false); err != nil {
			return fmt.Errorf("set profile of %s: %w", id, err)
		}
	}
	for _, a := range slices.Clone(s.assocOrder) {
		if !a.removed && a.instanceID == in.id {
			s.removeAssocLocked(a)
		}
	}
	if arn != "" {
		s.associateLocked(in, arn, assocAssociated, now)
	}
	return nil
}
