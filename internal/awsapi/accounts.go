package awsapi

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"kiln/internal/engine"
)

// Accounts. A graph may name other AWS accounts, each reached by assuming
// a role there with STS. Hubs.ForAccount returns the hub set of one: a
// *Hubs of its own (so every hub, client, batcher, poller, rate limiter
// and DNS hub is per account and region), whose configuration is the
// starting one's with the role's credentials. The role is assumed once
// per account, on first use, by aws-sdk-go-v2's stscreds, and its
// credentials are cached and refreshed before they expire
// (aws.NewCredentialsCache), shared by every resource of the account. The
// parent's Run runs the accounts' hubs; its Deliver hands events to them.

// Account is one account a graph declares: a name, and the role kiln
// assumes there.
type Account struct {
	Name        string // the graph's name for it ("prod")
	RoleARN     string // arn:aws:iam::ID:role/NAME
	ExternalID  string // optional
	SessionName string // default "kiln"
}

// ID is the account id in the role's ARN ("" when it has none).
func (a Account) ID() string {
	var id string
	if n, _ := fmt.Sscanf(a.RoleARN, "arn:aws:iam::%12s", &id); n == 1 && len(id) == 12 {
		return id
	}
	return ""
}

// AccountError is a role that cannot be assumed: what STS answered, for
// the account and the role. Retrying does not fix it.
type AccountError struct {
	Account, Role string
	Err           error
}

func (e *AccountError) Error() string {
	return fmt.Sprintf("account %q: assume role %s: %v", e.Account, e.Role, e.Err)
}

func (e *AccountError) Unwrap() error { return e.Err }

// credentialsExpiryWindow refreshes assumed-role credentials this long
// before they expire, so that no call is signed with credentials that
// lapse in flight.
const credentialsExpiryWindow = 2 * time.Minute

// accountSet is a parent Hubs's accounts. (Hubs has one field for it,
// account; the rest lives here.)
type accountSet struct {
	mu   sync.Mutex
	byID map[string]*Hubs // by account name
}

var accountSets sync.Map // parent *Hubs → *accountSet

// accountOf is a child Hubs's account and parent.
type accountOf struct {
	parent *Hubs
	acct   Account

	once sync.Once
	cfg  aws.Config
	err  error
}

// ForAccount returns the hubs of account a (made on first use, keyed by
// its name): hs itself when a has no name (the starting credentials). It
// loads nothing and calls nothing until a hub or client is used.
func (hs *Hubs) ForAccount(a Account) *Hubs {
	if a.Name == "" {
		return hs
	}
	if hs.account != nil {
		hs = hs.account.parent
	}
	v, _ := accountSets.LoadOrStore(hs, &accountSet{byID: map[string]*Hubs{}})
	set := v.(*accountSet)
	set.mu.Lock()
	defer set.mu.Unlock()
	if c := set.byID[a.Name]; c != nil {
		return c
	}
	c := &Hubs{o: hs.o, wake: make(chan struct{}, 1), hubs: map[string]*Hub{}, started: map[*Hub]bool{},
		account: &accountOf{parent: hs, acct: a}}
	set.byID[a.Name] = c
	select {
	case hs.wake <- struct{}{}:
	default:
	}
	return c
}

// AccountName is the graph's name of the account of hs, "" for the
// starting credentials.
func (hs *Hubs) AccountName() string {
	if hs.account == nil {
		return ""
	}
	return hs.account.acct.Name
}

// accounts are the accounts' hubs made so far, by name.
func (hs *Hubs) accounts() []*Hubs {
	v, ok := accountSets.Load(hs)
	if !ok {
		return nil
	}
	set := v.(*accountSet)
	set.mu.Lock()
	defer set.mu.Unlock()
	out := make([]*Hubs, 0, len(set.byID))
	for _, c := range set.byID {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *Hubs) int { return cmpString(a.AccountName(), b.AccountName()) })
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// accountConfig is the parent's configuration with the role's cached
// credentials. It fails only when the parent's configuration does; a role
// that cannot be assumed fails the calls, with an *AccountError.
func (ac *accountOf) config(ctx context.Context) (aws.Config, error) {
	base, err := ac.parent.config(ctx)
	if err != nil {
		return aws.Config{}, err
	}
	ac.once.Do(func() {
		a := ac.acct
		stsc := sts.NewFromConfig(base)
		prov := stscreds.NewAssumeRoleProvider(stsc, a.RoleARN, func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = a.SessionName
			if o.RoleSessionName == "" {
				o.RoleSessionName = "kiln"
			}
			if a.ExternalID != "" {
				o.ExternalID = aws.String(a.ExternalID)
			}
		})
		cfg := base.Copy()
		cfg.Credentials = accountCredentials{acct: a, next: aws.NewCredentialsCache(prov, func(o *aws.CredentialsCacheOptions) {
			o.ExpiryWindow = credentialsExpiryWindow
			o.ExpiryWindowJitterFrac = 0.5
		})}
		ac.cfg = cfg
	})
	return ac.cfg, ac.err
}

// accountCredentials makes a failure to assume the role a permanent
// *AccountError naming the account, the role and STS's reason.
type accountCredentials struct {
	acct Account
	next aws.CredentialsProvider
}

func (c accountCredentials) Retrieve(ctx context.Context) (aws.Credentials, error) {
	cr, err := c.next.Retrieve(ctx)
	if err != nil && ctx.Err() == nil {
		ae := &AccountError{Account: c.acct.Name, Role: c.acct.RoleARN, Err: err}
		if IsTransient(err) {
			return cr, ae
		}
		return cr, engine.Permanent(ae)
	}
	return cr, err
}

// CheckAccount assumes the account's role once (or finds its cached
// credentials), so that a command can report a role that cannot be
// assumed before any resource uses it. hs is the account's hubs
// (ForAccount); for the starting credentials it checks nothing.
func (hs *Hubs) CheckAccount(ctx context.Context) error {
	if hs.account == nil {
		return nil
	}
	cfg, err := hs.config(ctx)
	if err != nil {
		return err
	}
	_, err = cfg.Credentials.Retrieve(ctx)
	return err
}

// AccountNamed returns the hubs ForAccount made for the account called
// name, hs itself for "", or nil when there are none.
func (hs *Hubs) AccountNamed(name string) *Hubs {
	if name == "" {
		return hs
	}
	for _, c := range hs.accounts() {
		if c.AccountName() == name {
			return c
		}
	}
	return nil
}

// AccountDef is the account of hs as ForAccount was given it (zero for the
// starting credentials).
func (hs *Hubs) AccountDef() Account {
	if hs.account == nil {
		return Account{}
	}
	return hs.account.acct
}
