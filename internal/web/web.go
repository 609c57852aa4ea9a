// Package web is kiln serve's HTTP surface: the JSON API under /api (a
// token required, each route a role), the webhook endpoint POST /hooks/{project} (signature
// only; the handler is the bakery's), /healthz and /metrics (monitor). HTML
// pages mount beside the API on the same mux.
//
// # The API
//
// Every /api request carries "Authorization: Bearer <token>": the admin
// token (role admin, the break-glass) or a personal API token (its role);
// without one, or with a revoked or expired one, the answer is 401. Each
// route needs a role (viewer: reads; deployer: bake, cancel, promote;
// admin: projects, secrets, tokens); a lesser one gets 403 naming the role
// needed. Every change, refused or not, and every webhook delivery is a
// row of the audit log (package audit). Bodies are JSON; an error is
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
//	GET    /api/projects/{name}/deliveries
//	                                      {"deliveries": [Delivery...]}: notifications and
//	                                      commit statuses, newest first, failures with why
//	GET    /api/bakes?project=&state=&limit=&before=
//	                                      {"bakes": [Bake...], "next_before": id} newest first
//	GET    /api/bakes/{id}                Bake with its steps
//	POST   /api/bakes/{id}/cancel         202 Bake; 409 when it is already over
//	GET    /api/bakes/{id}/events         server-sent events: "bake" with the Bake (and its
//	                                      steps) each time it changes, then "end" once it is over
//	GET    /api/tokens                    {"tokens": [Token...]} (admin)
//	POST   /api/tokens                    TokenRequest → 201 NewToken, the only time the token
//	                                      is shown (admin); 409 for a name in use
//	DELETE /api/tokens/{token}            revoke → 204 (admin)
//	GET    /api/audit?project=&actor=&action=&since=&before=&limit=
//	                                      AuditList, newest first (viewer)
//	GET    /api/whoami                    Whoami: the token's name, kind and role
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

	"kiln/internal/audit"
	"kiln/internal/auth"
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
	audit   *audit.Log
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
	s := &Server{cfg: cfg, metrics: NewMetrics(cfg.Registry, cfg.Store), audit: audit.New(cfg.Store, cfg.Log)}
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
		mux.Handle("/hooks/{project}", s.metrics.countDeliveries(s.audit.Wrap("bake.webhook", webhookActor(s.cfg.Hooks))))
	}
	monitor.Mount(mux, s.cfg.Registry, s.health, s.ready)

	api := http.NewServeMux()
	// Each route with the role it needs; a change is also an audit row
	// (action non-empty), refusals included.
	route := func(pattern string, role auth.Role, action string, h http.HandlerFunc) {
		var handler http.Handler = need(role, h)
		if action != "" {
			handler = s.audit.Wrap(action, handler)
		}
		api.Handle(pattern, handler)
	}
	route("GET /api/projects", auth.Viewer, "", s.listProjects)
	route("POST /api/projects", auth.Admin, "project.apply", s.applyProject)
	route("GET /api/projects/{name}", auth.Viewer, "", s.showProject)
	route("DELETE /api/projects/{name}", auth.Admin, "project.delete", s.deleteProject)
	route("POST /api/projects/{name}/secret", auth.Admin, "secret.rotate", s.rotateSecret)
	route("POST /api/projects/{name}/bakes", auth.Deployer, "bake.trigger", s.triggerBake)
	route("GET /api/projects/{name}/environments", auth.Viewer, "", s.listEnvironments)
	route("GET /api/projects/{name}/images", auth.Viewer, "", s.listImages)
	route("GET /api/projects/{name}/deliveries", auth.Viewer, "", s.listDeliveries)
	route("POST /api/projects/{name}/environments/{env}/promote", auth.Deployer, "promotion.start", s.promote)
	route("POST /api/projects/{name}/environments/{env}/approve", auth.Deployer, "promotion.approve", s.approve)
	route("POST /api/projects/{name}/images/{image}/revoke", auth.Admin, "image.revoke", s.revokeImage)
	route("GET /api/bakes", auth.Viewer, "", s.listBakes)
	route("GET /api/bakes/{id}", auth.Viewer, "", s.showBake)
	route("POST /api/bakes/{id}/cancel", auth.Deployer, "bake.cancel", s.cancelBake)
	route("GET /api/bakes/{id}/events", auth.Viewer, "", s.bakeEvents)
	route("GET /api/tokens", auth.Admin, "", s.listTokens)
	route("POST /api/tokens", auth.Admin, "token.create", s.createToken)
	route("DELETE /api/tokens/{token}", auth.Admin, "token.revoke", s.revokeToken)
	route("GET /api/audit", auth.Viewer, "", s.listAudit)
	route("GET /api/whoami", auth.Viewer, "", s.whoami)
	api.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such API endpoint: "+r.Method+" "+r.URL.Path)
	})
	mux.Handle("/api/", s.authenticate(api))
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
