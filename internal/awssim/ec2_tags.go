package awssim

import (
	"maps"
	"slices"
	"strings"
	"time"
)

// tagStore holds the tags of every resource, indexed by key and value so a
// tag filter over many instances does not scan them all.
type tagStore struct {
	byID  map[string]map[string]string
	index map[string]map[string]map[string]struct{} // key → value → ids
}

func newTagStore() *tagStore {
	return &tagStore{byID: map[string]map[string]string{}, index: map[string]map[string]map[string]struct{}{}}
}

// get returns the resource's tags (not a copy: do not change it).
func (t *tagStore) get(id string) map[string]string { return t.byID[id] }

func (t *tagStore) set(id, k, v string) {
	m := t.byID[id]
	if m == nil {
		m = map[string]string{}
		t.byID[id] = m
	}
	if old, ok := m[k]; ok {
		if old == v {
			return
		}
		t.unindex(id, k, old)
	}
	m[k] = v
	vals := t.index[k]
	if vals == nil {
		vals = map[string]map[string]struct{}{}
		t.index[k] = vals
	}
	ids := vals[v]
	if ids == nil {
		ids = map[string]struct{}{}
		vals[v] = ids
	}
	ids[id] = struct{}{}
}

func (t *tagStore) del(id, k string) {
	m := t.byID[id]
	old, ok := m[k]
	if !ok {
		return
	}
	delete(m, k)
	t.unindex(id, k, old)
	if len(m) == 0 {
		delete(t.byID, id)
	}
}

func (t *tagStore) unindex(id, k, v string) {
	ids := t.index[k][v]
	delete(ids, id)
	if len(ids) == 0 {
		delete(t.index[k], v)
		if len(t.index[k]) == 0 {
			delete(t.index, k)
		}
	}
}

// drop forgets every tag of id.
func (t *tagStore) drop(id string) {
	for _, k := range slices.Collect(maps.Keys(t.byID[id])) {
		t.del(id, k)
	}
}

// matching returns the ids with tag key k and a value matching one of
// patterns (all values when patterns is nil).
func (t *tagStore) matching(k string, patterns []string) map[string]struct{} {
	out := map[string]struct{}{}
	vals := t.index[k]
	if literal(patterns) {
		// Exact values: look them up instead of matching every value.
		for _, p := range patterns {
			for id := range vals[unescape(p)] {
				out[id] = struct{}{}
			}
		}
		return out
	}
	for v, ids := range vals {
		if patterns != nil && !matchAny(patterns, v) {
			continue
		}
		for id := range ids {
			out[id] = struct{}{}
		}
	}
	return out
}

// list returns id's tags sorted by key.
func (t *tagStore) list(id string) []Tag {
	m := t.byID[id]
	if len(m) == 0 {
		return nil
	}
	out := make([]Tag, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, Tag{Key: k, Value: m[k]})
	}
	return out
}

// validateTags applies AWS's tag rules: keys 1-128 chars not starting
// with "aws:", values up to 256, at most 50 tags.
func validateTags(tags []Tag, creating bool) error {
	if len(tags) > 50 {
		return apiErr("TagLimitExceeded", "The maximum number of tags per resource is 50")
	}
	for _, tg := range tags {
		switch {
		case tg.Key == "" && creating:
			return apiErr("InvalidParameterValue", "Tag keys must have a value")
		case len(tg.Key) > 128:
			return apiErr("InvalidParameterValue", "Tag key exceeds the maximum length of 128 characters")
		case len(tg.Value) > 256:
			return apiErr("InvalidParameterValue", "Tag value exceeds the maximum length of 256 characters")
		case creating && strings.HasPrefix(strings.ToLower(tg.Key), "aws:"):
			return apiErr("InvalidParameterValue", "Tag keys starting with 'aws:' are reserved for internal use")
		}
	}
	return nil
}

// resourceType names the kind of a resource id as DescribeTags reports it.
func resourceType(id string) string {
	prefix, _, _ := strings.Cut(id, "-")
	switch prefix {
	case "i":
		return "instance"
	case "ami":
		return "image"
	case "snap":
		return "snapshot"
	case "sg":
		return "security-group"
	case "sgr":
		return "security-group-rule"
	case "key":
		return "key-pair"
	case "vol":
		return "volume"
	case "lt":
		return "launch-template"
	case "subnet":
		return "subnet"
	case "vpc":
		return "vpc"
	}
	return ""
}

// taggable checks, per resource type, that an id names a resource the
// caller can see now (CreateTags / DeleteTags), one line per type.
var taggable = map[string]func(s *Sim, id string, now time.Time) error{
	"instance":       func(s *Sim, id string, now time.Time) error { _, err := s.instanceLocked(id, now); return err },
	"image":          func(s *Sim, id string, now time.Time) error { _, err := s.imageLocked(id, now); return err },
	"snapshot":       func(s *Sim, id string, now time.Time) error { _, err := s.snapshotLocked(id); return err },
	"security-group": func(s *Sim, id string, now time.Time) error { _, err := s.groupLocked(id); return err },
	"key-pair":       func(s *Sim, id string, _ time.Time) error { return s.keyPairByIDLocked(id) },
	"security-group-rule": func(s *Sim, id string, _ time.Time) error {
		_, _, err := s.sgRuleLocked(id)
		return err
	},
	"launch-template": func(s *Sim, id string, _ time.Time) error {
		_, err := s.templateLocked(id, "")
		return err
	},
}

