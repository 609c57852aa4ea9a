package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"kiln/internal/audit"
	"kiln/internal/auth"
	"kiln/internal/store"
)

// Token is a personal API token as the API shows it (never the token).
type Token struct {
	Name      string     `json:"name"`
	Role      auth.Role  `json:"role"`
	CreatedBy string     `json:"created_by,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	LastUsed  *time.Time `json:"last_used_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// TokenRequest is the body of POST /api/tokens. Expires is a duration:
// Go's ("720h") or a number of days ("30d"); empty: the token never
// expires.
type TokenRequest struct {
	Name    string    `json:"name"`
	Role    auth.Role `json:"role"`
	Expires string    `json:"expires,omitempty"`
}

// NewToken answers POST /api/tokens: the token, shown this once.
type NewToken struct {
	Token
	Secret string `json:"token"`
}

// AuditEntry is one row of the audit log.
type AuditEntry struct {
	ID      int64     `json:"id"`
	At      time.Time `json:"at"`
	Actor   string    `json:"actor"`
	Action  string    `json:"action"`
	Project string    `json:"project,omitempty"`
	Target  string    `json:"target,omitempty"`
	Detail  string    `json:"detail,omitempty"`
	Remote  string    `json:"remote,omitempty"`
	Outcome string    `json:"outcome"`
}

// AuditList answers GET /api/audit; NextBefore, when set, is the before=
// of the next (older) page.
type AuditList struct {
	Entries    []AuditEntry `json:"entries"`
	NextBefore int64        `json:"next_before,omitempty"`
}

// Whoami answers GET /api/whoami.
type Whoami struct {
	Name string    `json:"name"`
	Kind string    `json:"kind"`
	Role auth.Role `json:"role"`
}

func tokenJSON(t store.APIToken) Token {
	return Token{Name: t.Name, Role: auth.Role(t.Role), CreatedBy: t.CreatedBy, CreatedAt: t.Created,
		ExpiresAt: timePtr(t.Expires), LastUsed: timePtr(t.LastUsed), RevokedAt: timePtr(t.Revoked)}
}

// tokenName is what a token may be called: it names the token in the
// audit log and on the command line.
var tokenName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._@-]{0,63}$`)

// ParseExpiry reads a token lifetime: a Go duration ("720h") or whole
// days ("30d"). "" is never.
func ParseExpiry(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("expires %q: want a positive number of days (30d) or a duration (12h)", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("expires %q: want a positive number of days (30d) or a duration (12h)", s)
	}
	return d, nil
}

// TokenRecord checks a request for a new token (name, role, expiry) and
// returns the record to store for it, created by p at now. The API and
// the tokens page both create tokens through it.
func TokenRecord(req TokenRequest, p auth.Principal, now time.Time) (store.APIToken, error) {
	if !tokenName.MatchString(req.Name) {
		return store.APIToken{}, fmt.Errorf("name %q: want 1 to 64 letters, digits, '.', '_', '@' or '-'", req.Name)
	}
	role, err := auth.ParseRole(string(req.Role))
	if err != nil {
		return store.APIToken{}, err
	}
	ttl, err := ParseExpiry(req.Expires)
	if err != nil {
		return store.APIToken{}, err
	}
	now = now.UTC().Truncate(time.Millisecond)
	rec := store.APIToken{Name: req.Name, Role: string(role), CreatedBy: p.String(), Created: now}
	if ttl > 0 {
		rec.Expires = now.Add(ttl)
	}
	return rec, nil
}

// TokenExistsMessage says that a token's name is taken.
func TokenExistsMessage(name string) string {
	return fmt.Sprintf("a token named %q exists (revoked ones keep their name)", name)
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	ts, err := s.cfg.Store.Tokens(r.Context())
	if err != nil {
		s.internal(w, r, err)
		return
	}
	out := struct {
		Tokens []Token `json:"tokens"`
	}{Tokens: []Token{}}
	for _, t := range ts {
		out.Tokens = append(out.Tokens, tokenJSON(t))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var req TokenRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, `body: want {"name": "...", "role": "viewer|deployer|admin", "expires": "30d"}: `+err.Error())
		return
	}
	n := audit.NoteOf(r)
	n.Target, n.Detail = "token "+req.Name, "role "+string(req.Role)
	p, _ := auth.FromContext(r.Context())
	rec, err := TokenRecord(req, p, time.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !rec.Expires.IsZero() {
		n.Detail += ", expires " + rec.Expires.Format(time.RFC3339)
	}
	secret := auth.NewToken()
	err = s.cfg.Store.CreateToken(r.Context(), rec, auth.HashToken(secret))
	if errors.Is(err, store.ErrTokenExists) {
		writeError(w, http.StatusConflict, TokenExistsMessage(req.Name))
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	s.cfg.Log.Info("token created", "token", req.Name, "role", rec.Role, "by", p.String())
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, NewToken{Token: tokenJSON(rec), Secret: secret})
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("token")
	audit.NoteOf(r).Target = "token " + name
	err := s.cfg.Store.RevokeToken(r.Context(), name, time.Now())
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no token %q", name))
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	s.cfg.Log.Info("token revoked", "token", name)
	w.WriteHeader(http.StatusNoContent)
}

// listAudit serves GET /api/audit?project=&actor=&action=&since=&before=&limit=.
// since is RFC 3339 or a duration back from now ("24h", "7d").
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) {
	q, err := AuditQueryFrom(r.URL.Query(), time.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	want := q.Limit
	q.Limit++
	rows, err := s.cfg.Store.Audit(r.Context(), q)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	out := AuditList{Entries: []AuditEntry{}}
	if len(rows) > want {
		rows = rows[:want]
		out.NextBefore = rows[want-1].ID
	}
	for _, e := range rows {
		out.Entries = append(out.Entries, AuditEntry(e))
	}
	writeJSON(w, http.StatusOK, out)
}

// AuditQueryFrom reads the audit filters of GET /api/audit (and of the
// Audit page) from v, with since's durations counted back from now.
func AuditQueryFrom(v url.Values, now time.Time) (store.AuditQuery, error) {
	q := store.AuditQuery{Project: v.Get("project"), Actor: v.Get("actor"), Action: v.Get("action"), Limit: defaultPageSize}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n <= 0 || n > maxPageSize {
			return q, fmt.Errorf("limit=%q: want 1 to %d", l, maxPageSize)
		}
		q.Limit = n
	}
	if b := v.Get("before"); b != "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 {
			return q, fmt.Errorf("before=%q: want an audit row id", b)
		}
		q.BeforeID = n
	}
	if since := v.Get("since"); since != "" {
		t, err := ParseSince(since, now)
		if err != nil {
			return q, err
		}
		q.Since = t
	}
	return q, nil
}

// ParseSince reads a point in time: RFC 3339, a date (2006-01-02), or a
// duration back from now ("24h", "7d").
func ParseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := ParseExpiry(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("since=%q: want a time (2026-01-02T15:04:05Z), a date (2026-01-02) or a duration back from now (24h, 7d)", s)
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.FromContext(r.Context())
	writeJSON(w, http.StatusOK, Whoami{Name: p.Name, Kind: p.Kind, Role: p.Role})
}

// webhookActor names a delivery in its audit row by the sender's delivery
// id (as claimed: the row's outcome says whether its signature held).
func webhookActor(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := ""
		for _, k := range []string{"X-GitHub-Delivery", "X-Gitlab-Event-UUID", "X-Kiln-Delivery"} {
			if id = r.Header.Get(k); id != "" {
				break
			}
		}
		n := audit.NoteOf(r)
		n.Actor = "webhook " + id
		n.Project = r.PathValue("project")
		h.ServeHTTP(w, r)
	})
}

// Tokens lists the personal API tokens.
func (c *Client) Tokens(ctx context.Context) ([]Token, error) {
	var out struct {
		Tokens []Token `json:"tokens"`
	}
	err := c.do(ctx, http.MethodGet, "/api/tokens", nil, nil, &out)
	return out.Tokens, err
}

// CreateToken creates a personal API token; the answer holds the token,
// shown this once.
func (c *Client) CreateToken(ctx context.Context, req TokenRequest) (*NewToken, error) {
	body, _ := json.Marshal(req)
	var out NewToken
	if err := c.do(ctx, http.MethodPost, "/api/tokens", http.Header{"Content-Type": {"application/json"}}, body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeToken revokes the token named name at once.
func (c *Client) RevokeToken(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/api/tokens/"+url.PathEscape(name), nil, nil, nil)
}

// Audit returns a page of the audit log, newest first; q holds the
// filters as GET /api/audit reads them (project, actor, action, since,
// before, limit).
func (c *Client) Audit(ctx context.Context, q url.Values) (*AuditList, error) {
	path := "/api/audit"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out AuditList
	if err := c.do(ctx, http.MethodGet, path, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Whoami returns who the client's token is.
func (c *Client) Whoami(ctx context.Context) (*Whoami, error) {
	var out Whoami
	if err := c.do(ctx, http.MethodGet, "/api/whoami", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
