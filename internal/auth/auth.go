// Package auth holds who may do what in kiln serve: the three roles
// (viewer, deployer, admin), the principal a request acts as (the admin
// token, a personal API token, a signed-in user, a webhook delivery), the
// mapping of an identity provider's groups to roles, and personal API
// tokens' generation and hashing.
//
// Roles are ordered: a deployer may do everything a viewer may, an admin
// everything a deployer may. The API and the pages check one role per
// route (Need) and answer 403 naming it.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// Role is what a principal may do.
type Role string

// The roles, from least to most.
const (
	// Viewer reads: the pages and the read API.
	Viewer Role = "viewer"
	// Deployer also bakes, promotes, approves and cancels.
	Deployer Role = "deployer"
	// Admin also changes projects, secrets, tokens and revokes images.
	Admin Role = "admin"
)

// Roles lists the roles from least to most.
var Roles = []Role{Viewer, Deployer, Admin}

func (r Role) rank() int {
	switch r {
	case Viewer:
		return 1
	case Deployer:
		return 2
	case Admin:
		return 3
	}
	return 0
}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool { return r.rank() > 0 }

// Allows reports whether a principal of role r may do what needs role
// need. An invalid role allows nothing.
func (r Role) Allows(need Role) bool { return r.rank() > 0 && r.rank() >= need.rank() }

// ParseRole reads a role name.
func ParseRole(s string) (Role, error) {
	r := Role(strings.ToLower(strings.TrimSpace(s)))
	if !r.Valid() {
		return "", fmt.Errorf("role %q: want viewer, deployer or admin", s)
	}
	return r, nil
}

// Kinds of principal.
const (
	KindAdminToken = "admin-token" // the break-glass admin token
	KindToken      = "token"       // a personal API token, by its name
	KindUser       = "user"        // a user signed in through the identity provider
	KindWebhook    = "webhook"     // a signed webhook delivery
)

// Principal is who a request acts as.
type Principal struct {
	// Name is the user (the identity provider's email or subject), the
	// token's name, "admin" for the admin token, or the webhook delivery.
	Name string
	Kind string
	Role Role
}

// String is how the audit log and the logs name p: "user alice@example.com",
// "token ci", "admin-token".
func (p Principal) String() string {
	if p.Kind == "" {
		return p.Name // a page session: its subject, already in this form
	}
	if p.Kind == KindAdminToken || p.Name == "" {
		return p.Kind
	}
	return p.Kind + " " + p.Name
}

// ForbiddenMessage is the answer to p asking for what needs role need.
func ForbiddenMessage(p Principal, need Role) string {
	return fmt.Sprintf("this needs the %s role; %s has %s", need, p, p.Role)
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal ctx carries; ok is false when there
// is none.
func FromContext(ctx context.Context) (p Principal, ok bool) {
	p, ok = ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// TokenPrefix starts every personal API token, so a leaked one is easy to
// find with a secret scanner.
const TokenPrefix = "kiln_pat_"

// NewToken returns a new personal API token: the prefix and 32 bytes from
// crypto/rand, base64url.
func NewToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// HashToken is how a personal token is kept: hex SHA-256. The token holds
// 256 random bits, so a plain hash is enough to make a stolen database
// useless for calling the API.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
