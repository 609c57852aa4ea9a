package awsres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awsapi"
	"kiln/internal/config"
	"kiln/internal/engine"
	"kiln/internal/iampolicy"
)

// groupRulesAPI is what aws:security_group calls, in the SDK's shape:
// *ec2.Client satisfies it.
type groupRulesAPI interface {
	DescribeSecurityGroups(context.Context, *ec2.DescribeSecurityGroupsInput, ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupsOutput, error)
	CreateSecurityGroup(context.Context, *ec2.CreateSecurityGroupInput, ...func(*ec2.Options)) (*ec2.CreateSecurityGroupOutput, error)
	DescribeSecurityGroupRules(context.Context, *ec2.DescribeSecurityGroupRulesInput, ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupRulesOutput, error)
	AuthorizeSecurityGroupIngress(context.Context, *ec2.AuthorizeSecurityGroupIngressInput, ...func(*ec2.Options)) (*ec2.AuthorizeSecurityGroupIngressOutput, error)
	AuthorizeSecurityGroupEgress(context.Context, *ec2.AuthorizeSecurityGroupEgressInput, ...func(*ec2.Options)) (*ec2.AuthorizeSecurityGroupEgressOutput, error)
	RevokeSecurityGroupIngress(context.Context, *ec2.RevokeSecurityGroupIngressInput, ...func(*ec2.Options)) (*ec2.RevokeSecurityGroupIngressOutput, error)
	RevokeSecurityGroupEgress(context.Context, *ec2.RevokeSecurityGroupEgressInput, ...func(*ec2.Options)) (*ec2.RevokeSecurityGroupEgressOutput, error)
}

// SecurityGroup is the aws:security_group kind: a VPC security group named
// by the resource's name, with exactly the declared ingress and egress
// rules. Rules added by hand are revoked; missing ones are authorized.
// Outputs: group_id, vpc_id.
type SecurityGroup struct {
	Region      string `yaml:"region"`      // default: AWS_REGION
	VPC         string `yaml:"vpc"`         // vpc id; default: the region's default VPC
	Description string `yaml:"description"` // default "Managed by kiln"; cannot change on a live group
	Ingress     []Rule `yaml:"ingress"`
	// Egress rules; unset keeps EC2's default for a new group (all
	// traffic to 0.0.0.0/0), an empty list allows no egress at all.
	Egress []Rule            `yaml:"egress"`
	Tags   map[string]string `yaml:"tags"`

	hubs *awsapi.Hubs
	env  engine.Env
	poll time.Duration

	hub *awsapi.Hub
	api groupRulesAPI

	checkState // outputs, plan lines, and the rules as the last check left them
}

// Rule is one rule of a security group: a protocol, a port range, and
// the peers it allows (each peer is one rule in EC2).
type Rule struct {
	// Protocol: tcp, udp, icmp, icmpv6, all (or -1), or an IP protocol
	// number.
	Protocol string `yaml:"protocol"`
	// Ports: "22", or a range "8000-8100" (tcp and udp; required there).
	// For icmp and icmpv6: "TYPE" (any code) or "TYPE-CODE"; unset, any.
	Ports string `yaml:"ports"`
	// CIDRs are IPv4 or IPv6 ranges ("10.0.0.0/8", "::/0").
	CIDRs []string `yaml:"cidrs"`
	// Groups are security group ids, often ${aws:security_group/x.group_id}.
	Groups []string `yaml:"groups"`
	// PrefixLists are managed prefix list ids (pl-...).
	PrefixLists []string `yaml:"prefix_lists"`
	// Description is set when kiln authorizes the rule; a different one
	// on a live rule is left alone.
	Description string `yaml:"description"`
}

// NewSecurityGroup returns an empty aws:security_group resource using the
// shared hubs.
func NewSecurityGroup(hubs *awsapi.Hubs) *SecurityGroup {
	return &SecurityGroup{hubs: hubs}
}

const defaultGroupDescription = "Managed by kiln"

func (r *SecurityGroup) description() string {
	if r.Description == "" {
		return defaultGroupDescription
	}
	return r.Description
}

