// Package audit records who changed what in kiln serve. The API and the
// pages wrap each route that changes something (Wrap), so that every such
// request, allowed or refused, succeeded or failed, appends one row to the
// store's append-only audit log with its principal, the request's address
// and its outcome. A handler adds what only it knows (the bake it queued,
// the project a file named) through Note.
package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"kiln/internal/auth"
	"kiln/internal/store"
)

// Appender appends a row to the audit log; *store.Store satisfies it.
type Appender interface {
	AppendAudit(ctx context.Context, e store.AuditEntry) (int64, error)
}

// Log appends audit rows. A nil *Log records nothing.
type Log struct {
	st  Appender
	log *slog.Logger
	now func() time.Time
}

// New returns a Log appending to st; log gets the rows that could not be
// appended (the action has happened by then: it is not undone).
func New(st Appender, log *slog.Logger) *Log {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Log{st: st, log: log, now: time.Now}
}

// Outcomes besides an error message.
const OK = "ok"

// Record appends e as done by the principal of r's context (e.Actor when
// set) from r's address. It does not block on anything but the store.
func (l *Log) Record(r *http.Request, e store.AuditEntry) {
	if l == nil {
		return
	}
	e = l.fill(r, e)
	// The request may be cancelled (the client went away) after the action
	// took effect: the row is still due.
	ctx := context.WithoutCancel(r.Context())
	if _, err := l.st.AppendAudit(ctx, e); err != nil {
		l.log.Error("audit row not appended", "action", e.Action, "actor", e.Actor, "project", e.Project, "err", err)
	}
}

// fill sets e's actor (the principal of r's context), address and time
// where e leaves them empty.
func (l *Log) fill(r *http.Request, e store.AuditEntry) store.AuditEntry {
	if e.Actor == "" {
		if p, ok := auth.FromContext(r.Context()); ok {
			e.Actor = p.String()
		} else {
			e.Actor = "anonymous"
		}
	}
	if e.Remote == "" {
		e.Remote = RemoteAddr(r)
	}
	if e.At.IsZero() {
		e.At = l.now()
	}
	return e
}

// RemoteAddr is the address r came from, without the port.
func RemoteAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Note is what a handler adds to its request's audit row.
type Note struct {
	Project string
	Target  string
	Detail  string
	// Actor replaces the principal's name (a webhook names its delivery).
	Actor string

	l       *Log   // the Wrap it belongs to
	action  string // Wrap's action
	written bool   // the handler wrote the row itself (Written)
}

type noteKey struct{}

// NoteOf returns the note of r's audit row, for the handler to fill in;
// outside Wrap it is a throwaway.
func NoteOf(r *http.Request) *Note {
	if n, ok := r.Context().Value(noteKey{}).(*Note); ok {
		return n
	}
	return &Note{}
}

// Wrap records one row of action for every request h serves: the project
// and target from the path ({name}, {id}, {env}) unless h's Note says
// otherwise, and the outcome "ok" for a 2xx or 3xx answer, else the status
// and the error message of the answer. Wrap goes outside the role check,
// so refusals are recorded too.
func (l *Log) Wrap(action string, h http.Handler) http.Handler {
	if l == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := &Note{l: l, action: action}
		r = r.WithContext(context.WithValue(r.Context(), noteKey{}, n))
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		if n.written {
			return
		}
		e := n.entry(r)
		if rec.status >= 400 {
			e.Outcome = rec.outcome()
		}
		l.Record(r, e)
	})
}

// entry is n's row as Wrap appends it for a request that succeeded.
func (n *Note) entry(r *http.Request) store.AuditEntry {
	e := store.AuditEntry{Action: n.action, Project: n.Project, Target: n.Target, Detail: n.Detail, Actor: n.Actor, Outcome: OK}
	if e.Project == "" {
		e.Project = r.PathValue("name")
	}
	if e.Target == "" {
		switch {
		case r.PathValue("id") != "":
			e.Target = "bake " + r.PathValue("id")
		case r.PathValue("env") != "":
			e.Target = "environment " + r.PathValue("env")
		}
	}
	return e
}

// Row returns the row Wrap would append for r if its handler succeeds, for
// a handler that writes it itself inside the transaction of its action (a
// webhook's push: one commit for both). ok is false outside Wrap. Once that
// transaction has committed, the handler calls Written; until then, or if
// it fails, Wrap appends the row with the answer's outcome as usual.
func Row(r *http.Request) (e store.AuditEntry, ok bool) {
	n, ok := r.Context().Value(noteKey{}).(*Note)
	if !ok {
		return store.AuditEntry{}, false
	}
	return n.l.fill(r, n.entry(r)), true
}

// Written tells Wrap that the handler wrote r's row itself (see Row).
func Written(r *http.Request) {
	if n, ok := r.Context().Value(noteKey{}).(*Note); ok {
		n.written = true
	}
}

// recorder keeps an answer's status and the start of an error answer's body.
type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (rr *recorder) WriteHeader(code int) {
	rr.status = code
	rr.ResponseWriter.WriteHeader(code)
}

func (rr *recorder) Write(b []byte) (int, error) {
	if rr.status >= 400 && rr.body.Len() < 1024 {
		rr.body.Write(b[:min(len(b), 1024-rr.body.Len())])
	}
	return rr.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (rr *recorder) Unwrap() http.ResponseWriter { return rr.ResponseWriter }

// outcome is a failed answer in words: "403: this needs the admin role; ...".
func (rr *recorder) outcome() string {
	msg := strings.TrimSpace(rr.body.String())
	if strings.HasPrefix(rr.Header().Get("Content-Type"), "text/html") {
		msg = "" // a page: its status says enough
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(rr.body.Bytes(), &e) == nil && e.Error != "" {
		msg = e.Error
	}
	if msg == "" {
		msg = http.StatusText(rr.status)
	}
	return fmt.Sprintf("%d: %s", rr.status, msg)
}
