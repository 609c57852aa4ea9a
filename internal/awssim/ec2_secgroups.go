package awssim

import (
	"slices"
	"strings"
	"time"
)

// The default VPC: one subnet per availability zone and the "default"
// security group, as a new account has them.
type subnet struct {
	id, az, vpcID, cidr string
	prefix              string // first two octets of private addresses
}

type secGroup struct {
	seq         uint64
	id, name    string
	description string
	vpcID       string
	rules       []*sgRule // ingress and egress, in the order they were added (ec2_sgrules.go)
	visibleAt   time.Time // eventual consistency
}

func (s *Sim) seedWorld() {
	vpc := s.newID("vpc")
	for i, z := range []string{"a", "b", "c", "d", "e", "f"} {
		s.subnets = append(s.subnets, subnet{
			id: s.newID("subnet"), az: s.opts.Region + z, vpcID: vpc,
			cidr: "172.31." + itoa(i*16) + ".0/20", prefix: "172.31",
		})
	}
	s.addGroup(&secGroup{id: s.newID("sg"), name: "default", description: "default VPC security group", vpcID: vpc})
	s.seedImages()
}

func itoa(n int) string {
	const digits = "0123456789"
	if n < 10 {
		return digits[n : n+1]
	}
	return itoa(n/10) + digits[n%10:n%10+1]
}

func (s *Sim) addGroup(g *secGroup) {
	s.instSeq++
	g.seq = s.instSeq
	s.groups[g.id] = g
	s.seedRulesLocked(g)
}

func (s *Sim) defaultGroupID() string {
	return s.groupByNameLocked("default").id
}

func (s *Sim) groupByNameLocked(name string) *secGroup {
	for _, g := range s.groups {
		if g.name == name && g.vpcID == s.subnets[0].vpcID {
			return g
		}
	}
	return nil
}

func (s *Sim) groupLocked(id string) (*secGroup, error) {
	if !wellFormed("sg", id) {
		return nil, apiErr("InvalidGroupId.Malformed", "Invalid id: \"%s\" (expecting \"sg-...\")", id)
	}
	g, ok := s.groups[id]
	if !ok {
		return nil, apiErr("InvalidGroup.NotFound", "The security group '%s' does not exist", id)
	}
	return g, nil
}

type createSecurityGroupResponse struct {
	ec2Meta
	GroupID string `xml:"groupId"`
	Arn     string `xml:"securityGroupArn"`
	Tags    []Tag  `xml:"tagSet>item"`
}

func (s *Sim) createSecurityGroup(r *request) (any, error) {
	name, err := r.required("GroupName")
	if err != nil {
		return nil, err
	}
	desc, err := r.required("GroupDescription")
	if err != nil {
		return nil, err
	}
	if len(name) > 255 || strings.HasPrefix(name, "sg-") {
		return nil, apiErr("InvalidParameterValue", "Invalid value '%s' for groupName.", name)
	}
	specs, err := r.tagSpecs("", anyTagType)
	if err != nil {
		return nil, err
	}
	tags, err := tagsFor(specs, "security-group", "security-group")
	if err != nil {
		return nil, err
	}
	now := s.lock()
	defer s.mu.Unlock()
	vpc := r.str("VpcId")
	if vpc == "" {
		vpc = s.subnets[0].vpcID
	} else if vpc != s.subnets[0].vpcID {
		return nil, apiErr("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", vpc)
	}
	for _, g := range s.groups {
		if g.name == name && g.vpcID == vpc {
			return nil, apiErr("InvalidGroup.Duplicate", "The security group '%s' already exists for VPC '%s'", name, vpc)
		}
	}
	g := &secGroup{id: s.newID("sg"), name: name, description: desc, vpcID: vpc, visibleAt: s.eventualLocked(now)}
	s.addGroup(g)
	for _, tg := range tags {
		s.tags.set(g.id, tg.Key, tg.Value)
	}
	return &createSecurityGroupResponse{GroupID: g.id, Arn: "arn:aws:ec2:" + s.opts.Region + ":" + s.opts.Account + ":security-group/" + g.id, Tags: s.tags.list(g.id)}, nil
}

func (s *Sim) deleteSecurityGroup(r *request) (any, error) {
	id, name := r.str("GroupId"), r.str("GroupName")
	if id == "" && name == "" {
		return nil, apiErr("MissingParameter", "The request must contain the parameter groupName or groupId")
	}
	now := s.lock()
	defer s.mu.Unlock()
	var g *secGroup
	if id != "" {
		var err error
		if g, err = s.groupLocked(id); err != nil {
			return nil, err
		}
	} else if g = s.groupByNameLocked(name); g == nil {
		return nil, apiErr("InvalidGroup.NotFound", "The security group '%s' does not exist in default VPC", name)
	}
	if g.name == "default" {
		return nil, apiErr("CannotDelete", "the specified group: \"%s\" name: \"default\" cannot be deleted by a user", g.id)
	}
	for _, in := range s.instances {
		if in.state != StateTerminated && in.visible(now) && slices.Contains(in.spec.SecurityGroupIDs, g.id) {
			return nil, apiErr("DependencyViolation", "resource %s has a dependent object", g.id)
		}
	}
	if o := s.referencedLocked(g); o != nil {
		return nil, apiErr("DependencyViolation", "resource %s has a dependent object", g.id)
	}
	delete(s.groups, g.id)
	s.tags.drop(g.id)
	for _, rule := range g.rules {
		s.tags.drop(rule.id)
	}
	return &returnResponse{Return: true}, nil
}