// checkTaggableLocked validates a resource id for CreateTags/DeleteTags.
func (s *Sim) checkTaggableLocked(id string, now time.Time) error {
	check, ok := taggable[resourceType(id)]
	if !ok {
		return apiErr("InvalidID", "The ID '%s' is not valid", id)
	}
	return check(s, id, now)
}

type describeTagsResponse struct {
	ec2Meta
	Tags      []tagDescription `xml:"tagSet>item"`
	NextToken string           `xml:"nextToken,omitempty"`
}

type tagDescription struct {
	ResourceID   string `xml:"resourceId"`
	ResourceType string `xml:"resourceType"`
	Key          string `xml:"key"`
	Value        string `xml:"value"`
}

type returnResponse struct {
	ec2Meta
	Return bool `xml:"return"`
}

func (s *Sim) createTags(r *request) (any, error) {
	ids, err := r.requiredList("ResourceId", "resourceIdSet")
	if err != nil {
		return nil, err
	}
	tags := r.tagList("Tag")
	if len(tags) == 0 {
		return nil, apiErr("MissingParameter", "The request must contain the parameter tagSet")
	}
	if err := validateTags(tags, true); err != nil {
		return nil, err
	}
	now := s.lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if err := s.checkTaggableLocked(id, now); err != nil {
			return nil, err
		}
		if len(s.tags.get(id))+len(tags) > 50 {
			merged := maps.Clone(s.tags.get(id))
			if merged == nil {
				merged = map[string]string{}
			}
			for _, tg := range tags {
				merged[tg.Key] = tg.Value
			}
			if len(merged) > 50 {
				return nil, apiErr("TagLimitExceeded", "The maximum number of tags per resource is 50")
			}
		}
	}
	apply := func(time.Time) {
		for _, id := range ids {
			if s.checkTaggableLocked(id, farFuture) != nil {
				continue // gone meanwhile
			}
			for _, tg := range tags {
				s.tags.set(id, tg.Key, tg.Value)
			}
		}
	}
	if d := s.tagsLate(); d > 0 { // the eventual profile: tags show up late
		s.after(now, d, apply)
	} else {
		apply(now)
	}
	return &returnResponse{Return: true}, nil
}

func (s *Sim) deleteTags(r *request) (any, error) {
	ids, err := r.requiredList("ResourceId", "resourceIdSet")
	if err != nil {
		return nil, err
	}
	tags := r.structs("Tag")
	now := s.lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if err := s.checkTaggableLocked(id, now); err != nil {
			return nil, err
		}
	}
	for _, id := range ids {
		if len(tags) == 0 {
			s.tags.drop(id)
			continue
		}
		for _, p := range tags {
			k, v := r.str(p+".Key"), r.str(p+".Value")
			// A tag given with a value is deleted only if the value matches.
			if r.has(p+".Value") && s.tags.get(id)[k] != v {
				continue
			}
			s.tags.del(id, k)
		}
	}
	return &returnResponse{Return: true}, nil
}

func (s *Sim) describeTags(r *request) (any, error) {
	fs, err := r.filters(nil)
	if err != nil {
		return nil, err
	}
	max, start, err := r.page("tags", 5, 1000, "", false)
	if err != nil {
		return nil, err
	}
	// The filter names are checked after the paging parameters.
	if err := checkFilters(fs, func(name string) bool {
		switch name {
		case "key", "value", "resource-id", "resource-type":
			return true
		}
		return strings.HasPrefix(name, "tag:")
	}); err != nil {
		return nil, err
	}
	s.lock()
	defer s.mu.Unlock()
	var all []tagDescription
	for _, id := range slices.Sorted(maps.Keys(s.tags.byID)) {
		rt := resourceType(id)
		for _, tg := range s.tags.list(id) {
			td := tagDescription{ResourceID: id, ResourceType: rt, Key: tg.Key, Value: tg.Value}
			if matchTagDescription(fs, td, s.tags.get(id)) {
				all = append(all, td)
			}
		}
	}
	out := &describeTagsResponse{}
	out.Tags, out.NextToken = pageOf(all, start, max, "tags")
	return out, nil
}

func matchTagDescription(fs []filter, td tagDescription, tags map[string]string) bool {
	for _, f := range fs {
		var ok bool
		switch f.Name {
		case "key":
			ok = matchAny(f.Values, td.Key)
		case "value":
			ok = matchAny(f.Values, td.Value)
		case "resource-id":
			ok = matchAny(f.Values, td.ResourceID)
		case "resource-type":
			ok = matchAny(f.Values, td.ResourceType)
		default:
			v, has := tags[strings.TrimPrefix(f.Name, "tag:")]
			ok = has && matchAny(f.Values, v)
		}
		if !ok {
			return false
		}
	}
	return true
}
