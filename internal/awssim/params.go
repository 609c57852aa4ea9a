package awssim

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Query parameters: scalars are "Name", lists "Name.N" (EC2) or
// "Name.member.N" (Auto Scaling), structures "Name.Field", lists of
// structures "Name.N.Field". These helpers read them, one helper per
// encoding, for every service; every one is total (no panics on any
// input). Errors are EC2's (InvalidParameterValue, MissingParameter) but
// where a helper says it answers Auto Scaling's ValidationError.

// str is the parameter's value, "" when absent.
func (r *request) str(name string) string { return r.Params.Get(name) }

// has reports whether the parameter is present.
func (r *request) has(name string) bool { _, ok := r.Params[name]; return ok }

// required is str, or MissingParameter when absent or empty.
func (r *request) required(name string) (string, error) {
	v := r.Params.Get(name)
	if v == "" {
		return "", apiErr("MissingParameter", "The request must contain the parameter %s", name)
	}
	return v, nil
}

// requiredList is list, or MissingParameter naming param (as AWS names
// the list, e.g. "resourceIdSet") when it is empty.
func (r *request) requiredList(name, param string) ([]string, error) {
	l := r.list(name)
	if len(l) == 0 {
		return nil, apiErr("MissingParameter", "The request must contain the parameter %s", param)
	}
	return l, nil
}

// integer reads an optional integer; def when absent.
func (r *request) integer(name string, def int) (int, error) {
	v := r.Params.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, apiErr("InvalidParameterValue", "Invalid value '%s' for %s", v, name)
	}
	return n, nil
}

// boolean reads an optional boolean.
func (r *request) boolean(name string) (bool, error) {
	v := r.Params.Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, apiErr("InvalidParameterValue", "Invalid value '%s' for %s", v, name)
	}
	return b, nil
}

// optInt reads an optional Auto Scaling integer: has is false when it is
// absent or empty; a malformed one is a ValidationError.
func (r *request) optInt(name string) (n int, has bool, err error) {
	if !r.has(name) || r.str(name) == "" {
		return 0, false, nil
	}
	n, err = strconv.Atoi(r.str(name))
	if err != nil {
		return 0, false, validation("Value '%s' at '%s' failed to satisfy constraint: Member must be a number", r.str(name), name)
	}
	return n, true, nil
}

// input decodes a JSON-protocol request's body into v (a pointer to a
// struct in the shape of the operation's input). Unknown members are
// ignored, as AWS ignores them; a body that is not a JSON object of the
// right types is a SerializationException.
func (r *request) input(v any) error {
	if len(bytes.TrimSpace(r.Body)) == 0 {
		return nil
	}
	if err := json.Unmarshal(r.Body, v); err != nil {
		return apiErr("SerializationException", "cannot read the request: %v", err)
	}
	return nil
}

