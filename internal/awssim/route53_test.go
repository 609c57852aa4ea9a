package awssim

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"
)

func newRoute53(t *testing.T, o Options) (*Sim, *route53.Client) {
	t.Helper()
	o.ManualClock = true
	if o.TimeScale == 0 {
		o.TimeScale = 1
	}
	s := New(o)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, newSDKRoute53(srv.URL)
}

func createZone(t *testing.T, c *route53.Client, name string) string {
	t.Helper()
	out, err := c.CreateHostedZone(t.Context(), &route53.CreateHostedZoneInput{Name: aws.String(name), CallerReference: aws.String("ref-" + name)})
	if err != nil {
		t.Fatalf("CreateHostedZone(%s) = %v", name, err)
	}
	return aws.ToString(out.HostedZone.Id)
}

func aRecord(action r53types.ChangeAction, name string, ttl int64, values ...string) r53types.Change {
	rs := &r53types.ResourceRecordSet{Name: aws.String(name), Type: r53types.RRTypeA, TTL: aws.Int64(ttl)}
	for _, v := range values {
		rs.ResourceRecords = append(rs.ResourceRecords, r53types.ResourceRecord{Value: aws.String(v)})
	}
	return r53types.Change{Action: action, ResourceRecordSet: rs}
}

func weightedA(name, set string, weight int64) r53types.Change {
	ch := aRecord(r53types.ChangeActionCreate, name, 60, "10.0.1.1")
	ch.ResourceRecordSet.SetIdentifier, ch.ResourceRecordSet.Weight = aws.String(set), aws.Int64(weight)
	return ch
}

func change(t *testing.T, c *route53.Client, zone string, changes ...r53types.Change) (*route53.ChangeResourceRecordSetsOutput, error) {
	t.Helper()
	return c.ChangeResourceRecordSets(t.Context(), &route53.ChangeResourceRecordSetsInput{
		HostedZoneId: aws.String(zone), ChangeBatch: &r53types.ChangeBatch{Changes: changes},
	})
}

func listRecords(t *testing.T, c *route53.Client, zone string) []r53types.ResourceRecordSet {
	t.Helper()
	var all []r53types.ResourceRecordSet
	in := &route53.ListResourceRecordSetsInput{HostedZoneId: aws.String(zone)}
	for {
		out, err := c.ListResourceRecordSets(t.Context(), in)
		if err != nil {
			t.Fatalf("ListResourceRecordSets() = %v", err)
		}
		all = append(all, out.ResourceRecordSets...)
		if !out.IsTruncated {
			return all
		}
		in.StartRecordName, in.StartRecordType, in.StartRecordIdentifier = out.NextRecordName, out.NextRecordType, out.NextRecordIdentifier
	}
}

func TestRoute53ZoneLifecycle(t *testing.T) {
	_, c := newRoute53(t, Options{})
	ctx := t.Context()
	out, err := c.CreateHostedZone(ctx, &route53.CreateHostedZoneInput{
		Name: aws.String("Example.COM"), CallerReference: aws.String("r1"),
		HostedZoneConfig: &r53types.HostedZoneConfig{Comment: aws.String("shop")},
	})
	if err != nil {
		t.Fatalf("CreateHostedZone() = %v", err)
	}
	id := aws.ToString(out.HostedZone.Id)
	if !strings.HasPrefix(id, "/hostedzone/Z") || aws.ToString(out.HostedZone.Name) != "example.com." {
		t.Errorf("zone = %s %s; want /hostedzone/Z... example.com.", id, aws.ToString(out.HostedZone.Name))
	}
	if out.ChangeInfo.Status != r53types.ChangeStatusPending || len(out.DelegationSet.NameServers) != 4 || aws.ToString(out.Location) == "" {
		t.Errorf("change %s, %d name servers, location %q; want PENDING, 4, a location", out.ChangeInfo.Status, len(out.DelegationSet.NameServers), aws.ToString(out.Location))
	}
	if _, err := c.CreateHostedZone(ctx, &route53.CreateHostedZoneInput{Name: aws.String("other.com"), CallerReference: aws.String("r1")}); errCode(err) != "HostedZoneAlreadyExists" {
		t.Errorf("CreateHostedZone(same caller reference) = %v; want HostedZoneAlreadyExists", err)
	}

	// The SDK strips the /hostedzone/ prefix; a zone starts with SOA and NS.
	g, err := c.GetHostedZone(ctx, &route53.GetHostedZoneInput{Id: aws.String(id)})
	if err != nil || aws.ToString(g.HostedZone.Config.Comment) != "shop" || aws.ToInt64(g.HostedZone.ResourceRecordSetCount) != 2 {
		t.Fatalf("GetHostedZone() = %+v, %v; want comment shop, 2 records", g, err)
	}
	recs := listRecords(t, c, id)
	if len(recs) != 2 || recs[0].Type != r53types.RRTypeNs || recs[1].Type != r53types.RRTypeSoa || len(recs[0].ResourceRecords) != 4 {
		t.Errorf("records = %+v; want NS (4 values) then SOA", recs)
	}

	if _, err := change(t, c, id, aRecord(r53types.ChangeActionCreate, "www.example.com", 60, "10.0.0.1")); err != nil {
		t.Fatalf("CREATE www = %v", err)
	}
	if _, err := c.DeleteHostedZone(ctx, &route53.DeleteHostedZoneInput{Id: aws.String(id)}); errCode(err) != "HostedZoneNotEmpty" {
		t.Errorf("DeleteHostedZone(with a record) = %v; want HostedZoneNotEmpty", err)
	}
	if _, err := change(t, c, id, aRecord(r53types.ChangeActionDelete, "www.example.com.", 60, "10.0.0.1")); err != nil {
		t.Fatalf("DELETE www = %v", err)
	}
	if _, err := c.DeleteHostedZone(ctx, &route53.DeleteHostedZoneInput{Id: aws.String(id)}); err != nil {
		t.Fatalf("DeleteHostedZone() = %v", err)
	}
	_, err = c.GetHostedZone(ctx, &route53.GetHostedZoneInput{Id: aws.String(id)})
	var nsz *r53types.NoSuchHostedZone
	if !errors.As(err, &nsz) {
		t.Errorf("GetHostedZone(deleted) = %v; want NoSuchHostedZone", err)
	}
}

