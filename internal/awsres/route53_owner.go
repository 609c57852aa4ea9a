package awsres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"

	"kiln/internal/awsapi"
	"kiln/internal/engine"
)

// Route 53 record sets carry no tags. kiln owns a record the way
// external-dns does: beside each record set it manages, in the same
// change batch, it writes a TXT record set
//
//	kiln-<type>.<name>   TXT  "kiln:owner=<graph>,kiln:resource=aws:route53_record/<name>"
//
// (kiln-a.www.example.com for www.example.com A; a wildcard *.example.com
// has kiln-a-wildcard.example.com). A weighted record's ownership record
// is weighted too, with the same set identifier and weight 0. The prefix
// keeps the TXT off the record's own name, where a CNAME allows no other
// record. Prune and destroy find records by these TXT records only, so a
// record kiln did not write is never deleted; the record and its TXT go
// together, in one batch.

// ownerPrefix starts the first label of every ownership record.
const ownerPrefix = "kiln-"

// ownerTTL is the TTL of ownership records.
const ownerTTL = 300

// OwnerRecordName is the name of the TXT record that says who owns the
// record set name, typ.
func OwnerRecordName(name, typ string) string {
	name = awsapi.CanonicalName(name)
	label := ownerPrefix + strings.ToLower(typ)
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		return label + "-wildcard." + rest
	}
	return label + "." + name
}

// ownedRecord is the inverse of OwnerRecordName: the record set an
// ownership record's name stands for.
func ownedRecord(txtName string) (name, typ string, ok bool) {
	first, rest, ok := strings.Cut(awsapi.CanonicalName(txtName), ".")
	if !ok {
		return "", "", false
	}
	t, ok := strings.CutPrefix(first, ownerPrefix)
	if !ok || t == "" {
		return "", "", false
	}
	if base, wild := strings.CutSuffix(t, "-wildcard"); wild {
		return "*." + rest, strings.ToUpper(base), true
	}
	return rest, strings.ToUpper(t), true
}

// OwnerValue is the (quoted) value of an ownership record.
func OwnerValue(graph, id string) string {
	return `"kiln:owner=` + graph + `,kiln:resource=` + id + `"`
}

// parseOwner reads an ownership record's value.
func parseOwner(v string) (graph, id string, ok bool) {
	v = strings.Trim(v, `"`)
	o, r, ok := strings.Cut(v, ",")
	if !ok {
		return "", "", false
	}
	graph, ok1 := strings.CutPrefix(o, "kiln:owner=")
	id, ok2 := strings.CutPrefix(r, "kiln:resource=")
	return graph, id, ok1 && ok2 && graph != "" && id != ""
}

// recordOwner is who an ownership record set names ("" when rs is none).
func recordOwner(rs *types.ResourceRecordSet) (graph, id string) {
	if rs == nil {
		return "", ""
	}
	for _, v := range rs.ResourceRecords {
		if g, i, ok := parseOwner(aws.ToString(v.Value)); ok {
			return g, i
		}
	}
	return "", ""
}

// ownerSet is the ownership record set of record set k, for graph's
// resource id.
func ownerSet(k awsapi.RecordKey, graph, id string) types.ResourceRecordSet {
	rs := types.ResourceRecordSet{
		Name: aws.String(OwnerRecordName(k.Name, k.Type)), Type: types.RRTypeTxt, TTL: aws.Int64(ownerTTL),
		ResourceRecords: []types.ResourceRecord{{Value: aws.String(OwnerValue(graph, id))}},
	}
	if k.SetID != "" {
		rs.SetIdentifier, rs.Weight = aws.String(k.SetID), aws.Int64(0)
	}
	return rs
}

// ownerKey is the key of record set k's ownership record set.
func ownerKey(k awsapi.RecordKey) awsapi.RecordKey {
	return awsapi.RecordKey{Name: OwnerRecordName(k.Name, k.Type), Type: "TXT", SetID: k.SetID}
}

// errOwnedElsewhere is wrapped when a record belongs to another owner.
var errOwnedElsewhere = errors.New("owned by another resource")