// Validate checks the fields (values holding a ${...} reference are
// checked once resolved).
func (r *SecurityGroup) Validate() error {
	var errs []error
	if r.VPC != "" && !config.HasRef(r.VPC) && !strings.HasPrefix(r.VPC, "vpc-") {
		errs = append(errs, config.Fieldf("vpc", "want a VPC id like \"vpc-0abc...\", got %q", r.VPC))
	}
	if len(r.Description) > 255 {
		errs = append(errs, config.Fieldf("description", "at most 255 characters, got %d", len(r.Description)))
	}
	for i, rule := range r.Ingress {
		if _, err := rule.expand(fmt.Sprintf("ingress[%d]", i), false); err != nil {
			errs = append(errs, err)
		}
	}
	for i, rule := range r.Egress {
		if _, err := rule.expand(fmt.Sprintf("egress[%d]", i), true); err != nil {
			errs = append(errs, err)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(r.Tags)) {
		if k == awsapi.TagName || strings.HasPrefix(k, "kiln:") || strings.HasPrefix(k, "aws:") {
			errs = append(errs, config.Fieldf("tags."+k, "reserved tag key (kiln sets Name and kiln:*; aws:* is AWS's)"))
		}
	}
	return errors.Join(errs...)
}

// ruleKey is one EC2 rule (one peer), as kiln compares them: the
// description does not count.
type ruleKey struct {
	egress     bool
	protocol   string // as EC2 names it: -1, tcp, udp, icmp, icmpv6, or a number
	from, to   int32
	cidr4      string
	cidr6      string
	group      string
	prefixList string
}

func (k ruleKey) String() string {
	dir := "ingress"
	if k.egress {
		dir = "egress"
	}
	what := k.protocol
	switch {
	case k.protocol == "-1":
		what = "all traffic"
	case k.from == k.to:
		what += " " + strconv.Itoa(int(k.from))
	default:
		what += fmt.Sprintf(" %d-%d", k.from, k.to)
	}
	peer := cmpOr(k.cidr4, k.cidr6, k.group, k.prefixList)
	word := "from"
	if k.egress {
		word = "to"
	}
	return fmt.Sprintf("%s %s %s %s", dir, what, word, peer)
}

func cmpOr(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

var protocolAliases = map[string]string{"all": "-1", "-1": "-1", "tcp": "tcp", "6": "tcp", "udp": "udp", "17": "udp", "icmp": "icmp", "1": "icmp", "icmpv6": "icmpv6", "58": "icmpv6"}

// expand turns a declared rule into EC2 rules, one per peer; field names
// the rule in errors ("ingress[0]"). Peers holding a reference are kept
// as they are (they are resolved before a check).
func (rule Rule) expand(field string, egress bool) ([]ruleKey, error) {
	proto, ok := protocolAliases[strings.ToLower(rule.Protocol)]
	if !ok {
		n, err := strconv.Atoi(rule.Protocol)
		if err != nil || n < 0 || n > 255 {
			return nil, config.Fieldf(field+".protocol", "want tcp, udp, icmp, icmpv6, all or a protocol number, got %q", rule.Protocol)
		}
		proto = rule.Protocol
	}
	from, to := int32(-1), int32(-1)
	if rule.Ports != "" {
		if proto == "-1" {
			return nil, config.Fieldf(field+".ports", "not with protocol all (it allows every port)")
		}
		a, b, isRange := strings.Cut(rule.Ports, "-")
		x, err1 := strconv.Atoi(strings.TrimSpace(a))
		y, err2 := x, error(nil)
		if isRange {
			y, err2 = strconv.Atoi(strings.TrimSpace(b))
		}
		if err1 != nil || err2 != nil || x < 0 || y > 65535 || (proto != "icmp" && proto != "icmpv6" && x > y) {
			return nil, config.Fieldf(field+".ports", "want a port (\"22\") or a range (\"8000-8100\") within 0-65535, got %q", rule.Ports)
		}
		from, to = int32(x), int32(y)
		if (proto == "icmp" || proto == "icmpv6") && !isRange {
			to = -1
		}
	} else if proto == "tcp" || proto == "udp" {
		return nil, config.Fieldf(field+".ports", "required with %s (\"22\" or \"8000-8100\")", proto)
	}
	if len(rule.Description) > 255 {
		return nil, config.Fieldf(field+".description", "at most 255 characters")
	}
	base := ruleKey{egress: egress, protocol: proto, from: from, to: to}
	var out []ruleKey
	for i, c := range rule.CIDRs {
		k := base
		if config.HasRef(c) {
			k.cidr4 = c
			out = append(out, k)
			continue
		}
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, config.Fieldf(fmt.Sprintf("%s.cidrs[%d]", field, i), "want a CIDR block like \"10.0.0.0/8\" or \"::/0\", got %q", c)
		}
		if p.Addr().Is4() {
			k.cidr4 = p.Masked().String()
		} else {
			k.cidr6 = p.Masked().String()
		}
		out = append(out, k)
	}
	for i, g := range rule.Groups {
		if !config.HasRef(g) && !strings.HasPrefix(g, "sg-") {
			return nil, config.Fieldf(fmt.Sprintf("%s.groups[%d]", field, i), "want a group id like \"sg-0abc...\" or ${aws:security_group/NAME.group_id}, got %q", g)
		}
		k := base
		k.group = g
		out = append(out, k)
	}
	for i, pl := range rule.PrefixLists {
		if !config.HasRef(pl) && !strings.HasPrefix(pl, "pl-") {
			return nil, config.Fieldf(fmt.Sprintf("%s.prefix_lists[%d]", field, i), "want a prefix list id like \"pl-0abc...\", got %q", pl)
		}
		k := base
		k.prefixList = pl
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, config.Fieldf(field, "needs at least one of cidrs, groups, prefix_lists")
	}
	return out, nil
}

// wanted is every declared rule, with its description. Unset egress is
// EC2's default rule.
func (r *SecurityGroup) wanted() (map[ruleKey]string, error) {
	out := map[ruleKey]string{}
	egress := r.Egress
	if egress == nil {
		egress = []Rule{{Protocol: "all", CIDRs: []string{"0.0.0.0/0"}}}
	}
	for dir, rules := range map[string][]Rule{"ingress": r.Ingress, "egress": egress} {
		for i, rule := range rules {
			keys, err := rule.expand(fmt.Sprintf("%s[%d]", dir, i), dir == "egress")
			if err != nil {
				return nil, engine.Permanent(err)
			}
			for _, k := range keys {
				out[k] = rule.Description
			}
		}
	}
	return out, nil
}

// Init receives the vertex's identity.
func (r *SecurityGroup) Init(env engine.Env) error {
	r.env = env
	return nil
}

// SetPoll sets how often Watch re-reads the group's rules (the poll
// meta-param). Default: the hub's (60 s).
func (r *SecurityGroup) SetPoll(d time.Duration) { r.poll = d }

// IAMActions are the calls CheckApply and Watch may make.
func (r *SecurityGroup) IAMActions() []string {
	return []string{
		"ec2:DescribeSecurityGroups", "ec2:CreateSecurityGroup", "ec2:CreateTags", "ec2:DescribeSecurityGroupRules",
		"ec2:AuthorizeSecurityGroupIngress", "ec2:AuthorizeSecurityGroupEgress",
		"ec2:RevokeSecurityGroupIngress", "ec2:RevokeSecurityGroupEgress",
	}
}

// find returns the group tagged as this resource's, or nil.
func (r *SecurityGroup) find(ctx context.Context) (*types.SecurityGroup, error) {
	fs := []types.Filter{
		{Name: aws.String("tag:" + awsapi.TagOwner), Values: []string{r.env.Graph}},
		{Name: aws.String("tag:" + awsapi.TagResource), Values: []string{r.id()}},
	}
	if r.VPC != "" {
		fs = append(fs, types.Filter{Name: aws.String("vpc-id"), Values: []string{r.VPC}})
	}
	var found []types.SecurityGroup
	err := r.hub.Retry(ctx, func(ctx context.Context) error {
		out, err := r.api.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: fs})
		if err != nil {
			return awsapi.Classify(err)
		}
		found = out.SecurityGroups
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find security group %q: %w", r.env.Name, err)
	}
	switch len(found) {
	case 0:
		return nil, nil
	case 1:
		return &found[0], nil
	}
	var ids []string
	for _, g := range found {
		ids = append(ids, aws.ToString(g.GroupId))
	}
	return nil, fmt.Errorf("aws:security_group %q: %d groups claim this resource: %s; kiln will not pick one", r.env.Name, len(found), strings.Join(ids, ", "))
}