func TestRoute53PrivateZone(t *testing.T) {
	s, c := newRoute53(t, Options{})
	vpc := s.subnets[0].vpcID
	in := func(ref, vpcID string) *route53.CreateHostedZoneInput {
		return &route53.CreateHostedZoneInput{
			Name: aws.String("internal.example"), CallerReference: aws.String(ref),
			HostedZoneConfig: &r53types.HostedZoneConfig{PrivateZone: true},
			VPC:              &r53types.VPC{VPCId: aws.String(vpcID), VPCRegion: r53types.VPCRegionUsEast1},
		}
	}
	out, err := c.CreateHostedZone(t.Context(), in("p1", vpc))
	if err != nil {
		t.Fatalf("CreateHostedZone(private) = %v", err)
	}
	if !out.HostedZone.Config.PrivateZone || out.DelegationSet != nil || aws.ToString(out.VPC.VPCId) != vpc {
		t.Errorf("private zone = %+v; want private, no delegation set, VPC %s", out, vpc)
	}
	if _, err := c.CreateHostedZone(t.Context(), in("p2", vpc)); errCode(err) != "ConflictingDomainExists" {
		t.Errorf("second private zone of that name in that VPC = %v; want ConflictingDomainExists", err)
	}
	if _, err := c.CreateHostedZone(t.Context(), in("p3", "vpc-0000000000000dead")); errCode(err) != "InvalidVPCId" {
		t.Errorf("private zone in an unknown VPC = %v; want InvalidVPCId", err)
	}
	g, err := c.GetHostedZone(t.Context(), &route53.GetHostedZoneInput{Id: out.HostedZone.Id})
	if err != nil || len(g.VPCs) != 1 || aws.ToString(g.VPCs[0].VPCId) != vpc {
		t.Errorf("GetHostedZone(private) = %+v, %v; want its VPC", g, err)
	}
}

