package awssim

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Queue policies (the Policy attribute), as far as EventBridge delivery
// needs them: a statement allows or denies a principal ("*", or
// {"Service": ...} / {"AWS": "*"}) an action (sqs:*, *) on a resource (the queue's ARN, wildcards allowed), under
// conditions on aws:SourceArn (ArnEquals, ArnLike, StringEquals,
// StringLike). A condition of another kind never holds, so such a
// statement allows nothing here. An explicit Deny wins.

type policyDoc struct {
	Statement statements `json:"Statement"`
}

type policyStatement struct {
	Effect    string                             `json:"Effect"`
	Principal json.RawMessage                    `json:"Principal"`
	Action    stringOrList                       `json:"Action"`
	Resource  stringOrList                       `json:"Resource"`
	Condition map[string]map[string]stringOrList `json:"Condition"`
}

// statements is a policy's Statement: one object or a list of them.
type statements []policyStatement

func (s *statements) UnmarshalJSON(b []byte) error {
	var one policyStatement
	if err := json.Unmarshal(b, &one); err == nil {
		*s = statements{one}
		return nil
	}
	var many []policyStatement
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*s = many
	return nil
}

// stringOrList is a policy value that is a string or a list of strings.
type stringOrList []string

func (l *stringOrList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*l = stringOrList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("want a string or a list of strings")
	}
	*l = many
	return nil
}

func parsePolicy(text string) (*policyDoc, error) {
	var doc policyDoc
	if err := json.Unmarshal([]byte(text), &doc); err != nil {
		return nil, fmt.Errorf("policy is not valid: %v", err)
	}
	for _, st := range doc.Statement {
		if st.Effect != "Allow" && st.Effect != "Deny" {
			return nil, fmt.Errorf("policy is not valid: Effect must be Allow or Deny")
		}
	}
	return &doc, nil
}

// policyAllows reports whether the policy lets service principal call
// action on resource for sourceArn.
func policyAllows(text, service, action, resource, sourceArn string) bool {
	if text == "" {
		return false
	}
	doc, err := parsePolicy(text)
	if err != nil {
		return false
	}
	allowed := false
	for _, st := range doc.Statement {
		if !st.principal(service) || !matchAny(st.Action, action) ||
			!matchAny(st.Resource, resource) || !st.conditions(sourceArn) {
			continue
		}
		if st.Effect == "Deny" {
			return false
		}
		allowed = true
	}
	return allowed
}

func (st policyStatement) principal(service string) bool {
	var any string
	if json.Unmarshal(st.Principal, &any) == nil {
		return any == "*"
	}
	var m map[string]stringOrList
	if json.Unmarshal(st.Principal, &m) != nil {
		return false
	}
	return matchAny(m["Service"], service) || slicesHas(m["AWS"], "*")
}

func slicesHas(l []string, v string) bool {
	for _, x := range l {
		if x == v {
			return true
		}
	}
	return false
}

func (st policyStatement) conditions(sourceArn string) bool {
	for op, kv := range st.Condition {
		for key, vals := range kv {
			if key != "aws:SourceArn" && key != "aws:sourceArn" {
				return false
			}
			switch op {
			case "ArnEquals", "StringEquals":
				if !slicesHas(vals, sourceArn) {
					return false
				}
			case "ArnLike", "StringLike":
				if !matchAny(vals, sourceArn) {
					return false
				}
			default:
				return false
			}
		}
	}
	return true
}
