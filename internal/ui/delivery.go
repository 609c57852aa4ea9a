package ui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"kiln/internal/audit"
	"kiln/internal/bakery"
	"kiln/internal/store"
)

// Safe delivery on the project page: the images' revocations (a Revoke
// button per image, admin), and an Approve button on an environment whose
// promotion waits at its approval gate (deployer).

// revoked is project's revoked images with their reasons, when the
// records can tell (store.Store can); nil otherwise.
func (b *bakeryPages) revoked(ctx context.Context, project string) (map[string]string, error) {
	rs, ok := b.cfg.Records.(interface {
		Revocations(context.Context, string) (map[string]store.Revocation, error)
	})
	if !ok {
		return nil, nil
	}
	revs, err := rs.Revocations(ctx, project)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(revs))
	for id, r := range revs {
		out[id] = r.Reason
	}
	return out, nil
}

// revoke revokes the image with the form's reason, as POST
// /api/projects/{name}/images/{id}/revoke does; the outcome comes back to
// the project page as its message.
func (b *bakeryPages) revoke(w http.ResponseWriter, r *http.Request, s *session) {
	name, image := r.PathValue("name"), r.PathValue("image")
	rv, ok := b.cfg.Service.(interface {
		Revoke(ctx context.Context, project, image, reason, actor string) (*bakery.Revoked, error)
	})
	if !ok {
		http.Error(w, "this server does not revoke images", http.StatusNotImplemented)
		return
	}
	reason := r.FormValue("reason")
	note := audit.NoteOf(r)
	note.Target, note.Detail = "image "+image, reason
	out, err := rv.Revoke(r.Context(), name, image, reason, s.subject)
	var re *bakery.RevokeError
	var msg string
	switch {
	case errors.As(err, &re):
		msg = "Not revoked: " + re.Msg
	case err != nil:
		b.fail(w, r, err)
		return
	default:
		msg = fmt.Sprintf("Image %s revoked.", image)
		for _, rp := range out.Replace {
			msg += fmt.Sprintf(" %s goes back to %s.", rp.Env, rp.To)
		}
		if len(out.Stranded) > 0 {
			msg += fmt.Sprintf(" No good image was baked before it: %v still run it; bake a fixed image and promote it.", out.Stranded)
			note.Detail += fmt.Sprintf("; stranded: %v", out.Stranded)
		}
	}
	if err := b.ss.putFlash(r.Context(), s, msg); err != nil {
		b.cfg.Log.Error("page", "path", r.URL.Path, "err", err)
	}
	http.Redirect(w, r, "/projects/"+url.PathEscape(name)+"#images", http.StatusSeeOther)
}

// approve lets the promotion waiting at the environment's gate through,
// as POST /api/projects/{name}/environments/{env}/approve does.
func (b *bakeryPages) approve(w http.ResponseWriter, r *http.Request, s *session) {
	name, env := r.PathValue("name"), r.PathValue("env")
	ap, ok := b.cfg.Service.(interface {
		Approve(ctx context.Context, project, env, actor string) (*bakery.Promotion, error)
	})
	if !ok {
		http.Error(w, "this server does not approve promotions", http.StatusNotImplemented)
		return
	}
	p, err := ap.Approve(r.Context(), name, env, s.subject)
	var pe *bakery.PromotionError
	var msg string
	switch {
	case errors.As(err, &pe):
		msg = "Not approved: " + pe.Msg
	case errors.Is(err, store.ErrPromotionRunning):
		msg = fmt.Sprintf("Not approved: a rollout to %s is running; wait for it to end.", env)
	case err != nil:
		b.fail(w, r, err)
		return
	default:
		audit.NoteOf(r).Detail = fmt.Sprintf("promotion %d of %s", p.ID, p.ImageID)
		msg = fmt.Sprintf("Approved: promotion %d: %s is rolling out to %s.", p.ID, p.ImageID, env)
	}
	if err := b.ss.putFlash(r.Context(), s, msg); err != nil {
		b.cfg.Log.Error("page", "path", r.URL.Path, "err", err)
	}
	http.Redirect(w, r, "/projects/"+url.PathEscape(name)+"#environments", http.StatusSeeOther)
}

// dropRevoked takes revoked images out of the environments' Promote
// choices: the bakery refuses them.
func dropRevoked(rows []envRow, revoked map[string]string) {
	for i := range rows {
		rows[i].Candidates = slices.DeleteFunc(rows[i].Candidates, func(id string) bool { _, bad := revoked[id]; return bad })
	}
}
