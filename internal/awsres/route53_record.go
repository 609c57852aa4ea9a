package awsres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"

	"kiln/internal/awsapi"
	"kiln/internal/config"
	"kiln/internal/engine"
	"kiln/internal/iampolicy"
)

// Record is the aws:route53_record kind: one record set of a hosted zone
// (a name, a type and, for weighted routing, a set identifier), kept with
// its TTL and values, or as an alias, or absent. The records of one zone
// share the DNS hub: one listing per poll for all of them, their changes
// batched into one ChangeResourceRecordSets per check window, and one
// GetChange loop while they wait for INSYNC. Outputs: fqdn, zone_id.
type Record struct {
	Zone          string   `yaml:"zone"`   // zone name (example.com: a dot) or id (Z..., /hostedzone/Z...: no dot)
	Record        string   `yaml:"record"` // the record's full name (www.example.com)
	Type          string   `yaml:"type"`
	TTL           *int64   `yaml:"ttl"`    // default 300; not with alias
	Values        []string `yaml:"values"` // TXT values are quoted for Route 53 when they are not
	Alias         *Alias   `yaml:"alias"`
	SetIdentifier string   `yaml:"set_identifier"` // weighted routing: with weight
	Weight        *int64   `yaml:"weight"`
	State         string   `yaml:"state"` // present (default) | absent

	hubs *awsapi.Hubs
	env  engine.Env
	poll time.Duration

	dns  *awsapi.DNS
	zone awsapi.Zone

	mu sync.Mutex // guards zone once resolved
	dnsCheck
}

// dnsCheck is what the Route 53 kinds keep between a check and their
// watch: the plan of the last check-only pass (Changes), and whether a
// check is applying (the watch stays quiet about its own changes).
type dnsCheck struct {
	cmu     sync.Mutex
	planned []string
	busy    bool
}

// begin starts a check: it clears the plan, marks an applying check busy,
// and returns the func that ends it.
func (c *dnsCheck) begin(apply bool) (end func()) {
	c.cmu.Lock()
	c.planned, c.busy = nil, apply
	c.cmu.Unlock()
	return func() {
		c.cmu.Lock()
		c.busy = false
		c.cmu.Unlock()
	}
}

// plan records what a check-only pass found to do.
func (c *dnsCheck) plan(changes ...string) {
	c.cmu.Lock()
	c.planned = changes
	c.cmu.Unlock()
}

// applying reports a check that is changing things.
func (c *dnsCheck) applying() bool {
	c.cmu.Lock()
	defer c.cmu.Unlock()
	return c.busy
}

// Changes lists what the last check-only pass found to do.
func (c *dnsCheck) Changes() []string {
	c.cmu.Lock()
	defer c.cmu.Unlock()
	return slices.Clone(c.planned)
}

// Alias points a record at another DNS name Route 53 answers for (a load
// balancer, a CloudFront distribution, a record of a zone).
type Alias struct {
	Name                 string `yaml:"name"`    // the target's DNS name
	ZoneID               string `yaml:"zone_id"` // the target's hosted zone id
	EvaluateTargetHealth bool   `yaml:"evaluate_target_health"`
}

// The states of aws:route53_record and aws:route53_zone.
const (
	StatePresent = "present"
	StateAbsent  = "absent"
)

// DefaultTTL is a record's TTL when the graph gives none.
const DefaultTTL = 300

// recordTypes are the record types kind aws:route53_record manages.
var recordTypes = []string{"A", "AAAA", "CAA", "CNAME", "DS", "HTTPS", "MX", "NAPTR", "NS", "PTR", "SPF", "SRV", "SSHFP", "SVCB", "TLSA", "TXT"}

// NewRecord returns an empty aws:route53_record using the shared hubs.
func NewRecord(hubs *awsapi.Hubs) *Record { return &Record{hubs: hubs} }

