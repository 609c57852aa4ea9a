package awsres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"

	"kiln/internal/awsapi"
)

// Adoptable is an existing AWS thing that kiln adopt can hand to a
// graph: the block that declares it as it is (Fields, in order), who
// owns it now, and how to make it the graph's (Tag).
type Adoptable struct {
	Kind, Name string // the block's kind and resource name
	Ref        string // its AWS id, for people
	// Owner and Resource are its kiln:owner and kiln:resource now ("" when
	// no graph owns it).
	Owner, Resource string
	Fields          []Field
	tag             func(ctx context.Context, graph string) error
}

// ID is the resource id the block gets: kind/name.
func (a Adoptable) ID() string { return a.Kind + "/" + a.Name }

// Field is one field of a block: string, int64, bool, []string,
// map[string]string or []Field (a nested block).
type Field struct {
	Key   string
	Value any
}

// Tag writes the owner and resource tags of graph on the thing (a
// record: its TXT ownership record), and nothing else.
func (a Adoptable) Tag(ctx context.Context, graph string) error { return a.tag(ctx, graph) }

// AdoptKinds are the kinds kiln adopt finds.
var AdoptKinds = []string{"aws:ec2", "aws:asg", "aws:key_pair", "aws:security_group", "aws:route53_zone", "aws:route53_record"}

// ErrAdoptUsage is wrapped by Adoptables' refusals of bad arguments.
var ErrAdoptUsage = errors.New("bad adopt arguments")

// Adoptables finds the existing things of kind in region ("" the
// default) that match filters (NAME=VALUE: EC2 filters for the EC2 kinds;
// name, and for records zone and type, for Route 53) and ids (none: any).
// It changes nothing.
func (e *Estate) Adoptables(ctx context.Context, kind, region string, filters map[string][]string, ids []string) ([]Adoptable, error) {
	h, err := e.hubs.Hub(ctx, region)
	if err != nil {
		return nil, err
	}
	switch kind {
	case "aws:ec2":
		return adoptInstances(ctx, h, filters, ids)
	case "aws:asg":
		return e.adoptGroups(ctx, h, filters, ids)
	case "aws:key_pair":
		return adoptKeyPairs(ctx, h, filters, ids)
	case "aws:security_group":
		return adoptSecurityGroups(ctx, h, filters, ids)
	case "aws:route53_zone":
		return e.adoptZones(ctx, h, filters, ids)
	case "aws:route53_record":
		return e.adoptRecords(ctx, h, filters, ids)
	}
	return nil, fmt.Errorf("%w: kind %q cannot be adopted (want one of %s)", ErrAdoptUsage, kind, strings.Join(AdoptKinds, ", "))
}

func ec2Filters(filters map[string][]string) []types.Filter {
	var out []types.Filter
	for _, k := range slices.Sorted(maps.Keys(filters)) {
		out = append(out, types.Filter{Name: aws.String(k), Values: filters[k]})
	}
	return out
}

// userTags are tags without kiln's, AWS's and Name.
func userTags(tags []types.Tag) map[string]string {
	m := map[string]string{}
	for _, t := range tags {
		k := aws.ToString(t.Key)
		if k == awsapi.TagName || strings.HasPrefix(k, "kiln:") || strings.HasPrefix(k, "aws:") {
			continue
		}
		m[k] = aws.ToString(t.Value)
	}
	return m
}

