package awssim

import (
	"encoding/xml"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Route 53 record sets: ChangeResourceRecordSets applies a batch
// atomically (every change is checked against the zone as the earlier
// changes of the batch leave it; one failure refuses the whole batch with
// InvalidChangeBatch, every message in it), ListResourceRecordSets pages
// them in Route 53's order.

// rrset is one resource record set, in its wire shape.
type rrset struct {
	Name          string          `xml:"Name"`
	Type          string          `xml:"Type"`
	SetIdentifier string          `xml:"SetIdentifier,omitempty"`
	Weight        *int64          `xml:"Weight,omitempty"`
	TTL           *int64          `xml:"TTL,omitempty"`
	Records       []rrValue       `xml:"ResourceRecords>ResourceRecord,omitempty"`
	Alias         *xmlAliasTarget `xml:"AliasTarget,omitempty"`
}

type rrValue struct {
	Value string `xml:"Value"`
}

// values are the record set's values.
func (rs *rrset) values() []string {
	out := make([]string, len(rs.Records))
	for i, v := range rs.Records {
		out[i] = v.Value
	}
	return out
}

type xmlAliasTarget struct {
	HostedZoneID         string `xml:"HostedZoneId"`
	DNSName              string `xml:"DNSName"`
	EvaluateTargetHealth bool   `xml:"EvaluateTargetHealth"`
}

// rrTypes are the record types Route 53 accepts.
var rrTypes = []string{"A", "AAAA", "CAA", "CNAME", "DS", "HTTPS", "MX", "NAPTR", "NS", "PTR", "SOA", "SPF", "SRV", "SSHFP", "SVCB", "TLSA", "TXT"}

// rrKey is a record set's place in ListResourceRecordSets' order: name
// with its labels reversed, type, set identifier.
func rrKey(name, typ, setID string) string {
	return reverseLabels(name) + "\x00" + typ + "\x00" + setID
}

func (rs *rrset) key() string { return rrKey(rs.Name, rs.Type, rs.SetIdentifier) }

// find returns the index of the record set with key k, and whether it is
// there.
func (z *hostedZone) find(k string) (int, bool) {
	return slices.BinarySearchFunc(z.records, k, func(rs *rrset, k string) int { return strings.Compare(rs.key(), k) })
}

// put adds or replaces a record set.
func (z *hostedZone) put(rs *rrset) {
	i, ok := z.find(rs.key())
	if ok {
		z.records[i] = rs
		return
	}
	z.records = slices.Insert(z.records, i, rs)
}

type changeBatchRequest struct {
	ChangeBatch struct {
		Comment string `xml:"Comment"`
		Changes []struct {
			Action string `xml:"Action"`
			RRSet  *rrset `xml:"ResourceRecordSet"`
		} `xml:"Changes>Change"`
	} `xml:"ChangeBatch"`
}

type changeResourceRecordSetsResponse struct {
	XMLName    xml.Name      `xml:"https://route53.amazonaws.com/doc/2013-04-01/ ChangeResourceRecordSetsResponse"`
	ChangeInfo xmlChangeInfo `xml:"ChangeInfo"`
}

// maxChanges is the most changes one batch may hold, and maxRecords the
// most ResourceRecord elements (an UPSERT's count twice).
const (
	maxChanges = 1000
	maxRecords = 1000
)

func (s *Sim) changeResourceRecordSets(r *request) (any, error) {
	var in changeBatchRequest
	if err := r.xmlBody(&in); err != nil {
		return nil, err
	}
	changes := in.ChangeBatch.Changes
	if len(changes) == 0 {
		return nil, route53Input("1 validation error detected: Value '[]' at 'changeBatch.changes' failed to satisfy constraint: Member must have length greater than or equal to 1")
	}
	if len(changes) > maxChanges {
		return nil, apiErr("InvalidChangeBatch", "[Number of changes limit of %d exceeded.]", maxChanges)
	}
	elements := 0
	for _, c := range changes {
		if c.RRSet != nil {
			n := len(c.RRSet.Records)
			if c.Action == "UPSERT" {
				n *= 2
			}
			elements += n
		}
	}
	if elements > maxRecords {
		return nil, apiErr("InvalidChangeBatch", "[Number of records limit of %d exceeded.]", maxRecords)
	}
	for i, c := range changes {
		if err := checkChangeShape(i+1, c.Action, c.RRSet); err != nil {
			return nil, err
		}
	}
	now := s.lock()
	defer s.mu.Unlock()
	z, err := s.zoneLocked(r.str("Id"))
	if err != nil {
		return nil, err
	}
	// The batch runs against an overlay of the zone: key → record set
	// (nil: deleted). Nothing touches the zone unless every change passes.
	overlay := map[string]*rrset{}
	current := func(k string) *rrset {
		if rs, ok := overlay[k]; ok {
			return rs
		}
		if i, ok := z.find(k); ok {
			return z.records[i]
		}
		return nil
	}
	var msgs []string
	touched := map[string]bool{}
	for _, c := range changes {
		rs := c.RRSet
		rs.Name, rs.Type = canonicalName(rs.Name), strings.ToUpper(rs.Type)
		if rs.Alias != nil {
			rs.Alias.DNSName = canonicalName(rs.Alias.DNSName)
			rs.Alias.HostedZoneID = trimRoute53ID(rs.Alias.HostedZoneID)
		}
		if rs.Name != z.name && !strings.HasSuffix(rs.Name, "."+z.name) {
			msgs = append(msgs, fmt.Sprintf("RRSet with DNS name %s is not permitted in zone %s", rs.Name, z.name))
			continue
		}
		if m := checkValues(rs); m != "" {
			msgs = append(msgs, m)
			continue
		}
		k := rs.key()
		old := current(k)
		if c.Action != "DELETE" {
			if m := routingConflict(z, rs, overlay, current); m != "" {
				msgs = append(msgs, m)
				continue
			}
		}
		switch c.Action {
		case "CREATE":
			if old != nil {
				msgs = append(msgs, fmt.Sprintf("Tried to create resource record set %s but it already exists", rrLabel(rs)))
				continue
			}
			overlay[k] = rs
		case "UPSERT":
			overlay[k] = rs
		case "DELETE":
			switch {
			case old == nil:
				msgs = append(msgs, fmt.Sprintf("Tried to delete resource record set %s but it was not found", rrLabel(rs)))
				continue
			case !sameRRSet(old, rs):
				msgs = append(msgs, fmt.Sprintf("Tried to delete resource record set %s but the values provided do not match the current values", rrLabel(rs)))
				continue
			case rs.Name == z.name && rs.Type == "SOA":
				msgs = append(msgs, "A HostedZone must contain exactly one SOA record.")
				continue
			case rs.Name == z.name && rs.Type == "NS":
				msgs = append(msgs, "A HostedZone must contain at least one NS record for the zone itself.")
				continue
			}
			overlay[k] = nil
		}
		touched[rs.Name] = true
	}
	if len(msgs) == 0 {
		for name := range touched {
			if m := cnameConflict(z, name, overlay, current); m != "" {
				msgs = append(msgs, m)
			}
		}
	}
	if len(msgs) > 0 {
		slices.Sort(msgs)
		return nil, apiErr("InvalidChangeBatch", "[%s]", strings.Join(slices.Compact(msgs), ", "))
	}
	for k, rs := range overlay {
		if rs != nil {
			if _, ok := z.find(k); !ok {
				if at := s.eventualLocked(now); at.After(now) {
					if z.hidden == nil {
						z.hidden = map[string]time.Time{}
					}
					z.hidden[k] = at
				}
			}
			z.put(rs)
		} else if i, ok := z.find(k); ok {
			z.records = slices.Delete(z.records, i, i+1)
			delete(z.hidden, k)
		}
	}
	return changeResourceRecordSetsResponse{ChangeInfo: s.newChangeLocked(now, in.ChangeBatch.Comment).wire()}, nil
}

// checkChangeShape refuses what Route 53 refuses before it looks at the
// zone (InvalidInput): an unknown action or type, a record set that is
// neither an alias nor TTL and values, routing without an identifier.
func checkChangeShape(n int, action string, rs *rrset) error {
	if action != "CREATE" && action != "UPSERT" && action != "DELETE" {
		return route53Input("1 validation error detected: Value '%s' at 'changeBatch.changes.%d.member.action' failed to satisfy constraint: Member must satisfy enum value set: [CREATE, DELETE, UPSERT]", action, n)
	}
	if rs == nil || rs.Name == "" {
		return route53Input("1 validation error detected: Value null at 'changeBatch.changes.%d.member.resourceRecordSet' failed to satisfy constraint: Member must not be null", n)
	}
	if !slices.Contains(rrTypes, strings.ToUpper(rs.Type)) {
		return route53Input("1 validation error detected: Value '%s' at 'changeBatch.changes.%d.member.resourceRecordSet.type' failed to satisfy constraint: Member must satisfy enum value set: [%s]", rs.Type, n, strings.Join(rrTypes, ", "))
	}
	setID := "null"
	if rs.SetIdentifier != "" {
		setID = rs.SetIdentifier
	}
	where := fmt.Sprintf("Change with [Action=%s, Name=%s, Type=%s, SetIdentifier=%s]", action, rs.Name, rs.Type, setID)
	hasRecords := rs.TTL != nil && len(rs.Records) > 0
	switch {
	case rs.Alias != nil && (rs.TTL != nil || len(rs.Records) > 0):
		return route53Input("Invalid request: Expected exactly one of [AliasTarget, all of [TTL, and ResourceRecords], or TrafficPolicyInstanceId], but found more than one in %s", where)
	case rs.Alias == nil && !hasRecords:
		return route53Input("Invalid request: Expected exactly one of [AliasTarget, all of [TTL, and ResourceRecords], or TrafficPolicyInstanceId], but found none in %s", where)
	case rs.Alias != nil && (rs.Alias.DNSName == "" || rs.Alias.HostedZoneID == ""):
		return route53Input("Invalid request: AliasTarget needs both DNSName and HostedZoneId in %s", where)
	case rs.TTL != nil && (*rs.TTL < 0 || *rs.TTL > 2147483647):
		return route53Input("1 validation error detected: Value '%d' at 'changeBatch.changes.%d.member.resourceRecordSet.tTL' failed to satisfy constraint: Member must have value between 0 and 2147483647", *rs.TTL, n)
	case rs.SetIdentifier != "" && rs.Weight == nil:
		return route53Input("Invalid request: Expected exactly one of [Weight, Region, Failover, GeoLocation, MultiValueAnswer, GeoProximityLocation, or CidrRoutingConfig], but found none in %s", where)
	case rs.SetIdentifier == "" && rs.Weight != nil:
		return route53Input("Invalid request: Missing field 'SetIdentifier' in %s", where)
	case rs.Weight != nil && (*rs.Weight < 0 || *rs.Weight > 255):
		return route53Input("1 validation error detected: Value '%d' at 'changeBatch.changes.%d.member.resourceRecordSet.weight' failed to satisfy constraint: Member must have value between 0 and 255", *rs.Weight, n)
	}
	return nil
}

// checkValues returns Route 53's message for a value its type refuses.
func checkValues(rs *rrset) string {
	bad := func(problem, v string) string {
		return fmt.Sprintf("Invalid Resource Record: 'FATAL problem: %s encountered with '%s''", problem, v)
	}
	if rs.Type == "CNAME" && len(rs.Records) > 1 {
		return bad("RRSetCNAMEMultipleRecords (CNAME records must have exactly one value)", rs.Records[1].Value)
	}
	for _, v := range rs.values() {
		switch rs.Type {
		case "A":
			if a, err := netip.ParseAddr(v); err != nil || !a.Is4() {
				return bad("ARRDATAIllegalIPv4Address (Value is not a valid IPv4 address)", v)
			}
		case "AAAA":
			if a, err := netip.ParseAddr(v); err != nil || !a.Is6() || a.Is4In6() {
				return bad("AAAARRDATAIllegalIPv6Address (Value is not a valid IPv6 address)", v)
			}
		case "TXT", "SPF":
			if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
				return bad("InvalidCharacterString (Value should be enclosed in quotation marks)", v)
			}
		case "MX":
			f := strings.Fields(v)
			if p, err := strconv.Atoi(f0(f)); len(f) != 2 || err != nil || p < 0 || p > 65535 {
				return bad("MXRRDATANotTwoFields (MX record must have a priority and a domain name)", v)
			}
		}
	}
	return ""
}

