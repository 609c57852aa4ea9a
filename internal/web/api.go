package web

import (
	"encoding/json"
	"net/http"
	"time"

	"kiln/internal/store"
)

// The JSON shapes of the API. The client (Client) decodes the same types.

// Project is a project as the API shows it: the project file's fields,
// never the webhook secret.
type Project struct {
	Name           string            `json:"name"`
	Region         string            `json:"region"`
	Base           Base              `json:"base"`
	Type           string            `json:"type"`
	Script         string            `json:"script"`
	SecurityGroups []string          `json:"security_groups,omitempty"`
	Subnet         string            `json:"subnet,omitempty"`
	IAMProfile     string            `json:"iam_profile,omitempty"`
	Tags           map[string]string `json:"tags,omitempty"`
	Keep           int               `json:"keep"`
	Branch         string            `json:"branch,omitempty"`
	Timeouts       Timeouts          `json:"timeouts"`
	WebhookURL     string            `json:"webhook_url"`
	// Distribution is where its images go besides region (show only).
	Distribution *store.Distribution `json:"distribution,omitempty"`
	CreatedAt    time.Time           `json:"created_at"`
	UpdatedAt    time.Time           `json:"updated_at"`
	// Environments are set by GET /api/projects/{name} (as GET
	// .../environments answers them), not in lists.
	Environments []Environment `json:"environments,omitempty"`
}

// Base is a project's base image.
type Base struct {
	ID         string `json:"id,omitempty"`
	Owner      string `json:"owner,omitempty"`
	Name       string `json:"name,omitempty"`
	MostRecent bool   `json:"most_recent,omitempty"`
}

// Timeouts are a project's timeouts as Go durations ("30m0s").
type Timeouts struct {
	Script string `json:"script"`
	Image  string `json:"image"`
}

// ApplyResult answers POST /api/projects.
type ApplyResult struct {
	Project    Project `json:"project"`
	Created    bool    `json:"created"`
	WebhookURL string  `json:"webhook_url"`
	// WebhookSecret is set only when kiln generated the secret: this is the
	// one time it is shown.
	WebhookSecret string `json:"webhook_secret,omitempty"`
}

// SecretResult answers POST /api/projects/{name}/secret: the project's new
// webhook secret, shown this once.
type SecretResult struct {
	Project       string `json:"project"`
	WebhookSecret string `json:"webhook_secret"`
	WebhookURL    string `json:"webhook_url"`
}

// Bake is a bake as the API shows it.
type Bake struct {
	ID              int64           `json:"id"`
	Project         string          `json:"project"`
	State           store.BakeState `json:"state"`
	Commit          string          `json:"commit,omitempty"`
	Ref             string          `json:"ref,omitempty"`
	Message         string          `json:"message,omitempty"`
	Repo            string          `json:"repo,omitempty"`
	CancelRequested bool            `json:"cancel_requested,omitempty"`
	CreatedAt       time.Time       `json:"created_at"`
	StartedAt       *time.Time      `json:"started_at,omitempty"`
	FinishedAt      *time.Time      `json:"finished_at,omitempty"`
	ImageID         string          `json:"image_id,omitempty"`
	BuilderID       string          `json:"builder_id,omitempty"`
	Reason          string          `json:"reason,omitempty"`
	ConsoleTail     string          `json:"console_tail,omitempty"`
	// Steps is filled by show and the progress stream, not by list.
	Steps []Step `json:"steps,omitempty"`
	// Images is the bake's image in every region (its own and each copy),
	// filled by show.
	Images []RegionImage `json:"images,omitempty"`
}

// RegionImage is a bake's image in one region and its state.
type RegionImage struct {
	Region    string    `json:"region"`
	ImageID   string    `json:"image_id"`
	State     string    `json:"state"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Step is one step of a bake.
type Step struct {
	Name       string          `json:"name"`
	State      store.StepState `json:"state"`
	StartedAt  time.Time       `json:"started_at"`
	FinishedAt *time.Time      `json:"finished_at,omitempty"`
	Detail     string          `json:"detail,omitempty"`
}

// Duration is how long the step took, or has been running at now.
func (st Step) Duration(now time.Time) time.Duration {
	if st.FinishedAt != nil {
		return st.FinishedAt.Sub(st.StartedAt)
	}
	return now.Sub(st.StartedAt)
}

// BakeList answers GET /api/bakes. NextBefore, when set, is the before=
// value of the next (older) page.
type BakeList struct {
	Bakes      []Bake `json:"bakes"`
	NextBefore int64  `json:"next_before,omitempty"`
}

// TriggerResult answers POST /api/projects/{name}/bakes. New is false when
// the project already had a queued bake, which is the one returned.
type TriggerResult struct {
	Bake Bake `json:"bake"`
	New  bool `json:"new"`
}

// Error is the body of every error answer.
type Error struct {
	Error string `json:"error"`
	// Problems lists an invalid project file's problems, "file:line: ...".
	Problems []string `json:"problems,omitempty"`
}

func projectJSON(p *store.Project, webhookURL string) Project {
	return Project{
		Name: p.Name, Region: p.Region,
		Base: Base{ID: p.BaseID, Owner: p.BaseOwner, Name: p.BaseName, MostRecent: p.BaseMostRecent},
		Type: p.Type, Script: p.Script,
		SecurityGroups: p.SecurityGroups, Subnet: p.Subnet, IAMProfile: p.IAMProfile,
		Tags: p.Tags, Keep: p.Keep, Branch: p.Branch,
		Timeouts:   Timeouts{Script: p.ScriptTimeout.String(), Image: p.ImageTimeout.String()},
		WebhookURL: webhookURL,
		CreatedAt:  p.Created, UpdatedAt: p.Updated,
	}
}

func bakeJSON(b *store.Bake, steps []store.Step) Bake {
	out := Bake{
		ID: b.ID, Project: b.Project, State: b.State,
		Commit: b.Commit, Ref: b.Ref, Message: b.Message, Repo: b.Repo,
		CancelRequested: b.CancelRequested,
		CreatedAt:       b.Created, StartedAt: timePtr(b.Started), FinishedAt: timePtr(b.Finished),
		ImageID: b.ImageID, BuilderID: b.BuilderID, Reason: b.Reason, ConsoleTail: b.ConsoleTail,
	}
	for _, st := range steps {
		out.Steps = append(out.Steps, Step{
			Name: st.Name, State: st.State, StartedAt: st.Started, FinishedAt: timePtr(st.Finished), Detail: st.Detail,
		})
	}
	return out
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, Error{Error: msg})
}

// internal logs err and answers 500 without details.
func (s *Server) internal(w http.ResponseWriter, r *http.Request, err error) {
	s.cfg.Log.Error("api request", "method", r.Method, "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, "internal error (see the server log)")
}
