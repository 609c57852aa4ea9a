package auth

import (
	"fmt"
	"strings"
)

// DefaultRoleMap maps the groups named kiln-viewers, kiln-deployers and
// kiln-admins to their roles.
const DefaultRoleMap = "viewer=kiln-viewers,deployer=kiln-deployers,admin=kiln-admins"

// RoleMap maps identity-provider groups to roles.
type RoleMap map[string]Role

// ParseRoleMap reads "ROLE=GROUP,ROLE=GROUP,...": each item gives GROUP's
// members ROLE; a role may be named for several groups. A group named "*"
// gives every signed-in user that role.
func ParseRoleMap(s string) (RoleMap, error) {
	m := RoleMap{}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		role, group, ok := strings.Cut(item, "=")
		if !ok || strings.TrimSpace(group) == "" {
			return nil, fmt.Errorf("role map item %q: want ROLE=GROUP", item)
		}
		r, err := ParseRole(role)
		if err != nil {
			return nil, fmt.Errorf("role map item %q: %w", item, err)
		}
		group = strings.TrimSpace(group)
		if prev, ok := m[group]; ok && prev != r {
			return nil, fmt.Errorf("role map: group %q is given both %s and %s", group, prev, r)
		}
		m[group] = r
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("role map %q: no ROLE=GROUP item", s)
	}
	return m, nil
}

// Role is the highest role any of groups is given; ok is false when none
// is mapped (the user may not sign in).
func (m RoleMap) Role(groups []string) (Role, bool) {
	best := m["*"]
	for _, g := range groups {
		if r, ok := m[g]; ok && r.rank() > best.rank() {
			best = r
		}
	}
	return best, best.Valid()
}