// rules reads the group's rules, one per peer, with their ids.
func (r *SecurityGroup) rules(ctx context.Context, groupID string) (map[ruleKey]string, error) {
	got := map[ruleKey]string{}
	err := r.hub.Retry(ctx, func(ctx context.Context) error {
		clear(got)
		p := ec2.NewDescribeSecurityGroupRulesPaginator(r.api, &ec2.DescribeSecurityGroupRulesInput{
			Filters: []types.Filter{{Name: aws.String("group-id"), Values: []string{groupID}}},
		})
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if awsapi.IsNotFound(err) {
				return awsapi.NotYet(err) // a group kiln has just created
			}
			if err != nil {
				return awsapi.Classify(err)
			}
			for _, sr := range out.SecurityGroupRules {
				k := ruleKey{egress: aws.ToBool(sr.IsEgress), protocol: aws.ToString(sr.IpProtocol), from: aws.ToInt32(sr.FromPort), to: aws.ToInt32(sr.ToPort),
					cidr4: aws.ToString(sr.CidrIpv4), cidr6: aws.ToString(sr.CidrIpv6), prefixList: aws.ToString(sr.PrefixListId)}
				if sr.ReferencedGroupInfo != nil {
					k.group = aws.ToString(sr.ReferencedGroupInfo.GroupId)
				}
				if k.protocol == "-1" {
					k.from, k.to = -1, -1
				}
				got[k] = aws.ToString(sr.SecurityGroupRuleId)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("describe rules of security group %s: %w", groupID, err)
	}
	return got, nil
}

// CheckApply finds the group by its tags (creating it, tagged in the same
// call, when there is none), then makes its rules exactly the declared
// ones: missing rules are authorized first, then rules the spec does not
// declare (added by hand, or dropped from the spec) are revoked.
func (r *SecurityGroup) CheckApply(ctx context.Context, apply bool) (bool, error) {
	r.startCheck()
	if err := r.resolve(ctx); err != nil {
		return false, err
	}
	want, err := r.wanted()
	if err != nil {
		return false, fmt.Errorf("aws:security_group %q: %w", r.env.Name, err)
	}
	g, err := r.find(ctx)
	if err != nil {
		return false, err
	}
	ok := true
	if g == nil {
		if !apply {
			r.checkState.plan(r.log(), "create security group "+r.env.Name)
			for _, k := range sortedKeys(want) {
				if !(k.egress && r.Egress == nil) {
					r.checkState.plan(r.log(), "authorize "+k.String())
				}
			}
			return false, nil
		}
		if g, err = r.create(ctx); err != nil {
			return false, err
		}
		ok = false
	} else if d := aws.ToString(g.Description); d != r.description() {
		return false, engine.Permanent(fmt.Errorf("aws:security_group %q: group %s: description is %q, spec wants %q; EC2 cannot change a group's description (delete the group to recreate it)",
			r.env.Name, aws.ToString(g.GroupId), d, r.description()))
	}
	id := aws.ToString(g.GroupId)
	got, err := r.rules(ctx, id)
	if err != nil {
		return false, err
	}
	var add, drop []ruleKey
	for _, k := range sortedKeys(want) {
		if _, has := got[k]; !has {
			add = append(add, k)
		}
	}
	for _, k := range sortedKeys(got) {
		if _, has := want[k]; !has {
			drop = append(drop, k)
		}
	}
	if !apply {
		for _, k := range add {
			r.checkState.plan(r.log(), "authorize "+k.String())
		}
		for _, k := range drop {
			r.checkState.plan(r.log(), "revoke "+k.String()+" (not in the spec)")
		}
		if len(add)+len(drop) > 0 {
			return false, nil
		}
	} else {
		if err := r.authorize(ctx, id, add, want); err != nil {
			return false, err
		}
		if err := r.revoke(ctx, id, drop, got); err != nil {
			return false, err
		}
	}
	if len(add)+len(drop) > 0 {
		ok = false
	}
	r.converged(map[string]string{"group_id": id, "vpc_id": aws.ToString(g.VpcId)}, fingerprintRules(want))
	return ok, nil
}

func sortedKeys[V any](m map[ruleKey]V) []ruleKey {
	return slices.SortedFunc(maps.Keys(m), func(a, b ruleKey) int { return strings.Compare(a.String(), b.String()) })
}

func fingerprintRules[V any](m map[ruleKey]V) string {
	var b strings.Builder
	for _, k := range sortedKeys(m) {
		b.WriteString(k.String())
		b.WriteByte('\n')
	}
	return b.String()
}

func (r *SecurityGroup) create(ctx context.Context) (*types.SecurityGroup, error) {
	tags := maps.Clone(r.Tags)
	if tags == nil {
		tags = map[string]string{}
	}
	tags[awsapi.TagName], tags[awsapi.TagOwner], tags[awsapi.TagResource] = r.env.NameTag(), r.env.Graph, r.id()
	protectTag(r.env, tags)
	in := &ec2.CreateSecurityGroupInput{
		GroupName:         aws.String(r.env.Name),
		Description:       aws.String(r.description()),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSecurityGroup, Tags: awsapi.Tags(tags)}},
	}
	if r.VPC != "" {
		in.VpcId = aws.String(r.VPC)
	}
	var id string
	err := r.hub.Retry(ctx, func(ctx context.Context) error {
		out, err := r.api.CreateSecurityGroup(ctx, in)
		if awsapi.Code(err) == "InvalidGroup.Duplicate" {
			return engine.Permanent(fmt.Errorf("a group named %q exists in the VPC without this resource's kiln tags; rename the resource or tag the group (%s=%s, %s=%s): %w",
				r.env.Name, awsapi.TagOwner, r.env.Graph, awsapi.TagResource, r.id(), err))
		}
		if err != nil {
			return awsapi.Classify(err, "InvalidVpcID.NotFound", "InvalidParameterValue", "VPCIdNotSpecified")
		}
		id = aws.ToString(out.GroupId)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create security group %q: %w", r.env.Name, err)
	}
	r.log().Info("security group created", "group", id)
	// Read it back (its VPC); NotFound right after the create is "not yet".
	var g *types.SecurityGroup
	err = r.hub.Retry(ctx, func(ctx context.Context) error {
		out, err := r.api.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{id}})
		if awsapi.IsNotFound(err) {
			return awsapi.NotYet(err)
		}
		if err != nil {
			return awsapi.Classify(err)
		}
		if len(out.SecurityGroups) == 0 {
			return awsapi.NotYet(fmt.Errorf("group %s not listed yet", id))
		}
		g = &out.SecurityGroups[0]
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("describe security group %s: %w", id, err)
	}
	return g, nil
}