// allZones lists every hosted zone of the account (ListHostedZones,
// 100 a page).
func allZones(ctx context.Context, h *awsapi.Hub, c *route53.Client) ([]types.HostedZone, error) {
	var zones []types.HostedZone
	p := route53.NewListHostedZonesPaginator(c, &route53.ListHostedZonesInput{})
	for p.HasMorePages() {
		var page *route53.ListHostedZonesOutput
		err := h.Retry(ctx, func(ctx context.Context) (err error) {
			page, err = p.NextPage(ctx)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("list hosted zones: %w", err)
		}
		zones = append(zones, page.HostedZones...)
	}
	return zones, nil
}

// zoneTags reads the tags of zones, ten zones a ListTagsForResources.
func zoneTags(ctx context.Context, h *awsapi.Hub, c *route53.Client, zones []types.HostedZone) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	ids := make([]string, len(zones))
	for i, z := range zones {
		ids[i] = strings.TrimPrefix(aws.ToString(z.Id), "/hostedzone/")
	}
	for batch := range slices.Chunk(ids, 10) {
		var res *route53.ListTagsForResourcesOutput
		err := h.Retry(ctx, func(ctx context.Context) (err error) {
			res, err = c.ListTagsForResources(ctx, &route53.ListTagsForResourcesInput{ResourceType: types.TagResourceTypeHostedzone, ResourceIds: batch})
			if awsapi.Code(err) == "NoSuchHostedZone" {
				err = awsapi.NotYet(err) // deleted since the listing: list again
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("list tags of hosted zones: %w", err)
		}
		for _, set := range res.ResourceTagSets {
			m := map[string]string{}
			for _, t := range set.Tags {
				m[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
			out[strings.TrimPrefix(aws.ToString(set.ResourceId), "/hostedzone/")] = m
		}
	}
	return out, nil
}

// listZones lists the hosted zones graph owns: those tagged with its
// owner tag (aws:route53_zone tags the zones it creates).
func listZones(ctx context.Context, e *Estate, h *awsapi.Hub, graph string) ([]engine.Owned, error) {
	c, err := e.hubs.Route53(ctx)
	if err != nil {
		return nil, err
	}
	zones, err := allZones(ctx, h, c)
	if err != nil {
		return nil, err
	}
	tags, err := zoneTags(ctx, h, c, zones)
	if err != nil {
		return nil, err
	}
	var out []engine.Owned
	for _, z := range zones {
		id := strings.TrimPrefix(aws.ToString(z.Id), "/hostedzone/")
		if t := tags[id]; t[awsapi.TagOwner] == graph && t[awsapi.TagResource] != "" {
			out = append(out, engine.Owned{ID: t[awsapi.TagResource], Ref: id, Protected: t[TagProtect] == "true"})
		}
	}
	return out, nil
}

// deleteZones deletes each zone. A zone that still holds records other
// than its SOA and NS waits for them (records go in the rank before);
// one whose records are not kiln's stays, its error saying so.
func deleteZones(ctx context.Context, e *Estate, h *awsapi.Hub, ids []string) error {
	c, err := e.hubs.Route53(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		err := h.Retry(ctx, func(ctx context.Context) error {
			_, err := c.DeleteHostedZone(ctx, &route53.DeleteHostedZoneInput{Id: aws.String(id)})
			switch awsapi.Code(err) {
			case "NoSuchHostedZone":
				return nil
			case "HostedZoneNotEmpty":
				return awsapi.NotYet(fmt.Errorf("the zone still has records other than its SOA and NS: %w", err))
			}
			return err
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("delete hosted zone %s: %w", id, err))
			continue
		}
		e.log.Info("hosted zone deleted", "zone", id)
	}
	return errors.Join(errs...)
}

// recordRef is an owned record's Ref: ZONE/NAME/TYPE, /SET when weighted.
func recordRef(zone string, k awsapi.RecordKey) string {
	ref := zone + "/" + k.Name + "/" + k.Type
	if k.SetID != "" {
		ref += "/" + k.SetID
	}
	return ref
}

func parseRecordRef(ref string) (zone string, k awsapi.RecordKey, ok bool) {
	f := strings.SplitN(ref, "/", 4)
	if len(f) < 3 {
		return "", k, false
	}
	k = awsapi.RecordKey{Name: f[1], Type: f[2]}
	if len(f) == 4 {
		k.SetID = f[3]
	}
	return f[0], k, true
}

// listRecords lists the records graph owns: every ownership record of
// every hosted zone of the account that names graph (one listing per
// zone, shared with the records' watches).
func listRecords(ctx context.Context, e *Estate, h *awsapi.Hub, graph string) ([]engine.Owned, error) {
	c, err := e.hubs.Route53(ctx)
	if err != nil {
		return nil, err
	}
	d, err := e.hubs.DNS(ctx)
	if err != nil {
		return nil, err
	}
	zones, err := allZones(ctx, h, c)
	if err != nil {
		return nil, err
	}
	var out []engine.Owned
	for _, z := range zones {
		id := strings.TrimPrefix(aws.ToString(z.Id), "/hostedzone/")
		l, err := d.Records(ctx, id, freshListing)
		if awsapi.IsNoZone(err) {
			continue // deleted since the listing
		}
		if err != nil {
			return nil, fmt.Errorf("list records of zone %s: %w", id, err)
		}
		for k, rs := range l.Sets {
			if k.Type != "TXT" {
				continue
			}
			name, typ, ok := ownedRecord(k.Name)
			if !ok {
				continue
			}
			if g, res := recordOwner(&rs); g == graph {
				out = append(out, engine.Owned{ID: res, Ref: recordRef(id, awsapi.RecordKey{Name: name, Type: typ, SetID: k.SetID})})
			}
		}
	}
	return out, nil
}

// deleteRecords deletes each record set with its ownership record, both
// in one batch, from a fresh listing of its zone. A record whose
// ownership record is gone is no longer kiln's and is left alone.
func deleteRecords(ctx context.Context, e *Estate, _ *awsapi.Hub, refs []string) error {
	d, err := e.hubs.DNS(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, ref := range refs {
		zone, k, ok := parseRecordRef(ref)
		if !ok {
			errs = append(errs, fmt.Errorf("delete record %q: not a record reference", ref))
			continue
		}
		l, err := d.Records(ctx, zone, 0)
		if awsapi.IsNoZone(err) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("delete record %s %s: %w", k.Name, k.Type, err))
			continue
		}
		owner, ok := l.Sets[ownerKey(k)]
		if !ok {
			continue // gone already, or no longer kiln's
		}
		chs := []types.Change{{Action: types.ChangeActionDelete, ResourceRecordSet: &owner}}
		if rs, ok := l.Sets[k]; ok {
			chs = append(chs, types.Change{Action: types.ChangeActionDelete, ResourceRecordSet: &rs})
		}
		id, err := d.ChangeTogether(ctx, zone, chs...)
		if err == nil {
			err = d.AwaitInsync(ctx, id)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("delete record %s %s in zone %s: %w", k.Name, k.Type, zone, err))
			continue
		}
		e.log.Info("record deleted", "record", k.Name, "type", k.Type, "zone", zone)
	}
	return errors.Join(errs...)
}
