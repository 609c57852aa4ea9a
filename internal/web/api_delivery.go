package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"kiln/internal/audit"
	"kiln/internal/auth"
	"kiln/internal/bakery"
)

// Revocations and approvals (safe delivery).

// RevokeRequest is the body of POST /api/projects/{name}/images/{id}/revoke.
type RevokeRequest struct {
	Reason string `json:"reason"`
}

// revoker and approver are the parts of the bakery that revoke images and
// approve gated promotions (bakery.Service); a Bakery without them
// answers 501.
type revoker interface {
	Revoke(ctx context.Context, project, image, reason, actor string) (*bakery.Revoked, error)
}

type approver interface {
	Approve(ctx context.Context, project, env, actor string) (*bakery.Promotion, error)
}

// actorOf names who makes request r, for the records.
func actorOf(r *http.Request) string {
	if p, ok := auth.FromContext(r.Context()); ok {
		return p.String()
	}
	return "unknown"
}

func (s *Server) revokeImage(w http.ResponseWriter, r *http.Request) {
	name, image := r.PathValue("name"), r.PathValue("image")
	rv, ok := s.cfg.Bakery.(revoker)
	if !ok {
		writeError(w, http.StatusNotImplemented, "this server does not revoke images")
		return
	}
	var req RevokeRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err == nil {
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		err = dec.Decode(&req)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, `body: want {"reason": "..."}: `+err.Error())
		return
	}
	note := audit.NoteOf(r)
	note.Target, note.Detail = "image "+image, req.Reason
	out, err := rv.Revoke(r.Context(), name, image, req.Reason, actorOf(r))
	var re *bakery.RevokeError
	switch {
	case errors.As(err, &re) && re.Already:
		writeError(w, http.StatusConflict, re.Msg)
		return
	case errors.As(err, &re):
		writeError(w, http.StatusBadRequest, re.Msg)
		return
	case s.projectFailed(w, r, name, err):
		return
	}
	if len(out.Stranded) > 0 {
		note.Detail += fmt.Sprintf("; stranded: %s", strings.Join(out.Stranded, ", "))
	}
	writeJSON(w, http.StatusOK, struct {
		Revoked *bakery.Revoked `json:"revoked"`
	}{out})
}

func (s *Server) approve(w http.ResponseWriter, r *http.Request) {
	name, env := r.PathValue("name"), r.PathValue("env")
	ap, ok := s.cfg.Bakery.(approver)
	if !ok {
		writeError(w, http.StatusNotImplemented, "this server does not approve promotions")
		return
	}
	note := audit.NoteOf(r)
	p, err := ap.Approve(r.Context(), name, env, actorOf(r))
	if p != nil {
		note.Detail = fmt.Sprintf("promotion %d of %s", p.ID, p.ImageID)
	}
	s.writePromotion(w, r, name, env, p, err)
}

// Revoke revokes image of project with reason.
func (c *Client) Revoke(ctx context.Context, project, image, reason string) (*bakery.Revoked, error) {
	body, _ := json.Marshal(RevokeRequest{Reason: reason})
	var out struct {
		Revoked *bakery.Revoked `json:"revoked"`
	}
	h := http.Header{"Content-Type": {"application/json"}}
	if err := c.do(ctx, http.MethodPost, "/api/projects/"+url.PathEscape(project)+"/images/"+url.PathEscape(image)+"/revoke", h, body, &out); err != nil {
		return nil, err
	}
	return out.Revoked, nil
}

// Approve lets the promotion waiting at env's approval gate through.
func (c *Client) Approve(ctx context.Context, project, env string) (*Promotion, error) {
	var out struct {
		Promotion Promotion `json:"promotion"`
	}
	if err := c.do(ctx, http.MethodPost, "/api/projects/"+url.PathEscape(project)+"/environments/"+url.PathEscape(env)+"/approve", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out.Promotion, nil
}
