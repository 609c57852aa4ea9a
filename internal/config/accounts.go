package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"kiln/internal/engine"
)

// Accounts. A graph may declare the AWS accounts it works in besides the
// one of the credentials kiln starts with:
//
//	accounts:
//	  prod: {role_arn: "arn:aws:iam::210987654321:role/kiln", external_id: shop-7, session_name: kiln}
//
// and every AWS resource may name one with account: prod (default: the
// starting credentials). kiln assumes the role once per account, for every
// resource of that account.

// Account is one declared account.
type Account struct {
	Name        string
	RoleARN     string
	ExternalID  string
	SessionName string
}

// AccountUser is a kind that works in an account (the AWS kinds):
// UseAccount is called on every new resource that names one, before its
// fields are decoded.
type AccountUser interface {
	UseAccount(Account)
}

var (
	accountNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,63}$`)
	roleARNRE     = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\x21-\x7e]{1,512}$`)
	sessionNameRE = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
)

// accounts reads the accounts: mapping.
func (p *parser) accounts(v *yaml.Node) map[string]Account {
	out := map[string]Account{}
	if v.Kind != yaml.MappingNode {
		p.errorf(v.Line, "", "accounts", "want a mapping of account names to {role_arn: ...}, got %s", describe(v))
		return out
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, a := v.Content[i], v.Content[i+1]
		label := fmt.Sprintf("account %q", k.Value)
		if !accountNameRE.MatchString(k.Value) {
			p.errorf(k.Line, "", "accounts", "account name %q: want a letter, then letters, digits, '-' or '_'", k.Value)
			continue
		}
		if _, dup := out[k.Value]; dup {
			p.errorf(k.Line, label, "", "declared twice")
			continue
		}
		if a.Kind != yaml.MappingNode {
			p.errorf(a.Line, label, "", "want a mapping with role_arn:, got %s", describe(a))
			continue
		}
		acct := Account{Name: k.Value}
		for j := 0; j+1 < len(a.Content); j += 2 {
			f, fv := a.Content[j], a.Content[j+1]
			if fv.Kind != yaml.ScalarNode || fv.ShortTag() != "!!str" {
				p.errorf(fv.Line, label, f.Value, "want a string, got %s", describe(fv))
				continue
			}
			switch f.Value {
			case "role_arn":
				acct.RoleARN = fv.Value
				if !roleARNRE.MatchString(fv.Value) {
					p.errorf(fv.Line, label, f.Value, "want a role ARN like arn:aws:iam::210987654321:role/kiln, got %q", fv.Value)
				}
			case "external_id":
				acct.ExternalID = fv.Value
				if len(fv.Value) < 2 || len(fv.Value) > 1224 {
					p.errorf(fv.Line, label, f.Value, "want 2 to 1224 characters, got %d", len(fv.Value))
				}
			case "session_name":
				acct.SessionName = fv.Value
				if !sessionNameRE.MatchString(fv.Value) {
					p.errorf(fv.Line, label, f.Value, "want 2 to 64 letters, digits or +=,.@_-, got %q", fv.Value)
				}
			default:
				p.errorf(f.Line, label, "", "unknown field %q (want role_arn, external_id, session_name)", f.Value)
			}
		}
		if acct.RoleARN == "" {
			p.errorf(a.Line, label, "role_arn", "required")
		}
		out[k.Value] = acct
	}
	return out
}

// inAccount makes newRes's resources work in the account v names, after
// checking that the graph declares it and that the kind has accounts.
func (p *parser) inAccount(it *item, v *yaml.Node, newRes func() engine.Resource) func() engine.Resource {
	if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!str" && v.Value == "" {
		return newRes // "": the starting credentials (for_each over accounts may hold it)
	}
	if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
		p.errorf(v.Line, it.label, "account", "want the name of an account declared under accounts:, got %s", describe(v))
		return newRes
	}
	acct, ok := p.accts[v.Value]
	if !ok {
		names := make([]string, 0, len(p.accts))
		for n := range p.accts {
			names = append(names, n)
		}
		slices.Sort(names)
		known := "none declared"
		if len(names) > 0 {
			known = "declared: " + strings.Join(names, ", ")
		}
		p.errorf(v.Line, it.label, "account", "unknown account %q (%s)", v.Value, known)
		return newRes
	}
	if newRes == nil {
		return nil
	}
	if _, ok := newRes().(AccountUser); !ok {
		p.errorf(v.Line, it.label, "account", "kind %s works in no AWS account (only AWS kinds take account:)", it.spec.Kind)
		return newRes
	}
	return func() engine.Resource {
		r := newRes()
		r.(AccountUser).UseAccount(acct)
		return r
	}
}
