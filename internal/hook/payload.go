package hook

import (
	"slices"
	"strings"

	"github.com/tidwall/gjson"
)

// A push payload is read with gjson rather than decoded into a struct: a
// real GitHub push is about 7 KB, of which kiln needs a few fields, and
// decoding it with encoding/json was most of a webhook's CPU time. gjson
// validates the body in one pass and then finds each field without building
// anything for the rest.

// payload reads fields of a validated JSON object. The first field of the
// wrong type is remembered in err; the getters then go on returning zero
// values, so a parser reads every field and checks err once.
type payload struct {
	top map[string]gjson.Result // the wanted top-level members
	err error
}

// readPayload validates body as a JSON object (not JSON is malformed with
// notJSON) and keeps its top-level members named in keys, in one pass over
// the body: a key below them is then looked up within the member only. Of
// a member given twice the last counts, as with encoding/json.
func readPayload(body []byte, notJSON string, keys ...string) (*payload, error) {
	if !gjson.ValidBytes(body) {
		return nil, malformed("%s", notJSON)
	}
	doc := gjson.ParseBytes(body)
	if !doc.IsObject() {
		return nil, malformed("push payload: not a JSON object")
	}
	p := &payload{top: make(map[string]gjson.Result, len(keys))}
	doc.ForEach(func(k, v gjson.Result) bool {
		if slices.Contains(keys, k.Str) {
			p.top[k.Str] = v
		}
		return true
	})
	return p, nil
}

// get returns the value at path: a top-level key given to readPayload, or
// such a key, a dot and a key of the object there. It is absent after an
// error, or when the value on the way is not an object.
func (p *payload) get(path string) gjson.Result {
	if p.err != nil {
		return gjson.Result{}
	}
	key, rest, nested := strings.Cut(path, ".")
	r := p.top[key]
	if !nested {
		return r
	}
	if !r.IsObject() {
		return gjson.Result{}
	}
	return r.Get(gjson.Escape(rest))
}

// has reports whether path is present and not null.
func (p *payload) has(path string) bool {
	r := p.get(path)
	return r.Exists() && r.Type != gjson.Null
}

// str returns the string at path: "" when absent or null.
func (p *payload) str(path string) string {
	r := p.get(path)
	switch r.Type {
	case gjson.String:
		return r.Str
	case gjson.Null:
		return ""
	}
	p.fail(path, r, "a string")
	return ""
}

// boolean returns the boolean at path: false when absent or null.
func (p *payload) boolean(path string) bool {
	r := p.get(path)
	switch r.Type {
	case gjson.True, gjson.False:
		return r.Bool()
	case gjson.Null:
		return false
	}
	p.fail(path, r, "a boolean")
	return false
}

// object checks that path, when present and not null, is an object.
func (p *payload) object(path string) {
	if r := p.get(path); r.Type != gjson.Null && !r.IsObject() {
		p.fail(path, r, "an object")
	}
}

// array returns the elements of the array at path: none when absent or null.
func (p *payload) array(path string) []gjson.Result {
	r := p.get(path)
	if r.Type == gjson.Null {
		return nil
	}
	if !r.IsArray() {
		p.fail(path, r, "an array")
		return nil
	}
	return r.Array()
}

func (p *payload) fail(path string, r gjson.Result, want string) {
	p.err = malformed("push payload: %s is %s, not %s", path, jsonType(r), want)
}

func jsonType(r gjson.Result) string {
	switch {
	case r.IsObject():
		return "an object"
	case r.IsArray():
		return "an array"
	case r.Type == gjson.Number:
		return "a number"
	case r.Type == gjson.String:
		return "a string"
	case r.Type == gjson.True, r.Type == gjson.False:
		return "a boolean"
	}
	return "null"
}
