package awsres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"

	"kiln/internal/awsapi"
	"kiln/internal/config"
	"kiln/internal/engine"
	"kiln/internal/testsupport"
)

// dnsWorld is a world with a public zone example.com and a Route 53
// client of its own: "another client", for changes by hand.
func dnsWorld(t *testing.T, poll time.Duration) (*world, *route53.Client, string) {
	t.Helper()
	w := newWorld(t, worldOpts{poll: poll})
	c, err := w.hubs.Route53(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.CreateHostedZone(t.Context(), &route53.CreateHostedZoneInput{Name: aws.String("example.com"), CallerReference: aws.String("by-hand")})
	if err != nil {
		t.Fatal(err)
	}
	return w, c, strings.TrimPrefix(aws.ToString(out.HostedZone.Id), "/hostedzone/")
}

func (w *world) record(name string, mod func(*Record)) *Record {
	r := NewRecord(w.hubs)
	r.Zone, r.Record, r.Type, r.Values = "example.com", name+".example.com", "A", []string{"10.0.0.1"}
	if mod != nil {
		mod(r)
	}
	_ = r.Init(engine.Env{Graph: graph, ID: "aws:route53_record/" + name, Kind: "aws:route53_record", Name: name, Log: testLog})
	return r
}

// recordSet returns the record set name/typ of zone, nil when there is none.
func recordSet(t *testing.T, c *route53.Client, zone, name, typ string) *r53types.ResourceRecordSet {
	t.Helper()
	out, err := c.ListResourceRecordSets(t.Context(), &route53.ListResourceRecordSetsInput{HostedZoneId: aws.String(zone), StartRecordName: aws.String(name), StartRecordType: r53types.RRType(typ)})
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range out.ResourceRecordSets {
		if aws.ToString(rs.Name) == name && string(rs.Type) == typ {
			return &rs
		}
	}
	return nil
}

func values(rs *r53types.ResourceRecordSet) []string {
	var out []string
	for _, v := range rs.ResourceRecords {
		out = append(out, aws.ToString(v.Value))
	}
	return out
}

func TestRecordConverges(t *testing.T) {
	w, c, zone := dnsWorld(t, 20*time.Millisecond)
	r := w.record("www", func(r *Record) { r.Values = []string{"10.0.0.2", "10.0.0.1"}; r.TTL = aws.Int64(60) })
	if ok, err := r.CheckApply(t.Context(), false); ok || err != nil {
		t.Fatalf("check only = %v, %v; want false, nil", ok, err)
	}
	if want := []string{"create record www.example.com. A [10.0.0.1 10.0.0.2] ttl 60"}; !slices.Equal(r.Changes(), want) {
		t.Errorf("Changes() = %q; want %q", r.Changes(), want)
	}
	if recordSet(t, c, zone, "www.example.com.", "A") != nil {
		t.Fatal("check only created the record")
	}
	if ok, err := r.CheckApply(t.Context(), true); ok || err != nil {
		t.Fatalf("apply = %v, %v; want false (changed), nil", ok, err)
	}
	rs := recordSet(t, c, zone, "www.example.com.", "A")
	if rs == nil || aws.ToInt64(rs.TTL) != 60 || len(rs.ResourceRecords) != 2 {
		t.Fatalf("record after apply = %+v", rs)
	}
	if ok, err := r.CheckApply(t.Context(), true); !ok || err != nil {
		t.Errorf("second check = %v, %v; want converged", ok, err)
	}
	if got := r.Outputs(); got["fqdn"] != "www.example.com." || got["zone_id"] != zone {
		t.Errorf("Outputs() = %v", got)
	}

	// A TTL change, then absent.
	r2 := w.record("www", func(r *Record) { r.Values = []string{"10.0.0.1", "10.0.0.2"}; r.TTL = aws.Int64(120) })
	if ok, _ := r2.CheckApply(t.Context(), false); ok || !slices.Equal(r2.Changes(), []string{"update record www.example.com. A: ttl 60 -> 120"}) {
		t.Errorf("plan of a TTL change = %q", r2.Changes())
	}
	gone := w.record("www", func(r *Record) { r.State = StateAbsent })
	if ok, err := gone.CheckApply(t.Context(), true); ok || err != nil {
		t.Fatalf("absent = %v, %v", ok, err)
	}
	if recordSet(t, c, zone, "www.example.com.", "A") != nil {
		t.Error("state absent left the record")
	}
	if ok, err := gone.CheckApply(t.Context(), true); !ok || err != nil {
		t.Errorf("absent again = %v, %v; want converged", ok, err)
	}
}

// TestRecordsShareCalls: 200 records of one zone converge through the
// engine with one listing and one change batch per window, and watch the
// zone with one listing per poll.
func TestRecordsShareCalls(t *testing.T) {
	w, _, zone := dnsWorld(t, time.Minute) // no poll while they converge
	var b strings.Builder
	b.WriteString("name: shop\nresources:\n")
	for i := range 200 {
		fmt.Fprintf(&b, "  - {kind: aws:route53_record, name: h%d, zone: example.com, record: h%d.example.com, type: TXT, values: [\"host %d\"]}\n", i, i, i)
	}
	kinds := config.Kinds{"aws:route53_record": func() engine.Resource { return NewRecord(w.hubs) }}
	g, err := config.Parse("dns.yaml", []byte(b.String()), kinds)
	if err != nil {
		t.Fatal(err)
	}
	w.sim.ResetCalls()
	if err := engine.New(g, engine.Options{Once: true, Workers: 256}).Run(t.Context()); err != nil {
		t.Fatalf("Run() = %v", err)
	}
	calls := callsOf(w.sim)
	// 200 UPSERTs of one value and their 200 ownership records: 800
	// ResourceRecord elements, one batch
	// when the checks arrive within one window (the test hubs' is 2 ms
	// idle, 20 ms at most, so a loaded machine may split them in a few).
	if calls["ChangeResourceRecordSets"] > 10 || calls["ListResourceRecordSets"] != 1 || calls["ListHostedZonesByName"] != 1 {
		t.Errorf("calls for 200 records = %v; want a few change batches (not one per record), 1 listing, 1 zone lookup", calls)
	}
	l, err := w.hubs.DNS(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got, err := l.Records(t.Context(), zone, 0)
	if err != nil || len(got.Sets) != 402 {
		t.Fatalf("records = %d, %v; want 402 (200, their ownership records, SOA and NS)", len(got.Sets), err)
	}
	if rs := got.Sets[awsapi.RecordKey{Name: "kiln-txt.h7.example.com.", Type: "TXT"}]; len(rs.ResourceRecords) != 1 || aws.ToString(rs.ResourceRecords[0].Value) != `"kiln:owner=shop,kiln:resource=aws:route53_record/h7"` {
		t.Errorf("h7's ownership record = %+v", rs)
	}
	if rs := got.Sets[awsapi.RecordKey{Name: "h7.example.com.", Type: "TXT"}]; len(rs.ResourceRecords) != 1 || aws.ToString(rs.ResourceRecords[0].Value) != `"host 7"` {
		t.Errorf("h7 = %+v; want the value quoted for Route 53", rs)
	}

	// Watching: 200 watchers, one listing per poll (20 ms).
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	watchers := make([]*polls, 200)
	for i := range watchers {
		r := w.record(fmt.Sprintf("h%d", i), func(r *Record) { r.Type, r.Values = "TXT", []string{fmt.Sprintf("host %d", i)} })
		r.SetPoll(20 * time.Millisecond)
		watchers[i] = &polls{changes: newChanges()}
		go func() { _ = r.Watch(ctx, watchers[i]) }()
	}
	for _, p := range watchers {
		<-p.running
	}
	w.sim.ResetCalls()
	base := make([]int64, len(watchers))
	for i, p := range watchers {
		base[i] = p.n.Load()
	}
	// since is the fewest and the most polls any watcher has seen since the
	// calls were reset.
	since := func() (least, most int64) {
		least = -1
		for i, p := range watchers {
			n := p.n.Load() - base[i]
			if least < 0 || n < least {
				least = n
			}
			most = max(most, n)
		}
		return least, most
	}
	testsupport.Eventually(t, "every watcher sees five polls", func() bool { least, _ := since(); return least >= 5 })
	n := w.sim.Calls("ListResourceRecordSets")
	_, most := since() // read after the calls: every listing counted has been handed out, but one in flight
	// One listing serves every watcher: the listings are the polls (one in
	// flight at the reset, one now), not one per record. A listing of 402
	// record sets (the records and their ownership records) is two pages
	// of 300.
	const pages = 2
	if n < 1 || int64(n) > pages*(most+2) {
		t.Errorf("listing pages while each of 200 records saw %d to %d polls = %d; want %d per poll, not one per record", 5, most, n, pages)
	}
}

// TestRecordDriftByHand: an UPSERT from another client is seen by the
// record's watch and put back by its check.
func TestRecordDriftByHand(t *testing.T) {
	w, c, zone := dnsWorld(t, 20*time.Millisecond)
	r := w.record("web", nil)
	if _, err := r.CheckApply(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ev := &polls{changes: newChanges()}
	go func() { _ = r.Watch(ctx, ev) }()
	<-ev.running
	testsupport.Eventually(t, "two polls with nothing to report", func() bool { return ev.n.Load() >= 2 })
	select {
	case <-ev.changed:
		t.Fatal("Changed without a drift")
	default:
	}
	if _, err := c.ChangeResourceRecordSets(t.Context(), &route53.ChangeResourceRecordSetsInput{HostedZoneId: aws.String(zone), ChangeBatch: &r53types.ChangeBatch{Changes: []r53types.Change{{
		Action: r53types.ChangeActionUpsert, ResourceRecordSet: &r53types.ResourceRecordSet{
			Name: aws.String("web.example.com"), Type: r53types.RRTypeA, TTL: aws.Int64(300),
			ResourceRecords: []r53types.ResourceRecord{{Value: aws.String("192.0.2.66")}},
		},
	}}}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ev.changed:
	case <-time.After(5 * time.Second):
		t.Fatal("the watch did not see the UPSERT by hand")
	}
	if ok, _ := r.CheckApply(t.Context(), false); ok || !slices.Equal(r.Changes(), []string{"update record web.example.com. A: [192.0.2.66] -> [10.0.0.1]"}) {
		t.Errorf("plan after the drift = %q", r.Changes())
	}
	if _, err := r.CheckApply(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	if rs := recordSet(t, c, zone, "web.example.com.", "A"); !slices.Equal(values(rs), []string{"10.0.0.1"}) {
		t.Errorf("after the repair = %v; want [10.0.0.1]", values(rs))
	}
}

func TestRecordWeightedAndAlias(t *testing.T) {
	w, c, zone := dnsWorld(t, 20*time.Millisecond)
	blue := w.record("api-blue", func(r *Record) {
		r.Record, r.SetIdentifier, r.Weight = "api.example.com", "blue", aws.Int64(90)
	})
	green := w.record("api-green", func(r *Record) {
		r.Record, r.SetIdentifier, r.Weight, r.Values = "api.example.com", "green", aws.Int64(10), []string{"10.0.0.2"}
	})
	alias := w.record("www", func(r *Record) {
		r.Values, r.Alias = nil, &Alias{Name: "api.example.com", ZoneID: zone, EvaluateTargetHealth: true}
	})
	for _, r := range []*Record{blue, green, alias} {
		if _, err := r.CheckApply(t.Context(), true); err != nil {
			t.Fatalf("%s: %v", r.Record, err)
		}
		if ok, err := r.CheckApply(t.Context(), true); !ok || err != nil {
			t.Errorf("%s again = %v, %v; want converged", r.Record, ok, err)
		}
	}
	out, err := c.ListResourceRecordSets(t.Context(), &route53.ListResourceRecordSetsInput{HostedZoneId: aws.String(zone), StartRecordName: aws.String("api.example.com")})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, rs := range out.ResourceRecordSets {
		got = append(got, fmt.Sprintf("%s %s %d", aws.ToString(rs.Name), aws.ToString(rs.SetIdentifier), aws.ToInt64(rs.Weight)))
	}
	if want := "api.example.com. blue 90,api.example.com. green 10"; strings.Join(got[:2], ",") != want {
		t.Errorf("weighted sets = %v; want %s", got, want)
	}
	if rs := recordSet(t, c, zone, "www.example.com.", "A"); rs == nil || rs.AliasTarget == nil || aws.ToString(rs.AliasTarget.DNSName) != "api.example.com." {
		t.Errorf("alias = %+v", rs)
	}
}

func TestRecordPermanentErrors(t *testing.T) {
	w, _, zone := dnsWorld(t, 20*time.Millisecond)
	for _, tc := range []struct {
		name  string
		mod   func(*Record)
		field string
	}{
		{"unknown zone", func(r *Record) { r.Zone, r.Record = "nope.example", "www.nope.example" }, "zone: no hosted zone named nope.example."},
		{"unknown zone id", func(r *Record) { r.Zone = "ZNOSUCHZONE0000000" }, "zone: "},
		{"outside its zone by id", func(r *Record) { r.Zone, r.Record = zone, "www.example.org" }, "record: www.example.org. is not in zone example.com."},
	} {
		_, err := w.record("x", tc.mod).CheckApply(t.Context(), true)
		if !engine.IsPermanent(err) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v; want a permanent error with %q", tc.name, err, tc.field)
		}
	}
}

// TestAbsentRecordOfMissingZone: nothing to delete is converged.
func TestAbsentRecordOfMissingZone(t *testing.T) {
	w, _, _ := dnsWorld(t, 20*time.Millisecond)
	r := w.record("old", func(r *Record) { r.Zone, r.Record, r.State = "gone.example", "old.gone.example", StateAbsent })
	if ok, err := r.CheckApply(t.Context(), true); !ok || err != nil {
		t.Errorf("absent record of a missing zone = %v, %v; want converged", ok, err)
	}
}

func TestRecordValidate(t *testing.T) {
	w := newWorld(t, worldOpts{})
	kinds := config.Kinds{"aws:route53_record": func() engine.Resource { return NewRecord(w.hubs) }}
	src := `name: shop
resources:
  - kind: aws:route53_record
    name: a
    zone: example.com
    record: www.example.com
    type: A
    values: [web-host]
  - kind: aws:route53_record
    name: b
    zone: example.com
    record: www.example.com
    type: CNAME
    values: [web.example.net]
  - kind: aws:route53_record
    name: c
    zone: example.com
    record: www.example.org
    type: A
    values: ["${aws:route53_record/a.fqdn}"]
  - kind: aws:route53_record
    name: e
    zone: example.com
    record: www.example.com
    type: A
    set_identifier: blue
    weight: 10
    values: [10.0.0.1]
  - kind: aws:route53_record
    name: d
    zone: example.com
    record: d.example.com
    type: AAAA
    ttl: 60
    alias: {name: x.example.com, zone_id: Z123}
    weight: 300
`
	_, err := config.Parse("dns.yaml", []byte(src), kinds)
	if err == nil {
		t.Fatal("Parse() = nil; want errors")
	}
	for _, want := range []string{
		`dns.yaml:8: aws:route53_record "a": values[0]: "web-host" is not an IPv4 address`,
		`dns.yaml:13: aws:route53_record "b": type: a CNAME cannot share its name with other records: www.example.com. has CNAME here and A in aws:route53_record/a`,
		`dns.yaml:18: aws:route53_record "c": record: www.example.org. is not in zone example.com.`,
		`dns.yaml:26: aws:route53_record "e": set_identifier: www.example.com. A is weighted in one resource and not in aws:route53_record/a`,
		`dns.yaml:34: aws:route53_record "d": ttl: not with alias`,
		`dns.yaml:36: aws:route53_record "d": weight: needs set_identifier`,
		`weight: want 0 to 255, got 300`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors lack %q:\n%v", want, err)
		}
	}
}

func (w *world) zone(name string, mod func(*HostedZone)) *HostedZone {
	r := NewHostedZone(w.hubs)
	if mod != nil {
		mod(r)
	}
	if err := r.Init(engine.Env{Graph: graph, ID: "aws:route53_zone/" + name, Kind: "aws:route53_zone", Name: name, Log: testLog}); err != nil {
		panic(err)
	}
	return r
}

func TestZoneLifecycle(t *testing.T) {
	w := newWorld(t, worldOpts{})
	c, err := w.hubs.Route53(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// Someone else's zone of the same name is not kiln's.
	if _, err := c.CreateHostedZone(t.Context(), &route53.CreateHostedZoneInput{Name: aws.String("shop.example"), CallerReference: aws.String("theirs")}); err != nil {
		t.Fatal(err)
	}
	z := w.zone("shop.example", func(r *HostedZone) { r.Comment = "kiln's" })
	if ok, _ := z.CheckApply(t.Context(), false); ok || !slices.Equal(z.Changes(), []string{"create zone shop.example. (public)"}) {
		t.Errorf("plan = %q", z.Changes())
	}
	if _, err := z.CheckApply(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	out := z.Outputs()
	if !awsapi.IsZoneID(out["zone_id"]) || strings.Count(out["name_servers"], ",") != 3 {
		t.Errorf("Outputs() = %v", out)
	}
	if ok, err := z.CheckApply(t.Context(), true); !ok || err != nil || z.Outputs()["zone_id"] != out["zone_id"] {
		t.Errorf("second check = %v, %v, %v; want converged on the same zone", ok, err, z.Outputs())
	}
	// A comment changed by hand is put back.
	if _, err := c.UpdateHostedZoneComment(t.Context(), &route53.UpdateHostedZoneCommentInput{Id: aws.String(out["zone_id"]), Comment: aws.String("by hand")}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := z.CheckApply(t.Context(), false); ok || !strings.Contains(strings.Join(z.Changes(), ""), `"by hand" -> "kiln's"`) {
		t.Errorf("plan after a comment by hand = %q", z.Changes())
	}
	if _, err := z.CheckApply(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	// Absent: refused while it has records, then deleted.
	rec := w.record("www", func(r *Record) { r.Zone, r.Record = out["zone_id"], "www.shop.example" })
	if _, err := rec.CheckApply(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	gone := w.zone("shop.example", func(r *HostedZone) { r.State = StateAbsent })
	if _, err := gone.CheckApply(t.Context(), true); err == nil || engine.IsPermanent(err) || awsapi.Code(err) != "HostedZoneNotEmpty" {
		t.Errorf("delete with a record = %v; want HostedZoneNotEmpty, not permanent", err)
	}
	rec.State = StateAbsent
	if _, err := rec.CheckApply(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	if _, err := gone.CheckApply(t.Context(), true); err != nil {
		t.Fatalf("delete = %v", err)
	}
	if ok, err := gone.CheckApply(t.Context(), true); !ok || err != nil {
		t.Errorf("absent again = %v, %v; want converged", ok, err)
	}
	left, err := c.ListHostedZonesByName(t.Context(), &route53.ListHostedZonesByNameInput{DNSName: aws.String("shop.example")})
	if err != nil || len(left.HostedZones) != 1 || aws.ToString(left.HostedZones[0].CallerReference) != "theirs" {
		t.Errorf("zones left = %+v, %v; want only theirs", left, err)
	}
}

func TestPrivateZone(t *testing.T) {
	w := newWorld(t, worldOpts{})
	sn, err := w.client.DescribeSubnets(t.Context(), &ec2.DescribeSubnetsInput{})
	if err != nil || len(sn.Subnets) == 0 {
		t.Fatalf("DescribeSubnets() = %v", err)
	}
	vpc := aws.ToString(sn.Subnets[0].VpcId)
	z := w.zone("internal.shop", func(r *HostedZone) { r.Private, r.VPC = true, vpc })
	if _, err := z.CheckApply(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	if ok, err := z.CheckApply(t.Context(), true); !ok || err != nil || z.Outputs()["name_servers"] != "" {
		t.Errorf("second check = %v, %v, %v", ok, err, z.Outputs())
	}
	public := w.zone("internal.shop", nil)
	if _, err := public.CheckApply(t.Context(), true); !engine.IsPermanent(err) || !strings.Contains(err.Error(), "private: ") {
		t.Errorf("the same zone as public = %v; want a permanent error naming private", err)
	}
	bad := w.zone("other.shop", func(r *HostedZone) { r.Private, r.VPC = true, "vpc-0000000000000dead" })
	if _, err := bad.CheckApply(t.Context(), true); !engine.IsPermanent(err) || awsapi.Code(err) != "InvalidVPCId" {
		t.Errorf("unknown VPC = %v; want a permanent InvalidVPCId", err)
	}
}