// Validate checks the fields (values holding a ${...} reference are
// checked once resolved).
func (r *Record) Validate() error {
	var errs []error
	if r.Zone == "" {
		errs = append(errs, config.Fieldf("zone", "required (a zone name like example.com, or its id Z...)"))
	}
	if r.Record == "" {
		errs = append(errs, config.Fieldf("record", "required (the record's full name, e.g. www.example.com)"))
	} else if r.zoneByName() && !config.HasRef(r.Record) && !inZone(r.Record, r.Zone) {
		errs = append(errs, config.Fieldf("record", "%s is not in zone %s (give the full name, e.g. www.%s)", awsapi.CanonicalName(r.Record), awsapi.CanonicalName(r.Zone), strings.TrimSuffix(awsapi.CanonicalName(r.Zone), ".")))
	}
	typ := strings.ToUpper(r.Type)
	switch {
	case r.Type == "":
		errs = append(errs, config.Fieldf("type", "required (%s)", strings.Join(recordTypes, ", ")))
	case !config.HasRef(r.Type) && !slices.Contains(recordTypes, typ):
		errs = append(errs, config.Fieldf("type", "unknown record type %q (want one of %s)", r.Type, strings.Join(recordTypes, ", ")))
	}
	switch r.State {
	case "", StatePresent:
		errs = append(errs, r.validatePresent(typ)...)
	case StateAbsent:
	default:
		errs = append(errs, config.Fieldf("state", "want present or absent, got %q", r.State))
	}
	if r.SetIdentifier != "" && r.Weight == nil {
		errs = append(errs, config.Fieldf("set_identifier", "needs weight (kiln manages weighted routing)"))
	}
	if r.Weight != nil {
		if r.SetIdentifier == "" {
			errs = append(errs, config.Fieldf("weight", "needs set_identifier"))
		}
		if *r.Weight < 0 || *r.Weight > 255 {
			errs = append(errs, config.Fieldf("weight", "want 0 to 255, got %d", *r.Weight))
		}
	}
	if len(r.SetIdentifier) > 128 {
		errs = append(errs, config.Fieldf("set_identifier", "at most 128 characters, got %d", len(r.SetIdentifier)))
	}
	return errors.Join(errs...)
}

func (r *Record) validatePresent(typ string) []error {
	var errs []error
	switch {
	case r.Alias != nil && len(r.Values) > 0:
		errs = append(errs, config.Fieldf("values", "not with alias (an alias has no values)"))
	case r.Alias != nil && r.TTL != nil:
		errs = append(errs, config.Fieldf("ttl", "not with alias (an alias takes its target's TTL)"))
	case r.Alias == nil && len(r.Values) == 0:
		errs = append(errs, config.Fieldf("values", "required (or alias)"))
	}
	if r.Alias != nil {
		if r.Alias.Name == "" {
			errs = append(errs, config.Fieldf("alias.name", "required (the target's DNS name)"))
		}
		if r.Alias.ZoneID == "" {
			errs = append(errs, config.Fieldf("alias.zone_id", "required (the target's hosted zone id)"))
		}
	}
	if r.TTL != nil && (*r.TTL < 0 || *r.TTL > 2147483647) {
		errs = append(errs, config.Fieldf("ttl", "want 0 to 2147483647 seconds, got %d", *r.TTL))
	}
	if typ == "CNAME" && len(r.Values) > 1 {
		errs = append(errs, config.Fieldf("values", "a CNAME has exactly one value, got %d", len(r.Values)))
	}
	for i, v := range r.Values {
		if config.HasRef(v) {
			continue
		}
		if msg := checkValue(typ, v); msg != "" {
			errs = append(errs, config.Fieldf(fmt.Sprintf("values[%d]", i), "%s", msg))
		}
	}
	return errs
}

// checkValue returns what is wrong with v as a value of type typ.
func checkValue(typ, v string) string {
	switch typ {
	case "A":
		if a, err := netip.ParseAddr(v); err != nil || !a.Is4() {
			return fmt.Sprintf("%q is not an IPv4 address (an A record holds addresses; use CNAME for a name)", v)
		}
	case "AAAA":
		if a, err := netip.ParseAddr(v); err != nil || !a.Is6() || a.Is4In6() {
			return fmt.Sprintf("%q is not an IPv6 address", v)
		}
	case "MX":
		f := strings.Fields(v)
		if len(f) != 2 {
			return fmt.Sprintf("want \"PRIORITY HOST\" (e.g. \"10 mail.example.com\"), got %q", v)
		}
		if p, err := strconv.Atoi(f[0]); err != nil || p < 0 || p > 65535 {
			return fmt.Sprintf("priority %q: want 0 to 65535", f[0])
		}
	case "CNAME":
		if _, err := netip.ParseAddr(v); err == nil {
			return fmt.Sprintf("%q is an address; a CNAME holds a name (use an A or AAAA record)", v)
		}
	}
	if v == "" {
		return "empty value"
	}
	return ""
}

// zoneByName reports a zone given by its name (not by id or reference):
// then validate can tell whether the record lies in it.
func (r *Record) zoneByName() bool {
	return r.Zone != "" && !config.HasRef(r.Zone) && !r.zoneByID()
}

func (r *Record) zoneByID() bool { return awsapi.IsZoneID(strings.TrimPrefix(r.Zone, "/hostedzone/")) }