// plainName matches a Name tag usable as a resource name as it is.
var plainName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$`)

// ec2Tagger writes owner, resource and more tags on an EC2 resource.
func ec2Tagger(h *awsapi.Hub, id, resource string, more map[string]string) func(ctx context.Context, graph string) error {
	return func(ctx context.Context, graph string) error {
		m := maps.Clone(more)
		if m == nil {
			m = map[string]string{}
		}
		m[awsapi.TagOwner], m[awsapi.TagResource] = graph, resource
		return h.Retry(ctx, func(ctx context.Context) error {
			_, err := h.EC2().CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id}, Tags: awsapi.Tags(m)})
			return awsapi.Classify(err)
		})
	}
}

func adoptInstances(ctx context.Context, h *awsapi.Hub, filters map[string][]string, ids []string) ([]Adoptable, error) {
	fs := append(ec2Filters(filters), types.Filter{Name: aws.String("instance-state-name"), Values: liveStates})
	p := ec2.NewDescribeInstancesPaginator(h.EC2(), &ec2.DescribeInstancesInput{Filters: fs, InstanceIds: ids})
	var out []Adoptable
	for p.HasMorePages() {
		var page *ec2.DescribeInstancesOutput
		if err := h.Retry(ctx, func(ctx context.Context) (err error) { page, err = p.NextPage(ctx); return err }); err != nil {
			return nil, fmt.Errorf("describe instances: %w", err)
		}
		for _, r := range page.Reservations {
			for _, in := range r.Instances {
				id := aws.ToString(in.InstanceId)
				name := awsapi.TagValue(in.Tags, awsapi.TagName)
				more := map[string]string{}
				if !plainName.MatchString(name) {
					name = id
				}
				if awsapi.TagValue(in.Tags, awsapi.TagName) != name {
					more[awsapi.TagName] = name // kiln keeps Name = the resource's name
				}
				fields := []Field{{"image", aws.ToString(in.ImageId)}, {"type", string(in.InstanceType)}}
				if in.State != nil && in.State.Name == types.InstanceStateNameStopped {
					fields = append(fields, Field{"state", StateStopped})
				}
				if s := aws.ToString(in.SubnetId); s != "" {
					fields = append(fields, Field{"subnet", s})
				}
				if gs := instanceGroups(in); len(gs) > 0 {
					fields = append(fields, Field{"security_groups", gs})
				}
				if k := aws.ToString(in.KeyName); k != "" {
					fields = append(fields, Field{"key_name", k})
				}
				if t := userTags(in.Tags); len(t) > 0 {
					fields = append(fields, Field{"tags", t})
				}
				out = append(out, Adoptable{
					Kind: "aws:ec2", Name: name, Ref: id, Fields: fields,
					Owner: awsapi.TagValue(in.Tags, awsapi.TagOwner), Resource: awsapi.TagValue(in.Tags, awsapi.TagResource),
					tag: ec2Tagger(h, id, "aws:ec2/"+name, more),
				})
			}
		}
	}
	return out, nil
}

func adoptKeyPairs(ctx context.Context, h *awsapi.Hub, filters map[string][]string, ids []string) ([]Adoptable, error) {
	var page *ec2.DescribeKeyPairsOutput
	err := h.Retry(ctx, func(ctx context.Context) (err error) {
		page, err = h.EC2().DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{Filters: ec2Filters(filters), KeyPairIds: ids, IncludePublicKey: aws.Bool(true)})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("describe key pairs: %w", err)
	}
	var out []Adoptable
	for _, kp := range page.KeyPairs {
		name := aws.ToString(kp.KeyName)
		fields := []Field{{"public_key", strings.TrimSpace(aws.ToString(kp.PublicKey))}}
		if t := userTags(kp.Tags); len(t) > 0 {
			fields = append(fields, Field{"tags", t})
		}
		out = append(out, Adoptable{
			Kind: "aws:key_pair", Name: name, Ref: aws.ToString(kp.KeyPairId), Fields: fields,
			Owner: awsapi.TagValue(kp.Tags, awsapi.TagOwner), Resource: awsapi.TagValue(kp.Tags, awsapi.TagResource),
			tag: ec2Tagger(h, aws.ToString(kp.KeyPairId), "aws:key_pair/"+name, nil),
		})
	}
	return out, nil
}

func adoptSecurityGroups(ctx context.Context, h *awsapi.Hub, filters map[string][]string, ids []string) ([]Adoptable, error) {
	p := ec2.NewDescribeSecurityGroupsPaginator(h.EC2(), &ec2.DescribeSecurityGroupsInput{Filters: ec2Filters(filters), GroupIds: ids})
	var out []Adoptable
	for p.HasMorePages() {
		var page *ec2.DescribeSecurityGroupsOutput
		if err := h.Retry(ctx, func(ctx context.Context) (err error) { page, err = p.NextPage(ctx); return err }); err != nil {
			return nil, fmt.Errorf("describe security groups: %w", err)
		}
		for _, g := range page.SecurityGroups {
			name, id := aws.ToString(g.GroupName), aws.ToString(g.GroupId)
			if name == "default" {
				continue // a VPC's default group is the VPC's, not a graph's
			}
			fields := []Field{{"vpc", aws.ToString(g.VpcId)}, {"description", aws.ToString(g.Description)}}
			if rules := permRules(g.IpPermissions); len(rules) > 0 {
				fields = append(fields, Field{"ingress", rules})
			}
			if rules := permRules(g.IpPermissionsEgress); len(rules) > 0 {
				fields = append(fields, Field{"egress", rules})
			}
			if t := userTags(g.Tags); len(t) > 0 {
				fields = append(fields, Field{"tags", t})
			}
			more := map[string]string{}
			if awsapi.TagValue(g.Tags, awsapi.TagName) != name {
				more[awsapi.TagName] = name
			}
			out = append(out, Adoptable{
				Kind: "aws:security_group", Name: name, Ref: id, Fields: fields,
				Owner: awsapi.TagValue(g.Tags, awsapi.TagOwner), Resource: awsapi.TagValue(g.Tags, awsapi.TagResource),
				tag: ec2Tagger(h, id, "aws:security_group/"+name, more),
			})
		}
	}
	return out, nil
}

// permRules are EC2's permissions as the kind's rules, one rule per
// permission (its ranges, groups and prefix lists together).
func permRules(perms []types.IpPermission) [][]Field {
	var out [][]Field
	for _, p := range perms {
		proto := aws.ToString(p.IpProtocol)
		r := []Field{}
		switch proto {
		case "-1":
			r = append(r, Field{"protocol", "all"})
		default:
			r = append(r, Field{"protocol", proto})
		}
		from, to := aws.ToInt32(p.FromPort), aws.ToInt32(p.ToPort)
		switch {
		case proto == "-1":
		case (proto == "icmp" || proto == "icmpv6") && from == -1:
		case proto == "icmp" || proto == "icmpv6":
			if to == -1 {
				r = append(r, Field{"ports", strconv.Itoa(int(from))})
			} else {
				r = append(r, Field{"ports", fmt.Sprintf("%d-%d", from, to)})
			}
		case p.FromPort == nil:
		case from == to:
			r = append(r, Field{"ports", strconv.Itoa(int(from))})
		default:
			r = append(r, Field{"ports", fmt.Sprintf("%d-%d", from, to)})
		}
		var cidrs, groups, pls []string
		for _, c := range p.IpRanges {
			cidrs = append(cidrs, aws.ToString(c.CidrIp))
		}
		for _, c := range p.Ipv6Ranges {
			cidrs = append(cidrs, aws.ToString(c.CidrIpv6))
		}
		for _, g := range p.UserIdGroupPairs {
			groups = append(groups, aws.ToString(g.GroupId))
		}
		for _, l := range p.PrefixListIds {
			pls = append(pls, aws.ToString(l.PrefixListId))
		}
		if len(cidrs) > 0 {
			r = append(r, Field{"cidrs", cidrs})
		}
		if len(groups) > 0 {
			r = append(r, Field{"groups", groups})
		}
		if len(pls) > 0 {
			r = append(r, Field{"prefix_lists", pls})
		}
		out = append(out, r)
	}
	return out
}

func (e *Estate) adoptZones(ctx context.Context, h *awsapi.Hub, filters map[string][]string, ids []string) ([]Adoptable, error) {
	if err := onlyFilters(filters, "name"); err != nil {
		return nil, err
	}
	c, err := e.hubs.Route53(ctx)
	if err != nil {
		return nil, err
	}
	zones, err := allZones(ctx, h, c)
	if err != nil {
		return nil, err
	}
	zones = slices.DeleteFunc(zones, func(z r53types.HostedZone) bool {
		id := strings.TrimPrefix(aws.ToString(z.Id), "/hostedzone/")
		if len(ids) > 0 && !slices.Contains(ids, id) {
			return true
		}
		names := filters["name"]
		return len(names) > 0 && !slices.ContainsFunc(names, func(n string) bool { return awsapi.CanonicalName(n) == awsapi.CanonicalName(aws.ToString(z.Name)) })
	})
	tags, err := zoneTags(ctx, h, c, zones)
	if err != nil {
		return nil, err
	}
	var out []Adoptable
	for _, z := range zones {
		id := strings.TrimPrefix(aws.ToString(z.Id), "/hostedzone/")
		name := strings.TrimSuffix(awsapi.CanonicalName(aws.ToString(z.Name)), ".")
		var fields []Field
		if z.Config != nil && aws.ToString(z.Config.Comment) != "" {
			fields = append(fields, Field{"comment", aws.ToString(z.Config.Comment)})
		}
		if z.Config != nil && z.Config.PrivateZone {
			var g *route53.GetHostedZoneOutput
			if err := h.Retry(ctx, func(ctx context.Context) (err error) {
				g, err = c.GetHostedZone(ctx, &route53.GetHostedZoneInput{Id: aws.String(id)})
				return err
			}); err != nil {
				return nil, fmt.Errorf("get hosted zone %s: %w", id, err)
			}
			fields = append(fields, Field{"private", true})
			if len(g.VPCs) > 0 {
				fields = append(fields, Field{"vpc", aws.ToString(g.VPCs[0].VPCId)}, Field{"region", string(g.VPCs[0].VPCRegion)})
			}
		}
		out = append(out, Adoptable{
			Kind: "aws:route53_zone", Name: name, Ref: id, Fields: fields,
			Owner: tags[id][awsapi.TagOwner], Resource: tags[id][awsapi.TagResource],
			tag: func(ctx context.Context, graph string) error {
				return h.Retry(ctx, func(ctx context.Context) error {
					_, err := c.ChangeTagsForResource(ctx, &route53.ChangeTagsForResourceInput{
						ResourceType: r53types.TagResourceTypeHostedzone, ResourceId: aws.String(id),
						AddTags: []r53types.Tag{
							{Key: aws.String(awsapi.TagOwner), Value: aws.String(graph)},
							{Key: aws.String(awsapi.TagResource), Value: aws.String("aws:route53_zone/" + name)},
						}})
					return awsapi.Classify(err)
				})
			},
		})
	}
	return out, nil
}

// onlyFilters refuses filters other than names.
func onlyFilters(filters map[string][]string, names ...string) error {
	for k := range filters {
		if !slices.Contains(names, k) {
			return fmt.Errorf("%w: --filter %s: want %s", ErrAdoptUsage, k, strings.Join(names, ", "))
		}
	}
	return nil
}

func (e *Estate) adoptRecords(ctx context.Context, h *awsapi.Hub, filters map[string][]string, ids []string) ([]Adoptable, error) {
	if err := onlyFilters(filters, "zone", "name", "type"); err != nil {
		return nil, err
	}
	if len(filters["zone"]) != 1 {
		return nil, fmt.Errorf("%w: records need --filter zone=ZONE (a zone name or id)", ErrAdoptUsage)
	}
	if len(ids) > 0 {
		return nil, fmt.Errorf("%w: records have no id: select them with --filter name=... and type=...", ErrAdoptUsage)
	}
	d, err := e.hubs.DNS(ctx)
	if err != nil {
		return nil, err
	}
	zref := filters["zone"][0]
	z, err := d.ResolveZone(ctx, zref)
	if err != nil {
		return nil, fmt.Errorf("zone %s: %w", zref, err)
	}
	l, err := d.Records(ctx, z.ID, 0)
	if err != nil {
		return nil, fmt.Errorf("list records of zone %s: %w", z.ID, err)
	}
	var out []Adoptable
	for _, k := range slices.SortedFunc(maps.Keys(l.Sets), func(a, b awsapi.RecordKey) int {
		return strings.Compare(a.Name+" "+a.Type+" "+a.SetID, b.Name+" "+b.Type+" "+b.SetID)
	}) {
		rs := l.Sets[k]
		if (k.Name == z.Name && (k.Type == "SOA" || k.Type == "NS")) || !slices.Contains(recordTypes, k.Type) {
			continue // the zone's own, or a type the kind does not manage
		}
		if _, _, own := ownedRecord(k.Name); own && k.Type == "TXT" {
			continue // an ownership record
		}
		if ns := filters["name"]; len(ns) > 0 && !slices.ContainsFunc(ns, func(n string) bool { return awsapi.CanonicalName(n) == k.Name }) {
			continue
		}
		if ts := filters["type"]; len(ts) > 0 && !slices.ContainsFunc(ts, func(t string) bool { return strings.EqualFold(t, k.Type) }) {
			continue
		}
		name := recordResourceName(k, z.Name)
		fields := []Field{
			{"zone", strings.TrimSuffix(z.Name, ".")},
			{"record", strings.TrimSuffix(k.Name, ".")},
			{"type", k.Type},
		}
		if a := rs.AliasTarget; a != nil {
			fields = append(fields, Field{"alias", []Field{
				{"name", strings.TrimSuffix(awsapi.CanonicalName(aws.ToString(a.DNSName)), ".")},
				{"zone_id", aws.ToString(a.HostedZoneId)},
				{"evaluate_target_health", a.EvaluateTargetHealth},
			}})
		} else {
			fields = append(fields, Field{"ttl", aws.ToInt64(rs.TTL)})
			var vals []string
			for _, v := range rs.ResourceRecords {
				vals = append(vals, graphValue(k.Type, aws.ToString(v.Value)))
			}
			fields = append(fields, Field{"values", vals})
		}
		if k.SetID != "" {
			fields = append(fields, Field{"set_identifier", k.SetID}, Field{"weight", aws.ToInt64(rs.Weight)})
		}
		owner := l.Sets[ownerKey(k)]
		g, res := recordOwner(&owner)
		zoneID := z.ID
		out = append(out, Adoptable{
			Kind: "aws:route53_record", Name: name, Ref: k.Name + " " + k.Type, Fields: fields, Owner: g, Resource: res,
			tag: func(ctx context.Context, graph string) error {
				own := ownerSet(k, graph, "aws:route53_record/"+name)
				id, err := d.Change(ctx, zoneID, r53types.Change{Action: r53types.ChangeActionUpsert, ResourceRecordSet: &own})
				if err != nil {
					return err
				}
				return d.AwaitInsync(ctx, id)
			},
		})
	}
	return out, nil
}

// recordResourceName names a record's block: its name below the zone
// (dots as dashes; "apex" for the zone's own name, "wildcard" for *),
// its type, and its set identifier: www.example.com A is www-a.
func recordResourceName(k awsapi.RecordKey, zone string) string {
	rel := strings.TrimSuffix(strings.TrimSuffix(k.Name, zone), ".")
	if rel == "" {
		rel = "apex"
	}
	rel = strings.ReplaceAll(rel, "*", "wildcard")
	n := strings.ReplaceAll(rel, ".", "-") + "-" + strings.ToLower(k.Type)
	if k.SetID != "" {
		n += "-" + k.SetID
	}
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			return r
		}
		return '-'
	}, n)
}

// graphValue is a live value as the graph gives it: a TXT or SPF value of
// one plain quoted string without its quotes (kiln adds them back), any
// other as it is.
func graphValue(typ, v string) string {
	if typ != "TXT" && typ != "SPF" {
		return v
	}
	if inner, ok := strings.CutPrefix(v, `"`); ok {
		if inner, ok = strings.CutSuffix(inner, `"`); ok && !strings.ContainsAny(inner, `"\`) {
			return inner
		}
	}
	return v
}
