package awssim

import (
	"net/http"
	"slices"
	"strings"
)

// VPCs: every region has its default VPC (172.31.0.0/16) with one default
// subnet per zone, as a new account has them. The simulator's own region
// (Options.Region) has six zones, made at start; another region's default
// VPC (three zones) is made the first time a request signed for that
// region asks for it. DescribeVpcs and DescribeSubnets answer for the
// region the request is signed for. Launches take any of these subnets;
// without one they use the simulator's region's first zone.

// signedRegion is the region in a SigV4 Authorization header's credential
// scope ("Credential=AKID/20260101/us-west-2/ec2/aws4_request"), "" when
// the request is not signed so.
func signedRegion(hr *http.Request) string {
	_, cred, ok := strings.Cut(hr.Header.Get("Authorization"), "Credential=")
	if !ok {
		return ""
	}
	cred, _, _ = strings.Cut(cred, ",")
	parts := strings.Split(cred, "/")
	if len(parts) != 5 {
		return ""
	}
	return parts[2]
}

// regionOf is the region a request is for: the signed one, else the
// simulator's.
func (s *Sim) regionOf(r *request) string {
	if r.Region != "" {
		return r.Region
	}
	return s.opts.Region
}

// zoneRegion is the region of availability zone az ("us-east-1a").
func zoneRegion(az string) string { return az[:len(az)-1] }

// regionSubnetsLocked returns the default VPC's subnets of region,
// making that VPC on first use; s.mu is held.
func (s *Sim) regionSubnetsLocked(region string) []subnet {
	var out []subnet
	for _, sn := range s.subnets {
		if zoneRegion(sn.az) == region {
			out = append(out, sn)
		}
	}
	if len(out) > 0 || !validRegion(region) {
		return out
	}
	vpc := s.newID("vpc")
	for i, z := range []string{"a", "b", "c"} {
		sn := subnet{id: s.newID("subnet"), az: region + z, vpcID: vpc, cidr: "172.31." + itoa(i*16) + ".0/20", prefix: "172.31"}
		s.subnets = append(s.subnets, sn)
		out = append(out, sn)
	}
	s.addGroup(&secGroup{id: s.newID("sg"), name: "default", description: "default VPC security group", vpcID: vpc})
	return out
}

// validRegion accepts names shaped like AWS regions ("eu-west-3",
// "us-gov-west-1"), so a typo does not make a VPC.
func validRegion(r string) bool {
	parts := strings.Split(r, "-")
	if len(parts) < 3 || len(parts[0]) != 2 {
		return false
	}
	last := parts[len(parts)-1]
	return len(last) == 1 && last[0] >= '1' && last[0] <= '9'
}

type xCidrBlockState struct {
	State string `xml:"state"`
}

type xCidrAssociation struct {
	AssociationID string          `xml:"associationId"`
	CidrBlock     string          `xml:"cidrBlock"`
	State         xCidrBlockState `xml:"cidrBlockState"`
}

type xVpc struct {
	VpcID           string             `xml:"vpcId"`
	OwnerID         string             `xml:"ownerId"`
	State           string             `xml:"state"`
	CidrBlock       string             `xml:"cidrBlock"`
	Associations    []xCidrAssociation `xml:"cidrBlockAssociationSet>item"`
	DhcpOptionsID   string             `xml:"dhcpOptionsId"`
	InstanceTenancy string             `xml:"instanceTenancy"`
	IsDefault       bool               `xml:"isDefault"`
	Tags            []Tag              `xml:"tagSet>item"`
}

type describeVpcsResponse struct {
	ec2Meta
	Vpcs      []xVpc `xml:"vpcSet>item"`
	NextToken string `xml:"nextToken,omitempty"`
}

var vpcFilters = map[string]func(vpc string) string{
	"vpc-id":                            func(v string) string { return v },
	"is-default":                        func(string) string { return "true" },
	"state":                             func(string) string { return "available" },
	"cidr":                              func(string) string { return "172.31.0.0/16" },
	"cidr-block-association.cidr-block": func(string) string { return "172.31.0.0/16" },
	"cidr-block-association.state":      func(string) string { return "associated" },
	"instance-tenancy":                  func(string) string { return "default" },
}

// describeVpcs lists the default VPC of the request's region (VpcId.N,
// the filters of vpcFilters and tags, MaxResults 5-1000).
func (s *Sim) describeVpcs(r *request) (any, error) {
	ids := r.list("VpcId")
	fs, err := r.filters(filterNames(vpcFilters, true))
	if err != nil {
		return nil, err
	}
	max, start, err := r.page("vpc", 5, 1000, "", false)
	if err != nil {
		return nil, err
	}
	s.lock()
	defer s.mu.Unlock()
	sns := s.regionSubnetsLocked(s.regionOf(r))
	var vpcs []string
	if len(sns) > 0 {
		vpcs = []string{sns[0].vpcID}
	}
	for _, id := range ids {
		if !slices.Contains(vpcs, id) {
			return nil, apiErr("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", id)
		}
	}
	var all []xVpc
	for _, v := range vpcs {
		if !matchFilters(fs, s.tags.get(v), func(f filter) bool { return matchAny(f.Values, vpcFilters[f.Name](v)) }) {
			continue
		}
		all = append(all, xVpc{VpcID: v, OwnerID: s.opts.Account, State: "available", CidrBlock: "172.31.0.0/16",
			Associations:  []xCidrAssociation{{AssociationID: "vpc-cidr-assoc-" + strings.TrimPrefix(v, "vpc-"), CidrBlock: "172.31.0.0/16", State: xCidrBlockState{"associated"}}},
			DhcpOptionsID: "dopt-" + strings.TrimPrefix(v, "vpc-")[:8], InstanceTenancy: "default", IsDefault: true, Tags: s.tags.list(v)})
	}
	out := &describeVpcsResponse{}
	out.Vpcs, out.NextToken = pageOf(all, start, max, "vpc")
	return out, nil
}