// inZone reports whether name is the zone's apex or below it.
func inZone(name, zone string) bool {
	n, z := awsapi.CanonicalName(name), awsapi.CanonicalName(zone)
	return n == z || strings.HasSuffix(n, "."+z)
}

// ValidatePeers refuses a record that another resource of the graph
// already declares, a CNAME beside other records at one name, and a
// weighted set beside a simple one of the same name and type: Route 53
// would refuse the second at apply time.
func (r *Record) ValidatePeers(earlier []config.Peer) error {
	if config.HasRef(r.Zone) || config.HasRef(r.Record) || config.HasRef(r.Type) || r.State == StateAbsent {
		return nil
	}
	var errs []error
	for _, p := range earlier {
		o, ok := p.Res.(*Record)
		if !ok || o.State == StateAbsent || config.HasRef(o.Zone) || config.HasRef(o.Record) ||
			awsapi.CanonicalName(o.Zone) != awsapi.CanonicalName(r.Zone) || awsapi.CanonicalName(o.Record) != awsapi.CanonicalName(r.Record) {
			continue
		}
		mine, theirs := strings.ToUpper(r.Type), strings.ToUpper(o.Type)
		switch {
		case mine == theirs && o.SetIdentifier == r.SetIdentifier:
			errs = append(errs, config.Fieldf("record", "%s %s is declared by aws:route53_record/%s already", awsapi.CanonicalName(r.Record), mine, p.Name))
		case mine == theirs && (o.SetIdentifier == "") != (r.SetIdentifier == ""):
			errs = append(errs, config.Fieldf("set_identifier", "%s %s is weighted in one resource and not in aws:route53_record/%s: give both a set_identifier and a weight, or neither", awsapi.CanonicalName(r.Record), mine, p.Name))
		case (mine == "CNAME") != (theirs == "CNAME"):
			errs = append(errs, config.Fieldf("type", "a CNAME cannot share its name with other records: %s has %s here and %s in aws:route53_record/%s", awsapi.CanonicalName(r.Record), mine, theirs, p.Name))
		}
	}
	return errors.Join(errs...)
}

// Init receives the vertex's identity.
func (r *Record) Init(env engine.Env) error {
	r.env = env
	return nil
}

// SetPoll sets the interval of the zone's shared listing (the poll
// meta-param). Default: the hub's (60 s).
func (r *Record) SetPoll(d time.Duration) { r.poll = d }

// IAMActions are the Route 53 calls CheckApply and Watch may make.
func (r *Record) IAMActions() []string {
	acts := []string{"route53:ListResourceRecordSets", "route53:ChangeResourceRecordSets", "route53:GetChange"}
	if r.zoneByID() || config.HasRef(r.Zone) {
		acts = append(acts, "route53:GetHostedZone")
	}
	if !r.zoneByID() {
		acts = append(acts, "route53:ListHostedZonesByName")
	}
	return acts
}

// Outputs are fqdn (the record's name with its trailing dot) and zone_id.
func (r *Record) Outputs() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return map[string]string{"fqdn": awsapi.CanonicalName(r.Record), "zone_id": r.zone.ID}
}

func (r *Record) log() *slog.Logger {
	if r.env.Log != nil {
		return r.env.Log
	}
	return slog.New(slog.DiscardHandler)
}

// resolve finds the DNS hub and the zone, and checks the record lies in
// it (a zone given by id or reference is only known now).
func (r *Record) resolve(ctx context.Context) error {
	if r.dns != nil {
		return nil
	}
	if r.hubs == nil {
		return engine.Permanent(errors.New("aws:route53_record: no AWS hubs (constructed without NewRecord)"))
	}
	d, err := r.hubs.DNS(ctx)
	if err != nil {
		return err
	}
	z, err := d.ResolveZone(ctx, r.Zone)
	if err != nil {
		return fmt.Errorf("zone: %w", err)
	}
	if !inZone(r.Record, z.Name) {
		return engine.Permanent(fmt.Errorf("record: %s is not in zone %s (%s)", awsapi.CanonicalName(r.Record), z.Name, z.ID))
	}
	r.mu.Lock()
	r.dns, r.zone = d, z
	r.mu.Unlock()
	return nil
}

// key is the record set's key in its zone.
func (r *Record) key() awsapi.RecordKey {
	return awsapi.RecordKey{Name: awsapi.CanonicalName(r.Record), Type: strings.ToUpper(r.Type), SetID: r.SetIdentifier}
}