// indexes returns the sorted N of every "prefix.N" or "prefix.N.*"
// parameter.
func (r *request) indexes(prefix string) []int {
	var out []int
	p := prefix + "."
	for k := range r.Params {
		rest, ok := strings.CutPrefix(k, p)
		if !ok {
			continue
		}
		num, _, _ := strings.Cut(rest, ".")
		n, err := strconv.Atoi(num)
		if err != nil || n < 1 || n > 100000 {
			continue
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// list reads the flat list "prefix.1", "prefix.2", ... in index order.
func (r *request) list(prefix string) []string {
	var out []string
	for _, n := range r.indexes(prefix) {
		if v, ok := r.Params[prefix+"."+strconv.Itoa(n)]; ok && len(v) > 0 {
			out = append(out, v[0])
		}
	}
	return out
}

// hasList reports whether the list "prefix.N" was given, even as an empty
// list (a bare "prefix" parameter).
func (r *request) hasList(prefix string) bool {
	return r.has(prefix) || len(r.indexes(prefix)) > 0
}

// members reads the Auto Scaling list "prefix.member.1", ...
func (r *request) members(prefix string) []string { return r.list(prefix + ".member") }

// memberPrefixes returns "prefix.member.N" for each N of a list of
// structures, for the Auto Scaling files.
func (r *request) memberPrefixes(prefix string) []string {
	var out []string
	for _, n := range r.indexes(prefix + ".member") {
		out = append(out, prefix+".member."+strconv.Itoa(n))
	}
	return out
}

// structs returns "prefix.N" for each N of an EC2 list of structures.
func (r *request) structs(prefix string) []string {
	var out []string
	for _, n := range r.indexes(prefix) {
		out = append(out, prefix+"."+strconv.Itoa(n))
	}
	return out
}

// filter is one Filter.N: a name and values with wildcards.
type filter struct {
	Name   string
	Values []string
}

// filters reads the EC2 filters Filter.N.Name / Filter.N.Value.M. A
// filter without a name is InvalidParameterValue, and so, after every
// filter is read, is a name that known refuses (nil accepts any; see
// filterNames).
func (r *request) filters(known func(name string) bool) ([]filter, error) {
	var out []filter
	for _, p := range r.structs("Filter") {
		name := r.str(p + ".Name")
		if name == "" {
			return nil, apiErr("InvalidParameterValue", "The filter name must be specified")
		}
		out = append(out, filter{Name: name, Values: r.list(p + ".Value")})
	}
	if known != nil {
		if err := checkFilters(out, known); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// checkFilters refuses the first filter whose name known refuses.
func checkFilters(fs []filter, known func(name string) bool) error {
	for _, f := range fs {
		if !known(f.Name) {
			return apiErr("InvalidParameterValue", "The filter '%s' is invalid", f.Name)
		}
	}
	return nil
}

// memberFilters reads the Auto Scaling filters Filters.member.N.Name /
// Filters.member.N.Values.member.M; a name that known refuses is a
// ValidationError.
func (r *request) memberFilters(known func(name string) bool) ([]filter, error) {
	var out []filter
	for _, p := range r.memberPrefixes("Filters") {
		f := filter{Name: r.str(p + ".Name"), Values: r.members(p + ".Values")}
		if !known(f.Name) {
			return nil, validation("Filter name '%s' is not supported.", f.Name)
		}
		out = append(out, f)
	}
	return out, nil
}

// filterNames accepts the names in known (a kind's filter table) and, with
// tags, the tag filters: tag:KEY, tag-key and tag-value.
func filterNames[V any](known map[string]V, tags bool) func(name string) bool {
	return func(name string) bool {
		if _, ok := known[name]; ok {
			return true
		}
		return tags && isTagFilter(name)
	}
}

// Tag is a key and a value.
type Tag struct {
	Key   string `xml:"key" json:"Key"`
	Value string `xml:"value" json:"Value"`
}

// tagList reads prefix.N.Key / prefix.N.Value (Tag.N on CreateTags).
func (r *request) tagList(prefix string) []Tag {
	var out []Tag
	for _, p := range r.structs(prefix) {
		out = append(out, Tag{Key: r.str(p + ".Key"), Value: r.str(p + ".Value")})
	}
	return out
}

// tagSpec is one TagSpecification.N.
type tagSpec struct {
	ResourceType string
	Tags         []Tag
}

// tagSpecs reads prefix+"TagSpecification.N" (ResourceType, Tag.M.Key /
// Value) and applies the tag rules. checkType refuses a spec's resource
// type before its tags are read (anyTagType for the calls that check the
// type where they use the tags, with tagsFor).
func (r *request) tagSpecs(prefix string, checkType func(rt string) error) ([]tagSpec, error) {
	var out []tagSpec
	for _, p := range r.structs(prefix + "TagSpecification") {
		rt := r.str(p + ".ResourceType")
		if err := checkType(rt); err != nil {
			return nil, err
		}
		tags := r.tagList(p + ".Tag")
		if err := validateTags(tags, true); err != nil {
			return nil, err
		}
		out = append(out, tagSpec{ResourceType: rt, Tags: tags})
	}
	return out, nil
}

// anyTagType accepts any resource type that is given.
func anyTagType(rt string) error {
	if rt == "" {
		return apiErr("InvalidParameterValue", "Tag specification resource type must have a value")
	}
	return nil
}

// tagsFor returns the tags of the specs for resource type rt, and an error
// when a spec names a type this call cannot tag.
func tagsFor(specs []tagSpec, rt string, allowed ...string) ([]Tag, error) {
	var out []Tag
	for _, sp := range specs {
		if !slices.Contains(allowed, sp.ResourceType) {
			return nil, apiErr("InvalidParameterValue", "'%s' is not a valid taggable resource type for this operation.", sp.ResourceType)
		}
		if sp.ResourceType == rt {
			out = append(out, sp.Tags...)
		}
	}
	return out, nil
}

// page reads MaxResults and NextToken: MaxResults must lie in [lo, hi],
// and the token must be one that pageToken made for kind. withIDs reports
// an id list, which AWS refuses next to MaxResults on the calls that say
// so; idsParam is its name in that error.
func (r *request) page(kind string, lo, hi int, idsParam string, withIDs bool) (max int, start uint64, err error) {
	if r.has("MaxResults") {
		if withIDs {
			return 0, 0, apiErr("InvalidParameterCombination", "The parameter %s cannot be used with the parameter maxResults", idsParam)
		}
		if max, err = r.integer("MaxResults", 0); err != nil {
			return 0, 0, err
		}
		if max < lo || max > hi {
			return 0, 0, apiErr("InvalidParameterValue", "Value ( %d ) for parameter maxResults is invalid. Expecting a value between %d and %d.", max, lo, hi)
		}
	}
	start, err = parsePageToken(kind, r.str("NextToken"))
	return max, start, err
}

// records reads the Auto Scaling paging parameters MaxRecords (1-100,
// default 50) and NextToken (one that pageToken made for kind).
func (r *request) records(kind string) (int, uint64, error) {
	max, has, err := r.optInt("MaxRecords")
	if err != nil {
		return 0, 0, err
	}
	if !has {
		max = 50
	}
	if max < 1 || max > 100 {
		return 0, 0, validation("1 validation error detected: Value '%d' at 'maxRecords' failed to satisfy constraint: Member must have value less than or equal to 100", max)
	}
	start, err := parsePageToken(kind, r.str("NextToken"))
	if err != nil {
		return 0, 0, apiErr("InvalidNextToken", "The token '%s' is invalid.", r.str("NextToken"))
	}
	return max, start, nil
}

// ltRefParam reads a LaunchTemplateSpecification, prefix.LaunchTemplateId
// / LaunchTemplateName / Version; ok reports that it names a template.
func (r *request) ltRefParam(prefix string) (ref ltRef, ok bool) {
	ref = ltRef{id: r.str(prefix + ".LaunchTemplateId"), name: r.str(prefix + ".LaunchTemplateName"), version: r.str(prefix + ".Version")}
	return ref, ref.id != "" || ref.name != ""
}

// pageToken encodes a position; parsePageToken reads it back.
func pageToken(kind string, seq uint64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + ":" + strconv.FormatUint(seq, 10)))
}

// pageOf returns the page of items that starts at index start, at most max
// of them (0: no limit), and the token of the next page ("" after the
// last), for the calls that page by position in their answer.
func pageOf[T any](items []T, start uint64, max int, kind string) ([]T, string) {
	start = min(start, uint64(len(items)))
	items = items[start:]
	if max > 0 && len(items) > max {
		return items[:max], pageToken(kind, start+uint64(max))
	}
	return items, ""
}

func parsePageToken(kind, tok string) (uint64, error) {
	if tok == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err == nil {
		if rest, ok := strings.CutPrefix(string(b), kind+":"); ok {
			if n, err := strconv.ParseUint(rest, 10, 64); err == nil {
				return n, nil
			}
		}
	}
	return 0, apiErr("InvalidPaginationToken", "The specified pagination token is not valid or is expired.")
}

// xmlBody decodes a REST-XML request body (Route 53's) into v; a body
// that is not well-formed XML answers MalformedXML, as Route 53 does.
func (r *request) xmlBody(v any) error {
	if err := xml.Unmarshal(r.Body, v); err != nil {
		return apiErr("MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema: %v", err)
	}
	return nil
}

// maxItems reads a REST-XML page size (Route 53's maxitems query
// parameter): def when absent, else 1 to hi, or InvalidInput.
func (r *request) maxItems(name string, def, hi int) (int, error) {
	v := r.str(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, apiErr("InvalidInput", "1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must be a positive integer", v, name)
	}
	return min(n, hi), nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// isoTime is the timestamp format of EC2 responses.
func isoTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}
