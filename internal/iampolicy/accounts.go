package iampolicy

import "slices"

// Accounts: a graph that works in several accounts needs a policy in each
// (what its resources there call, scoped as Policy scopes it), attached
// to the role kiln assumes there, and that role needs a trust relationship
// letting the starting credentials' account assume it (with the external
// id, when the graph gives one). The starting credentials need
// sts:AssumeRole on those roles.

// AccountRole is one account a graph declares: its name and the role
// kiln assumes there.
type AccountRole struct {
	Name, RoleARN, ExternalID string
}

// AccountPolicy is one account's policy; Account "" is the credentials
// kiln starts with.
type AccountPolicy struct {
	Account string         `json:"account"`
	RoleARN string         `json:"role_arn,omitempty"`
	Policy  PolicyDocument `json:"policy"`
	Trust   *TrustDocument `json:"trust_relationship,omitempty"`
}

// TrustDocument is a role's trust policy.
type TrustDocument struct {
	Version   string           `json:"Version"`
	Statement []TrustStatement `json:"Statement"`
}

// TrustStatement is one statement of a TrustDocument.
type TrustStatement struct {
	Effect    string                         `json:"Effect"`
	Principal map[string]string              `json:"Principal"`
	Action    string                         `json:"Action"`
	Condition map[string]map[string][]string `json:"Condition,omitempty"`
}

// AccountPolicies are the policies of a graph whose resources work in
// several accounts: byAccount holds the resources of each account name
// ("" for the starting credentials), roles the declared accounts, and
// trusted the starting account's id as the trust relationships name it.
// The starting credentials' policy comes first, with sts:AssumeRole on
// every role.
func AccountPolicies(graph string, byAccount map[string][]any, roles []AccountRole, trusted string) []AccountPolicy {
	start := Policy(graph, byAccount[""]...)
	var arns []string
	for _, r := range roles {
		if len(byAccount[r.Name]) > 0 {
			arns = append(arns, r.RoleARN)
		}
	}
	if len(arns) > 0 {
		if start.Version == "" {
			start.Version = "2012-10-17"
		}
		slices.Sort(arns)
		start.Statement = append(start.Statement, Statement{Sid: "AssumeAccountRoles", Effect: "Allow",
			Action: []string{"sts:AssumeRole"}, Resource: arns})
	}
	out := []AccountPolicy{{Account: "", Policy: start}}
	for _, r := range roles {
		rs := byAccount[r.Name]
		if len(rs) == 0 {
			continue
		}
		ts := TrustStatement{Effect: "Allow", Principal: map[string]string{"AWS": "arn:aws:iam::" + trusted + ":root"}, Action: "sts:AssumeRole"}
		if r.ExternalID != "" {
			ts.Condition = map[string]map[string][]string{"StringEquals": {"sts:ExternalId": {r.ExternalID}}}
		}
		out = append(out, AccountPolicy{Account: r.Name, RoleARN: r.RoleARN, Policy: Policy(graph, rs...),
			Trust: &TrustDocument{Version: "2012-10-17", Statement: []TrustStatement{ts}}})
	}
	return out
}

// BakeryAccounts are the policies of kiln serve when projects' environments
// live in other accounts: byAccount holds each account's part of every
// project (project.IAMByAccount; "" is the bakery's own account, which
// bakes), roles those accounts' roles and trusted the bakery's account id
// as the trust relationships name it. The bakery's policy comes first,
// with sts:AssumeRole on every role; then each account's, with the role
// to attach it to and the role's trust relationship.
func BakeryAccounts(byAccount map[string][]BakeryProject, roles []AccountRole, trusted string) []AccountPolicy {
	start := Bakery(byAccount[""]...)
	var arns []string
	for _, r := range roles {
		arns = append(arns, r.RoleARN)
	}
	if len(arns) > 0 {
		slices.Sort(arns)
		start.Statement = append(start.Statement, Statement{Sid: "AssumeAccountRoles", Effect: "Allow",
			Action: []string{"sts:AssumeRole"}, Resource: slices.Compact(arns)})
	}
	out := []AccountPolicy{{Account: "", Policy: start}}
	for _, r := range roles {
		ts := TrustStatement{Effect: "Allow", Principal: map[string]string{"AWS": "arn:aws:iam::" + trusted + ":root"}, Action: "sts:AssumeRole"}
		if r.ExternalID != "" {
			ts.Condition = map[string]map[string][]string{"StringEquals": {"sts:ExternalId": {r.ExternalID}}}
		}
		out = append(out, AccountPolicy{Account: r.Name, RoleARN: r.RoleARN, Policy: Bakery(byAccount[r.Name]...),
			Trust: &TrustDocument{Version: "2012-10-17", Statement: []TrustStatement{ts}}})
	}
	return out
}
