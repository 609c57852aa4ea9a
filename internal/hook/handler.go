package hook

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"kiln/internal/audit"
	"kiln/internal/store"
)

// Backend is what the webhook handler needs: a project's branch filter
// and secret, and a way to record an accepted push. *Queue (store + River)
// satisfies it.
type Backend interface {
	// HookTarget returns the project's branch filter and secret, or an
	// error wrapping store.ErrNotFound.
	HookTarget(ctx context.Context, project string) (store.HookTarget, error)
	// Enqueue records the push and creates or coalesces a queued bake (see
	// store.EnqueuePush), and p.Audit when set, in the same transaction; it
	// must be fast and do no AWS work.
	Enqueue(ctx context.Context, p store.Push) (store.PushResult, error)
}

// Handler serves POST /hooks/{project}. Mount it on a ServeMux with
// exactly that pattern: it reads the project from r.PathValue("project").
//
// Answers (JSON bodies):
//
//	404 {"error"}                          unknown project
//	413 {"error"}                          body over MaxBodySize
//	401 {"error"}                          missing or bad signature / token
//	400 {"error"}                          malformed JSON or headers
//	200 {"status":"pong"}                  ping
//	200 {"status":"ignored","reason"}      other events, tags, deleted branches, other branches
//	202 {"status":"queued","bake_id",...}  a push to bake; "coalesced" when it replaced the
//	                                       commit of an already-queued bake, "duplicate" when
//	                                       the delivery id was seen before (same bake_id)
//
// It does no AWS work: a push costs two small database transactions.
type Handler struct {
	backend Backend
	log     *slog.Logger
}

// NewHandler returns the handler; log may be nil (no logging).
func NewHandler(b Backend, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{backend: b, log: log}
}

// Response is the JSON body of a successful answer.
type Response struct {
	Status    string `json:"status"` // pong, ignored, queued
	Reason    string `json:"reason,omitempty"`
	BakeID    int64  `json:"bake_id,omitempty"`
	Commit    string `json:"commit,omitempty"`
	Coalesced bool   `json:"coalesced,omitempty"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	name := r.PathValue("project")
	if name == "" {
		writeError(w, http.StatusNotFound, "no project in the path")
		return
	}
	if r.ContentLength > MaxBodySize {
		writeError(w, http.StatusRequestEntityTooLarge, ErrTooLarge.Error())
		return
	}
	target, err := h.backend.HookTarget(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "unknown project")
		return
	}
	if err != nil {
		h.internal(w, "look up project", err, "project", name)
		return
	}
	body, err := ReadBody(http.MaxBytesReader(w, r.Body, MaxBodySize))
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, err.Error())
			return
		}
		writeError(w, http.StatusBadRequest, "reading the body failed")
		return
	}
	d, err := ParseDelivery(r.Header, body, target.Secret)
	if err != nil {
		status := HTTPStatus(err)
		h.log.Info("webhook refused", "project", name, "status", status, "err", err)
		writeError(w, status, err.Error())
		return
	}
	log := h.log.With("project", name, "provider", d.Provider, "delivery", d.DeliveryID)
	switch d.Kind {
	case KindPing:
		log.Info("webhook ping")
		writeJSON(w, http.StatusOK, Response{Status: "pong"})
		return
	case KindPush:
	default:
		log.Info("webhook ignored", "event", d.Event, "reason", d.Reason)
		writeJSON(w, http.StatusOK, Response{Status: "ignored", Reason: d.Reason})
		return
	}
	if ok, reason := d.Match(target.Branch); !ok {
		log.Info("webhook ignored", "event", d.Event, "reason", reason)
		writeJSON(w, http.StatusOK, Response{Status: "ignored", Reason: reason})
		return
	}
	push := store.Push{
		Project: name, DeliveryID: d.DeliveryID, Commit: d.Commit, Ref: d.Ref, Message: d.Message, Repo: d.Repo,
	}
	// Under audit.Wrap the delivery's audit row goes in the push's
	// transaction: a webhook costs one commit.
	if row, ok := audit.Row(r); ok {
		push.Audit = &row
	}
	res, err := h.backend.Enqueue(ctx, push)
	if errors.Is(err, store.ErrNotFound) { // deleted since the lookup
		writeError(w, http.StatusNotFound, "unknown project")
		return
	}
	if err != nil {
		h.internal(w, "enqueue bake", err, "project", name, "delivery", d.DeliveryID)
		return
	}
	if push.Audit != nil {
		audit.Written(r)
	}
	log.Info("webhook push queued", "bake", res.BakeID, "commit", d.Commit, "new", res.New, "duplicate", res.Duplicate)
	writeJSON(w, http.StatusAccepted, Response{
		Status: "queued", BakeID: res.BakeID, Commit: d.Commit,
		Coalesced: !res.New && !res.Duplicate, Duplicate: res.Duplicate,
	})
}

func (h *Handler) internal(w http.ResponseWriter, msg string, err error, attrs ...any) {
	h.log.Error(msg, append(attrs, "err", err)...)
	writeError(w, http.StatusInternalServerError, "internal error")
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// URL is where senders deliver pushes for project: under publicURL
// when the server is configured with one (trailing slashes ignored), else
// at the scheme and host the request r came in on.
func URL(publicURL string, r *http.Request, project string) string {
	base := strings.TrimRight(publicURL, "/")
	if base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	return base + "/hooks/" + url.PathEscape(project)
}
