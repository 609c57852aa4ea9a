package awsres

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"

	"kiln/internal/awsapi"
	"kiln/internal/awssim"
	"kiln/internal/engine"
)

// awsCLIFor returns a runner of the aws CLI against w's simulator (the
// second client of the estate tests), or nil when it is not installed.
func awsCLIFor(t *testing.T, w *world) func(out any, args ...string) {
	t.Helper()
	if _, err := exec.LookPath("aws"); err != nil {
		t.Log("the aws CLI is not installed: second-client check skipped")
		return nil
	}
	env := append(os.Environ(),
		"AWS_ENDPOINT_URL="+w.endpoint, "AWS_REGION=us-east-1", "AWS_DEFAULT_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID="+awssim.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+awssim.SecretAccessKey,
		"AWS_CONFIG_FILE="+os.DevNull, "AWS_SHARED_CREDENTIALS_FILE="+os.DevNull, "AWS_EC2_METADATA_DISABLED=true")
	return func(out any, args ...string) {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), "aws", append([]string{"--output", "json"}, args...)...)
		cmd.Env = env
		b, err := cmd.Output()
		if err != nil {
			t.Fatalf("aws %s: %v", strings.Join(args, " "), err)
		}
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatal(err)
		}
	}
}

// graphOf is a graph named graph with the given resource ids.
func graphOf(t *testing.T, ids ...string) *engine.Graph {
	t.Helper()
	var specs []*engine.Spec
	for _, id := range ids {
		kind, name, _ := strings.Cut(id, "/")
		specs = append(specs, &engine.Spec{Kind: kind, Name: name, Build: func(engine.Lookup) (engine.Resource, string, error) { return nil, "", nil }})
	}
	g, err := engine.NewGraph(graph, specs)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func converge(t *testing.T, r engine.Resource) {
	t.Helper()
	for range 3 {
		ok, err := r.CheckApply(t.Context(), true)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			return
		}
	}
	t.Fatal("not converged after 3 checks")
}

// TestEstateRoute53: records kiln writes carry a TXT ownership record in
// the same batch; the estate finds the graph's records by them and its
// zones by their tags, and a prune deletes records (with their TXT)
// before the zone that held them. A record written by hand, one of
// another graph and a zone made by hand are untouched. The aws CLI
// checks the zone's tags and the records left.
func TestEstateRoute53(t *testing.T) {
	w, c, zone := dnsWorld(t, time.Minute)
	cli := awsCLIFor(t, w)
	z := w.zone("shop.example.org", nil)
	converge(t, z)
	shopZone := z.Outputs()["zone_id"]
	for _, r := range []*Record{
		w.record("www", nil),
		w.record("api", func(r *Record) { r.Type, r.Values = "CNAME", []string{"www.example.com"} }),
		w.record("app", func(r *Record) { r.Zone, r.Record = "shop.example.org", "app.shop.example.org" }),
	} {
		converge(t, r)
	}
	other := NewRecord(w.hubs)
	other.Zone, other.Record, other.Type, other.Values = "example.com", "db.example.com", "A", []string{"10.0.0.9"}
	_ = other.Init(engine.Env{Graph: "other", ID: "aws:route53_record/db", Kind: "aws:route53_record", Name: "db", Log: testLog})
	converge(t, other)
	if _, err := c.ChangeResourceRecordSets(t.Context(), &route53.ChangeResourceRecordSetsInput{HostedZoneId: aws.String(zone), ChangeBatch: &r53types.ChangeBatch{Changes: []r53types.Change{{
		Action: r53types.ChangeActionUpsert, ResourceRecordSet: &r53types.ResourceRecordSet{Name: aws.String("hand.example.com"), Type: r53types.RRTypeA, TTL: aws.Int64(60),
			ResourceRecords: []r53types.ResourceRecord{{Value: aws.String("10.0.0.7")}}}}}}}); err != nil {
		t.Fatal(err)
	}
	if txt := recordSet(t, c, zone, "kiln-cname.api.example.com.", "TXT"); len(values(txt)) != 1 || values(txt)[0] != `"kiln:owner=shop,kiln:resource=aws:route53_record/api"` {
		t.Fatalf("api's ownership record = %v", values(txt))
	}

	// A record another graph owns is refused, naming its owner.
	steal := w.record("db", func(r *Record) { r.Record = "db.example.com" })
	if _, err := steal.CheckApply(t.Context(), true); !errors.Is(err, errOwnedElsewhere) || !strings.Contains(err.Error(), `graph "other"`) {
		t.Errorf("CheckApply of another graph's record = %v; want refused, naming graph other", err)
	}

	est := NewEstate(w.hubs, testLog)
	owned, err := est.Owned(t.Context(), graph, []string{""})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"aws:route53_record/api", "aws:route53_record/app", "aws:route53_record/www", "aws:route53_zone/shop.example.org"}
	if got := ownedIDs(owned); !slices.Equal(got, want) {
		t.Fatalf("Owned() = %q; want %q (records first, zones last)", got, want)
	}
	if cli != nil {
		var tags struct {
			ResourceTagSet struct{ Tags []struct{ Key, Value string } }
		}
		cli(&tags, "route53", "list-tags-for-resource", "--resource-type", "hostedzone", "--resource-id", shopZone)
		got := map[string]string{}
		for _, tg := range tags.ResourceTagSet.Tags {
			got[tg.Key] = tg.Value
		}
		if got[awsapi.TagOwner] != graph || got[awsapi.TagResource] != "aws:route53_zone/shop.example.org" {
			t.Errorf("aws route53 list-tags-for-resource = %v; want the owner and resource tags", got)
		}
	}

	orphans := engine.Orphans(graphOf(t, "aws:route53_record/www"), owned)
	if err := est.Destroy(t.Context(), orphans); err != nil {
		t.Fatalf("Destroy() = %v", err)
	}
	left, err := est.Owned(t.Context(), graph, []string{""})
	if err != nil {
		t.Fatal(err)
	}
	if got := ownedIDs(left); !slices.Equal(got, []string{"aws:route53_record/www"}) {
		t.Errorf("Owned() after the prune = %q; want only www", got)
	}
	if err := est.Destroy(t.Context(), orphans); err != nil {
		t.Errorf("second Destroy() = %v; want nil (what is gone is fine)", err)
	}
	if cli == nil {
		return
	}
	var sets struct {
		ResourceRecordSets []struct{ Name, Type string }
	}
	cli(&sets, "route53", "list-resource-record-sets", "--hosted-zone-id", zone)
	var names []string
	for _, rs := range sets.ResourceRecordSets {
		names = append(names, rs.Name+" "+rs.Type)
	}
	slices.Sort(names)
	wantNames := []string{
		"db.example.com. A", "example.com. NS", "example.com. SOA", "hand.example.com. A",
		"kiln-a.db.example.com. TXT", "kiln-a.www.example.com. TXT", "www.example.com. A",
	}
	if !slices.Equal(names, wantNames) {
		t.Errorf("aws route53 list-resource-record-sets = %q; want %q", names, wantNames)
	}
	var zones struct{ HostedZones []struct{ Id, Name string } }
	cli(&zones, "route53", "list-hosted-zones")
	if len(zones.HostedZones) != 1 || zones.HostedZones[0].Name != "example.com." {
		t.Errorf("aws route53 list-hosted-zones = %v; want only the zone made by hand", zones.HostedZones)
	}
}

