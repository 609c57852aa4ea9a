package ec2sim

import (
	"context"
	"encoding/base64"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Query parameters: scalars are "Name", lists "Name.N" (EC2) or
// "Name.member.N" (Auto Scaling), structures "Name.Field". These helpers
// read them; every one is total (no panics on any input).

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

// filters reads Filter.N.Name / Filter.N.Value.M.
func (r *request) filters() ([]filter, error) {
	var out []filter
	for _, p := range r.structs("Filter") {
		name := r.str(p + ".Name")
		if name == "" {
			return nil, apiErr("InvalidParameterValue", "The filter name must be specified")
		}
		out = append(out, filter{Name: name, Values: r.list(p + ".Value")})
	}
	return out, nil
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

func (r *request) tagSpecs() ([]tagSpec, error) {
	var out []tagSpec
	for _, p := range r.structs("TagSpecification") {
		rt := r.str(p + ".ResourceType")
		if rt == "" {
			return nil, apiErr("InvalidParameterValue", "Tag specification resource type must have a value")
		}
		tags := r.tagList(p + ".Tag")
		if err := validateTags(tags, true); err != nil {
			return nil, err
		}
		out = append(out, tagSpec{ResourceType: rt, Tags: tags})
	}
	return out, nil
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

// pageArgs reads MaxResults and NextToken. MaxResults must lie in [lo,
// 1000]; withIDs reports an id list, which AWS refuses next to MaxResults
// on the calls that say so.
func (r *request) pageArgs(lo int, idsParam string, withIDs bool) (max int, token string, err error) {
	token = r.str("NextToken")
	if !r.has("MaxResults") {
		return 0, token, nil
	}
	if withIDs {
		return 0, "", apiErr("InvalidParameterCombination", "The parameter %s cannot be used with the parameter maxResults", idsParam)
	}
	max, err = r.integer("MaxResults", 0)
	if err != nil {
		return 0, "", err
	}
	if max < lo || max > 1000 {
		return 0, "", apiErr("InvalidParameterValue", "Value ( %d ) for parameter maxResults is invalid. Expecting a value between %d and 1000.", max, lo)
	}
	return max, token, nil
}

// pageToken encodes a position; parsePageToken reads it back.
func pageToken(kind string, seq uint64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + ":" + strconv.FormatUint(seq, 10)))
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
