package awssim

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Security group rules: AuthorizeSecurityGroupIngress/Egress,
// RevokeSecurityGroupIngress/Egress, DescribeSecurityGroupRules, and the
// rules in DescribeSecurityGroups (ipPermissions, ipPermissionsEgress).
// Every rule has one peer (an IPv4 or IPv6 CIDR, a group, or a prefix
// list) and an sgr- id, as EC2 keeps them; a request's IpPermission with
// several peers makes one rule each. A new group allows all egress to
// 0.0.0.0/0; the default group also allows all ingress from itself.

// maxRulesPerDirection is EC2's default quota of rules per group and
// direction (inbound, outbound).
const maxRulesPerDirection = 60

type sgRule struct {
	id          string
	egress      bool
	protocol    string // "-1", "tcp", "udp", "icmp", "icmpv6" or a number
	from, to    int    // -1 for all (protocol -1), or ICMP type and code
	cidr4       string
	cidr6       string
	group       string // referenced group id
	prefixList  string
	description string
}

// same reports whether r and o allow the same traffic (descriptions
// aside): what makes a rule a duplicate, and what a revoke matches.
func (r *sgRule) same(o *sgRule) bool {
	return r.egress == o.egress && r.protocol == o.protocol && r.from == o.from && r.to == o.to &&
		r.cidr4 == o.cidr4 && r.cidr6 == o.cidr6 && r.group == o.group && r.prefixList == o.prefixList
}

func (r *sgRule) peer() string {
	switch {
	case r.cidr4 != "":
		return r.cidr4
	case r.cidr6 != "":
		return r.cidr6
	case r.group != "":
		return r.group
	}
	return r.prefixList
}

// duplicate is EC2's InvalidPermission.Duplicate for r.
func (r *sgRule) duplicate() *APIError {
	var what string
	switch r.protocol {
	case "-1":
		what = "ALL"
	case "tcp", "udp":
		what = fmt.Sprintf("%s, from port: %d, to port: %d", strings.ToUpper(r.protocol), r.from, r.to)
	case "icmp", "icmpv6":
		what = fmt.Sprintf("%s, type: %d, code: %d", strings.ToUpper(r.protocol), r.from, r.to)
	default:
		what = "protocol " + r.protocol
	}
	return apiErr("InvalidPermission.Duplicate", "the specified rule \"peer: %s, %s, ALLOW\" already exists", r.peer(), what)
}

// protocols EC2 names; any other protocol number 0-255 is kept as given.
var protocolNames = map[string]string{"-1": "-1", "all": "-1", "tcp": "tcp", "6": "tcp", "udp": "udp", "17": "udp", "icmp": "icmp", "1": "icmp", "icmpv6": "icmpv6", "58": "icmpv6"}

func normProtocol(p string) (string, error) {
	if n, ok := protocolNames[strings.ToLower(p)]; ok {
		return n, nil
	}
	if n, err := strconv.Atoi(p); err == nil && n >= 0 && n <= 255 {
		return p, nil
	}
	return "", apiErr("InvalidParameterValue", "Invalid value '%s' for IP protocol. Unknown protocol.", p)
}

// ipPermission is one IpPermission as a request gives it, before it is
// split into rules.
type ipPermission struct {
	protocol, fromS, toS string
	cidr4, cidr6         []peerDesc
	groups, prefixLists  []peerDesc
}

type peerDesc struct{ value, description string }

