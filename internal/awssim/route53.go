package awssim

import (
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Route 53 (REST-XML, API version 2013-04-01, paths under /2013-04-01/):
// hosted zones here, record sets and changes in route53_records.go. Route
// 53 is a global service: one set of zones per simulator, whatever the
// region a client signs for. Its request limit is five requests a second
// per account, for all its actions together; a request over it answers
// Throttling (400, "Rate exceeded").

const (
	route53Prefix = "/2013-04-01/"
	route53NS     = "https://route53.amazonaws.com/doc/2013-04-01/"
)

var route53Service = &service{
	name:      "route53",
	match:     func(hr *http.Request) bool { return strings.HasPrefix(hr.URL.Path, route53Prefix) },
	decode:    decodeRoute53,
	proto:     restXML{namespace: route53NS},
	actions:   route53Actions,
	admit:     (*Sim).admitRoute53,
	throttled: &APIError{Status: http.StatusBadRequest, Code: "Throttling", Message: "Rate exceeded"},
	control:   (*Sim).serveRoute53Control, // route53_control.go
}

// route53Actions is the Route 53 API, one line per action.
var route53Actions = map[string]action{
	"CreateHostedZone":        (*Sim).createHostedZone,
	"GetHostedZone":           (*Sim).getHostedZone,
	"ListHostedZones":         (*Sim).listHostedZones,
	"ListHostedZonesByName":   (*Sim).listHostedZonesByName,
	"UpdateHostedZoneComment": (*Sim).updateHostedZoneComment,
	"DeleteHostedZone":        (*Sim).deleteHostedZone,

	// Tags of hosted zones (route53_tags.go).
	"ChangeTagsForResource": (*Sim).changeTagsForResource,
	"ListTagsForResource":   (*Sim).listTagsForResource,
	"ListTagsForResources":  (*Sim).listTagsForResources,

	// Record sets and changes (route53_records.go).
	"ChangeResourceRecordSets": (*Sim).changeResourceRecordSets,
	"ListResourceRecordSets":   (*Sim).listResourceRecordSets,
	"GetChange":                (*Sim).getChange,
}

// route53Bucket is Route 53's request limit: 5 requests a second per
// account, all actions together.
var route53Bucket = Bucket{Burst: 5, Refill: 5}

func (s *Sim) admitRoute53(*request) bool {
	now := s.Now()
	t := s.buckets
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.bucket("route53", route53Bucket, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// route53Routes map a method and a path (its segments after /2013-04-01/,
// "*" for an id) to an action.
var route53Routes = []struct {
	method string
	path   []string
	action string
}{
	{http.MethodPost, []string{"hostedzone"}, "CreateHostedZone"},
	{http.MethodGet, []string{"hostedzone"}, "ListHostedZones"},
	{http.MethodGet, []string{"hostedzonesbyname"}, "ListHostedZonesByName"},
	{http.MethodGet, []string{"hostedzone", "*"}, "GetHostedZone"},
	{http.MethodPost, []string{"hostedzone", "*"}, "UpdateHostedZoneComment"},
	{http.MethodDelete, []string{"hostedzone", "*"}, "DeleteHostedZone"},
	{http.MethodPost, []string{"hostedzone", "*", "rrset"}, "ChangeResourceRecordSets"},
	{http.MethodGet, []string{"hostedzone", "*", "rrset"}, "ListResourceRecordSets"},
	{http.MethodGet, []string{"change", "*"}, "GetChange"},
	{http.MethodPost, []string{"tags", "hostedzone", "*"}, "ChangeTagsForResource"},
	{http.MethodGet, []string{"tags", "hostedzone", "*"}, "ListTagsForResource"},
	{http.MethodPost, []string{"tags", "hostedzone"}, "ListTagsForResources"},
}

// decodeRoute53 reads a Route 53 request: the action from its method and
// path, the path's id as the parameter Id (a "/hostedzone/" or "/change/"
// prefix removed, as the SDKs send ids either way), the query string as
// the other parameters, and the body.
func decodeRoute53(hr *http.Request) (*request, error) {
	rest := strings.Trim(strings.TrimPrefix(hr.URL.EscapedPath(), route53Prefix), "/")
	var segs []string
	for _, p := range strings.Split(rest, "/") {
		u, err := url.PathUnescape(p)
		if err != nil {
			return nil, route53Input("Invalid path: %s", hr.URL.Path)
		}
		segs = append(segs, u)
	}
	params := hr.URL.Query()
	req := &request{Params: params}
	for _, rt := range route53Routes {
		if rt.method != hr.Method || len(rt.path) != len(segs) {
			continue
		}
		ok := true
		for i, p := range rt.path {
			if p == "*" {
				params.Set("Id", trimRoute53ID(segs[i]))
			} else if p != segs[i] {
				ok = false
				break
			}
		}
		if ok {
			req.Action = rt.action
			break
		}
	}
	if req.Action == "" {
		return nil, &APIError{Status: http.StatusNotFound, Code: "UnknownOperationException", Message: "Unknown operation " + hr.Method + " " + hr.URL.Path}
	}
	if hr.Method == http.MethodPost {
		body, err := io.ReadAll(io.LimitReader(hr.Body, maxBody+1))
		if err != nil {
			return nil, route53Input("read body: %v", err)
		}
		if len(body) > maxBody {
			return nil, &APIError{Status: http.StatusRequestEntityTooLarge, Code: "RequestEntityTooLarge", Message: "Request body too large"}
		}
		req.Body = body
	}
	return req, nil
}

// trimRoute53ID strips the type prefix Route 53 puts on the ids it returns
// ("/hostedzone/Z123", "hostedzone/Z123", "/change/C123").
func trimRoute53ID(id string) string {
	for _, p := range []string{"/hostedzone/", "hostedzone/", "/change/", "change/"} {
		if v, ok := strings.CutPrefix(id, p); ok {
			return v
		}
	}
	return id
}

func route53Input(format string, args ...any) *APIError {
	return apiErr("InvalidInput", format, args...)
}

func noSuchZone(id string) *APIError {
	return &APIError{Status: http.StatusNotFound, Code: "NoSuchHostedZone", Message: "No hosted zone found with ID: " + id}
}

// r53State is the Route 53 state of a Sim; s.mu guards it.
type r53State struct {
	zones   map[string]*hostedZone
	order   []*hostedZone // creation order, ListHostedZones' order
	refs    map[string]*hostedZone
	changes map[string]*r53Change
}

func (r *r53State) init() {
	r.zones, r.refs, r.changes = map[string]*hostedZone{}, map[string]*hostedZone{}, map[string]*r53Change{}
}

type hostedZone struct {
	id, name, callerRef, comment string
	private                      bool
	vpcs                         []r53VPC
	nameServers                  []string
	tags                         map[string]string // route53_tags.go
	// records is sorted by rrOrder: the order ListResourceRecordSets
	// returns them in.
	records []*rrset
	// hidden is when new records (by key) become visible to
	// ListResourceRecordSets, under the eventual fault profile.
	hidden map[string]time.Time
}

type r53VPC struct {
	Region string `xml:"VPCRegion,omitempty"`
	ID     string `xml:"VPCId,omitempty"`
}

// Wire shapes of the zone calls.
type (
	xmlHostedZone struct {
		ID                     string         `xml:"Id"`
		Name                   string         `xml:"Name"`
		CallerReference        string         `xml:"CallerReference"`
		Config                 *xmlZoneConfig `xml:"Config,omitempty"`
		ResourceRecordSetCount int            `xml:"ResourceRecordSetCount"`
	}
	xmlZoneConfig struct {
		Comment     string `xml:"Comment,omitempty"`
		PrivateZone bool   `xml:"PrivateZone"`
	}
	xmlDelegationSet struct {
		NameServers []string `xml:"NameServers>NameServer"`
	}
	xmlChangeInfo struct {
		ID          string `xml:"Id"`
		Status      string `xml:"Status"`
		SubmittedAt string `xml:"SubmittedAt"`
		Comment     string `xml:"Comment,omitempty"`
	}
)

type createHostedZoneRequest struct {
	Name             string `xml:"Name"`
	CallerReference  string `xml:"CallerReference"`
	HostedZoneConfig *struct {
		Comment     string `xml:"Comment"`
		PrivateZone *bool  `xml:"PrivateZone"`
	} `xml:"HostedZoneConfig"`
	VPC             *r53VPC `xml:"VPC"`
	DelegationSetID string  `xml:"DelegationSetId"`
}

type createHostedZoneResponse struct {
	XMLName       xml.Name          `xml:"https://route53.amazonaws.com/doc/2013-04-01/ CreateHostedZoneResponse"`
	HostedZone    xmlHostedZone     `xml:"HostedZone"`
	ChangeInfo    xmlChangeInfo     `xml:"ChangeInfo"`
	DelegationSet *xmlDelegationSet `xml:"DelegationSet,omitempty"`
	VPC           *r53VPC           `xml:"VPC,omitempty"`
}

func (createHostedZoneResponse) httpStatus() int { return http.StatusCreated }
func (r createHostedZoneResponse) location() string {
	return "https://route53.amazonaws.com/2013-04-01" + r.HostedZone.ID
}

func (s *Sim) createHostedZone(r *request) (any, error) {
	var in createHostedZoneRequest
	if err := r.xmlBody(&in); err != nil {
		return nil, err
	}
	if in.CallerReference == "" || len(in.CallerReference) > 128 {
		return nil, route53Input("1 validation error detected: Value '%s' at 'callerReference' failed to satisfy constraint: Member must have length between 1 and 128", in.CallerReference)
	}
	name, err := zoneName(in.Name)
	if err != nil {
		return nil, err
	}
	private := in.VPC != nil && in.VPC.ID != ""
	if c := in.HostedZoneConfig; c != nil && c.PrivateZone != nil && *c.PrivateZone && !private {
		return nil, route53Input("When you're creating a private hosted zone (when you specify true for PrivateZone), you must also specify values for VPCId and VPCRegion.")
	}
	now := s.lock()
	defer s.mu.Unlock()
	if _, dup := s.r53.refs[in.CallerReference]; dup {
		return nil, &APIError{Status: http.StatusConflict, Code: "HostedZoneAlreadyExists", Message: "A hosted zone has already been created with the specified caller reference."}
	}
	prefix := s.opts.ZoneIDPrefix
	if prefix == "" {
		prefix = "Z"
	}
	z := &hostedZone{id: s.route53ID(prefix), name: name, callerRef: in.CallerReference, private: private}
	if c := in.HostedZoneConfig; c != nil {
		z.comment = c.Comment
	}
	if private {
		vpc := *in.VPC
		if vpc.Region == "" {
			vpc.Region = s.opts.Region
		}
		if !s.vpcExistsLocked(vpc.ID) {
			return nil, apiErr("InvalidVPCId", "The VPC ID '%s' is not valid.", vpc.ID)
		}
		for _, o := range s.r53.order {
			if o.private && o.name == name && slices.Contains(o.vpcs, vpc) {
				return nil, &APIError{Status: http.StatusBadRequest, Code: "ConflictingDomainExists", Message: fmt.Sprintf("A hosted zone for %s is already associated with VPC %s in region %s.", name, vpc.ID, vpc.Region)}
			}
		}
		z.vpcs = []r53VPC{vpc}
	}
	z.nameServers = s.nameServersLocked(private)
	z.seedRecords()
	s.r53.zones[z.id] = z
	s.r53.order = append(s.r53.order, z)
	s.r53.refs[z.callerRef] = z
	ch := s.newChangeLocked(now, "")
	out := createHostedZoneResponse{HostedZone: z.wire(), ChangeInfo: ch.wire()}
	if private {
		out.VPC = &z.vpcs[0]
	} else {
		out.DelegationSet = &xmlDelegationSet{NameServers: slices.Clone(z.nameServers)}
	}
	return out, nil
}

// vpcExistsLocked reports a VPC of the simulated account.
func (s *Sim) vpcExistsLocked(id string) bool {
	for _, sn := range s.subnets {
		if sn.vpcID == id {
			return true
		}
	}
	return false
}

// route53ID is a new zone ("Z") or change ("C") id: the prefix and 20
// upper-case letters and digits, as Route 53's look; s.mu is held.
func (s *Sim) route53ID(prefix string) string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	for {
		b := []byte(prefix)
		for range 20 {
			b = append(b, alphabet[s.rng.IntN(len(alphabet))])
		}
		id := string(b)
		if _, dup := s.ids[id]; !dup {
			s.ids[id] = struct{}{}
			return id
		}
	}
}

// nameServersLocked picks a zone's four name servers, one per top-level
// domain, as Route 53's delegation sets have them.
func (s *Sim) nameServersLocked(private bool) []string {
	if private {
		return []string{"ns-0.awsdns-00.com.", "ns-512.awsdns-00.net.", "ns-1024.awsdns-00.org.", "ns-1536.awsdns-00.co.uk."}
	}
	n := s.rng.IntN(512)
	return []string{
		fmt.Sprintf("ns-%d.awsdns-%02d.com.", n, n%64),
		fmt.Sprintf("ns-%d.awsdns-%02d.net.", 512+n, n%64),
		fmt.Sprintf("ns-%d.awsdns-%02d.org.", 1024+n, n%64),
		fmt.Sprintf("ns-%d.awsdns-%02d.co.uk.", 1536+n, n%64),
	}
}

// zoneName checks and normalizes a zone's name: lower case, with the
// trailing dot.
func zoneName(n string) (string, error) {
	name := canonicalName(n)
	if name == "." || len(name) > 255 || strings.Contains(name, "..") || strings.ContainsAny(name, " *") {
		return "", apiErr("InvalidDomainName", "%s is not a valid domain name.", n)
	}
	for _, l := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		if len(l) > 63 {
			return "", apiErr("InvalidDomainName", "%s is not a valid domain name.", n)
		}
	}
	if slices.Contains([]string{"com.", "net.", "org.", "amazonaws.com.", "aws."}, name) {
		return "", apiErr("InvalidDomainName", "%s is reserved by AWS!", name)
	}
	return name, nil
}

// canonicalName is a DNS name as Route 53 stores it: lower case, ending
// in a dot.
func canonicalName(n string) string {
	n = strings.ToLower(strings.TrimSpace(n))
	if !strings.HasSuffix(n, ".") {
		n += "."
	}
	return n
}

// seedRecords gives a new zone its SOA and NS records.
func (z *hostedZone) seedRecords() {
	soa := fmt.Sprintf("%s awsdns-hostmaster.amazon.com. 1 7200 900 1209600 86400", z.nameServers[0])
	ns := &rrset{Name: z.name, Type: "NS", TTL: ptr(int64(172800))}
	for _, n := range z.nameServers {
		ns.Records = append(ns.Records, rrValue{n})
	}
	z.put(ns)
	z.put(&rrset{Name: z.name, Type: "SOA", TTL: ptr(int64(900)), Records: []rrValue{{soa}}})
}

func ptr[T any](v T) *T { return &v }

func (z *hostedZone) wire() xmlHostedZone {
	return xmlHostedZone{
		ID: "/hostedzone/" + z.id, Name: z.name, CallerReference: z.callerRef,
		Config:                 &xmlZoneConfig{Comment: z.comment, PrivateZone: z.private},
		ResourceRecordSetCount: len(z.records),
	}
}

// zoneLocked returns the zone of id (with or without its /hostedzone/
// prefix), or NoSuchHostedZone; s.mu is held.
func (s *Sim) zoneLocked(id string) (*hostedZone, error) {
	id = trimRoute53ID(id)
	if z := s.r53.zones[id]; z != nil {
		return z, nil
	}
	return nil, noSuchZone(id)
}

type getHostedZoneResponse struct {
	XMLName       xml.Name          `xml:"https://route53.amazonaws.com/doc/2013-04-01/ GetHostedZoneResponse"`
	HostedZone    xmlHostedZone     `xml:"HostedZone"`
	DelegationSet *xmlDelegationSet `xml:"DelegationSet,omitempty"`
	VPCs          []r53VPC          `xml:"VPCs>VPC,omitempty"`
}

func (s *Sim) getHostedZone(r *request) (any, error) {
	s.lock()
	defer s.mu.Unlock()
	z, err := s.zoneLocked(r.str("Id"))
	if err != nil {
		return nil, err
	}
	out := getHostedZoneResponse{HostedZone: z.wire(), VPCs: slices.Clone(z.vpcs)}
	if !z.private {
		out.DelegationSet = &xmlDelegationSet{NameServers: slices.Clone(z.nameServers)}
	}
	return out, nil
}

type listHostedZonesResponse struct {
	XMLName     xml.Name        `xml:"https://route53.amazonaws.com/doc/2013-04-01/ ListHostedZonesResponse"`
	HostedZones []xmlHostedZone `xml:"HostedZones>HostedZone"`
	Marker      string          `xml:"Marker"`
	IsTruncated bool            `xml:"IsTruncated"`
	NextMarker  string          `xml:"NextMarker,omitempty"`
	MaxItems    int             `xml:"MaxItems"`
}

// ListHostedZones pages in creation order; the marker is the id of the
// first zone of the next page.
func (s *Sim) listHostedZones(r *request) (any, error) {
	max, err := r.maxItems("maxitems", 100, 100)
	if err != nil {
		return nil, err
	}
	marker := trimRoute53ID(r.str("marker"))
	s.lock()
	defer s.mu.Unlock()
	out := listHostedZonesResponse{Marker: r.str("marker"), MaxItems: max, HostedZones: []xmlHostedZone{}}
	start := 0
	if marker != "" {
		i := slices.IndexFunc(s.r53.order, func(z *hostedZone) bool { return z.id == marker })
		if i < 0 {
			return nil, route53Input("Invalid marker: %s", marker)
		}
		start = i
	}
	for _, z := range s.r53.order[start:] {
		if len(out.HostedZones) == max {
			out.IsTruncated, out.NextMarker = true, z.id
			break
		}
		out.HostedZones = append(out.HostedZones, z.wire())
	}
	return out, nil
}

type listHostedZonesByNameResponse struct {
	XMLName          xml.Name        `xml:"https://route53.amazonaws.com/doc/2013-04-01/ ListHostedZonesByNameResponse"`
	HostedZones      []xmlHostedZone `xml:"HostedZones>HostedZone"`
	DNSName          string          `xml:"DNSName,omitempty"`
	HostedZoneID     string          `xml:"HostedZoneId,omitempty"`
	IsTruncated      bool            `xml:"IsTruncated"`
	NextDNSName      string          `xml:"NextDNSName,omitempty"`
	NextHostedZoneID string          `xml:"NextHostedZoneId,omitempty"`
	MaxItems         int             `xml:"MaxItems"`
}

// ListHostedZonesByName lists zones sorted by name with its labels
// reversed (com.example.www.), then by id, from dnsname (and hostedzoneid)
// on.
func (s *Sim) listHostedZonesByName(r *request) (any, error) {
	max, err := r.maxItems("maxitems", 100, 100)
	if err != nil {
		return nil, err
	}
	dns, zid := r.str("dnsname"), trimRoute53ID(r.str("hostedzoneid"))
	if zid != "" && dns == "" {
		return nil, route53Input("The input is not valid: hostedzoneid requires dnsname")
	}
	from := ""
	if dns != "" {
		from = reverseLabels(canonicalName(dns))
	}
	s.lock()
	defer s.mu.Unlock()
	zones := slices.Clone(s.r53.order)
	key := func(z *hostedZone) string { return reverseLabels(z.name) + "\x00" + z.id }
	slices.SortFunc(zones, func(a, b *hostedZone) int { return strings.Compare(key(a), key(b)) })
	out := listHostedZonesByNameResponse{DNSName: dns, HostedZoneID: r.str("hostedzoneid"), MaxItems: max, HostedZones: []xmlHostedZone{}}
	for _, z := range zones {
		if dns != "" && key(z) < from+"\x00"+zid {
			continue
		}
		if len(out.HostedZones) == max {
			out.IsTruncated, out.NextDNSName, out.NextHostedZoneID = true, z.name, z.id
			break
		}
		out.HostedZones = append(out.HostedZones, z.wire())
	}
	return out, nil
}

// reverseLabels is "www.example.com." as "com.example.www.", the key
// Route 53 sorts names by.
func reverseLabels(name string) string {
	labels := strings.Split(strings.TrimSuffix(name, "."), ".")
	slices.Reverse(labels)
	return strings.Join(labels, ".") + "."
}

type updateHostedZoneCommentResponse struct {
	XMLName    xml.Name      `xml:"https://route53.amazonaws.com/doc/2013-04-01/ UpdateHostedZoneCommentResponse"`
	HostedZone xmlHostedZone `xml:"HostedZone"`
}

func (s *Sim) updateHostedZoneComment(r *request) (any, error) {
	var in struct {
		Comment string `xml:"Comment"`
	}
	if err := r.xmlBody(&in); err != nil {
		return nil, err
	}
	if len(in.Comment) > 256 {
		return nil, route53Input("1 validation error detected: Value at 'comment' failed to satisfy constraint: Member must have length less than or equal to 256")
	}
	s.lock()
	defer s.mu.Unlock()
	z, err := s.zoneLocked(r.str("Id"))
	if err != nil {
		return nil, err
	}
	z.comment = in.Comment
	return updateHostedZoneCommentResponse{HostedZone: z.wire()}, nil
}

type deleteHostedZoneResponse struct {
	XMLName    xml.Name      `xml:"https://route53.amazonaws.com/doc/2013-04-01/ DeleteHostedZoneResponse"`
	ChangeInfo xmlChangeInfo `xml:"ChangeInfo"`
}

// DeleteHostedZone refuses a zone that holds records other than its own
// SOA and NS (HostedZoneNotEmpty).
func (s *Sim) deleteHostedZone(r *request) (any, error) {
	now := s.lock()
	defer s.mu.Unlock()
	z, err := s.zoneLocked(r.str("Id"))
	if err != nil {
		return nil, err
	}
	for _, rs := range z.records {
		if !z.required(rs) {
			return nil, apiErr("HostedZoneNotEmpty", "The specified hosted zone contains non-required resource record sets and so cannot be deleted.")
		}
	}
	delete(s.r53.zones, z.id)
	delete(s.r53.refs, z.callerRef)
	s.r53.order = slices.DeleteFunc(s.r53.order, func(o *hostedZone) bool { return o == z })
	return deleteHostedZoneResponse{ChangeInfo: s.newChangeLocked(now, "").wire()}, nil
}

// required reports the zone's own SOA and NS records, which it cannot be
// without.
func (z *hostedZone) required(rs *rrset) bool {
	return rs.Name == z.name && (rs.Type == "SOA" || rs.Type == "NS") && rs.SetIdentifier == ""
}

// r53Change is one submitted change: PENDING, then INSYNC once
// Durations.DNSChange has passed.
type r53Change struct {
	id, status, comment string
	submitted           time.Time
}

func (c *r53Change) wire() xmlChangeInfo {
	return xmlChangeInfo{ID: "/change/" + c.id, Status: c.status, SubmittedAt: isoTime(c.submitted), Comment: c.comment}
}

// newChangeLocked records a PENDING change that goes INSYNC after
// Durations.DNSChange (scaled); s.mu is held.
func (s *Sim) newChangeLocked(now time.Time, comment string) *r53Change {
	c := &r53Change{id: s.route53ID("C"), status: "PENDING", comment: comment, submitted: now}
	s.r53.changes[c.id] = c
	s.after(now, s.opts.Durations.DNSChange, func(time.Time) { c.status = "INSYNC" })
	return c
}

type getChangeResponse struct {
	XMLName    xml.Name      `xml:"https://route53.amazonaws.com/doc/2013-04-01/ GetChangeResponse"`
	ChangeInfo xmlChangeInfo `xml:"ChangeInfo"`
}

func (s *Sim) getChange(r *request) (any, error) {
	s.lock()
	defer s.mu.Unlock()
	id := r.str("Id")
	c := s.r53.changes[id]
	if c == nil {
		return nil, &APIError{Status: http.StatusNotFound, Code: "NoSuchChange", Message: "A change with the specified change ID does not exist: " + id}
	}
	return getChangeResponse{ChangeInfo: c.wire()}, nil
}
