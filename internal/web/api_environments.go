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
	"time"

	"kiln/internal/audit"
	"kiln/internal/bakery"
	"kiln/internal/store"
)

// Environment is an environment as the API shows it (secrets masked).
type Environment struct {
	Name       string               `json:"name"`
	Region     string               `json:"region"`
	Group      string               `json:"group"`
	Promotion  string               `json:"promotion"`
	Soak       string               `json:"soak,omitempty"`
	Approval   string               `json:"approval,omitempty"` // manual: a gate after the previous soak
	Image      string               `json:"image,omitempty"`
	State      string               `json:"state"`
	Detail     string               `json:"detail,omitempty"`
	Config     []bakery.ConfigShown `json:"config"`
	Promotions []Promotion          `json:"promotions"`
	// Min and Max are the declared size; Live the group as it is now
	// (when the server can read it), Drift how it differs from what the
	// last promotion left (State "drifted": the bakery puts it back).
	Min   int               `json:"min"`
	Max   int               `json:"max"`
	Live  *bakery.GroupLive `json:"live,omitempty"`
	Drift []string          `json:"drift,omitempty"`
}

// liveReader is the part of the bakery that reads environments' groups
// (bakery.Service.LiveStatuses); without it the API shows the records only.
type liveReader interface {
	LiveStatuses(ctx context.Context, project string, sts []bakery.EnvStatus) []bakery.EnvStatus
}

// Promotion is one rollout of an image to an environment.
type Promotion struct {
	ID         int64      `json:"id"`
	Env        string     `json:"env"`
	Image      string     `json:"image"`
	Cause      string     `json:"cause"`
	State      string     `json:"state"`
	Reason     string     `json:"reason,omitempty"`
	Version    string     `json:"launch_template_version,omitempty"`
	Soak       string     `json:"soak,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// PromoteRequest is the body of POST .../environments/{env}/promote; an
// empty body promotes the previous environment's image.
type PromoteRequest struct {
	Image string `json:"image,omitempty"`
}

// historyLen is how many promotions an environment shows.
const historyLen = 20

func promotionJSON(p store.Promotion) Promotion {
	return Promotion{ID: p.ID, Env: p.Env, Image: p.ImageID, Cause: p.Cause, State: string(p.State), Reason: p.Reason,
		Version: p.Version, Soak: p.Soak, CreatedAt: p.Created, FinishedAt: timePtr(p.Finished)}
}

func (s *Server) listEnvironments(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, err := s.cfg.Store.Project(r.Context(), name); s.projectFailed(w, r, name, err) {
		return
	}
	envs, err := s.environments(r, name)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if envs == nil {
		envs = []Environment{}
	}
	writeJSON(w, http.StatusOK, struct {
		Environments []Environment `json:"environments"`
	}{envs})
}

// environments are project's environments as the API shows them.
func (s *Server) environments(r *http.Request, project string) ([]Environment, error) {
	envs, err := s.cfg.Store.Environments(r.Context(), project)
	if err != nil || len(envs) == 0 {
		return nil, err
	}
	promos, err := s.cfg.Store.Promotions(r.Context(), store.PromotionQuery{Project: project, Limit: historyLen * len(envs)})
	if err != nil {
		return nil, err
	}
	var out []Environment
	sts := bakery.EnvStatuses(project, envs, promos)
	if l, ok := s.cfg.Bakery.(liveReader); ok {
		sts = l.LiveStatuses(r.Context(), project, sts)
	}
	for _, st := range sts {
		e := Environment{Name: st.Name, Region: st.Region, Group: st.Group.Name, Promotion: st.Promotion, Approval: st.Approval, Image: st.Image,
			State: st.State, Detail: st.Detail, Config: st.Config, Promotions: []Promotion{},
			Min: st.Group.Min, Max: st.Group.Max, Live: st.Live, Drift: st.Drift}
		if st.Soak > 0 {
			e.Soak = st.Soak.String()
		}
		if e.Config == nil {
			e.Config = []bakery.ConfigShown{}
		}
		for _, p := range st.Promotions[:min(len(st.Promotions), historyLen)] {
			e.Promotions = append(e.Promotions, promotionJSON(p))
		}
		out = append(out, e)
	}
	return out, nil
}

func (s *Server) promote(w http.ResponseWriter, r *http.Request) {
	name, env := r.PathValue("name"), r.PathValue("env")
	var req PromoteRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		writeError(w, http.StatusBadRequest, "read body: "+err.Error())
		return
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, `body: want {"image": "ami-..."} or nothing: `+err.Error())
			return
		}
	}
	p, err := s.cfg.Bakery.Promote(r.Context(), name, env, req.Image)
	if p != nil {
		audit.NoteOf(r).Detail = fmt.Sprintf("promotion %d of %s", p.ID, p.ImageID)
	} else if req.Image != "" {
		audit.NoteOf(r).Detail = "image " + req.Image
	}
	s.writePromotion(w, r, name, env, p, err)
}

// writePromotion answers a request that started promotion p of project
// name's environment env (promote, approve), or failed with err.
func (s *Server) writePromotion(w http.ResponseWriter, r *http.Request, name, env string, p *store.Promotion, err error) {
	var pe *bakery.PromotionError
	switch {
	case errors.As(err, &pe):
		writeError(w, http.StatusBadRequest, pe.Msg)
		return
	case errors.Is(err, store.ErrPromotionRunning):
		writeError(w, http.StatusConflict, fmt.Sprintf("environment %s of %q has a rollout running; wait for it to end", env, name))
		return
	case s.projectFailed(w, r, name, err):
		return
	}
	writeJSON(w, http.StatusAccepted, struct {
		Promotion Promotion `json:"promotion"`
	}{promotionJSON(*p)})
}

// Environments returns project's environments with their state and
// recent promotions.
func (c *Client) Environments(ctx context.Context, project string) ([]Environment, error) {
	var out struct {
		Environments []Environment `json:"environments"`
	}
	if err := c.do(ctx, http.MethodGet, "/api/projects/"+url.PathEscape(project)+"/environments", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Environments, nil
}

// Promote promotes image ("" = the previous environment's) to env.
func (c *Client) Promote(ctx context.Context, project, env, image string) (*Promotion, error) {
	body, _ := json.Marshal(PromoteRequest{Image: image})
	var out struct {
		Promotion Promotion `json:"promotion"`
	}
	h := http.Header{"Content-Type": {"application/json"}}
	if err := c.do(ctx, http.MethodPost, "/api/projects/"+url.PathEscape(project)+"/environments/"+url.PathEscape(env)+"/promote", h, body, &out); err != nil {
		return nil, err
	}
	return &out.Promotion, nil
}