// permissions reads IpPermissions.N (and, for the calls that take them,
// the flat IpProtocol/FromPort/ToPort/CidrIp/SourceSecurityGroupName
// parameters of the CLI's shorthand).
func (r *request) permissions() []ipPermission {
	var out []ipPermission
	read := func(p, field, key string) []peerDesc {
		var l []peerDesc
		for _, q := range r.structs(p + "." + field) {
			l = append(l, peerDesc{value: r.str(q + "." + key), description: r.str(q + ".Description")})
		}
		return l
	}
	for _, p := range r.structs("IpPermissions") {
		out = append(out, ipPermission{
			protocol: r.str(p + ".IpProtocol"), fromS: r.str(p + ".FromPort"), toS: r.str(p + ".ToPort"),
			cidr4: read(p, "IpRanges", "CidrIp"), cidr6: read(p, "Ipv6Ranges", "CidrIpv6"),
			groups: read(p, "Groups", "GroupId"), prefixLists: read(p, "PrefixListIds", "PrefixListId"),
		})
	}
	if r.has("IpProtocol") || r.has("CidrIp") || r.has("SourceSecurityGroupName") {
		pm := ipPermission{protocol: r.str("IpProtocol"), fromS: r.str("FromPort"), toS: r.str("ToPort")}
		if c := r.str("CidrIp"); c != "" {
			pm.cidr4 = []peerDesc{{value: c}}
		}
		if n := r.str("SourceSecurityGroupName"); n != "" {
			pm.groups = []peerDesc{{value: "name:" + n}}
		}
		out = append(out, pm)
	}
	return out
}

// rulesLocked turns the request's permissions into rules for group g,
// checking every value as EC2 does; s.mu is held.
func (s *Sim) rulesLocked(r *request, g *secGroup, egress bool) ([]*sgRule, error) {
	perms := r.permissions()
	if len(perms) == 0 {
		return nil, apiErr("MissingParameter", "The request must contain the parameter ipPermissions")
	}
	var out []*sgRule
	for _, pm := range perms {
		proto, err := normProtocol(pm.protocol)
		if err != nil {
			return nil, err
		}
		from, to := -1, -1
		switch proto {
		case "-1":
		case "tcp", "udp":
			if pm.fromS == "" || pm.toS == "" {
				return nil, apiErr("InvalidParameterValue", "Invalid value 'Must specify both from and to ports with TCP/UDP.' for portRange.")
			}
			from, err = strconv.Atoi(pm.fromS)
			if err == nil {
				to, err = strconv.Atoi(pm.toS)
			}
			if err != nil || from < 0 || to > 65535 || from > to {
				return nil, apiErr("InvalidParameterValue", "Invalid value '%s-%s' for portRange. The port range must be between 0 and 65535, with the from port not above the to port.", pm.fromS, pm.toS)
			}
		default: // ICMP type and code, or nothing
			if pm.fromS != "" {
				if from, err = strconv.Atoi(pm.fromS); err != nil {
					return nil, apiErr("InvalidParameterValue", "Invalid value '%s' for fromPort.", pm.fromS)
				}
			}
			if pm.toS != "" {
				if to, err = strconv.Atoi(pm.toS); err != nil {
					return nil, apiErr("InvalidParameterValue", "Invalid value '%s' for toPort.", pm.toS)
				}
			}
		}
		base := sgRule{egress: egress, protocol: proto, from: from, to: to}
		if len(pm.cidr4)+len(pm.cidr6)+len(pm.groups)+len(pm.prefixLists) == 0 {
			return nil, apiErr("InvalidParameterValue", "The request must specify a source or destination: a CIDR range, a security group or a prefix list.")
		}
		for _, c := range pm.cidr4 {
			p, err := netip.ParsePrefix(c.value)
			if err != nil || !p.Addr().Is4() {
				return nil, apiErr("InvalidParameterValue", "Value (%s) for parameter cidrIp is invalid. This is not a valid CIDR block.", c.value)
			}
			rule := base
			rule.cidr4, rule.description = p.Masked().String(), c.description
			out = append(out, &rule)
		}
		for _, c := range pm.cidr6 {
			p, err := netip.ParsePrefix(c.value)
			if err != nil || !p.Addr().Is6() {
				return nil, apiErr("InvalidParameterValue", "Value (%s) for parameter cidrIpv6 is invalid. This is not a valid IPv6 CIDR block.", c.value)
			}
			rule := base
			rule.cidr6, rule.description = p.Masked().String(), c.description
			out = append(out, &rule)
		}
		for _, gp := range pm.groups {
			id := gp.value
			if name, ok := strings.CutPrefix(id, "name:"); ok {
				ref := s.groupByNameLocked(name)
				if ref == nil {
					return nil, apiErr("InvalidGroup.NotFound", "The security group '%s' does not exist in default VPC '%s'", name, g.vpcID)
				}
				id = ref.id
			} else if _, err := s.groupLocked(id); err != nil {
				return nil, err
			}
			rule := base
			rule.group, rule.description = id, gp.description
			out = append(out, &rule)
		}
		for _, pl := range pm.prefixLists {
			if !wellFormed("pl", pl.value) {
				return nil, apiErr("InvalidPrefixListId.Malformed", "Invalid id: \"%s\" (expecting \"pl-...\")", pl.value)
			}
			rule := base
			rule.prefixList, rule.description = pl.value, pl.description
			out = append(out, &rule)
		}
	}
	for i, rule := range out {
		if len(rule.description) > 255 {
			return nil, apiErr("InvalidParameterValue", "Invalid rule description. Valid descriptions are strings less than 256 characters.")
		}
		for _, o := range out[:i] {
			if o.same(rule) {
				return nil, rule.duplicate()
			}
		}
	}
	return out, nil
}