func TestRoute53ChangeGoesInsync(t *testing.T) {
	s, c := newRoute53(t, Options{})
	id := createZone(t, c, "example.com")
	out, err := change(t, c, id, aRecord(r53types.ChangeActionUpsert, "www.example.com", 60, "10.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	get := func() r53types.ChangeStatus {
		g, err := c.GetChange(t.Context(), &route53.GetChangeInput{Id: out.ChangeInfo.Id})
		if err != nil {
			t.Fatalf("GetChange() = %v", err)
		}
		return g.ChangeInfo.Status
	}
	if st := get(); st != r53types.ChangeStatusPending {
		t.Errorf("status at once = %s; want PENDING", st)
	}
	s.Advance(29 * time.Second)
	if st := get(); st != r53types.ChangeStatusPending {
		t.Errorf("status after 29 s = %s; want PENDING", st)
	}
	s.Advance(time.Second)
	if st := get(); st != r53types.ChangeStatusInsync {
		t.Errorf("status after 30 s = %s; want INSYNC", st)
	}
	if _, err := c.GetChange(t.Context(), &route53.GetChangeInput{Id: aws.String("CNOSUCHCHANGE")}); errCode(err) != "NoSuchChange" {
		t.Errorf("GetChange(unknown) = %v; want NoSuchChange", err)
	}
}

// TestRoute53InvalidChangeBatch: each refusal with Route 53's message,
// and a batch with one bad change changes nothing.
func TestRoute53InvalidChangeBatch(t *testing.T) {
	_, c := newRoute53(t, Options{})
	id := createZone(t, c, "example.com")
	if _, err := change(t, c, id, aRecord(r53types.ChangeActionCreate, "www.example.com", 60, "10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	cname := r53types.Change{Action: r53types.ChangeActionCreate, ResourceRecordSet: &r53types.ResourceRecordSet{
		Name: aws.String("www.example.com"), Type: r53types.RRTypeCname, TTL: aws.Int64(60),
		ResourceRecords: []r53types.ResourceRecord{{Value: aws.String("web.example.net")}},
	}}
	for _, tc := range []struct {
		name    string
		changes []r53types.Change
		want    string
	}{
		{"create existing", []r53types.Change{aRecord(r53types.ChangeActionCreate, "www.example.com", 60, "10.0.0.2")},
			"Tried to create resource record set [name='www.example.com.', type='A'] but it already exists"},
		{"delete missing", []r53types.Change{aRecord(r53types.ChangeActionDelete, "api.example.com", 60, "10.0.0.2")},
			"Tried to delete resource record set [name='api.example.com.', type='A'] but it was not found"},
		{"delete other values", []r53types.Change{aRecord(r53types.ChangeActionDelete, "www.example.com", 60, "10.0.0.9")},
			"Tried to delete resource record set [name='www.example.com.', type='A'] but the values provided do not match the current values"},
		{"outside the zone", []r53types.Change{aRecord(r53types.ChangeActionCreate, "www.example.org", 60, "10.0.0.2")},
			"RRSet with DNS name www.example.org. is not permitted in zone example.com."},
		{"not an address", []r53types.Change{aRecord(r53types.ChangeActionCreate, "db.example.com", 60, "db-host")},
			"Invalid Resource Record: 'FATAL problem: ARRDATAIllegalIPv4Address (Value is not a valid IPv4 address) encountered with 'db-host''"},
		{"CNAME beside A", []r53types.Change{cname},
			"RRSet of type CNAME with DNS name www.example.com. is not permitted as it conflicts with other records with the same DNS name in zone example.com."},
		{"weighted beside simple", []r53types.Change{weightedA("www.example.com", "blue", 10)},
			"RRSet with DNS name www.example.com., type A, SetIdentifier blue cannot be created as a non-weighted set exists with the same name and type."},
		{"atomic: a good change and a bad one", []r53types.Change{
			aRecord(r53types.ChangeActionCreate, "new.example.com", 60, "10.0.0.3"),
			aRecord(r53types.ChangeActionCreate, "www.example.com", 60, "10.0.0.2")},
			"Tried to create resource record set [name='www.example.com.', type='A'] but it already exists"},
	} {
		_, err := change(t, c, id, tc.changes...)
		var icb *r53types.InvalidChangeBatch
		if !errors.As(err, &icb) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want InvalidChangeBatch %q", tc.name, err, tc.want)
		}
	}
	var names []string
	for _, rs := range listRecords(t, c, id) {
		names = append(names, aws.ToString(rs.Name)+" "+string(rs.Type))
	}
	if want := []string{"example.com. NS", "example.com. SOA", "www.example.com. A"}; !slices.Equal(names, want) {
		t.Errorf("records after the refused batches = %v; want %v", names, want)
	}

	// InvalidInput: neither alias nor TTL and values; a weight without an identifier.
	noTTL := aRecord(r53types.ChangeActionCreate, "x.example.com", 60, "10.0.0.1")
	noTTL.ResourceRecordSet.TTL = nil
	weighted := aRecord(r53types.ChangeActionCreate, "x.example.com", 60, "10.0.0.1")
	weighted.ResourceRecordSet.Weight = aws.Int64(10)
	for _, ch := range []r53types.Change{noTTL, weighted} {
		if _, err := change(t, c, id, ch); errCode(err) != "InvalidInput" {
			t.Errorf("change %+v = %v; want InvalidInput", ch.ResourceRecordSet, err)
		}
	}
	if _, err := change(t, c, "ZNOSUCHZONE", aRecord(r53types.ChangeActionCreate, "www.example.com", 60, "10.0.0.1")); errCode(err) != "NoSuchHostedZone" {
		t.Errorf("change in an unknown zone = %v; want NoSuchHostedZone", err)
	}
}

