package project

import (
	"strings"
	"testing"
)

func TestParseEnvironmentAccount(t *testing.T) {
	src := envBase + `share_with: ['210987654321']
environments:
  - name: staging
    group: {type: t3.micro, min: 1, max: 2}
  - name: production
    account: {role_arn: "arn:aws:iam::210987654321:role/kiln", external_id: shop-7, session_name: kiln-web}
    group: {type: t3.micro, min: 1, max: 2}
  - name: audit
    account: {role_arn: "arn:aws:iam::333333333333:role/deploy"}
    group: {type: t3.micro, min: 1, max: 2}
`
	p, err := Parse("web.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	st, pr, au := p.Environments[0], p.Environments[1], p.Environments[2]
	if st.Account != nil || AccountOf(st).Name != "" || AccountID(st) != "" {
		t.Errorf("staging account = %+v; want the bakery's own", st.Account)
	}
	if a := AccountOf(pr); a.Name != "210987654321" || a.RoleARN != "arn:aws:iam::210987654321:role/kiln" || a.ExternalID != "shop-7" || a.SessionName != "kiln-web" {
		t.Errorf("production account = %+v", a)
	}
	if a := AccountOf(au); a.Name != "333333333333/deploy" || AccountID(au) != "333333333333" {
		t.Errorf("audit account = %+v (id %s)", a, AccountID(au))
	}
	if Digest(pr) == Digest(func() Environment { e := pr; e.Account = nil; return e }()) {
		t.Errorf("moving production to another account leaves its digest unchanged")
	}
	byAccount, roles := p.IAMByAccount()
	if len(roles) != 2 || roles[0].Name != "210987654321" || roles[1].Name != "333333333333/deploy" {
		t.Errorf("IAMByAccount roles = %+v", roles)
	}
	if len(byAccount[""].Bake) == 0 || len(byAccount["210987654321"].Bake) != 0 || len(byAccount["210987654321"].Groups) == 0 {
		t.Errorf("IAMByAccount: the bakery's account bakes, the others run groups only: %+v", byAccount)
	}

	for _, tc := range []struct{ account, want string }{
		{`account: prod`, `web.yaml:9: environments[0].account: want {role_arn:`},
		{`account: {external_id: x1}`, `web.yaml:9: environments[0].account.role_arn: required`},
		{`account: {role_arn: "arn:aws:iam::2109:role/kiln"}`, `web.yaml:9: environments[0].account.role_arn: want a role ARN like arn:aws:iam::210987654321:role/kiln, got "arn:aws:iam::2109:role/kiln"`},
		{`account: {role_arn: "arn:aws:iam::210987654321:role/kiln", external_id: x}`, `environments[0].account.external_id: want 2 to 1224 characters, got 1`},
		{`account: {role_arn: "arn:aws:iam::210987654321:role/kiln", session_name: "a b"}`, `environments[0].account.session_name: want 2 to 64 letters`},
		{`account: {role_arn: "arn:aws:iam::210987654321:role/kiln", region: us-east-1}`, `environments[0].account.region`},
	} {
		src := envBase + "environments:\n  - name: production\n    group: {type: t3.micro, min: 1, max: 2}\n    " + tc.account + "\n"
		_, err := Parse("web.yaml", []byte(src), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%s) = %v; want %q", tc.account, err, tc.want)
		}
	}
}
