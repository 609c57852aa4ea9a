package project

import (
	"regexp"

	"go.yaml.in/yaml/v3"

	"kiln/internal/awsapi"
	"kiln/internal/iampolicy"
	"kiln/internal/store"
)

// An environment may live in another AWS account than the bakery's:
//
//	account: {role_arn: "arn:aws:iam::210987654321:role/kiln", external_id: shop-7, session_name: kiln-web}
//
// Its promotions run there with the role's credentials (the bakery assumes
// it with STS), on the image the project shares with that account
// (share_with).

var (
	envRoleARNRe     = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\x21-\x7e]{1,512}$`)
	envSessionNameRe = regexp.MustCompile(`^[A-Za-z0-9+=,.@_-]{2,64}$`)
)

// envAccount decodes an environment's account.
func (pp *projectParser) envAccount(n *yaml.Node, prefix string) *store.EnvAccount {
	if n.Kind != yaml.MappingNode {
		pp.errorf(n.Line, prefix, "want {role_arn: arn:aws:iam::ACCOUNT:role/NAME, external_id: ..., session_name: ...}")
		return nil
	}
	a := &store.EnvAccount{}
	lines := map[string]int{}
	pp.fields(n, prefix+".", lines, map[string]func(*yaml.Node){
		"role_arn":     func(v *yaml.Node) { a.RoleARN = pp.str(v, prefix+".role_arn") },
		"external_id":  func(v *yaml.Node) { a.ExternalID = pp.str(v, prefix+".external_id") },
		"session_name": func(v *yaml.Node) { a.SessionName = pp.str(v, prefix+".session_name") },
	})
	at := func(field string) int {
		if l, ok := lines[prefix+"."+field]; ok {
			return l
		}
		return n.Line
	}
	switch {
	case a.RoleARN == "":
		pp.errorf(n.Line, prefix+".role_arn", "required: the role kiln assumes in the environment's account (arn:aws:iam::ACCOUNT:role/NAME)")
	case !envRoleARNRe.MatchString(a.RoleARN):
		pp.errorf(at("role_arn"), prefix+".role_arn", "want a role ARN like arn:aws:iam::210987654321:role/kiln, got %q", a.RoleARN)
	}
	if a.ExternalID != "" && (len(a.ExternalID) < 2 || len(a.ExternalID) > 1224) {
		pp.errorf(at("external_id"), prefix+".external_id", "want 2 to 1224 characters, got %d", len(a.ExternalID))
	}
	if a.SessionName != "" && !envSessionNameRe.MatchString(a.SessionName) {
		pp.errorf(at("session_name"), prefix+".session_name", "want 2 to 64 letters, digits or +=,.@_-, got %q", a.SessionName)
	}
	return a
}

// AccountOf is the account environment e lives in, as the hubs take it
// (awsapi.Hubs.ForAccount): zero for the bakery's own. Its name is the
// account id, with the role's name after it when the role is not kiln's
// usual one, so that the environments with the same role share its
// credentials and hubs.
func AccountOf(e Environment) awsapi.Account {
	if e.Account == nil {
		return awsapi.Account{}
	}
	a := awsapi.Account{RoleARN: e.Account.RoleARN, ExternalID: e.Account.ExternalID, SessionName: e.Account.SessionName}
	a.Name = a.ID()
	if name := roleNameOf(a.RoleARN); name != "kiln" {
		a.Name += "/" + name
	}
	return a
}

// AccountID is the id of the account e lives in, "" for the bakery's own.
func AccountID(e Environment) string {
	if e.Account == nil {
		return ""
	}
	return awsapi.Account{RoleARN: e.Account.RoleARN}.ID()
}

func roleNameOf(arn string) string {
	for i := len(arn) - 1; i >= 0; i-- {
		if arn[i] == ':' {
			break
		}
		if arn[i] == '/' {
			return arn[i+1:]
		}
	}
	return arn
}

// IAMByAccount is IAM split by the account each part runs in, for a
// project whose environments live in other accounts: the bakery's own
// account (key "") has the bakes, the rollout target and the environments
// in it; each other account (keyed by AccountOf's name) the groups,
// secrets and alarms of its environments. roles are those accounts' roles,
// in the order of the environments.
func (p *Project) IAMByAccount() (map[string]iampolicy.BakeryProject, []iampolicy.AccountRole) {
	out := map[string]iampolicy.BakeryProject{}
	var roles []iampolicy.AccountRole
	envs := map[string][]Environment{}
	for _, e := range p.Environments {
		a := AccountOf(e)
		if _, seen := envs[a.Name]; !seen && a.Name != "" {
			roles = append(roles, iampolicy.AccountRole{Name: a.Name, RoleARN: a.RoleARN, ExternalID: a.ExternalID})
		}
		envs[a.Name] = append(envs[a.Name], e)
	}
	home := *p
	home.Environments = envs[""]
	out[""] = home.IAM()
	for _, r := range roles {
		q := Project{Name: p.Name, Environments: envs[r.Name]}
		b := q.IAM()
		b.Bake, b.Profiles = nil, nil
		for _, e := range q.Environments {
			if e.Group.IAMProfile != "" {
				b.Profiles = append(b.Profiles, e.Group.IAMProfile)
			}
		}
		out[r.Name] = b
	}
	return out, roles
}
