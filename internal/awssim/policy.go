package awssim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Policy is a parsed IAM identity policy, the one policy of the simulator's
// single caller when Options.Policy is set (see authz.go). It evaluates as
// IAM evaluates one identity-based policy: an explicit Deny wins, else an
// Allow, else the request is denied.
//
// It reads Version, Statement (an object or a list), Sid, Effect, Action
// (a string or a list, with * and ? wildcards, case-insensitive),
// Resource (ARN patterns with * and ?) and Condition with the operators
// StringEquals, StringNotEquals, StringEqualsIgnoreCase, StringLike,
// StringNotLike, ArnEquals, ArnLike, each with the ForAllValues: or
// ForAnyValue: prefix and the IfExists suffix. Anything else (NotAction,
// NotResource, Principal, other operators) is refused by ParsePolicy, so
// a policy the simulator cannot judge is never half applied.
type Policy struct {
	Statements []PolicyStatement
}

// PolicyStatement is one statement of a Policy.
type PolicyStatement struct {
	Sid      string
	Allow    bool // Effect Allow; false is Deny
	Action   []string
	Resource []string
	// Conditions are ANDed.
	Conditions []PolicyCondition
}

// PolicyCondition is one operator and key of a statement's Condition: it
// holds when the request context's values for Key match Values.
type PolicyCondition struct {
	Operator string // as written: "ForAllValues:StringLike", "StringEqualsIfExists"
	Key      string
	Values   []string
}

// strings1 is a JSON string or list of strings.
type strings1 []string

func (s *strings1) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("want a string or a list of strings")
	}
	*s = many
	return nil
}

// ParsePolicy reads a policy document. Errors name the statement (its Sid
// or its index) and the field.
func ParsePolicy(b []byte) (*Policy, error) {
	var doc struct {
		Version   string
		Statement json.RawMessage
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if doc.Version != "2012-10-17" && doc.Version != "2008-10-17" {
		return nil, fmt.Errorf("policy: Version %q: want \"2012-10-17\"", doc.Version)
	}
	var raws []json.RawMessage
	if t := bytes.TrimSpace(doc.Statement); len(t) > 0 && t[0] == '{' {
		raws = []json.RawMessage{doc.Statement}
	} else if err := json.Unmarshal(doc.Statement, &raws); err != nil || len(raws) == 0 {
		return nil, errors.New("policy: Statement: want a statement or a non-empty list of statements")
	}
	p := &Policy{}
	for i, raw := range raws {
		var st struct {
			Sid       string
			Effect    string
			Action    strings1
			Resource  strings1
			Condition map[string]map[string]strings1
		}
		d := json.NewDecoder(bytes.NewReader(raw))
		d.DisallowUnknownFields()
		name := fmt.Sprintf("statement %d", i+1)
		err := d.Decode(&st)
		if st.Sid != "" {
			name = fmt.Sprintf("statement %d (%s)", i+1, st.Sid)
		}
		switch {
		case err != nil:
			return nil, fmt.Errorf("policy: %s: %w (the simulator reads Sid, Effect, Action, Resource and Condition)", name, err)
		case st.Effect != "Allow" && st.Effect != "Deny":
			return nil, fmt.Errorf("policy: %s: Effect %q: want Allow or Deny", name, st.Effect)
		case len(st.Action) == 0:
			return nil, fmt.Errorf("policy: %s: Action: missing", name)
		case len(st.Resource) == 0:
			return nil, fmt.Errorf("policy: %s: Resource: missing", name)
		}
		ps := PolicyStatement{Sid: st.Sid, Allow: st.Effect == "Allow", Action: st.Action, Resource: st.Resource}
		for op, keys := range st.Condition {
			if _, _, _, ok := splitOperator(op); !ok {
				return nil, fmt.Errorf("policy: %s: Condition: operator %q is not supported by the simulator", name, op)
			}
			for k, vs := range keys {
				ps.Conditions = append(ps.Conditions, PolicyCondition{Operator: op, Key: k, Values: vs})
			}
		}
		slices.SortFunc(ps.Conditions, func(a, b PolicyCondition) int { return strings.Compare(a.Operator+a.Key, b.Operator+b.Key) })
		p.Statements = append(p.Statements, ps)
	}
	return p, nil
}

// splitOperator reads "ForAllValues:StringLikeIfExists" into its set
// prefix ("", "ForAllValues", "ForAnyValue"), base operator and IfExists.
func splitOperator(op string) (set, base string, ifExists, ok bool) {
	base = op
	if s, rest, found := strings.Cut(op, ":"); found {
		if s != "ForAllValues" && s != "ForAnyValue" {
			return "", "", false, false
		}
		set, base = s, rest
	}
	base, ifExists = strings.CutSuffix(base, "IfExists")
	switch base {
	case "StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringLike", "StringNotLike", "ArnEquals", "ArnLike":
		return set, base, ifExists, true
	}
	return "", "", false, false
}

// authzContext is the request context of one resource: condition keys,
// lower-cased (IAM compares key names without case), and their values.
type authzContext map[string][]string

// decision is what a policy says of one action on one resource.
type decision int

const (
	implicitDeny decision = iota
	allowed
	explicitDeny
)

// decide evaluates action on resource with the context's keys.
func (p *Policy) decide(action, resource string, ctx authzContext) decision {
	d := implicitDeny
	for _, st := range p.Statements {
		if !st.matches(action, resource, ctx) {
			continue
		}
		if !st.Allow {
			return explicitDeny
		}
		d = allowed
	}
	return d
}

func (st *PolicyStatement) matches(action, resource string, ctx authzContext) bool {
	if !slices.ContainsFunc(st.Action, func(p string) bool { return glob(strings.ToLower(p), strings.ToLower(action)) }) {
		return false
	}
	if !slices.ContainsFunc(st.Resource, func(p string) bool { return glob(p, resource) }) {
		return false
	}
	for _, c := range st.Conditions {
		if !c.holds(ctx) {
			return false
		}
	}
	return true
}

// holds evaluates the condition against the context, as IAM does: a
// single-valued operator holds when any context value matches any policy
// value (a negated one when none does); ForAllValues when every context
// value matches (true for no values); ForAnyValue when one does. A missing
// key fails a positive operator, passes a negated one, and passes any
// operator with IfExists.
func (c PolicyCondition) holds(ctx authzContext) bool {
	set, base, ifExists, _ := splitOperator(c.Operator)
	vals, present := ctx[strings.ToLower(c.Key)]
	negated := strings.Contains(base, "Not")
	match := func(v string) bool {
		return slices.ContainsFunc(c.Values, func(p string) bool {
			switch base {
			case "StringEquals", "StringNotEquals", "ArnEquals":
				return p == v
			case "StringEqualsIgnoreCase":
				return strings.EqualFold(p, v)
			}
			return glob(p, v) // StringLike, StringNotLike, ArnLike
		})
	}
	switch set {
	case "ForAllValues":
		for _, v := range vals {
			if match(v) == negated {
				return false
			}
		}
		return true
	case "ForAnyValue":
		if !present {
			return ifExists
		}
		return slices.ContainsFunc(vals, func(v string) bool { return match(v) != negated })
	}
	if !present {
		return ifExists || negated
	}
	any := slices.ContainsFunc(vals, match)
	return any != negated
}

// glob matches s against pattern with * (any run) and ? (one character),
// as IAM matches actions, ARNs and StringLike values (filters' match).
func glob(pattern, s string) bool { return match(pattern, s) }
