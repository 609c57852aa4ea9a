package web

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"kiln/internal/bakery"
)

// Image is one kept image of a project as GET /api/projects/{name}/images
// shows it.
type Image struct {
	ID           string      `json:"image_id"`
	Name         string      `json:"name"`
	BakeID       int64       `json:"bake_id,omitempty"`
	Commit       string      `json:"commit,omitempty"`
	CreatedAt    time.Time   `json:"created_at"`
	Region       string      `json:"region"`
	State        string      `json:"state"` // EC2's: available, pending, failed, disabled; gone
	Deprecation  *time.Time  `json:"deprecation_time,omitempty"`
	InUse        bool        `json:"in_use"`
	Environments []string    `json:"environments"`      // running it
	Rolling      []string    `json:"rolling,omitempty"` // a promotion is taking it there
	Copies       []ImageCopy `json:"copies"`
	Revoked      string      `json:"revoked,omitempty"` // the revocation's reason
}

// ImageCopy is an image's copy in another region.
type ImageCopy struct {
	Region string `json:"region"`
	ID     string `json:"image_id,omitempty"`
	State  string `json:"state"`
}

// imageLister is the part of the bakery that lists a project's images
// (bakery.Service.Images); a Bakery without it answers 501.
type imageLister interface {
	Images(ctx context.Context, project string) ([]bakery.ImageStatus, error)
}

func (s *Server) listImages(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	l, ok := s.cfg.Bakery.(imageLister)
	if !ok {
		writeError(w, http.StatusNotImplemented, "this server does not list images")
		return
	}
	imgs, err := l.Images(r.Context(), name)
	if s.projectFailed(w, r, name, err) {
		return
	}
	out := []Image{}
	for _, im := range imgs {
		j := Image{ID: im.ImageID, Name: im.Name, BakeID: im.BakeID, Commit: im.Commit, CreatedAt: im.Created,
			Region: im.Region, State: im.State, Deprecation: timePtr(im.Deprecation), InUse: im.InUse(),
			Environments: im.Environments, Rolling: im.Rolling, Copies: []ImageCopy{}, Revoked: im.Revoked}
		if j.Environments == nil {
			j.Environments = []string{}
		}
		for _, c := range im.Copies {
			j.Copies = append(j.Copies, ImageCopy{Region: c.Region, ID: c.ImageID, State: c.State})
		}
		out = append(out, j)
	}
	writeJSON(w, http.StatusOK, struct {
		Images []Image `json:"images"`
	}{out})
}

// Images returns project's kept images, newest first.
func (c *Client) Images(ctx context.Context, project string) ([]Image, error) {
	var out struct {
		Images []Image `json:"images"`
	}
	if err := c.do(ctx, http.MethodGet, "/api/projects/"+url.PathEscape(project)+"/images", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Images, nil
}