func f0(f []string) string {
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// rrLabel names a record set as Route 53's messages do.
func rrLabel(rs *rrset) string {
	if rs.SetIdentifier != "" {
		return fmt.Sprintf("[name='%s', type='%s', set-identifier='%s']", rs.Name, rs.Type, rs.SetIdentifier)
	}
	return fmt.Sprintf("[name='%s', type='%s']", rs.Name, rs.Type)
}

// sameRRSet reports whether a DELETE names the record set as it is.
func sameRRSet(a, b *rrset) bool {
	eq := func(x, y *int64) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	if !eq(a.TTL, b.TTL) || !eq(a.Weight, b.Weight) || (a.Alias == nil) != (b.Alias == nil) {
		return false
	}
	if a.Alias != nil && *a.Alias != *b.Alias {
		return false
	}
	return slices.Equal(slices.Sorted(slices.Values(a.values())), slices.Sorted(slices.Values(b.values())))
}

// cnameConflict returns the message for a CNAME that shares its name with
// a record set of another type, as the batch (overlay) leaves the zone.
func cnameConflict(z *hostedZone, name string, overlay map[string]*rrset, current func(string) *rrset) string {
	types := map[string]bool{}
	prefix := reverseLabels(name) + "\x00"
	i, _ := z.find(prefix)
	for ; i < len(z.records) && strings.HasPrefix(z.records[i].key(), prefix); i++ {
		if rs := current(z.records[i].key()); rs != nil {
			types[rs.Type] = true
		}
	}
	for k, rs := range overlay {
		if rs != nil && strings.HasPrefix(k, prefix) {
			types[rs.Type] = true
		}
	}
	if types["CNAME"] && len(types) > 1 {
		return fmt.Sprintf("RRSet of type CNAME with DNS name %s is not permitted as it conflicts with other records with the same DNS name in zone %s", name, z.name)
	}
	return ""
}

// routingConflict returns the message for a weighted set beside a
// non-weighted one of the same name and type, or the other way round.
func routingConflict(z *hostedZone, rs *rrset, overlay map[string]*rrset, current func(string) *rrset) string {
	if rs.SetIdentifier != "" {
		if current(rrKey(rs.Name, rs.Type, "")) != nil {
			return fmt.Sprintf("RRSet with DNS name %s, type %s, SetIdentifier %s cannot be created as a non-weighted set exists with the same name and type.", rs.Name, rs.Type, rs.SetIdentifier)
		}
		return ""
	}
	prefix := rrKey(rs.Name, rs.Type, "")
	weighted := false
	i, _ := z.find(prefix)
	for ; i < len(z.records) && strings.HasPrefix(z.records[i].key(), prefix); i++ {
		if o := current(z.records[i].key()); o != nil && o.SetIdentifier != "" {
			weighted = true
		}
	}
	for k, o := range overlay {
		if o != nil && o.SetIdentifier != "" && strings.HasPrefix(k, prefix) {
			weighted = true
		}
	}
	if weighted {
		return fmt.Sprintf("RRSet with DNS name %s, type %s cannot be created as a weighted set exists with the same name and type.", rs.Name, rs.Type)
	}
	return ""
}

type listResourceRecordSetsResponse struct {
	XMLName              xml.Name `xml:"https://route53.amazonaws.com/doc/2013-04-01/ ListResourceRecordSetsResponse"`
	ResourceRecordSets   []*rrset `xml:"ResourceRecordSets>ResourceRecordSet"`
	IsTruncated          bool     `xml:"IsTruncated"`
	NextRecordName       string   `xml:"NextRecordName,omitempty"`
	NextRecordType       string   `xml:"NextRecordType,omitempty"`
	NextRecordIdentifier string   `xml:"NextRecordIdentifier,omitempty"`
	MaxItems             int      `xml:"MaxItems"`
}

// maxRecordsPage is ListResourceRecordSets' largest (and default) page.
const maxRecordsPage = 300

// ListResourceRecordSets lists from name (and type, and identifier) on, in
// Route 53's order, at most maxitems (300) a page.
func (s *Sim) listResourceRecordSets(r *request) (any, error) {
	max, err := r.maxItems("maxitems", maxRecordsPage, maxRecordsPage)
	if err != nil {
		return nil, err
	}
	name, typ, ident := r.str("name"), strings.ToUpper(r.str("type")), r.str("identifier")
	if typ != "" && name == "" {
		return nil, route53Input("The input is not valid: type requires name")
	}
	if ident != "" && typ == "" {
		return nil, route53Input("The input is not valid: identifier requires name and type")
	}
	if typ != "" && !slices.Contains(rrTypes, typ) {
		return nil, route53Input("Invalid type: %s", typ)
	}
	now := s.lock()
	defer s.mu.Unlock()
	z, err := s.zoneLocked(r.str("Id"))
	if err != nil {
		return nil, err
	}
	start := 0
	if name != "" {
		start, _ = z.find(rrKey(canonicalName(name), typ, ident))
	}
	out := listResourceRecordSetsResponse{MaxItems: max, ResourceRecordSets: []*rrset{}}
	for _, rs := range z.records[start:] {
		if now.Before(z.hidden[rs.key()]) {
			continue // not yet: eventual consistency
		}
		if len(out.ResourceRecordSets) == max {
			out.IsTruncated = true
			out.NextRecordName, out.NextRecordType, out.NextRecordIdentifier = rs.Name, rs.Type, rs.SetIdentifier
			break
		}
		out.ResourceRecordSets = append(out.ResourceRecordSets, rs)
	}
	return out, nil
}
