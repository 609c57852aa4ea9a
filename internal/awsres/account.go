package awsres

import (
	"kiln/internal/awsapi"
	"kiln/internal/config"
)

// Accounts: every AWS kind may name one of the graph's accounts with
// account: NAME (config.AccountUser); its calls then go through that
// account's hubs (awsapi.Hubs.ForAccount), which assume the account's
// role once for every resource of the account. Without it a resource
// uses the credentials kiln starts with.

func accountOf(a config.Account) awsapi.Account {
	return awsapi.Account{Name: a.Name, RoleARN: a.RoleARN, ExternalID: a.ExternalID, SessionName: a.SessionName}
}

// UseAccount makes the instance work in account a.
func (r *Instance) UseAccount(a config.Account) { r.hubs = r.hubs.ForAccount(accountOf(a)) }

// UseAccount makes the image's bake work in account a.
func (r *AMI) UseAccount(a config.Account) { r.hubs = r.hubs.ForAccount(accountOf(a)) }

// UseAccount makes the group work in account a.
func (r *ASG) UseAccount(a config.Account) { r.hubs = r.hubs.ForAccount(accountOf(a)) }

// UseAccount makes the security group work in account a.
func (r *SecurityGroup) UseAccount(a config.Account) { r.hubs = r.hubs.ForAccount(accountOf(a)) }

// UseAccount makes the key pair work in account a.
func (r *KeyPair) UseAccount(a config.Account) { r.hubs = r.hubs.ForAccount(accountOf(a)) }

// UseAccount makes the hosted zone work in account a.
func (r *HostedZone) UseAccount(a config.Account) { r.hubs = r.hubs.ForAccount(accountOf(a)) }

// UseAccount makes the record work in account a.
func (r *Record) UseAccount(a config.Account) { r.hubs = r.hubs.ForAccount(accountOf(a)) }

// Account is the graph's name of the account r works in, "" for the
// starting credentials (for kiln iam-policy, the lock page and orphans).
func Account(r any) string {
	if h := hubsOf(r); h != nil {
		return h.AccountName()
	}
	return ""
}

// hubsOf is the hubs of r's account when r is an AWS kind, else nil.
func hubsOf(r any) *awsapi.Hubs {
	switch r := r.(type) {
	case *Instance:
		return r.hubs
	case *AMI:
		return r.hubs
	case *ASG:
		return r.hubs
	case *SecurityGroup:
		return r.hubs
	case *KeyPair:
		return r.hubs
	case *HostedZone:
		return r.hubs
	case *Record:
		return r.hubs
	}
	return nil
}

// AccountHubs are the hubs of every account the resources rs work in, the
// starting credentials' (base) first: where a graph's things may live,
// for the orphans and destroy of each account.
func AccountHubs(base *awsapi.Hubs, rs []any) []*awsapi.Hubs {
	out := []*awsapi.Hubs{base}
	seen := map[*awsapi.Hubs]bool{base: true}
	for _, r := range rs {
		if h := hubsOf(r); h != nil && !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out
}

var (
	_ config.AccountUser = (*Instance)(nil)
	_ config.AccountUser = (*AMI)(nil)
	_ config.AccountUser = (*ASG)(nil)
	_ config.AccountUser = (*SecurityGroup)(nil)
	_ config.AccountUser = (*KeyPair)(nil)
	_ config.AccountUser = (*HostedZone)(nil)
	_ config.AccountUser = (*Record)(nil)
)
