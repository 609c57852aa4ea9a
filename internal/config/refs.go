package config

import (
	"fmt"
	"strings"

	"kiln/internal/engine"
)

// A reference is ${kind/name.key}: the output key of resource kind/name.
// The kind may contain ':' (aws:ami); the key is what follows the last '.'.
// ${...} without a '/' (a shell's ${HOME}) is left as it is, and $${ is a
// literal ${.
type ref struct {
	Raw string // "${aws:ami/web.image_id}"
	ID  string // "aws:ami/web"
	Key string // "image_id"
}

// scanRefs finds the references in s; bad lists malformed ones.
func scanRefs(s string) (refs []ref, bad []string) {
	for i := 0; i < len(s); {
		j := strings.Index(s[i:], "${")
		if j < 0 {
			break
		}
		j += i
		if j > 0 && s[j-1] == '$' { // $${ escape
			i = j + 2
			continue
		}
		end := strings.IndexByte(s[j:], '}')
		if end < 0 {
			if strings.Contains(s[j:], "/") {
				bad = append(bad, s[j:])
			}
			break
		}
		end += j
		inner := s[j+2 : end]
		i = end + 1
		if !strings.Contains(inner, "/") {
			continue
		}
		r, ok := parseRef(inner)
		if !ok {
			bad = append(bad, s[j:end+1])
			continue
		}
		refs = append(refs, r)
	}
	return refs, bad
}

func parseRef(inner string) (ref, bool) {
	kind, rest, _ := strings.Cut(inner, "/")
	dot := strings.LastIndexByte(rest, '.')
	if kind == "" || dot <= 0 || dot == len(rest)-1 || strings.ContainsAny(inner, " \t\n${") {
		return ref{}, false
	}
	return ref{Raw: "${" + inner + "}", ID: kind + "/" + rest[:dot], Key: rest[dot+1:]}, true
}

// HasRef reports whether s holds a ${kind/name.key} reference, i.e. a value
// that is only known once the referenced resource has run. Validators skip
// such values at parse time.
func HasRef(s string) bool {
	refs, _ := scanRefs(s)
	return len(refs) > 0
}

// substitute replaces every reference in s with its value from lookup and
// turns $${ into ${.
func substitute(s string, lookup engine.Lookup) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		j := strings.Index(s[i:], "${")
		if j < 0 {
			b.WriteString(s[i:])
			break
		}
		j += i
		if j > 0 && s[j-1] == '$' {
			b.WriteString(s[i : j-1])
			b.WriteString("${")
			i = j + 2
			continue
		}
		b.WriteString(s[i:j])
		end := strings.IndexByte(s[j:], '}')
		if end < 0 {
			b.WriteString(s[j:])
			break
		}
		end += j
		inner := s[j+2 : end]
		r, ok := parseRef(inner)
		if !strings.Contains(inner, "/") || !ok {
			b.WriteString(s[j : end+1])
			i = end + 1
			continue
		}
		v, ok := lookup(r.ID, r.Key)
		if !ok {
			return "", fmt.Errorf("reference %s: %s has no output %q (yet)", r.Raw, r.ID, r.Key)
		}
		b.WriteString(v)
		i = end + 1
	}
	return b.String(), nil
}

// Substitute replaces every ${kind/name.key} reference in s with its value
// from lookup (and $${ with ${), as Spec.Build does; an output lookup does
// not have is an error naming the reference.
func Substitute(s string, lookup engine.Lookup) (string, error) { return substitute(s, lookup) }
