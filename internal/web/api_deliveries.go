package web

import (
	"net/http"
	"time"
)

// Delivery is one notification or commit status delivery as
// GET /api/projects/{name}/deliveries shows it, newest first: a failed
// one says why.
type Delivery struct {
	Event     string    `json:"event"`
	Target    string    `json:"target"` // the URL's scheme and host, or "commit-status"
	State     string    `json:"state"`  // pending, delivered, failed
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// maxDeliveries is how many deliveries the API shows.
const maxDeliveries = 100

func (s *Server) listDeliveries(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, err := s.cfg.Store.Project(r.Context(), name); s.projectFailed(w, r, name, err) {
		return
	}
	ds, err := s.cfg.Store.Deliveries(r.Context(), name, maxDeliveries)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	out := []Delivery{}
	for _, d := range ds {
		out = append(out, Delivery{Event: d.Event, Target: d.Target, State: d.State, Attempts: d.Attempts,
			LastError: d.LastError, CreatedAt: d.Created, UpdatedAt: d.Updated})
	}
	writeJSON(w, http.StatusOK, map[string]any{"deliveries": out})
}