// permission is k as an IpPermission, with its description.
func permission(k ruleKey, desc string) types.IpPermission {
	p := types.IpPermission{IpProtocol: aws.String(k.protocol)}
	if k.protocol != "-1" {
		p.FromPort, p.ToPort = aws.Int32(k.from), aws.Int32(k.to)
	}
	var d *string
	if desc != "" {
		d = aws.String(desc)
	}
	switch {
	case k.cidr4 != "":
		p.IpRanges = []types.IpRange{{CidrIp: aws.String(k.cidr4), Description: d}}
	case k.cidr6 != "":
		p.Ipv6Ranges = []types.Ipv6Range{{CidrIpv6: aws.String(k.cidr6), Description: d}}
	case k.group != "":
		p.UserIdGroupPairs = []types.UserIdGroupPair{{GroupId: aws.String(k.group), Description: d}}
	default:
		p.PrefixListIds = []types.PrefixListId{{PrefixListId: aws.String(k.prefixList), Description: d}}
	}
	return p
}

// Errors that retrying the same rules cannot fix.
var rulePermanentCodes = []string{"InvalidParameterValue", "InvalidGroup.NotFound", "InvalidPrefixListId.NotFound",
	"InvalidPrefixListId.Malformed", "RulesPerSecurityGroupLimitExceeded", "InvalidPermission.Malformed"}