func (g *secGroup) count(egress bool) int {
	n := 0
	for _, r := range g.rules {
		if r.egress == egress {
			n++
		}
	}
	return n
}

type xReferencedGroup struct {
	GroupID string `xml:"groupId"`
	UserID  string `xml:"userId"`
}

type xSecurityGroupRule struct {
	ID          string            `xml:"securityGroupRuleId"`
	GroupID     string            `xml:"groupId"`
	OwnerID     string            `xml:"groupOwnerId"`
	IsEgress    bool              `xml:"isEgress"`
	Protocol    string            `xml:"ipProtocol"`
	FromPort    int               `xml:"fromPort"`
	ToPort      int               `xml:"toPort"`
	CidrIpv4    string            `xml:"cidrIpv4,omitempty"`
	CidrIpv6    string            `xml:"cidrIpv6,omitempty"`
	PrefixList  string            `xml:"prefixListId,omitempty"`
	Referenced  *xReferencedGroup `xml:"referencedGroupInfo,omitempty"`
	Description string            `xml:"description,omitempty"`
	Tags        []Tag             `xml:"tagSet>item"`
	Arn         string            `xml:"securityGroupRuleArn"`
}

func (s *Sim) ruleXML(g *secGroup, r *sgRule) xSecurityGroupRule {
	x := xSecurityGroupRule{ID: r.id, GroupID: g.id, OwnerID: s.opts.Account, IsEgress: r.egress, Protocol: r.protocol,
		FromPort: r.from, ToPort: r.to, CidrIpv4: r.cidr4, CidrIpv6: r.cidr6, PrefixList: r.prefixList, Description: r.description,
		Tags: s.tags.list(r.id), Arn: "arn:aws:ec2:" + s.opts.Region + ":" + s.opts.Account + ":security-group-rule/" + r.id}
	if r.group != "" {
		x.Referenced = &xReferencedGroup{GroupID: r.group, UserID: s.opts.Account}
	}
	return x
}

type xIPRange struct {
	CidrIP      string `xml:"cidrIp"`
	Description string `xml:"description,omitempty"`
}

type xIPv6Range struct {
	CidrIPv6    string `xml:"cidrIpv6"`
	Description string `xml:"description,omitempty"`
}

type xGroupPair struct {
	UserID      string `xml:"userId"`
	GroupID     string `xml:"groupId"`
	Description string `xml:"description,omitempty"`
}

type xPrefixListID struct {
	PrefixListID string `xml:"prefixListId"`
	Description  string `xml:"description,omitempty"`
}

type xIPPermission struct {
	Protocol    string          `xml:"ipProtocol"`
	FromPort    *int            `xml:"fromPort,omitempty"`
	ToPort      *int            `xml:"toPort,omitempty"`
	Groups      []xGroupPair    `xml:"groups>item"`
	IPRanges    []xIPRange      `xml:"ipRanges>item"`
	IPv6Ranges  []xIPv6Range    `xml:"ipv6Ranges>item"`
	PrefixLists []xPrefixListID `xml:"prefixListIds>item"`
}