// desired is the record set the spec asks for (state present).
func (r *Record) desired() types.ResourceRecordSet {
	k := r.key()
	rs := types.ResourceRecordSet{Name: aws.String(k.Name), Type: types.RRType(k.Type)}
	if r.SetIdentifier != "" {
		rs.SetIdentifier, rs.Weight = aws.String(r.SetIdentifier), r.Weight
	}
	if r.Alias != nil {
		rs.AliasTarget = &types.AliasTarget{
			DNSName:              aws.String(awsapi.CanonicalName(r.Alias.Name)),
			HostedZoneId:         aws.String(strings.TrimPrefix(r.Alias.ZoneID, "/hostedzone/")),
			EvaluateTargetHealth: r.Alias.EvaluateTargetHealth,
		}
		return rs
	}
	rs.TTL = aws.Int64(DefaultTTL)
	if r.TTL != nil {
		rs.TTL = aws.Int64(*r.TTL)
	}
	for _, v := range r.Values {
		rs.ResourceRecords = append(rs.ResourceRecords, types.ResourceRecord{Value: aws.String(r.wireValue(v))})
	}
	return rs
}

// wireValue is a value as Route 53 holds it: TXT and SPF strings quoted,
// names of CNAME, MX, NS and PTR records without case.
func (r *Record) wireValue(v string) string {
	switch strings.ToUpper(r.Type) {
	case "TXT", "SPF":
		if !strings.HasPrefix(v, `"`) {
			return strconv.Quote(v)
		}
	}
	return v
}

// diff describes how the record set cur (nil: none) differs from the
// spec, one line a difference; nil when it matches.
func (r *Record) diff(cur *types.ResourceRecordSet) []string {
	k := r.key()
	label := fmt.Sprintf("%s %s", k.Name, k.Type)
	if k.SetID != "" {
		label += fmt.Sprintf(" (set %s)", k.SetID)
	}
	if r.State == StateAbsent {
		if cur == nil {
			return nil
		}
		return []string{"delete record " + label + " " + describeSet(*cur)}
	}
	want := r.desired()
	if cur == nil {
		return []string{"create record " + label + " " + describeSet(want)}
	}
	var d []string
	if got, w := describeTarget(*cur), describeTarget(want); got != w {
		d = append(d, fmt.Sprintf("%s -> %s", got, w))
	}
	if aws.ToInt64(cur.TTL) != aws.ToInt64(want.TTL) {
		d = append(d, fmt.Sprintf("ttl %d -> %d", aws.ToInt64(cur.TTL), aws.ToInt64(want.TTL)))
	}
	if aws.ToInt64(cur.Weight) != aws.ToInt64(want.Weight) {
		d = append(d, fmt.Sprintf("weight %d -> %d", aws.ToInt64(cur.Weight), aws.ToInt64(want.Weight)))
	}
	if len(d) == 0 {
		return nil
	}
	return []string{"update record " + label + ": " + strings.Join(d, ", ")}
}

// describeSet is a record set's TTL and target, for plan.
func describeSet(rs types.ResourceRecordSet) string {
	if rs.AliasTarget != nil {
		return describeTarget(rs)
	}
	return fmt.Sprintf("%s ttl %d", describeTarget(rs), aws.ToInt64(rs.TTL))
}

// describeTarget is a record set's values (sorted) or its alias.
func describeTarget(rs types.ResourceRecordSet) string {
	if a := rs.AliasTarget; a != nil {
		return fmt.Sprintf("alias %s (zone %s, evaluate health %t)", awsapi.CanonicalName(aws.ToString(a.DNSName)), aws.ToString(a.HostedZoneId), a.EvaluateTargetHealth)
	}
	vals := make([]string, len(rs.ResourceRecords))
	for i, v := range rs.ResourceRecords {
		vals[i] = aws.ToString(v.Value)
	}
	slices.Sort(vals)
	return "[" + strings.Join(vals, " ") + "]"
}

// freshListing is how old a zone listing a check may read: the records of
// a zone are checked together (at start, after a poll found drift), and
// one listing a second serves them all; a check right after the record's
// own change reads what the change wrote (see DNS.Records).
const freshListing = time.Second

