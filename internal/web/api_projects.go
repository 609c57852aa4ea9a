package web

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"kiln/internal/audit"
	"kiln/internal/bakery"
	"kiln/internal/hook"
	"kiln/internal/project"
	"kiln/internal/store"
)

// maxProjectFile bounds an applied project file; the script within is
// limited to 15 KiB anyway.
const maxProjectFile = 1 << 20

// defaultProjectFile names a project file in problems when the client does
// not say (header Kiln-File).
const defaultProjectFile = "project.yaml"

func (s *Server) listProjects(w http.ResponseWriter, r *http.Request) {
	ps, err := s.cfg.Store.Projects(r.Context())
	if err != nil {
		s.internal(w, r, err)
		return
	}
	out := struct {
		Projects []Project `json:"projects"`
	}{Projects: []Project{}}
	for i := range ps {
		out.Projects = append(out.Projects, projectJSON(&ps[i], hook.URL(s.cfg.PublicURL, r, ps[i].Name)))
	}
	writeJSON(w, http.StatusOK, out)
}

// projectFailed answers a call about project name that returned err: 404
// when there is no such project, 500 for anything else. It reports whether
// it answered (err != nil).
func (s *Server) projectFailed(w http.ResponseWriter, r *http.Request, name string, err error) bool {
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no project %q", name))
		return true
	}
	if err != nil {
		s.internal(w, r, err)
		return true
	}
	return false
}

func (s *Server) showProject(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	p, err := s.cfg.Store.Project(r.Context(), name)
	if s.projectFailed(w, r, name, err) {
		return
	}
	out := projectJSON(p, hook.URL(s.cfg.PublicURL, r, name))
	if out.Environments, err = s.environments(r, name); err != nil {
		s.internal(w, r, err)
		return
	}
	d, err := s.cfg.Store.Distribution(r.Context(), name)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if len(d.CopyTo)+len(d.ShareWith)+len(d.ShareWithOrgs)+len(d.ShareWithOUs) > 0 {
		out.Distribution = &d
	}
	writeJSON(w, http.StatusOK, out)
}

// applyProject creates or updates a project from a project file, validated
// by the same parser as on the command line.
func (s *Server) applyProject(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxProjectFile))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		writeError(w, http.StatusRequestEntityTooLarge, "project file over 1 MiB")
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "reading the body failed")
		return
	}
	file := r.Header.Get("Kiln-File")
	if file == "" || strings.ContainsFunc(file, func(c rune) bool { return c < ' ' }) {
		file = defaultProjectFile
	}
	env, err := clientEnv(r.Header.Values("Kiln-Env"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	p, err := project.Parse(file, body, func(k string) string { return env[k] })
	if p != nil {
		audit.NoteOf(r).Project = p.Name
	}
	var perrs project.Errors
	if errors.As(err, &perrs) {
		out := Error{Error: fmt.Sprintf("%s: %d %s", file, len(perrs), plural(len(perrs), "problem", "problems"))}
		for _, e := range perrs {
			out.Problems = append(out.Problems, e.Error())
		}
		writeJSON(w, http.StatusBadRequest, out)
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	applied, err := s.cfg.Bakery.ApplyProject(r.Context(), p)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	stored, err := s.cfg.Store.Project(r.Context(), p.Name)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	hookURL := hook.URL(s.cfg.PublicURL, r, p.Name)
	status := http.StatusOK
	if applied.Created {
		status = http.StatusCreated
	}
	s.cfg.Log.Info("project applied", "project", p.Name, "created", applied.Created,
		"secret_generated", applied.GeneratedSecret != "")
	writeJSON(w, status, ApplyResult{
		Project: projectJSON(stored, hookURL), Created: applied.Created,
		WebhookURL: hookURL, WebhookSecret: applied.GeneratedSecret,
	})
}

// clientEnv reads Kiln-Env headers, "NAME=value" each.
func clientEnv(values []string) (map[string]string, error) {
	env := map[string]string{}
	for _, v := range values {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" {
			return nil, errors.New(`Kiln-Env header: want "NAME=value"`)
		}
		env[k] = val
	}
	return env, nil
}

// deleteProject removes a project with its bakes' records, by the
// bakery's rule (refused while a bake runs).
func (s *Server) deleteProject(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	err := s.cfg.Bakery.DeleteProject(r.Context(), name)
	var running *bakery.BakeRunningError
	if errors.As(err, &running) {
		writeError(w, http.StatusConflict, err.Error())
		return
	}
	if s.projectFailed(w, r, name, err) {
		return
	}
	s.cfg.Log.Info("project deleted", "project", name)
	w.WriteHeader(http.StatusNoContent)
}

// rotateSecret replaces a project's webhook secret with a generated one
// and shows it: the only time it is shown. Deliveries signed with the old
// secret are refused from now on.
func (s *Server) rotateSecret(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	secret, err := s.cfg.Bakery.RotateSecret(r.Context(), name)
	if s.projectFailed(w, r, name, err) {
		return
	}
	s.cfg.Log.Info("webhook secret rotated", "project", name)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, SecretResult{
		Project: name, WebhookSecret: secret, WebhookURL: hook.URL(s.cfg.PublicURL, r, name),
	})
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