// permissionsXML folds a group's rules of one direction into IpPermissions
// (one per protocol and port range, in the order of their first rule), as
// DescribeSecurityGroups shows them.
func (s *Sim) permissionsXML(g *secGroup, egress bool) []xIPPermission {
	var out []xIPPermission
	var keys []string
	for _, r := range g.rules {
		if r.egress != egress {
			continue
		}
		key := fmt.Sprint(r.protocol, r.from, r.to)
		i := slices.Index(keys, key)
		if i < 0 {
			keys = append(keys, key)
			p := xIPPermission{Protocol: r.protocol}
			if r.protocol != "-1" {
				from, to := r.from, r.to
				p.FromPort, p.ToPort = &from, &to
			}
			out = append(out, p)
			i = len(out) - 1
		}
		p := &out[i]
		switch {
		case r.cidr4 != "":
			p.IPRanges = append(p.IPRanges, xIPRange{r.cidr4, r.description})
		case r.cidr6 != "":
			p.IPv6Ranges = append(p.IPv6Ranges, xIPv6Range{r.cidr6, r.description})
		case r.group != "":
			p.Groups = append(p.Groups, xGroupPair{s.opts.Account, r.group, r.description})
		default:
			p.PrefixLists = append(p.PrefixLists, xPrefixListID{r.prefixList, r.description})
		}
	}
	return out
}

type authorizeRulesResponse struct {
	ec2Meta
	Return bool                 `xml:"return"`
	Rules  []xSecurityGroupRule `xml:"securityGroupRuleSet>item"`
}

// ruleGroupLocked is the group a rules call names: GroupId, or (ingress
// only) GroupName in the default VPC.
func (s *Sim) ruleGroupLocked(r *request, byName bool) (*secGroup, error) {
	id, name := r.str("GroupId"), r.str("GroupName")
	switch {
	case id != "":
		return s.groupLocked(id)
	case byName && name != "":
		g := s.groupByNameLocked(name)
		if g == nil {
			return nil, apiErr("InvalidGroup.NotFound", "The security group '%s' does not exist in default VPC '%s'", name, s.subnets[0].vpcID)
		}
		return g, nil
	}
	return nil, apiErr("MissingParameter", "The request must contain the parameter groupId")
}

func (s *Sim) authorizeIngress(r *request) (any, error) { return s.authorizeRules(r, false) }
func (s *Sim) authorizeEgress(r *request) (any, error)  { return s.authorizeRules(r, true) }

// authorizeRules adds the request's rules to the group: all of them, or none
// when one is a duplicate of a rule the group has (or of another in the
// request), or the group would go over its quota.
func (s *Sim) authorizeRules(r *request, egress bool) (any, error) {
	specs, err := r.tagSpecs("", anyTagType)
	if err != nil {
		return nil, err
	}
	tags, err := tagsFor(specs, "security-group-rule", "security-group-rule")
	if err != nil {
		return nil, err
	}
	s.lock()
	defer s.mu.Unlock()
	g, err := s.ruleGroupLocked(r, !egress)
	if err != nil {
		return nil, err
	}
	rules, err := s.rulesLocked(r, g, egress)
	if err != nil {
		return nil, err
	}
	for _, rule := range rules {
		for _, o := range g.rules {
			if o.same(rule) {
				return nil, rule.duplicate()
			}
		}
	}
	if g.count(egress)+len(rules) > maxRulesPerDirection {
		return nil, apiErr("RulesPerSecurityGroupLimitExceeded", "The maximum number of rules per security group has been reached.")
	}
	out := &authorizeRulesResponse{Return: true}
	for _, rule := range rules {
		rule.id = s.newID("sgr")
		g.rules = append(g.rules, rule)
		for _, tg := range tags {
			s.tags.set(rule.id, tg.Key, tg.Value)
		}
		out.Rules = append(out.Rules, s.ruleXML(g, rule))
	}
	return out, nil
}