// CheckApply reads the zone's record sets (the shared listing), compares
// the record with the spec, and when apply is set submits the change
// (UPSERT, or DELETE with the current values) and waits for INSYNC.
func (r *Record) CheckApply(ctx context.Context, apply bool) (bool, error) {
	defer r.begin(apply)()
	if err := r.resolve(ctx); err != nil {
		if r.State == StateAbsent && awsapi.IsNoZone(err) {
			return true, nil // no zone, no record
		}
		return false, err
	}
	l, err := r.dns.Records(ctx, r.zone.ID, freshListing)
	if err != nil {
		return false, err
	}
	cur := r.current(l)
	owner := r.currentOwner(l)
	if err := r.checkOwner(owner); err != nil {
		return false, err
	}
	d := r.diff(cur)
	if od := r.diffOwner(owner); len(d) == 0 && od != "" {
		d = []string{od}
	}
	if len(d) == 0 {
		return true, nil
	}
	if !apply {
		r.plan(d...)
		return false, nil
	}
	// The record and its ownership record change in one batch: both or
	// neither.
	var chs []types.Change
	if r.State == StateAbsent {
		if cur != nil {
			chs = append(chs, types.Change{Action: types.ChangeActionDelete, ResourceRecordSet: cur})
		}
		if owner != nil {
			chs = append(chs, types.Change{Action: types.ChangeActionDelete, ResourceRecordSet: owner})
		}
	} else {
		want, own := r.desired(), r.ownerSet()
		chs = append(chs, types.Change{Action: types.ChangeActionUpsert, ResourceRecordSet: &want},
			types.Change{Action: types.ChangeActionUpsert, ResourceRecordSet: &own})
	}
	id, err := r.dns.ChangeTogether(ctx, r.zone.ID, chs...)
	if err != nil {
		return false, fmt.Errorf("%s: %w", d[0], err)
	}
	r.log().Info("record changed", "change", d[0], "change_id", id)
	if err := r.dns.AwaitInsync(ctx, id); err != nil {
		return false, fmt.Errorf("wait for change %s to be INSYNC: %w", id, err)
	}
	return false, nil
}

// ownerSet is the record's ownership record set (route53_owner.go).
func (r *Record) ownerSet() types.ResourceRecordSet {
	return ownerSet(r.key(), r.env.Graph, r.env.ID)
}

// currentOwner is the record's ownership record set in l, nil when none.
func (r *Record) currentOwner(l *awsapi.Listing) *types.ResourceRecordSet {
	rs, ok := l.Sets[ownerKey(r.key())]
	if !ok {
		return nil
	}
	return &rs
}

// checkOwner refuses a record whose ownership record names another
// graph or resource: kiln never changes a record someone else owns. A
// record with no ownership record is taken over (the graph declares it);
// kiln adopt does the same without changing the record.
func (r *Record) checkOwner(owner *types.ResourceRecordSet) error {
	g, id := recordOwner(owner)
	if owner == nil || (g == r.env.Graph && id == r.env.ID) {
		return nil
	}
	k := r.key()
	return engine.Permanent(fmt.Errorf("record %s %s: %w: its ownership record %s says graph %q, resource %q",
		k.Name, k.Type, errOwnedElsewhere, OwnerRecordName(k.Name, k.Type), g, id))
}

// diffOwner is the change the ownership record needs ("" none): written
// beside a present record, deleted with an absent one.
func (r *Record) diffOwner(owner *types.ResourceRecordSet) string {
	name := OwnerRecordName(r.key().Name, r.key().Type)
	switch {
	case r.State == StateAbsent && owner != nil:
		return "delete ownership record " + name
	case r.State != StateAbsent && owner == nil:
		return "write ownership record " + name + " " + OwnerValue(r.env.Graph, r.env.ID)
	}
	return ""
}

// current is the record's set in listing l, nil when there is none.
func (r *Record) current(l *awsapi.Listing) *types.ResourceRecordSet {
	rs, ok := l.Sets[r.key()]
	if !ok {
		return nil
	}
	return &rs
}

// Watch subscribes to the zone's shared listing and calls Changed when
// the record differs from the spec; it stays quiet while a CheckApply
// changes it. It blocks until ctx is done.
func (r *Record) Watch(ctx context.Context, ev engine.Events) error {
	if err := r.resolve(ctx); err != nil {
		if r.State != StateAbsent || !awsapi.IsNoZone(err) {
			return err
		}
		ev.Running() // an absent record of a zone that is gone: nothing to watch
		<-ctx.Done()
		return ctx.Err()
	}
	cancel := r.dns.Subscribe(r.zone.ID, r.poll, func(l *awsapi.Listing) {
		if !r.applying() && len(r.diff(r.current(l))) > 0 {
			r.log().Info("record drifted", "record", r.key().Name, "type", r.key().Type)
			ev.Changed()
		}
		engine.Polled(ev) // the page's last check follows the poll
	})
	defer cancel()
	ev.Running()
	<-ctx.Done()
	return ctx.Err()
}

var (
	_ engine.Resource       = (*Record)(nil)
	_ engine.Changer        = (*Record)(nil)
	_ config.PeerValidator  = (*Record)(nil)
	_ iampolicy.IAMActioner = (*Record)(nil)
)