// TestEstateImages: an aws:ami's images are pruned after the instances
// that use them (the image waits for its instance to terminate), with
// their snapshots; an image that an instance outside the prune uses is
// never deregistered.
func TestEstateImages(t *testing.T) {
	w := newWorld(t, worldOpts{sim: awssim.Options{TimeScale: 0.001}})
	cli := awsCLIFor(t, w)
	bake := func(name string) string {
		r := w.ami(name, "#!/bin/sh\necho "+name+"\n", nil)
		converge(t, r)
		return r.Outputs()["image_id"]
	}
	web, api := bake("web"), bake("api")
	checkApply(t, w.instance("uses-web", func(r *Instance) { r.Image = web }))
	outsider := NewInstance(w.hubs)
	outsider.Image, outsider.Type = api, "t3.micro"
	_ = outsider.Init(engine.Env{Graph: "other", ID: "aws:ec2/uses-api", Kind: "aws:ec2", Name: "uses-api", Log: testLog})
	checkApply(t, outsider)
	snaps := func(id string) []string {
		out, err := w.client.DescribeImages(t.Context(), &ec2.DescribeImagesInput{ImageIds: []string{id}})
		if err != nil || len(out.Images) != 1 {
			return nil
		}
		var s []string
		for _, m := range out.Images[0].BlockDeviceMappings {
			if m.Ebs != nil && m.Ebs.SnapshotId != nil {
				s = append(s, *m.Ebs.SnapshotId)
			}
		}
		return s
	}
	webSnaps := snaps(web)
	if len(webSnaps) == 0 {
		t.Fatal("the baked image has no snapshot")
	}

	est := NewEstate(w.hubs, testLog)
	owned, err := est.Owned(t.Context(), graph, []string{""})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"aws:ec2/uses-web", "aws:ami/api", "aws:ami/web"}
	if got := ownedIDs(owned); !slices.Equal(got, want) {
		t.Fatalf("Owned() = %q; want %q (instances before images)", got, want)
	}
	orphans := engine.Orphans(graphOf(t), owned)
	// web goes: its instance first. api is used by the other graph's
	// instance: it waits, and stays when the wait is cut short.
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	err = est.Destroy(ctx, orphans)
	if err == nil || !strings.Contains(err.Error(), api) {
		t.Errorf("Destroy() = %v; want an error naming %s, which is in use", err, api)
	}
	if live := w.live("uses-web"); len(live) != 0 {
		t.Errorf("uses-web: %d live instances; want 0", len(live))
	}
	if imgs := w.amiImages(t, "web"); len(imgs) != 0 {
		t.Errorf("aws:ami/web images = %d; want 0 (pruned)", len(imgs))
	}
	if imgs := w.amiImages(t, "api"); len(imgs) != 1 {
		t.Errorf("aws:ami/api images = %d; want 1 (in use by another graph's instance)", len(imgs))
	}
	if cli == nil {
		return
	}
	var out struct{ Snapshots []struct{ SnapshotId string } }
	cli(&out, "ec2", "describe-snapshots", "--owner-ids", "self")
	for _, s := range out.Snapshots {
		if slices.Contains(webSnaps, s.SnapshotId) {
			t.Errorf("aws ec2 describe-snapshots: %s of the pruned image is still there", s.SnapshotId)
		}
	}
}
