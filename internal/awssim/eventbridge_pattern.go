package awssim

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// EventBridge event patterns: a JSON object whose keys name event fields;
// an object descends into a field, an array lists what the field may be.
// An element of the array is a literal (string, number, boolean, null) or
// one of the content filters {"prefix": "s"}, {"suffix": "s"},
// {"equals-ignore-case": "s"}, {"anything-but": literal or [literals]} and
// {"exists": bool}. A field that is an array matches when any of its
// elements does. Numeric and wildcard filters are not served.

func parsePattern(text string) (map[string]any, error) {
	var pat map[string]any
	if err := json.Unmarshal([]byte(text), &pat); err != nil {
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	if len(pat) == 0 {
		return nil, errors.New("empty pattern")
	}
	return pat, checkPattern(pat)
}

func checkPattern(pat map[string]any) error {
	for k, v := range pat {
		switch v := v.(type) {
		case map[string]any:
			if err := checkPattern(v); err != nil {
				return err
			}
		case []any:
			for _, el := range v {
				if f, ok := el.(map[string]any); ok {
					if err := checkFilter(k, f); err != nil {
						return err
					}
				}
			}
		default:
			return fmt.Errorf("match value for %q must be an array or an object", k)
		}
	}
	return nil
}

func checkFilter(field string, f map[string]any) error {
	if len(f) != 1 {
		return fmt.Errorf("%q: a content filter has exactly one key", field)
	}
	for op, arg := range f {
		switch op {
		case "prefix", "suffix", "equals-ignore-case":
			if _, ok := arg.(string); !ok {
				return fmt.Errorf("%q: %s takes a string", field, op)
			}
		case "exists":
			if _, ok := arg.(bool); !ok {
				return fmt.Errorf("%q: exists takes true or false", field)
			}
		case "anything-but":
			if _, ok := arg.(map[string]any); ok {
				return fmt.Errorf("%q: anything-but with a filter is not served by the simulator", field)
			}
		default:
			return fmt.Errorf("%q: unsupported content filter %q", field, op)
		}
	}
	return nil
}

// matchPattern reports whether the event (decoded JSON) matches pat.
func matchPattern(pat, ev map[string]any) bool {
	for k, want := range pat {
		got, present := ev[k]
		switch want := want.(type) {
		case map[string]any:
			sub, ok := got.(map[string]any)
			if !ok || !matchPattern(want, sub) {
				return false
			}
		case []any:
			if !matchField(want, got, present) {
				return false
			}
		}
	}
	return true
}

func matchField(want []any, got any, present bool) bool {
	values := []any{got}
	if l, ok := got.([]any); ok {
		values = l
	}
	for _, w := range want {
		if f, ok := w.(map[string]any); ok {
			if e, ok := f["exists"].(bool); ok {
				if e == present {
					return true
				}
				continue
			}
		}
		if !present {
			continue
		}
		for _, v := range values {
			if matchValue(w, v) {
				return true
			}
		}
	}
	return false
}

func matchValue(want, got any) bool {
	f, ok := want.(map[string]any)
	if !ok {
		return want == got
	}
	s, isString := got.(string)
	for op, arg := range f {
		switch op {
		case "prefix":
			return isString && strings.HasPrefix(s, arg.(string))
		case "suffix":
			return isString && strings.HasSuffix(s, arg.(string))
		case "equals-ignore-case":
			return isString && strings.EqualFold(s, arg.(string))
		case "anything-but":
			if l, ok := arg.([]any); ok {
				for _, a := range l {
					if a == got {
						return false
					}
				}
				return true
			}
			return arg != got
		}
	}
	return false
}
