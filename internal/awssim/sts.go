package awssim

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// STS, in the AWS Query protocol: AssumeRole and GetCallerIdentity.
// Every account of the simulator (accounts.go) has the role "kiln" and
// the roles Options.Roles name, each trusting the starting account (any
// principal of it), with a maximum session duration of one hour; a role
// listed in Options.ExternalIDs requires that external id
// (sts:ExternalId in its trust policy). AssumeRole on any other role, by
// a caller of another account (role chaining across accounts), or without
// the right external id, is refused with AccessDenied worded as AWS words
// it. The credentials it returns map to the role's account until they
// expire (on the real clock, which is what the SDK refreshes by).

const stsNS = "https://sts.amazonaws.com/doc/2011-06-15/"

var stsService = &service{
	name:    "sts",
	version: "2011-06-15",
	proto:   awsQuery{namespace: stsNS},
	actions: map[string]action{
		"AssumeRole":        (*Sim).assumeRole,
		"GetCallerIdentity": (*Sim).getCallerIdentity,
	},
}

// maxSessionDuration is every role's MaxSessionDuration (IAM's default).
const maxSessionDuration = time.Hour

var (
	roleARNRE     = regexp.MustCompile(`^arn:aws[a-z-]*:iam::([0-9]{12}):role/(?:[\x21-\x7e]*/)?([\w+=,.@-]{1,64})$`)
	sessionNameRE = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
	externalIDRE  = regexp.MustCompile(`^[\w+=,.@:/-]{2,1000}$`)
)

type xAssumedRoleUser struct {
	Arn           string `xml:"Arn"`
	AssumedRoleID string `xml:"AssumedRoleId"`
}

type xCredentials struct {
	AccessKeyID     string `xml:"AccessKeyId"`
	SecretAccessKey string `xml:"SecretAccessKey"`
	SessionToken    string `xml:"SessionToken"`
	Expiration      string `xml:"Expiration"`
}

type assumeRoleResult struct {
	Credentials      xCredentials     `xml:"Credentials"`
	AssumedRoleUser  xAssumedRoleUser `xml:"AssumedRoleUser"`
	PackedPolicySize int              `xml:"PackedPolicySize,omitempty"`
}

type getCallerIdentityResult struct {
	Arn     string `xml:"Arn"`
	UserID  string `xml:"UserId"`
	Account string `xml:"Account"`
}

func stsValidation(format string, args ...any) *APIError {
	return apiErr("ValidationError", "1 validation error detected: "+format, args...)
}

func (s *Sim) assumeRole(r *request) (any, error) {
	roleARN, session := r.str("RoleArn"), r.str("RoleSessionName")
	switch {
	case !r.has("RoleArn"):
		return nil, stsValidation("Value null at 'roleArn' failed to satisfy constraint: Member must not be null")
	case !r.has("RoleSessionName"):
		return nil, stsValidation("Value null at 'roleSessionName' failed to satisfy constraint: Member must not be null")
	case len(roleARN) < 20 || len(roleARN) > 2048:
		return nil, stsValidation("Value '%s' at 'roleArn' failed to satisfy constraint: Member must have length between 20 and 2048", roleARN)
	case !sessionNameRE.MatchString(session):
		return nil, stsValidation("Value '%s' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*", session)
	}
	ext := r.str("ExternalId")
	if r.has("ExternalId") && !externalIDRE.MatchString(ext) {
		return nil, stsValidation("Value '%s' at 'externalId' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@:\\/-]*", ext)
	}
	d := maxSessionDuration
	if r.has("DurationSeconds") {
		n, err := strconv.Atoi(r.str("DurationSeconds"))
		switch {
		case err != nil:
			return nil, apiErr("MalformedInput", "Invalid value for DurationSeconds: %s", r.str("DurationSeconds"))
		case n < 900:
			return nil, stsValidation("Value '%d' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900", n)
		case n > 43200:
			return nil, stsValidation("Value '%d' at 'durationSeconds' failed to satisfy constraint: Member must have value less than or equal to 43200", n)
		case time.Duration(n)*time.Second > maxSessionDuration:
			return nil, apiErr("ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
		}
		d = time.Duration(n) * time.Second
	}
	aw := s.acct
	who := aw.callerOf(r.AccessKey)
	denied := &APIError{Status: http.StatusForbidden, Code: "AccessDenied",
		Message: fmt.Sprintf("User: %s is not authorized to perform: sts:AssumeRole on resource: %s", who.arn, roleARN)}
	m := roleARNRE.FindStringSubmatch(roleARN)
	if m == nil {
		return nil, denied
	}
	account, name := m[1], m[2]
	if _, err := s.Account(account); err != nil {
		return nil, denied
	}
	top := aw.top.opts
	if who.account != top.Account || (name != "kiln" && !slices.Contains(top.Roles, name)) {
		return nil, denied
	}
	if want, ok := top.ExternalIDs[roleARN]; ok && ext != want {
		return nil, denied
	}
	akid, c := aw.issue(account, roleARN, session, d)
	return &assumeRoleResult{
		Credentials: xCredentials{AccessKeyID: akid, SecretAccessKey: c.secret, SessionToken: c.token,
			Expiration: c.expires.Format(time.RFC3339)},
		AssumedRoleUser: xAssumedRoleUser{Arn: assumedRoleARN(account, roleARN, session), AssumedRoleID: c.roleID + ":" + session},
	}, nil
}

func (s *Sim) getCallerIdentity(r *request) (any, error) {
	who := s.acct.callerOf(r.AccessKey)
	return &getCallerIdentityResult{Arn: who.arn, UserID: who.userID, Account: who.account}, nil
}
