package auth

import (
	"strings"
	"testing"
)

func TestRoleAllows(t *testing.T) {
	for _, tc := range []struct {
		have, need Role
		want       bool
	}{
		{Viewer, Viewer, true}, {Viewer, Deployer, false}, {Viewer, Admin, false},
		{Deployer, Viewer, true}, {Deployer, Deployer, true}, {Deployer, Admin, false},
		{Admin, Viewer, true}, {Admin, Deployer, true}, {Admin, Admin, true},
		{"", Viewer, false}, {"root", Viewer, false},
	} {
		if got := tc.have.Allows(tc.need); got != tc.want {
			t.Errorf("%q.Allows(%q) = %v; want %v", tc.have, tc.need, got, tc.want)
		}
	}
	if _, err := ParseRole("Root"); err == nil || !strings.Contains(err.Error(), "want viewer, deployer or admin") {
		t.Errorf("ParseRole(Root) = %v", err)
	}
	if r, err := ParseRole(" Deployer "); err != nil || r != Deployer {
		t.Errorf("ParseRole(Deployer) = %q, %v", r, err)
	}
}

func TestRoleMap(t *testing.T) {
	m, err := ParseRoleMap(DefaultRoleMap)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		groups []string
		want   Role
		ok     bool
	}{
		{[]string{"kiln-viewers"}, Viewer, true},
		{[]string{"kiln-viewers", "kiln-admins", "kiln-deployers"}, Admin, true},
		{[]string{"engineering"}, "", false},
		{nil, "", false},
	} {
		if got, ok := m.Role(tc.groups); got != tc.want || ok != tc.ok {
			t.Errorf("Role(%v) = %q, %v; want %q, %v", tc.groups, got, ok, tc.want, tc.ok)
		}
	}
	m, err = ParseRoleMap("viewer=*, deployer=eng,admin=ops")
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := m.Role([]string{"sales"}); got != Viewer || !ok {
		t.Errorf("Role(sales) with viewer=* = %q, %v; want viewer", got, ok)
	}
	if got, _ := m.Role([]string{"eng"}); got != Deployer {
		t.Errorf("Role(eng) = %q; want deployer", got)
	}
	for in, want := range map[string]string{
		"":                   "no ROLE=GROUP item",
		"viewer":             `"viewer": want ROLE=GROUP`,
		"owner=x":            `role "owner"`,
		"viewer=a,admin=a":   `group "a" is given both viewer and admin`,
		"viewer=, admin=ops": `"viewer=": want ROLE=GROUP`,
	} {
		if _, err := ParseRoleMap(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseRoleMap(%q) = %v; want %q", in, err, want)
		}
	}
}

func TestPrincipalString(t *testing.T) {
	for p, want := range map[Principal]string{
		{Name: "admin", Kind: KindAdminToken, Role: Admin}:       "admin-token",
		{Name: "ci", Kind: KindToken, Role: Deployer}:            "token ci",
		{Name: "alice@example.com", Kind: KindUser, Role: Admin}: "user alice@example.com",
		{Name: "token ci", Role: Deployer}:                       "token ci",
	} {
		if got := p.String(); got != want {
			t.Errorf("%+v.String() = %q; want %q", p, got, want)
		}
	}
	if got := ForbiddenMessage(Principal{Name: "ci", Kind: KindToken, Role: Viewer}, Admin); got != "this needs the admin role; token ci has viewer" {
		t.Errorf("ForbiddenMessage() = %q", got)
	}
	if tok := NewToken(); !strings.HasPrefix(tok, TokenPrefix) || len(tok) != len(TokenPrefix)+43 || HashToken(tok) == HashToken(NewToken()) {
		t.Errorf("NewToken() = %q", tok)
	}
}
