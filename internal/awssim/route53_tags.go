package awssim

import (
	"encoding/xml"
	"maps"
	"slices"
)

// Tags of hosted zones: ChangeTagsForResource, ListTagsForResource and
// ListTagsForResources (paths /tags/hostedzone/ID and /tags/hostedzone).
// Route 53 takes at most 10 tags to add per request, 50 tags per zone
// and 10 ids per ListTagsForResources; a tag key is at most 128
// characters, a value 256. Record sets carry no tags.

const (
	r53MaxTagsPerChange = 10
	r53MaxTags          = 50
	r53MaxTagResources  = 10
)

type xmlR53Tag struct {
	Key   string `xml:"Key"`
	Value string `xml:"Value"`
}

type xmlResourceTagSet struct {
	ResourceType string      `xml:"ResourceType"`
	ResourceID   string      `xml:"ResourceId"`
	Tags         []xmlR53Tag `xml:"Tags>Tag"`
}

type changeTagsForResourceResponse struct {
	XMLName xml.Name `xml:"https://route53.amazonaws.com/doc/2013-04-01/ ChangeTagsForResourceResponse"`
}

type listTagsForResourceResponse struct {
	XMLName        xml.Name          `xml:"https://route53.amazonaws.com/doc/2013-04-01/ ListTagsForResourceResponse"`
	ResourceTagSet xmlResourceTagSet `xml:"ResourceTagSet"`
}

type listTagsForResourcesResponse struct {
	XMLName         xml.Name            `xml:"https://route53.amazonaws.com/doc/2013-04-01/ ListTagsForResourcesResponse"`
	ResourceTagSets []xmlResourceTagSet `xml:"ResourceTagSets>ResourceTagSet"`
}

func (z *hostedZone) tagSet() xmlResourceTagSet {
	set := xmlResourceTagSet{ResourceType: "hostedzone", ResourceID: z.id, Tags: []xmlR53Tag{}}
	for _, k := range slices.Sorted(maps.Keys(z.tags)) {
		set.Tags = append(set.Tags, xmlR53Tag{Key: k, Value: z.tags[k]})
	}
	return set
}

func (s *Sim) changeTagsForResource(r *request) (any, error) {
	var in struct {
		AddTags       []xmlR53Tag `xml:"AddTags>Tag"`
		RemoveTagKeys []string    `xml:"RemoveTagKeys>Key"`
	}
	if err := r.xmlBody(&in); err != nil {
		return nil, err
	}
	if len(in.AddTags) > r53MaxTagsPerChange || len(in.RemoveTagKeys) > r53MaxTagsPerChange {
		return nil, route53Input("1 validation error detected: Value at 'addTags' failed to satisfy constraint: Member must have length less than or equal to %d", r53MaxTagsPerChange)
	}
	for _, t := range in.AddTags {
		if t.Key == "" || len(t.Key) > 128 || len(t.Value) > 256 {
			return nil, route53Input("Invalid tag: key must be 1 to 128 characters and value at most 256")
		}
	}
	s.lock()
	defer s.mu.Unlock()
	z, err := s.zoneLocked(r.str("Id"))
	if err != nil {
		return nil, err
	}
	tags := maps.Clone(z.tags)
	if tags == nil {
		tags = map[string]string{}
	}
	for _, k := range in.RemoveTagKeys {
		delete(tags, k)
	}
	for _, t := range in.AddTags {
		tags[t.Key] = t.Value
	}
	if len(tags) > r53MaxTags {
		return nil, apiErr("InvalidInput", "The number of tags on the resource would exceed %d", r53MaxTags)
	}
	z.tags = tags
	return changeTagsForResourceResponse{}, nil
}

func (s *Sim) listTagsForResource(r *request) (any, error) {
	s.lock()
	defer s.mu.Unlock()
	z, err := s.zoneLocked(r.str("Id"))
	if err != nil {
		return nil, err
	}
	return listTagsForResourceResponse{ResourceTagSet: z.tagSet()}, nil
}

func (s *Sim) listTagsForResources(r *request) (any, error) {
	var in struct {
		IDs []string `xml:"ResourceIds>ResourceId"`
	}
	if err := r.xmlBody(&in); err != nil {
		return nil, err
	}
	if len(in.IDs) == 0 || len(in.IDs) > r53MaxTagResources {
		return nil, route53Input("1 validation error detected: Value at 'resourceIds' failed to satisfy constraint: Member must have length between 1 and %d", r53MaxTagResources)
	}
	s.lock()
	defer s.mu.Unlock()
	out := listTagsForResourcesResponse{ResourceTagSets: []xmlResourceTagSet{}}
	for _, id := range in.IDs {
		z, err := s.zoneLocked(id)
		if err != nil {
			return nil, err
		}
		out.ResourceTagSets = append(out.ResourceTagSets, z.tagSet())
	}
	return out, nil
}