func (r *SecurityGroup) authorize(ctx context.Context, id string, add []ruleKey, want map[ruleKey]string) error {
	var in, out []types.IpPermission
	for _, k := range add {
		if k.egress {
			out = append(out, permission(k, want[k]))
		} else {
			in = append(in, permission(k, want[k]))
		}
	}
	err := r.hub.Retry(ctx, func(ctx context.Context) error {
		var err error
		if len(in) > 0 {
			_, err = r.api.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: aws.String(id), IpPermissions: in})
			if awsapi.Code(err) == "InvalidPermission.Duplicate" {
				err = nil // a retry of ours that went through
			}
			if err != nil {
				return awsapi.Classify(err, rulePermanentCodes...)
			}
			in = nil
		}
		if len(out) > 0 {
			_, err = r.api.AuthorizeSecurityGroupEgress(ctx, &ec2.AuthorizeSecurityGroupEgressInput{GroupId: aws.String(id), IpPermissions: out})
			if awsapi.Code(err) == "InvalidPermission.Duplicate" {
				err = nil
			}
		}
		return awsapi.Classify(err, rulePermanentCodes...)
	})
	if err != nil {
		return fmt.Errorf("authorize rules of security group %s: %w", id, err)
	}
	for _, k := range add {
		r.log().Info("rule authorized", "group", id, "rule", k.String())
	}
	return nil
}