type xSecurityGroup struct {
	OwnerID     string          `xml:"ownerId"`
	GroupID     string          `xml:"groupId"`
	GroupName   string          `xml:"groupName"`
	Description string          `xml:"groupDescription"`
	VpcID       string          `xml:"vpcId"`
	Arn         string          `xml:"securityGroupArn"`
	Tags        []Tag           `xml:"tagSet>item"`
	Ingress     []xIPPermission `xml:"ipPermissions>item"`
	Egress      []xIPPermission `xml:"ipPermissionsEgress>item"`
}

type describeSecurityGroupsResponse struct {
	ec2Meta
	Groups    []xSecurityGroup `xml:"securityGroupInfo>item"`
	NextToken string           `xml:"nextToken,omitempty"`
}

var groupFilters = map[string]func(g *secGroup) string{
	"group-id":    func(g *secGroup) string { return g.id },
	"group-name":  func(g *secGroup) string { return g.name },
	"vpc-id":      func(g *secGroup) string { return g.vpcID },
	"description": func(g *secGroup) string { return g.description },
}

func (s *Sim) describeSecurityGroups(r *request) (any, error) {
	ids, names := r.list("GroupId"), r.list("GroupName")
	fs, err := r.filters(filterNames(groupFilters, true))
	if err != nil {
		return nil, err
	}
	max, start, err := r.page("sg", 5, 1000, "groupIds", len(ids) > 0 || len(names) > 0)
	if err != nil {
		return nil, err
	}
	now := s.lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if g, err := s.groupLocked(id); err != nil {
			return nil, err
		} else if now.Before(g.visibleAt) { // not yet
			return nil, apiErr("InvalidGroup.NotFound", "The security group '%s' does not exist", id)
		}
	}
	for _, n := range names {
		if g := s.groupByNameLocked(n); g == nil || now.Before(g.visibleAt) {
			return nil, apiErr("InvalidGroup.NotFound", "The security group '%s' does not exist in default VPC '%s'", n, s.subnets[0].vpcID)
		}
	}
	all := make([]*secGroup, 0, len(s.groups))
	for _, g := range s.groups {
		all = append(all, g)
	}
	slices.SortFunc(all, func(a, b *secGroup) int { return int(a.seq) - int(b.seq) })
	out := &describeSecurityGroupsResponse{}
	for _, g := range all {
		if g.seq < start || now.Before(g.visibleAt) || (len(ids) > 0 && !slices.Contains(ids, g.id)) || (len(names) > 0 && !slices.Contains(names, g.name)) {
			continue
		}
		if !s.matchGroup(fs, g) {
			continue
		}
		if max > 0 && len(out.Groups) == max {
			out.NextToken = pageToken("sg", g.seq)
			break
		}
		out.Groups = append(out.Groups, xSecurityGroup{OwnerID: s.opts.Account, GroupID: g.id, GroupName: g.name,
			Description: g.description, VpcID: g.vpcID, Arn: "arn:aws:ec2:" + s.opts.Region + ":" + s.opts.Account + ":security-group/" + g.id,
			Tags: s.tags.list(g.id), Ingress: s.permissionsXML(g, false), Egress: s.permissionsXML(g, true)})
	}
	return out, nil
}

func (s *Sim) matchGroup(fs []filter, g *secGroup) bool {
	return matchFilters(fs, s.tags.get(g.id), func(f filter) bool { return matchAny(f.Values, groupFilters[f.Name](g)) })
}

type xSubnet struct {
	SubnetID         string `xml:"subnetId"`
	State            string `xml:"state"`
	VpcID            string `xml:"vpcId"`
	CidrBlock        string `xml:"cidrBlock"`
	AvailableIPs     int    `xml:"availableIpAddressCount"`
	AvailabilityZone string `xml:"availabilityZone"`
	DefaultForAz     bool   `xml:"defaultForAz"`
	MapPublicIP      bool   `xml:"mapPublicIpOnLaunch"`
	OwnerID          string `xml:"ownerId"`
}

type describeSubnetsResponse struct {
	ec2Meta
	Subnets []xSubnet `xml:"subnetSet>item"`
}

// describeSubnets lists the subnets of the default VPC of the request's
// region (SubnetId.N and the
// filters subnet-id, availability-zone, vpc-id, default-for-az).
func (s *Sim) describeSubnets(r *request) (any, error) {
	ids := r.list("SubnetId")
	fs, err := r.filters(nil) // checked as each subnet is matched
	if err != nil {
		return nil, err
	}
	s.lock()
	defer s.mu.Unlock()
	out := &describeSubnetsResponse{}
	subnets := s.regionSubnetsLocked(s.regionOf(r)) // ec2_vpcs.go
	for _, id := range ids {
		if !slices.ContainsFunc(subnets, func(sn subnet) bool { return sn.id == id }) {
			return nil, apiErr("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", id)
		}
	}
	for _, sn := range subnets {
		if len(ids) > 0 && !slices.Contains(ids, sn.id) {
			continue
		}
		ok := true
		for _, f := range fs {
			var v string
			switch f.Name {
			case "subnet-id":
				v = sn.id
			case "availability-zone":
				v = sn.az
			case "vpc-id":
				v = sn.vpcID
			case "default-for-az":
				v = "true"
			case "state":
				v = "available"
			default:
				return nil, apiErr("InvalidParameterValue", "The filter '%s' is invalid", f.Name)
			}
			ok = ok && matchAny(f.Values, v)
		}
		if ok {
			out.Subnets = append(out.Subnets, xSubnet{SubnetID: sn.id, State: "available", VpcID: sn.vpcID, CidrBlock: sn.cidr,
				AvailableIPs: 4091, AvailabilityZone: sn.az, DefaultForAz: true, MapPublicIP: true, OwnerID: s.opts.Account})
		}
	}
	return out, nil
}
