package awsapi

import (
	"encoding/json"
	"slices"
	"strings"
)

// IAMActioner is implemented by every AWS kind: the IAM actions its
// CheckApply and Watch may call, given its fields (iam:PassRole only when an
// instance profile is set, say).
type IAMActioner interface {
	IAMActions() []string
}

// PolicyDocument is an IAM policy.
type PolicyDocument struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// Statement is one statement of a PolicyDocument.
type Statement struct {
	Sid      string   `json:"Sid,omitempty"`
	Effect   string   `json:"Effect"`
	Action   []string `json:"Action"`
	Resource string   `json:"Resource"`
}

// Policy returns the least-privilege policy allowing exactly the actions
// the given values declare (values that are not IAMActioners, such as local
// kinds, add nothing). Actions are sorted and deduplicated; iam:PassRole gets
// its own statement so an operator can narrow its Resource to the role. An
// empty set yields a policy with no statements.
func Policy(resources ...any) PolicyDocument {
	var acts []string
	for _, r := range resources {
		if a, ok := r.(IAMActioner); ok {
			acts = append(acts, a.IAMActions()...)
		}
	}
	slices.Sort(acts)
	acts = slices.Compact(acts)
	doc := PolicyDocument{Version: "2012-10-17", Statement: []Statement{}}
	var main, pass []string
	for _, a := range acts {
		if strings.EqualFold(a, "iam:PassRole") {
			pass = append(pass, a)
			continue
		}
		main = append(main, a)
	}
	if len(main) > 0 {
		doc.Statement = append(doc.Statement, Statement{Sid: "KilnManage", Effect: "Allow", Action: main, Resource: "*"})
	}
	if len(pass) > 0 {
		doc.Statement = append(doc.Statement, Statement{Sid: "KilnPassRole", Effect: "Allow", Action: pass, Resource: "*"})
	}
	return doc
}

// PolicyJSON is Policy as indented JSON with a trailing newline.
func PolicyJSON(resources ...any) []byte {
	b, _ := json.MarshalIndent(Policy(resources...), "", "  ")
	return append(b, '\n')
}