// TestRoute53Listing: 700 records page at 300 in Route 53's order (labels
// reversed, then type), and weighted sets by identifier.
func TestRoute53Listing(t *testing.T) {
	s, c := newRoute53(t, Options{})
	id := createZone(t, c, "example.com")
	var changes []r53types.Change
	for i := range 700 {
		changes = append(changes, aRecord(r53types.ChangeActionCreate, fmt.Sprintf("h%03d.example.com", i), 60, "10.0.0.1"))
	}
	for _, set := range []string{"blue", "green"} {
		ch := aRecord(r53types.ChangeActionCreate, "api.example.com", 60, "10.0.1.1")
		ch.ResourceRecordSet.SetIdentifier, ch.ResourceRecordSet.Weight = aws.String(set), aws.Int64(50)
		changes = append(changes, ch)
	}
	if _, err := change(t, c, id, changes...); err != nil {
		t.Fatal(err)
	}
	s.ResetCalls()
	recs := listRecords(t, c, id)
	if n := s.Calls("ListResourceRecordSets"); n != 3 {
		t.Errorf("pages for 704 records = %d; want 3", n)
	}
	if len(recs) != 704 {
		t.Fatalf("listed %d records; want 704", len(recs))
	}
	got := []string{aws.ToString(recs[2].Name) + "/" + aws.ToString(recs[2].SetIdentifier), aws.ToString(recs[3].Name) + "/" + aws.ToString(recs[3].SetIdentifier), aws.ToString(recs[4].Name)}
	if want := []string{"api.example.com./blue", "api.example.com./green", "h000.example.com."}; !slices.Equal(got, want) {
		t.Errorf("order = %v; want %v", got, want)
	}
	// Start at a name.
	out, err := c.ListResourceRecordSets(t.Context(), &route53.ListResourceRecordSetsInput{HostedZoneId: aws.String(id), StartRecordName: aws.String("h500.example.com"), MaxItems: aws.Int32(2)})
	if err != nil || len(out.ResourceRecordSets) != 2 || aws.ToString(out.ResourceRecordSets[0].Name) != "h500.example.com." || aws.ToString(out.NextRecordName) != "h502.example.com." {
		t.Errorf("list from h500, 2 items = %+v, %v", out, err)
	}
}

func TestRoute53ZonesByName(t *testing.T) {
	_, c := newRoute53(t, Options{})
	for _, n := range []string{"b.example.com", "example.org", "a.example.com"} {
		createZone(t, c, n)
	}
	out, err := c.ListHostedZonesByName(t.Context(), &route53.ListHostedZonesByNameInput{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, z := range out.HostedZones {
		names = append(names, aws.ToString(z.Name))
	}
	if want := []string{"a.example.com.", "b.example.com.", "example.org."}; !slices.Equal(names, want) {
		t.Errorf("zones by name = %v; want %v", names, want)
	}
	out, err = c.ListHostedZonesByName(t.Context(), &route53.ListHostedZonesByNameInput{DNSName: aws.String("b.example.com"), MaxItems: aws.Int32(1)})
	if err != nil || len(out.HostedZones) != 1 || aws.ToString(out.HostedZones[0].Name) != "b.example.com." || !out.IsTruncated || aws.ToString(out.NextDNSName) != "example.org." {
		t.Errorf("zones from b.example.com, 1 item = %+v, %v", out, err)
	}
	all, err := c.ListHostedZones(t.Context(), &route53.ListHostedZonesInput{MaxItems: aws.Int32(2)})
	if err != nil || len(all.HostedZones) != 2 || !all.IsTruncated {
		t.Fatalf("ListHostedZones(2) = %+v, %v", all, err)
	}
	rest, err := c.ListHostedZones(t.Context(), &route53.ListHostedZonesInput{Marker: all.NextMarker})
	if err != nil || len(rest.HostedZones) != 1 || rest.IsTruncated {
		t.Errorf("ListHostedZones(next) = %+v, %v", rest, err)
	}
}

// TestRoute53Throttling: five requests a second for the account, then
// Throttling (400), which the SDK counts as throttling.
func TestRoute53Throttling(t *testing.T) {
	s, c := newRoute53(t, Options{Throttle: true})
	var throttled int
	for range 8 {
		if _, err := c.ListHostedZones(t.Context(), &route53.ListHostedZonesInput{}); err != nil {
			if errCode(err) != "Throttling" {
				t.Fatalf("ListHostedZones() = %v; want nil or Throttling", err)
			}
			throttled++
		}
	}
	if throttled != 3 || s.Throttled("ListHostedZones") != 3 {
		t.Errorf("throttled %d (sim counts %d) of 8 at once; want 3", throttled, s.Throttled("ListHostedZones"))
	}
	s.Advance(time.Second)
	if _, err := c.ListHostedZones(t.Context(), &route53.ListHostedZonesInput{}); err != nil {
		t.Errorf("after a second: %v; want the bucket refilled", err)
	}
}

func newSDKRoute53(url string) *route53.Client {
	return route53.NewFromConfig(ClientConfig(url), func(o *route53.Options) { o.RetryMaxAttempts = 1 })
}
