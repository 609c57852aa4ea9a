package ui

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"time"

	"kiln/internal/auth"
	"kiln/internal/store"
)

// Sessions are kept in the store, so a restart or a second kiln serve on
// the same database keeps everyone signed in. The store holds only a hash
// of each session id.
const (
	sessionCookie = "kiln_session"
	loginCookie   = "kiln_login" // double-submit token of the sign-in form
	sessionTTL    = 12 * time.Hour
	maxSessions   = 1000 // past this, a sign-in forgets the oldest session
)

// session is the request's session as read at its start.
type session struct {
	id   string // the cookie's value
	csrf string
	// who signed in (auth.Principal's String) and with what role
	subject string
	role    auth.Role
	// flash is a message for the next page shown, after a redirect; the
	// store hands it out once (takeFlash).
	flash string
}

// newSecret is a webhook secret kiln generated, to show once.
type newSecret struct {
	Value   string
	Rotated bool // replaced an earlier secret, which no longer works
}

// SessionStore keeps the pages' sign-in sessions; *store.Store satisfies
// it, so every server on one database shares them.
type SessionStore interface {
	CreateSession(ctx context.Context, id string, s store.Session) error
	Session(ctx context.Context, id string) (*store.Session, error)
	DeleteSession(ctx context.Context, id string) error
	PruneSessions(ctx context.Context, keep int) (int64, error)
	SetSessionFlash(ctx context.Context, id, msg string) error
	TakeSessionFlash(ctx context.Context, id string) (string, error)
	MarkSessionSecret(ctx context.Context, id, project string, rotated bool) error
	TakeSessionSecret(ctx context.Context, id, project string) (secret string, rotated bool, err error)
}

// sessions reads and writes the sessions in the store.
type sessions struct {
	st SessionStore
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

// create stores a new session, after forgetting the expired ones and, past
// maxSessions, the oldest: the table stays bounded.
func (ss *sessions) create(ctx context.Context, p auth.Principal) (*session, error) {
	if _, err := ss.st.PruneSessions(ctx, maxSessions-1); err != nil {
		return nil, err
	}
	now := time.Now()
	s := &session{id: randomToken(), csrf: randomToken(), subject: p.String(), role: p.Role}
	if err := ss.st.CreateSession(ctx, s.id, store.Session{CSRF: s.csrf, Subject: s.subject, Role: string(s.role),
		Created: now, Expires: now.Add(sessionTTL)}); err != nil {
		return nil, err
	}
	return s, nil
}

// get returns the request's live session; nil, nil when it has none.
func (ss *sessions) get(r *http.Request) (*session, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, nil
	}
	rec, err := ss.st.Session(r.Context(), c.Value)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &session{id: c.Value, csrf: rec.CSRF, flash: rec.Flash, subject: rec.Subject, role: auth.Role(rec.Role)}, nil
}

func (ss *sessions) delete(ctx context.Context, s *session) error {
	return ss.st.DeleteSession(ctx, s.id)
}

// takeSecret returns, once, the webhook secret of project that putSecret
// left for this session; a zero newSecret when there is none.
func (ss *sessions) takeSecret(ctx context.Context, s *session, project string) (newSecret, error) {
	v, rotated, err := ss.st.TakeSessionSecret(ctx, s.id, project)
	if err != nil {
		return newSecret{}, err
	}
	return newSecret{Value: v, Rotated: rotated}, nil
}

// putSecret has the session's next view of project show the project's
// current webhook secret once; rotated says it replaced an earlier one.
func (ss *sessions) putSecret(ctx context.Context, s *session, project string, rotated bool) error {
	return ss.st.MarkSessionSecret(ctx, s.id, project, rotated)
}

// takeFlash returns and forgets the session's message. Most pages have
// none, and then it costs no write.
func (ss *sessions) takeFlash(ctx context.Context, s *session) (string, error) {
	if s.flash == "" {
		return "", nil
	}
	s.flash = ""
	return ss.st.TakeSessionFlash(ctx, s.id)
}

func (ss *sessions) putFlash(ctx context.Context, s *session, msg string) error {
	return ss.st.SetSessionFlash(ctx, s.id, msg)
}

func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
}

func equal(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// principal is who the session acts as.
func (s *session) principal() auth.Principal {
	return auth.Principal{Name: s.subject, Role: s.role}
}