type xRevokedRule struct {
	ID         string `xml:"securityGroupRuleId"`
	GroupID    string `xml:"groupId"`
	IsEgress   bool   `xml:"isEgress"`
	Protocol   string `xml:"ipProtocol"`
	FromPort   int    `xml:"fromPort"`
	ToPort     int    `xml:"toPort"`
	CidrIpv4   string `xml:"cidrIpv4,omitempty"`
	CidrIpv6   string `xml:"cidrIpv6,omitempty"`
	PrefixList string `xml:"prefixListId,omitempty"`
	Referenced string `xml:"referencedGroupId,omitempty"`
	Desc       string `xml:"description,omitempty"`
}

type revokeRulesResponse struct {
	ec2Meta
	Return  bool            `xml:"return"`
	Revoked []xRevokedRule  `xml:"revokedSecurityGroupRuleSet>item"`
	Unknown []xIPPermission `xml:"unknownIpPermissionSet>item"`
}

func (s *Sim) revokeIngress(r *request) (any, error) { return s.revoke(r, false) }
func (s *Sim) revokeEgress(r *request) (any, error)  { return s.revoke(r, true) }

// revoke removes rules named by SecurityGroupRuleId.N, or matching the
// request's permissions exactly. In the default VPC, as EC2 documents it,
// permissions that match no rule are no error: the answer lists them as
// unknownIpPermissionSet. An unknown rule id is an error.
func (s *Sim) revoke(r *request, egress bool) (any, error) {
	ids := r.list("SecurityGroupRuleId")
	s.lock()
	defer s.mu.Unlock()
	g, err := s.ruleGroupLocked(r, !egress)
	if err != nil {
		return nil, err
	}
	var drop []*sgRule
	out := &revokeRulesResponse{Return: true}
	if len(ids) > 0 {
		for _, id := range ids {
			if !wellFormed("sgr", id) {
				return nil, apiErr("InvalidSecurityGroupRuleId.Malformed", "The security group rule ID '%s' is malformed", id)
			}
			i := slices.IndexFunc(g.rules, func(o *sgRule) bool { return o.id == id && o.egress == egress })
			if i < 0 {
				return nil, apiErr("InvalidSecurityGroupRuleId.NotFound", "The security group rule ID '%s' does not exist", id)
			}
			drop = append(drop, g.rules[i])
		}
	} else {
		rules, err := s.rulesLocked(r, g, egress)
		if err != nil {
			return nil, err
		}
		for _, rule := range rules {
			i := slices.IndexFunc(g.rules, rule.same)
			if i < 0 {
				tmp := &secGroup{rules: []*sgRule{rule}}
				out.Unknown = append(out.Unknown, s.permissionsXML(tmp, egress)...)
				continue
			}
			drop = append(drop, g.rules[i])
		}
	}
	for _, rule := range drop {
		out.Revoked = append(out.Revoked, xRevokedRule{ID: rule.id, GroupID: g.id, IsEgress: egress, Protocol: rule.protocol, FromPort: rule.from, ToPort: rule.to,
			CidrIpv4: rule.cidr4, CidrIpv6: rule.cidr6, PrefixList: rule.prefixList, Referenced: rule.group, Desc: rule.description})
		g.rules = slices.DeleteFunc(g.rules, func(o *sgRule) bool { return o == rule })
		s.tags.drop(rule.id)
	}
	return out, nil
}

type describeSecurityGroupRulesResponse struct {
	ec2Meta
	Rules     []xSecurityGroupRule `xml:"securityGroupRuleSet>item"`
	NextToken string               `xml:"nextToken,omitempty"`
}

var ruleFilters = map[string]func(g *secGroup, r *sgRule) string{
	"group-id":               func(g *secGroup, _ *sgRule) string { return g.id },
	"security-group-rule-id": func(_ *secGroup, r *sgRule) string { return r.id },
}

