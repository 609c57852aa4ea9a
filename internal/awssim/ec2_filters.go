package awssim

import "strings"

// match reports whether s matches pattern, where * matches any run of
// characters and ? any one, as in EC2 filter values. A backslash escapes
// the next character.
func match(pattern, s string) bool {
	if !strings.ContainsAny(pattern, `*?\`) {
		return pattern == s
	}
	// Iterative glob with single backtrack point: linear for typical
	// patterns, never recursive.
	p, i := 0, 0
	starP, starI := -1, 0
	for i < len(s) {
		if p < len(pattern) {
			switch c := pattern[p]; {
			case c == '*':
				starP, starI = p, i
				p++
				continue
			case c == '?':
				p++
				i++
				continue
			case c == '\\' && p+1 < len(pattern):
				if pattern[p+1] == s[i] {
					p += 2
					i++
					continue
				}
			case c == s[i]:
				p++
				i++
				continue
			}
		}
		if starP < 0 {
			return false
		}
		starI++
		p, i = starP+1, starI
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// matchAny reports whether s matches one of the patterns (a filter's values
// are ORed).
func matchAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if match(p, s) {
			return true
		}
	}
	return false
}

// tagFilter reports whether f is a tag filter, and its key: "tag:KEY"
// matches values of KEY, "tag-key" matches keys.
func tagFilterKey(f filter) (key string, ok bool) {
	return strings.CutPrefix(f.Name, "tag:")
}

// isTagFilter reports whether a filter name is a tag filter: tag:KEY,
// tag-key or tag-value.
func isTagFilter(name string) bool {
	return strings.HasPrefix(name, "tag:") || name == "tag-key" || name == "tag-value"
}

// matchTags applies tag:KEY, tag-key and tag-value filters to tags; other
// filters pass. handled reports whether f was a tag filter.
func matchTags(f filter, tags map[string]string) (ok, handled bool) {
	if k, isTag := tagFilterKey(f); isTag {
		v, has := tags[k]
		return has && matchAny(f.Values, v), true
	}
	switch f.Name {
	case "tag-key":
		for k := range tags {
			if matchAny(f.Values, k) {
				return true, true
			}
		}
		return false, true
	case "tag-value":
		for _, v := range tags {
			if matchAny(f.Values, v) {
				return true, true
			}
		}
		return false, true
	}
	return false, false
}

// matchFilters applies every filter (ANDed) to one object: the tag filters
// to its tags, the others by other (the kind's own filter names).
func matchFilters(fs []filter, tags map[string]string, other func(filter) bool) bool {
	for _, f := range fs {
		if ok, handled := matchTags(f, tags); handled {
			if !ok {
				return false
			}
			continue
		}
		if !other(f) {
			return false
		}
	}
	return true
}

// literal reports whether no pattern has a wildcard (nil means "any").
func literal(patterns []string) bool {
	if patterns == nil {
		return false
	}
	for _, p := range patterns {
		if strings.ContainsAny(p, "*?") {
			return false
		}
	}
	return true
}

// unescape removes the backslashes of a literal pattern.
func unescape(p string) string {
	if !strings.Contains(p, `\`) {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '\\' && i+1 < len(p) {
			i++
		}
		b.WriteByte(p[i])
	}
	return b.String()
}
