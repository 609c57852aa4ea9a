package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"kiln/internal/audit"
	"kiln/internal/bakery"
	"kiln/internal/store"
)

// Page sizes of GET /api/bakes.
const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

func (s *Server) listBakes(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	query := store.BakeQuery{Project: q.Get("project"), Limit: defaultPageSize}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > maxPageSize {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit=%q: want 1 to %d", v, maxPageSize))
			return
		}
		query.Limit = n
	}
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("before=%q: want a bake id", v))
			return
		}
		query.BeforeID = n
	}
	for _, v := range q["state"] {
		for st := range strings.SplitSeq(v, ",") {
			if !store.BakeState(st).Valid() {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("state=%q: want queued, running, succeeded, failed or cancelled", st))
				return
			}
			query.States = append(query.States, store.BakeState(st))
		}
	}
	// One more than asked tells whether there is a next page.
	want := query.Limit
	query.Limit++
	bakes, err := s.cfg.Store.Bakes(r.Context(), query)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	out := BakeList{Bakes: []Bake{}}
	if len(bakes) > want {
		bakes = bakes[:want]
		out.NextBefore = bakes[want-1].ID
	}
	for i := range bakes {
		out.Bakes = append(out.Bakes, bakeJSON(&bakes[i], nil))
	}
	writeJSON(w, http.StatusOK, out)
}

// bakeID reads {id}; on failure it has answered.
func bakeID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	v := r.PathValue("id")
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("bake id %q: want a positive number", v))
		return 0, false
	}
	return id, true
}

// loadBake reads a bake and its steps; on failure it has answered.
func (s *Server) loadBake(w http.ResponseWriter, r *http.Request, id int64) (*Bake, bool) {
	b, err := s.cfg.Store.Bake(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no bake %d", id))
		return nil, false
	}
	if err != nil {
		s.internal(w, r, err)
		return nil, false
	}
	steps, err := s.cfg.Store.Steps(r.Context(), id)
	if err != nil {
		s.internal(w, r, err)
		return nil, false
	}
	out := bakeJSON(b, steps)
	imgs, err := s.cfg.Store.BakeImages(r.Context(), id)
	if err != nil {
		s.internal(w, r, err)
		return nil, false
	}
	for _, im := range imgs {
		out.Images = append(out.Images, RegionImage{Region: im.Region, ImageID: im.ImageID, State: im.State, UpdatedAt: im.Updated})
	}
	return &out, true
}

func (s *Server) showBake(w http.ResponseWriter, r *http.Request) {
	id, ok := bakeID(w, r)
	if !ok {
		return
	}
	if b, ok := s.loadBake(w, r, id); ok {
		writeJSON(w, http.StatusOK, b)
	}
}

// triggerBake is "bake now": it queues a bake of the project as it is.
func (s *Server) triggerBake(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	res, err := s.cfg.Bakery.Trigger(r.Context(), name, "", "")
	if s.projectFailed(w, r, name, err) {
		return
	}
	s.cfg.Log.Info("bake triggered", "project", name, "bake", res.BakeID, "new", res.New)
	audit.NoteOf(r).Target = fmt.Sprintf("bake %d", res.BakeID)
	if !res.New {
		audit.NoteOf(r).Detail = "coalesced with the queued bake"
	}
	b, ok := s.loadBake(w, r, res.BakeID)
	if !ok {
		return
	}
	writeJSON(w, http.StatusAccepted, TriggerResult{Bake: *b, New: res.New})
}

func (s *Server) cancelBake(w http.ResponseWriter, r *http.Request) {
	id, ok := bakeID(w, r)
	if !ok {
		return
	}
	var body struct {
		Reason string `json:"reason"`
	}
	// The body is optional: an empty or absent one gives the default reason.
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "body: want {\"reason\": \"...\"} or nothing")
		return
	}
	if body.Reason == "" {
		body.Reason = "cancelled through the API"
	}
	audit.NoteOf(r).Detail = body.Reason
	b0, err := s.cfg.Bakery.Cancel(r.Context(), id, body.Reason)
	if b0 != nil {
		audit.NoteOf(r).Project = b0.Project
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("no bake %d", id))
		return
	case errors.Is(err, store.ErrBakeFinished):
		writeError(w, http.StatusConflict, fmt.Sprintf("bake %d is already over", id))
		return
	case err != nil:
		s.internal(w, r, err)
		return
	}
	s.cfg.Log.Info("bake cancel requested", "bake", id)
	if b, ok := s.loadBake(w, r, id); ok {
		writeJSON(w, http.StatusAccepted, b)
	}
}

// bakeEvents streams a bake's progress as server-sent events: event "bake"
// carries the whole Bake with its steps each time it changed (the first
// event at once), and event "end" follows the bake's final state. The
// stream ends when the bake is over, the client goes away, or the server
// shuts down (the client then reconnects and gets the current state).
func (s *Server) bakeEvents(w http.ResponseWriter, r *http.Request) {
	id, ok := bakeID(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	b, ok := s.loadBake(w, r, id)
	if !ok {
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)

	poll := time.NewTicker(s.cfg.PollInterval)
	defer poll.Stop()
	var wake <-chan bakery.Progress // nil (never ready) without a ProgressSource
	if src, ok := s.cfg.Bakery.(ProgressSource); ok {
		ch, unsubscribe := src.Subscribe(id)
		defer unsubscribe()
		wake = ch
	}
	lastSent := time.Now()
	var last []byte
	for {
		data, err := json.Marshal(b)
		if err != nil {
			s.cfg.Log.Error("progress stream", "bake", id, "err", err)
			return
		}
		if !bytes.Equal(data, last) {
			if _, err := fmt.Fprintf(w, "event: bake\ndata: %s\n\n", data); err != nil {
				return
			}
			last, lastSent = data, time.Now()
		} else if time.Since(lastSent) >= s.cfg.Heartbeat {
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			lastSent = time.Now()
		}
		if b.State.Final() {
			fmt.Fprintf(w, "event: end\ndata: {\"state\":%q}\n\n", b.State)
			_ = rc.Flush()
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		case <-wake:
		}
		sb, err := s.cfg.Store.Bake(ctx, id)
		if err != nil {
			// Gone (project deleted) or the server is stopping: end the
			// stream; the client asks again and learns which.
			return
		}
		steps, err := s.cfg.Store.Steps(ctx, id)
		if err != nil {
			return
		}
		nb := bakeJSON(sb, steps)
		b = &nb
	}
}
