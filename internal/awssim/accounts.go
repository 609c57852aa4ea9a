package awssim

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"hash/fnv"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// Accounts. Each AWS account is a world of its own, as each region is: a
// request lands in the account its credentials belong to, then in the
// region it is signed for. The starting account (Options.Account) owns the
// simulator's static credentials (AccessKeyID); the other accounts
// (Options.Accounts) are reached only through STS (sts.go): AssumeRole on
// a role of theirs hands out temporary credentials (an ASIA... access key
// with a session token) that map to that account until they expire. Every
// account has its own regions, instances, images, request buckets and
// policy; the call counts, faults and manual clock are the simulator's,
// shared by all (Advance moves every account).
//
// An image shared with another account of the simulator (ModifyImageAttribute
// launchPermission UserId) appears in that account's world of the same
// region: DescribeImages lists it (ExecutableUsers self, Owner the owner's
// id, or its id), and RunInstances, launch templates and Auto Scaling
// groups launch it. The sharee sees a copy the owner's world publishes on
// every change that matters to it (sharing, state, deregistration), so a
// world never takes another's lock while holding its own. It does not see
// the owner's tags, as in AWS.
//
// Account returns an account's world (home region) for the Go control
// API; /_sim/accounts/{id}/... is its JSON control API (and
// /_sim/accounts/{id}/regions/{region}/... one of its regions).

// accountWorlds is shared by every world of every account: the accounts'
// home worlds, the issued credentials and the images shared across
// accounts. mu is a leaf lock: it may be taken while a world's mu is held,
// and nothing is locked while it is held.
type accountWorlds struct {
	top *Sim // the starting account's home world

	mu     sync.Mutex
	byID   map[string]*Sim       // every account's home world, the starting one's included
	creds  map[string]*tempCreds // issued temporary credentials, by access key id
	shared map[string]map[string]sharedImage
	runCtx context.Context
	runG   *errgroup.Group
}

// tempCreds are one AssumeRole's credentials.
type tempCreds struct {
	account, roleARN, session, roleID string
	secret, token                     string
	expires                           time.Time // on the real clock, as the SDK reads it
}

// sharedImage is an owner's published copy of an image shared with other
// accounts, in one region.
type sharedImage struct {
	img   image
	users []string // the account ids it is shared with
}

func (aw *accountWorlds) init(top *Sim) {
	aw.top = top
	aw.byID = map[string]*Sim{top.opts.Account: top}
	aw.creds = map[string]*tempCreds{}
	aw.shared = map[string]map[string]sharedImage{}
}

// addAccounts makes the home worlds of the accounts in top's options.
func (aw *accountWorlds) addAccounts() {
	top := aw.top
	for _, id := range top.opts.Accounts {
		if _, ok := aw.byID[id]; ok {
			continue
		}
		o := top.opts
		o.Account = id
		o.Accounts = nil
		f := fnv.New64a()
		f.Write([]byte(id))
		if o.Seed != 0 {
			o.Seed ^= f.Sum64()
			if o.Seed == 0 {
				o.Seed = 1
			}
		}
		w := newSim(o)
		w.acct = aw
		aw.byID[id] = w
	}
}

// Account returns the home-region world of account id, or an error when
// the simulator has no such account.
func (s *Sim) Account(id string) (*Sim, error) {
	aw := s.acct
	aw.mu.Lock()
	defer aw.mu.Unlock()
	if w, ok := aw.byID[id]; ok {
		return w, nil
	}
	return nil, apiErr("InvalidParameterValue", "unknown account %q", id)
}

// Accounts lists the simulator's accounts, the starting one first.
func (s *Sim) Accounts() []string {
	aw := s.acct
	aw.mu.Lock()
	defer aw.mu.Unlock()
	out := []string{aw.top.opts.Account}
	for _, id := range slices.Sorted(maps.Keys(aw.byID)) {
		if id != aw.top.opts.Account {
			out = append(out, id)
		}
	}
	return out
}

// otherAccounts are the home worlds of the accounts besides the starting one.
func (aw *accountWorlds) otherAccounts() []*Sim {
	aw.mu.Lock()
	defer aw.mu.Unlock()
	var out []*Sim
	for _, id := range slices.Sorted(maps.Keys(aw.byID)) {
		if w := aw.byID[id]; w != aw.top {
			out = append(out, w)
		}
	}
	return out
}

// runAccounts drives the other accounts' worlds while the top's Run runs.
func (aw *accountWorlds) runAccounts(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, w := range aw.otherAccounts() {
		g.Go(func() error { return w.Run(gctx) })
	}
	return g.Wait()
}

// accessKey is the access key id of a SigV4 Authorization header's
// credential ("Credential=AKID/20260101/us-west-2/ec2/aws4_request"), ""
// when the request is not signed.
func accessKey(hr *http.Request) string {
	_, cred, ok := strings.Cut(hr.Header.Get("Authorization"), "Credential=")
	if !ok {
		return ""
	}
	akid, _, _ := strings.Cut(strings.TrimSpace(cred), "/")
	return akid
}

// accountWorld is the home world of the account a request's credentials
// belong to: temporary credentials' account, or the starting account for
// any other key (the simulator checks no signatures). Temporary
// credentials that were never issued, that come without their session
// token, or that have expired, are refused as AWS refuses them.
func (aw *accountWorlds) accountWorld(hr *http.Request) (*Sim, error) {
	akid := accessKey(hr)
	if !strings.HasPrefix(akid, "ASIA") {
		return aw.top, nil
	}
	aw.mu.Lock()
	defer aw.mu.Unlock()
	c, ok := aw.creds[akid]
	if !ok || hr.Header.Get("X-Amz-Security-Token") != c.token {
		return nil, &APIError{Status: http.StatusUnauthorized, Code: "AuthFailure",
			Message: "AWS was not able to validate the provided access credentials"}
	}
	if !time.Now().Before(c.expires) {
		return nil, &APIError{Status: http.StatusBadRequest, Code: "ExpiredToken",
			Message: "The security token included in the request is expired"}
	}
	return aw.byID[c.account], nil
}