// describeSecurityGroupRules lists rules (SecurityGroupRuleId.N; filters
// group-id, security-group-rule-id and tags; MaxResults 5-1000 and
// NextToken), groups in creation order, each group's rules in theirs.
func (s *Sim) describeSecurityGroupRules(r *request) (any, error) {
	ids := r.list("SecurityGroupRuleId")
	fs, err := r.filters(filterNames(ruleFilters, true))
	if err != nil {
		return nil, err
	}
	max, start, err := r.page("sgr", 5, 1000, "", false)
	if err != nil {
		return nil, err
	}
	s.lock()
	defer s.mu.Unlock()
	groups := make([]*secGroup, 0, len(s.groups))
	for _, g := range s.groups {
		groups = append(groups, g)
	}
	slices.SortFunc(groups, func(a, b *secGroup) int { return int(a.seq) - int(b.seq) })
	var all []xSecurityGroupRule
	found := map[string]bool{}
	for _, g := range groups {
		for _, rule := range g.rules {
			if len(ids) > 0 && !slices.Contains(ids, rule.id) {
				continue
			}
			found[rule.id] = true
			if !matchFilters(fs, s.tags.get(rule.id), func(f filter) bool { return matchAny(f.Values, ruleFilters[f.Name](g, rule)) }) {
				continue
			}
			all = append(all, s.ruleXML(g, rule))
		}
	}
	for _, id := range ids {
		if !wellFormed("sgr", id) {
			return nil, apiErr("InvalidSecurityGroupRuleId.Malformed", "The security group rule ID '%s' is malformed", id)
		}
		if !found[id] {
			return nil, apiErr("InvalidSecurityGroupRuleId.NotFound", "The security group rule ID '%s' does not exist", id)
		}
	}
	out := &describeSecurityGroupRulesResponse{}
	out.Rules, out.NextToken = pageOf(all, start, max, "sgr")
	return out, nil
}

// sgRuleLocked finds rule id and its group.
func (s *Sim) sgRuleLocked(id string) (*secGroup, *sgRule, error) {
	if !wellFormed("sgr", id) {
		return nil, nil, apiErr("InvalidSecurityGroupRuleId.Malformed", "The security group rule ID '%s' is malformed", id)
	}
	for _, g := range s.groups {
		for _, r := range g.rules {
			if r.id == id {
				return g, r, nil
			}
		}
	}
	return nil, nil, apiErr("InvalidSecurityGroupRuleId.NotFound", "The security group rule ID '%s' does not exist", id)
}

// seedRulesLocked gives a new group EC2's default rules: all egress to
// 0.0.0.0/0, and for the default group all ingress from itself. Their ids
// derive from the group's, not from the id generator, so that every id
// the simulator hands out after them (the stock images' among them, which
// examples name) stays what it was before groups had rules.
func (s *Sim) seedRulesLocked(g *secGroup) {
	if g.name == "default" {
		g.rules = append(g.rules, &sgRule{id: s.derivedID("sgr", g.id+"/ingress"), protocol: "-1", from: -1, to: -1, group: g.id})
	}
	g.rules = append(g.rules, &sgRule{id: s.derivedID("sgr", g.id+"/egress"), egress: true, protocol: "-1", from: -1, to: -1, cidr4: "0.0.0.0/0"})
}

// derivedID is an id "prefix-" + 17 hex digits derived from seed (unique,
// like newID's, but not drawn from the generator); s.mu is held.
func (s *Sim) derivedID(prefix, seed string) string {
	for i := 0; ; i++ {
		sum := sha256.Sum256([]byte(seed + "/" + strconv.Itoa(i)))
		id := prefix + "-" + hex.EncodeToString(sum[:9])[:17]
		if _, dup := s.ids[id]; !dup {
			s.ids[id] = struct{}{}
			return id
		}
	}
}

// referencedLocked returns a group other than g whose rules name g, or nil:
// g cannot be deleted while one does (DependencyViolation).
func (s *Sim) referencedLocked(g *secGroup) *secGroup {
	for _, o := range s.groups {
		if o != g && slices.ContainsFunc(o.rules, func(r *sgRule) bool { return r.group == g.id }) {
			return o
		}
	}
	return nil
}