// revoke removes rules by their ids, so exactly those go.
func (r *SecurityGroup) revoke(ctx context.Context, id string, drop []ruleKey, got map[ruleKey]string) error {
	var in, out []string
	for _, k := range drop {
		if k.egress {
			out = append(out, got[k])
		} else {
			in = append(in, got[k])
		}
	}
	err := r.hub.Retry(ctx, func(ctx context.Context) error {
		if len(in) > 0 {
			_, err := r.api.RevokeSecurityGroupIngress(ctx, &ec2.RevokeSecurityGroupIngressInput{GroupId: aws.String(id), SecurityGroupRuleIds: in})
			if err != nil && awsapi.Code(err) != "InvalidSecurityGroupRuleId.NotFound" {
				return awsapi.Classify(err)
			}
			in = nil
		}
		if len(out) > 0 {
			_, err := r.api.RevokeSecurityGroupEgress(ctx, &ec2.RevokeSecurityGroupEgressInput{GroupId: aws.String(id), SecurityGroupRuleIds: out})
			if err != nil && awsapi.Code(err) != "InvalidSecurityGroupRuleId.NotFound" {
				return awsapi.Classify(err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("revoke rules of security group %s: %w", id, err)
	}
	for _, k := range drop {
		r.log().Info("rule revoked", "group", id, "rule", k.String())
	}
	return nil
}

// Watch calls Running, then every poll re-reads the group's rules (one
// DescribeSecurityGroupRules) and calls Changed when they differ from what
// the last check left: a rule added or revoked by hand, or the group gone.
// It blocks until ctx is done.
func (r *SecurityGroup) Watch(ctx context.Context, ev engine.Events) error {
	if err := r.resolve(ctx); err != nil {
		return err
	}
	return pollWatch(ctx, ev, r.poll, r.hub.Options().Poll, func(ctx context.Context) error {
		id, seen := r.last("group_id")
		if id == "" {
			return nil
		}
		got, err := r.rules(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			ev.Changed() // the group may be gone: let the check say
			return nil
		}
		if fp := fingerprintRules(got); fp != seen {
			r.log().Info("security group rules changed", "group", id)
			ev.Changed()
		}
		return nil
	})
}

func (r *SecurityGroup) id() string        { return envID(r.env, "aws:security_group") }
func (r *SecurityGroup) log() *slog.Logger { return envLog(r.env) }

func (r *SecurityGroup) resolve(ctx context.Context) error {
	if r.hub != nil {
		return nil
	}
	h, err := regionHub(ctx, r.hubs, r.Region, "aws:security_group", r.env.Name)
	if err != nil {
		return err
	}
	r.hub, r.api = h, h.EC2()
	return nil
}

var (
	_ engine.Resource       = (*SecurityGroup)(nil)
	_ engine.Initer         = (*SecurityGroup)(nil)
	_ engine.Outputter      = (*SecurityGroup)(nil)
	_ engine.SelfPoller     = (*SecurityGroup)(nil)
	_ engine.Changer        = (*SecurityGroup)(nil)
	_ config.Validator      = (*SecurityGroup)(nil)
	_ iampolicy.IAMActioner = (*SecurityGroup)(nil)
)