// caller is who signed a request: its account and ARN, and the user id
// GetCallerIdentity answers.
type caller struct{ account, arn, userID string }

// callerOf is the principal behind access key akid.
func (aw *accountWorlds) callerOf(akid string) caller {
	aw.mu.Lock()
	c, ok := aw.creds[akid]
	aw.mu.Unlock()
	if ok {
		return caller{account: c.account, arn: assumedRoleARN(c.account, c.roleARN, c.session), userID: c.roleID + ":" + c.session}
	}
	top := aw.top
	return caller{account: top.opts.Account, arn: top.simPrincipal(), userID: "AIDA" + idChars(top.opts.Account, 17)}
}

func assumedRoleARN(account, roleARN, session string) string {
	return "arn:aws:sts::" + account + ":assumed-role/" + roleName(roleARN) + "/" + session
}

// roleName is the last path element of a role ARN.
func roleName(roleARN string) string {
	_, res, _ := strings.Cut(roleARN, ":role/")
	return res[strings.LastIndex(res, "/")+1:]
}

// idChars is n upper-case letters and digits derived from seed: the same
// for the same seed, as AWS's unique ids of a user or role are.
func idChars(seed string, n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	f := fnv.New64a()
	f.Write([]byte(seed))
	h := f.Sum64()
	out := make([]byte, n)
	for i := range out {
		out[i] = alphabet[h%32]
		h = h/32 ^ uint64(i+1)*0x9e3779b97f4a7c15
	}
	return string(out)
}

// issue makes temporary credentials for role in account, valid for d,
// and returns them with their access key id.
func (aw *accountWorlds) issue(account, roleARN, session string, d time.Duration) (string, *tempCreds) {
	c := &tempCreds{account: account, roleARN: roleARN, session: session,
		roleID: "AROA" + idChars(roleARN, 17),
		secret: randomString(30), token: "IQoJb3JpZ2luX2VjE" + randomString(120),
		expires: time.Now().Add(d).UTC().Truncate(time.Second)}
	aw.mu.Lock()
	defer aw.mu.Unlock()
	for {
		akid := "ASIA" + strings.ToUpper(randomString(12))
		if _, dup := aw.creds[akid]; !dup {
			aw.creds[akid] = c
			return akid, c
		}
	}
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	s := base64.RawStdEncoding.EncodeToString(b)
	return strings.NewReplacer("+", "A", "/", "B").Replace(s)
}

// --- images shared across accounts ---

// publishImageLocked updates what other accounts see of im after a change
// to it or to its launch permissions; s.mu is held.
func (s *Sim) publishImageLocked(im *image) {
	aw := s.acct
	if aw == nil {
		return
	}
	var users []string
	if im.state != imageDeregistered {
		for _, p := range s.regions.launchPerms[im.id] {
			if p.UserID != "" && p.UserID != s.opts.Account {
				users = append(users, p.UserID)
			}
		}
	}
	aw.mu.Lock()
	defer aw.mu.Unlock()
	region := aw.shared[s.opts.Region]
	if len(users) == 0 {
		if region != nil {
			delete(region, im.id)
		}
		return
	}
	if region == nil {
		region = map[string]sharedImage{}
		aw.shared[s.opts.Region] = region
	}
	cp := *im
	cp.bdms = slices.Clone(im.bdms)
	region[im.id] = sharedImage{img: cp, users: users}
}

// sharedWithLocked is the images of other accounts shared with s's
// account in s's region, in id order (each a copy); s.mu may be held.
func (s *Sim) sharedWithLocked() []*image {
	aw := s.acct
	if aw == nil {
		return nil
	}
	aw.mu.Lock()
	defer aw.mu.Unlock()
	region := aw.shared[s.opts.Region]
	var out []*image
	for _, id := range slices.Sorted(maps.Keys(region)) {
		sh := region[id]
		if slices.Contains(sh.users, s.opts.Account) {
			im := sh.img
			out = append(out, &im)
		}
	}
	return out
}

// launchImageLocked is image id as s's account may launch it: its own (or
// a public one in its world), or one another account shared with it; s.mu
// is held. ok is false when there is none visible at now.
func (s *Sim) launchImageLocked(id string, now time.Time) (*image, bool) {
	if im, ok := s.images[id]; ok {
		return im, im.visible(now) && im.state != imageDeregistered
	}
	for _, im := range s.sharedWithLocked() {
		if im.id == id {
			return im, true
		}
	}
	return nil, false
}

// serveAccountControl serves /_sim/accounts (the accounts) and
// /_sim/accounts/{id}/... (that account's control API, regions included);
// it reports false for any other path.
func (s *Sim) serveAccountControl(w http.ResponseWriter, hr *http.Request) bool {
	rest, ok := strings.CutPrefix(hr.URL.Path, controlPrefix+"accounts")
	if !ok || (rest != "" && rest[0] != '/') {
		return false
	}
	id, sub, _ := strings.Cut(strings.TrimPrefix(rest, "/"), "/")
	if id == "" {
		replyJSON(w, http.StatusOK, map[string]any{"starting": s.acct.top.opts.Account, "accounts": s.Accounts()})
		return true
	}
	world, err := s.Account(id)
	if err != nil {
		replyJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
		return true
	}
	r2 := hr.Clone(hr.Context())
	r2.URL.Path = controlPrefix + sub
	if !world.serveRegionControl(w, r2) {
		world.serveControl(w, r2)
	}
	return true
}
