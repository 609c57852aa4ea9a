package ui

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

// Sessions are held in memory: a restart signs everyone out, which is
// fine for an admin-token bakery.
const (
	sessionCookie = "kiln_session"
	loginCookie   = "kiln_login" // double-submit token of the sign-in form
	sessionTTL    = 12 * time.Hour
	maxSessions   = 1000
)

type session struct {
	id      string
	csrf    string
	expires time.Time
	// secrets holds a project's generated webhook secret until its page
	// has shown it once.
	secrets map[string]newSecret
	// flash is a message for the next page shown, after a redirect.
	flash string
}

// newSecret is a webhook secret kiln generated, to show once.
type newSecret struct {
	Value   string
	Rotated bool // replaced an earlier secret, which no longer works
}

type sessions struct {
	mu sync.Mutex
	m  map[string]*session
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

func (ss *sessions) create() *session {
	now := time.Now()
	s := &session{id: randomToken(), csrf: randomToken(), expires: now.Add(sessionTTL), secrets: map[string]newSecret{}}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.m == nil {
		ss.m = map[string]*session{}
	}
	if len(ss.m) >= maxSessions {
		for id, o := range ss.m {
			if now.After(o.expires) {
				delete(ss.m, id)
			}
		}
		if len(ss.m) >= maxSessions { // drop any one: the oldest sign-in is not worth tracking
			for id := range ss.m {
				delete(ss.m, id)
				break
			}
		}
	}
	ss.m[s.id] = s
	return s
}

// get returns the request's live session, or nil.
func (ss *sessions) get(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[c.Value]
	if s == nil || time.Now().After(s.expires) {
		delete(ss.m, c.Value)
		return nil
	}
	return s
}

func (ss *sessions) delete(s *session) {
	ss.mu.Lock()
	delete(ss.m, s.id)
	ss.mu.Unlock()
}

// takeSecret returns and forgets the secret to show once for project.
func (ss *sessions) takeSecret(s *session, project string) newSecret {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	v := s.secrets[project]
	delete(s.secrets, project)
	return v
}

func (ss *sessions) putSecret(s *session, project string, secret newSecret) {
	ss.mu.Lock()
	s.secrets[project] = secret
	ss.mu.Unlock()
}

// takeFlash returns and forgets the session's message.
func (ss *sessions) takeFlash(s *session) string {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	v := s.flash
	s.flash = ""
	return v
}

func (ss *sessions) putFlash(s *session, msg string) {
	ss.mu.Lock()
	s.flash = msg
	ss.mu.Unlock()
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
