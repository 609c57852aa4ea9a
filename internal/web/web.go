// Package web is kiln serve's HTTP surface: the JSON API under /api (admin
// token required), the webhook endpoint POST /hooks/{project} (signature
// only; the handler is the bakery's), /healthz and /metrics (monitor). HTML
// pages mount beside the API on the same mux.
//
// # The API
//
// Every /api request carries "Authorization: Bearer <admin token>";
// without it the answer is 401. Bodies are JSON; an error is
// {"error": "...", "problems": ["web.yaml:4: ...", ...]} with problems only
// for an invalid project file.
//
//	GET    /api/projects                  {"projects": [Project...]}
//	POST   /api/projects                  apply a project file (YAML or JSON body) → ApplyResult;
//	                                      201 created, 200 updated, 400 with problems
//	GET    /api/projects/{name}           Project (never the webhook secret)
//	DELETE /api/projects/{name}           204; 409 while a bake of it runs
//	POST   /api/projects/{name}/secret    generate a new webhook secret → SecretResult, the
//	                                      only time it is shown; the old one stops working
//	POST   /api/projects/{name}/bakes     bake now → 202 TriggerResult
//	GET    /api/bakes?project=&state=&limit=&before=
//	                                      {"bakes": [Bake...], "next_before": id} newest first
//	GET    /api/bakes/{id}                Bake with its steps
//	POST   /api/bakes/{id}/cancel         202 Bake; 409 when it is already over
//	GET    /api/bakes/{id}/events         server-sent events: "bake" with the Bake (and its
//	                                      steps) each time it changes, then "end" once it is over
//
// Applying a project file: the body is the file itself. Header Kiln-File
// names it in the problems (default project.yaml); each Kiln-Env header
// ("NAME=value") supplies a variable for ${NAME} in webhook_secret, since
// the variables live where the client runs, not in the server.
package web

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"kiln/internal/bakery"
	"kiln/internal/monitor"
	"kiln/internal/store"
)

// Bakery is the bakery service as the API uses it (bakery.API): the API
// reads records from Config.Store and changes them only through it.
type Bakery = bakery.API

// ProgressSource is optionally implemented by a Bakery (the bake service
// does): progress streams wake on its notifications instead of waiting for
// the next poll, and Metrics.Follow times steps from it.
type ProgressSource interface {
	// Subscribe returns notifications for bake id (0: every bake) and a
	// func that ends the subscription. Notifications may be dropped; the
	// store holds the truth.
	Subscribe(id int64) (<-chan bakery.Progress, func())
}

// Config is what a Server serves.
type Config struct {
	Store  *store.Store
	Bakery Bakery
	// Hooks serves POST /hooks/{project} (hook.Handler); nil leaves
	// the route out.
	Hooks http.Handler
	// Token is the hash of the admin token (AdminToken).
	Token TokenHash
	// PublicURL is how webhook senders reach the server, e.g.
	// https://kiln.example.com; empty: the scheme and Host of each request.
	PublicURL string
	// Ready, when set, must pass too for /readyz to answer ready (kiln
	// serve: AWS credentials); /healthz does not look at it.
	Ready monitor.Check
	// Registry gets the bakery's metrics and is served at /metrics; nil
	// makes a fresh one (monitor.NewRegistry).
	Registry *prometheus.Registry
	// Log records server errors; nil discards.
	Log *slog.Logger
	// PollInterval is how often a progress stream looks for changes.
	// Default 250 ms.
	PollInterval time.Duration
	// Heartbeat is how often an idle progress stream sends a comment, so
	// proxies keep it open. Default 15 s.
	Heartbeat time.Duration
}

// Server is the HTTP surface of kiln serve. It starts no goroutines: every
// request runs on the http.Server's.
type Server struct {
	cfg     Config
	metrics *Metrics
	mux     *http.ServeMux
}

// New builds the server and registers its metrics in cfg.Registry.
func New(cfg Config) *Server {
	if cfg.Registry == nil {
		cfg.Registry = monitor.NewRegistry()
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 250 * time.Millisecond
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 15 * time.Second
	}
	s := &Server{cfg: cfg, metrics: NewMetrics(cfg.Registry, cfg.Store)}
	s.mux = s.routes()
	return s
}

// Metrics returns the bakery's metrics, for the bake service to observe
// step durations in.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Handle mounts another handler beside the API (the events receiver, HTML
// pages), with http.ServeMux's pattern syntax. Call it before serving.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	if s.cfg.Hooks != nil {
		mux.Handle("/hooks/{project}", s.metrics.countDeliveries(s.cfg.Hooks))
	}
	monitor.Mount(mux, s.cfg.Registry, s.health, s.ready)

	api := http.NewServeMux()
	api.HandleFunc("GET /api/projects", s.listProjects)
	api.HandleFunc("POST /api/projects", s.applyProject)
	api.HandleFunc("GET /api/projects/{name}", s.showProject)
	api.HandleFunc("DELETE /api/projects/{name}", s.deleteProject)
	api.HandleFunc("POST /api/projects/{name}/secret", s.rotateSecret)
	api.HandleFunc("POST /api/projects/{name}/bakes", s.triggerBake)
	api.HandleFunc("GET /api/projects/{name}/environments", s.listEnvironments)
	api.HandleFunc("GET /api/projects/{name}/images", s.listImages)
	api.HandleFunc("POST /api/projects/{name}/environments/{env}/promote", s.promote)
	api.HandleFunc("GET /api/bakes", s.listBakes)
	api.HandleFunc("GET /api/bakes/{id}", s.showBake)
	api.HandleFunc("POST /api/bakes/{id}/cancel", s.cancelBake)
	api.HandleFunc("GET /api/bakes/{id}/events", s.bakeEvents)
	api.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such API endpoint: "+r.Method+" "+r.URL.Path)
	})
	mux.Handle("/api/", s.requireToken(api))
	return mux
}

// ready is health and Config.Ready.
func (s *Server) ready(ctx context.Context) (map[string]any, error) {
	if d, err := s.health(ctx); err != nil || s.cfg.Ready == nil {
		return d, err
	}
	return s.cfg.Ready(ctx)
}

// health is healthy, and ready, while the database answers.
func (s *Server) health(ctx context.Context) (map[string]any, error) {
	if err := s.cfg.Store.DB().PingContext(ctx); err != nil {
		s.cfg.Log.Error("health check", "err", err)
		return nil, errors.New("database unavailable")
	}
	return nil, nil
}
