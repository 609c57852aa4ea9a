package ui

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"kiln/internal/audit"
	"kiln/internal/auth"
	"kiln/internal/bakery"
	"kiln/internal/hook"
	"kiln/internal/pipeline"
	"kiln/internal/project"
	"kiln/internal/store"
)

// Service is the bakery service as the pages use it (bakery.API):
// *bakery.Service satisfies it.
type Service = bakery.API

// Records is what the pages read of the bakery's records; *store.Store
// satisfies it. The pages write nothing through it.
type Records interface {
	Projects(ctx context.Context) ([]store.Project, error)
	Project(ctx context.Context, name string) (*store.Project, error)
	Bakes(ctx context.Context, q store.BakeQuery) ([]store.Bake, error)
	CountBakes(ctx context.Context, q store.BakeQuery) (int, error)
	Bake(ctx context.Context, id int64) (*store.Bake, error)
	Steps(ctx context.Context, bakeID int64) ([]store.Step, error)
	Images(ctx context.Context, project string) ([]store.Image, error)
	Environments(ctx context.Context, project string) ([]store.Environment, error)
	Promotions(ctx context.Context, q store.PromotionQuery) ([]store.Promotion, error)
	BakeImages(ctx context.Context, bakeID int64) ([]store.BakeImage, error)
	Audit(ctx context.Context, q store.AuditQuery) ([]store.AuditEntry, error)
}

// TokenStore finds personal API tokens by hash, for signing in with one,
// and lists, creates and revokes them for the tokens page; *store.Store
// satisfies it.
type TokenStore interface {
	UseToken(ctx context.Context, hash string, now time.Time) (*store.APIToken, error)
	Tokens(ctx context.Context) ([]store.APIToken, error)
	CreateToken(ctx context.Context, t store.APIToken, hash string) error
	RevokeToken(ctx context.Context, name string, now time.Time) error
}

// progressSource is optionally implemented by a Service (bakery.Service is):
// a bake page's stream wakes on its notifications instead of the poll.
type progressSource interface {
	Subscribe(id int64) (<-chan bakery.Progress, func())
}

// BakeryConfig is what the bakery pages need.
type BakeryConfig struct {
	Records  Records
	Sessions SessionStore
	Service  Service
	// CheckToken says whether token is the admin token (the web package's
	// TokenHash.Match); signing in with it gives the admin role.
	CheckToken func(token string) bool
	// OIDC, when set, offers single sign-on through an OpenID Connect
	// provider on the sign-in page.
	OIDC *OIDC
	// Tokens, when set, lets a personal API token sign in, with its role,
	// and serves the tokens page (admin).
	Tokens TokenStore
	// Audit records sign-ins and every change made from the pages; nil
	// records nothing.
	Audit *audit.Log
	// SignInLimit bounds sign-in attempts per address; nil: 10 at once,
	// then one every 6 s.
	SignInLimit *Limiter
	// PublicURL is how webhook senders reach the server; empty: the scheme
	// and Host of each request.
	PublicURL string
	// Log records server errors; nil discards.
	Log *slog.Logger
	// PollInterval is how often a bake page's stream re-reads the bake
	// when no notification comes. Default 500 ms.
	PollInterval time.Duration
}

// Bakery serves the bakery's pages. Mount it at "/" beside the JSON API:
//
//	GET  /login, POST /login, POST /logout
//	GET  /login/oidc, GET /login/oidc/callback   single sign-on (OIDC set)
//	GET  /                          projects
//	GET  /audit                     the audit log (?project=&actor=&action=&since=&before=)
//	GET  /tokens, POST /tokens      personal API tokens: list, create (shown once) (Tokens set)
//	POST /tokens/{token}/revoke
//	GET  /projects/new, POST /projects/new
//	GET  /projects/{name}           settings, webhook, bakes (?before=ID: older ones), images
//	GET  /projects/{name}/edit, POST /projects/{name}/edit
//	POST /projects/{name}/bake      bake now
//	POST /projects/{name}/secret    new webhook secret, shown once on the project page
//	POST /projects/{name}/environments/{env}/promote, .../approve
//	                                promote; approve a promotion held at a gate
//	POST /projects/{name}/images/{image}/revoke   revoke an image (form field reason)
//	GET  /projects/{name}/delete, POST /projects/{name}/delete
//	                                confirm (form field confirm) and delete; 409 while a bake runs
//	GET  /bakes/{id}                step timeline (live: /bakes/{id}/events)
//	POST /bakes/{id}/cancel
//
// Every page but /login needs a session, made by signing in with the admin
// token, a personal API token, or through the OIDC provider; each page and
// action needs a role (viewer reads, deployer bakes, cancels and promotes,
// admin changes projects and secrets) and answers 403 naming it; every form
// carries a CSRF token. Sign-ins and changes are rows of the audit log
// (BakeryConfig.Audit); sign-in attempts are limited per address. Sessions are kept in Sessions
// (the store), so they outlive a restart and every server on the database
// sees them.
func Bakery(cfg BakeryConfig) http.Handler {
	_, h := newBakery(cfg)
	return h
}

func newBakery(cfg BakeryConfig) (*bakeryPages, http.Handler) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 500 * time.Millisecond
	}
	if cfg.SignInLimit == nil {
		cfg.SignInLimit = NewLimiter(signInBurst, signInEvery)
	}
	b := &bakeryPages{cfg: cfg, t: parse("bakery.html"), ss: sessions{st: cfg.Sessions}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", b.loginPage)
	mux.Handle("POST /login", cfg.Audit.Wrap("signin", http.HandlerFunc(b.login)))
	if cfg.OIDC != nil {
		mux.HandleFunc("GET "+oidcStart, b.oidcStartHandler)
		mux.Handle("GET "+oidcCallback, cfg.Audit.Wrap("signin", http.HandlerFunc(b.oidcCallbackHandler)))
	}
	mux.HandleFunc("POST /logout", b.auth(auth.Viewer, b.logout))
	mux.HandleFunc("GET /{$}", b.auth(auth.Viewer, b.projects))
	mux.HandleFunc("GET /audit", b.auth(auth.Viewer, b.auditPage))
	if cfg.Tokens != nil {
		mux.HandleFunc("GET /tokens", b.auth(auth.Admin, b.tokensPage))
		mux.Handle("POST /tokens", cfg.Audit.Wrap("token.create", b.auth(auth.Admin, b.createToken)))
		mux.Handle("POST /tokens/{token}/revoke", cfg.Audit.Wrap("token.revoke", b.auth(auth.Admin, b.revokeToken)))
	}
	mux.HandleFunc("GET /projects/new", b.auth(auth.Admin, b.newProject))
	mux.Handle("POST /projects/new", cfg.Audit.Wrap("project.apply", b.auth(auth.Admin, b.saveProject)))
	mux.HandleFunc("GET /projects/{name}", b.auth(auth.Viewer, b.project))
	mux.HandleFunc("GET /projects/{name}/edit", b.auth(auth.Admin, b.editProject))
	mux.Handle("POST /projects/{name}/edit", cfg.Audit.Wrap("project.apply", b.auth(auth.Admin, b.saveProject)))
	mux.Handle("POST /projects/{name}/bake", cfg.Audit.Wrap("bake.trigger", b.auth(auth.Deployer, b.bakeNow)))
	mux.Handle("POST /projects/{name}/environments/{env}/promote", cfg.Audit.Wrap("promotion.start", b.auth(auth.Deployer, b.promote)))
	mux.Handle("POST /projects/{name}/environments/{env}/approve", cfg.Audit.Wrap("promotion.approve", b.auth(auth.Deployer, b.approve)))
	mux.Handle("POST /projects/{name}/images/{image}/revoke", cfg.Audit.Wrap("image.revoke", b.auth(auth.Admin, b.revoke)))
	mux.Handle("POST /projects/{name}/secret", cfg.Audit.Wrap("secret.rotate", b.auth(auth.Admin, b.rotateSecret)))
	mux.HandleFunc("GET /projects/{name}/delete", b.auth(auth.Admin, b.confirmDelete))
	mux.Handle("POST /projects/{name}/delete", cfg.Audit.Wrap("project.delete", b.auth(auth.Admin, b.deleteProject)))
	mux.HandleFunc("GET /bakes/{id}", b.auth(auth.Viewer, b.bakePage))
	mux.HandleFunc("GET /bakes/{id}/events", b.auth(auth.Viewer, b.bakeEvents))
	mux.Handle("POST /bakes/{id}/cancel", cfg.Audit.Wrap("bake.cancel", b.auth(auth.Deployer, b.cancel)))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	return b, mux
}

type bakeryPages struct {
	cfg BakeryConfig
	t   *template.Template
	ss  sessions
}

// page is what every bakery template reads.
type page struct {
	Title string
	Nav   bool
	CSRF  string
	// Who is signed in and with what role; the pages offer only what the
	// role may do.
	Who   string
	Role  auth.Role
	Flash string // a message left by the request that redirected here
	Data  any
}

// auth lets a request through with a live session whose role allows
// need, and a POST only with the session's CSRF token. Others go to the
// sign-in page (pages) or get 401 / 403 (streams and forms); a role too
// low gets 403 naming the role needed.
func (b *bakeryPages) auth(need auth.Role, h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := b.ss.get(r)
		if err != nil {
			b.fail(w, r, err)
			return
		}
		if s == nil {
			if r.Method == http.MethodGet && !strings.HasSuffix(r.URL.Path, "/events") {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			http.Error(w, "sign in first", http.StatusUnauthorized)
			return
		}
		p := s.principal()
		r = r.WithContext(auth.WithPrincipal(r.Context(), p))
		if n := audit.NoteOf(r); n.Actor == "" {
			n.Actor = p.String()
		}
		if r.Method == http.MethodPost {
			if err := r.ParseForm(); err != nil || !equal(r.PostForm.Get("csrf"), s.csrf) {
				http.Error(w, "the form is stale or forged (CSRF token mismatch); reload the page", http.StatusForbidden)
				return
			}
		}
		if !p.Role.Allows(need) {
			http.Error(w, auth.ForbiddenMessage(p, need), http.StatusForbidden)
			return
		}
		h(w, r, s)
	}
}

func (b *bakeryPages) show(w http.ResponseWriter, r *http.Request, s *session, status int, name, title string, data any) {
	p := page{Title: title, Nav: s != nil, Data: data}
	if s != nil {
		p.CSRF, p.Who, p.Role = s.csrf, s.subject, s.role
		var err error
		if p.Flash, err = b.ss.takeFlash(r.Context(), s); err != nil {
			b.cfg.Log.Error("page", "path", r.URL.Path, "err", err) // the page is still worth showing
		}
	}
	if err := render(w, b.t, name, status, p); err != nil {
		b.cfg.Log.Error("page", "path", r.URL.Path, "err", err)
	}
}

func (b *bakeryPages) fail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, store.ErrNotFound) {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	b.cfg.Log.Error("page", "path", r.URL.Path, "err", err)
	http.Error(w, "internal error; see the server log", http.StatusInternalServerError)
}

// Sign-in.

type loginData struct {
	Next, Error, Token string
	// SSO is the identity provider's name when single sign-on is on.
	SSO string
}

func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		return "/"
	}
	return next
}

func (b *bakeryPages) loginPage(w http.ResponseWriter, r *http.Request) {
	b.loginForm(w, r, http.StatusOK, "")
}

func (b *bakeryPages) loginForm(w http.ResponseWriter, r *http.Request, status int, msg string) {
	tok := randomToken()
	setCookie(w, r, loginCookie, tok, 3600)
	d := loginData{Next: safeNext(r.FormValue("next")), Error: msg, Token: tok}
	if b.cfg.OIDC != nil {
		d.SSO = b.cfg.OIDC.ButtonName()
	}
	b.show(w, r, nil, status, "login", "sign in", d)
}

func (b *bakeryPages) login(w http.ResponseWriter, r *http.Request) {
	if !b.cfg.SignInLimit.Allow(audit.RemoteAddr(r)) {
		w.Header().Set("Retry-After", strconv.Itoa(int(signInEvery/time.Second)))
		b.loginForm(w, r, http.StatusTooManyRequests, "Too many sign-in attempts from your address; wait a minute and try again.")
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	c, err := r.Cookie(loginCookie)
	if err != nil || !equal(r.PostForm.Get("csrf"), c.Value) {
		b.loginForm(w, r, http.StatusForbidden, "The sign-in form expired; try again.")
		return
	}
	p, msg := b.tokenPrincipal(r.Context(), r.PostForm.Get("token"))
	if msg != "" {
		audit.NoteOf(r).Detail = msg
		b.cfg.Log.Warn("sign-in refused", "remote", r.RemoteAddr)
		b.loginForm(w, r, http.StatusUnauthorized, msg)
		return
	}
	b.signIn(w, r, p, safeNext(r.PostForm.Get("next")))
}

// tokenPrincipal is who token signs in as: the admin token, or a live
// personal API token. msg says why not.
func (b *bakeryPages) tokenPrincipal(ctx context.Context, token string) (auth.Principal, string) {
	if b.cfg.CheckToken != nil && b.cfg.CheckToken(token) {
		return auth.Principal{Name: "admin", Kind: auth.KindAdminToken, Role: auth.Admin}, ""
	}
	if b.cfg.Tokens == nil || !strings.HasPrefix(token, auth.TokenPrefix) {
		return auth.Principal{}, "Wrong token."
	}
	now := time.Now()
	t, err := b.cfg.Tokens.UseToken(ctx, auth.HashToken(token), now)
	switch {
	case err != nil:
		return auth.Principal{}, "Wrong token."
	case !t.Live(now):
		return auth.Principal{}, fmt.Sprintf("Token %s is revoked or expired.", t.Name)
	}
	return auth.Principal{Name: t.Name, Kind: auth.KindToken, Role: auth.Role(t.Role)}, ""
}

// signIn starts a session for p and sends the browser to next; the
// sign-in's audit row names p.
func (b *bakeryPages) signIn(w http.ResponseWriter, r *http.Request, p auth.Principal, next string) {
	audit.NoteOf(r).Actor = p.String()
	audit.NoteOf(r).Detail = "role " + string(p.Role)
	s, err := b.ss.create(r.Context(), p)
	if err != nil {
		b.fail(w, r, err)
		return
	}
	setCookie(w, r, loginCookie, "", -1)
	setCookie(w, r, sessionCookie, s.id, int(sessionTTL/time.Second))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (b *bakeryPages) logout(w http.ResponseWriter, r *http.Request, s *session) {
	if err := b.ss.delete(r.Context(), s); err != nil {
		b.fail(w, r, err)
		return
	}
	setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// Projects.

type projectRow struct {
	store.Project
	Last   *store.Bake
	Image  *store.Image
	Active bool
}

func (b *bakeryPages) projects(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	ps, err := b.cfg.Records.Projects(ctx)
	if err != nil {
		b.fail(w, r, err)
		return
	}
	rows := make([]projectRow, len(ps))
	for i, p := range ps {
		rows[i].Project = p
		last, err := b.cfg.Records.Bakes(ctx, store.BakeQuery{Project: p.Name, Limit: 1})
		if err != nil {
			b.fail(w, r, err)
			return
		}
		if len(last) > 0 {
			rows[i].Last = &last[0]
		}
		ims, err := b.cfg.Records.Images(ctx, p.Name)
		if err != nil {
			b.fail(w, r, err)
			return
		}
		if len(ims) > 0 {
			rows[i].Image = &ims[0]
		}
	}
	b.show(w, r, s, http.StatusOK, "projects", "projects", rows)
}

type projectData struct {
	Project *store.Project
	Bakes   []store.Bake
	// Before is the before= of this page of bakes (0: the newest), Older
	// that of the next, older page (0: there is none).
	Before, Older int64
	Images        []store.Image
	Revoked       map[string]string // image → the revocation's reason (delivery.go)
	WebhookURL    string
	Secret        newSecret // only right after creation or rotation
	// Environments are the pipeline, in order, with their state and
	// recent promotions (secrets masked).
	Environments []envRow
	// Undelivered are the notification and commit status deliveries
	// that failed or wait for a retry, newest first.
	Undelivered []store.Delivery
}

// envRow is an environment on the project page: its status, and what its
// Promote button would promote (Candidates: the images it may take, the
// default first).
type envRow struct {
	bakery.EnvStatus
	Candidates []string
}

// envHistory is how many promotions an environment lists.
const envHistory = 10

// projectBakes is how many bakes a project page lists.
const projectBakes = 50

func (b *bakeryPages) project(w http.ResponseWriter, r *http.Request, s *session) {
	ctx, name := r.Context(), r.PathValue("name")
	p, err := b.cfg.Records.Project(ctx, name)
	if err != nil {
		b.fail(w, r, err)
		return
	}
	d := projectData{Project: p, WebhookURL: hook.URL(b.cfg.PublicURL, r, name)}
	if v := r.URL.Query().Get("before"); v != "" {
		d.Before, err = strconv.ParseInt(v, 10, 64)
		if err != nil || d.Before <= 0 {
			http.Error(w, fmt.Sprintf("before=%q: want a bake id", v), http.StatusBadRequest)
			return
		}
	}
	// One more than a page tells whether there is an older one.
	q := store.BakeQuery{Project: name, BeforeID: d.Before, Limit: projectBakes + 1}
	if d.Bakes, err = b.cfg.Records.Bakes(ctx, q); err != nil {
		b.fail(w, r, err)
		return
	}
	if len(d.Bakes) > projectBakes {
		d.Bakes = d.Bakes[:projectBakes]
		d.Older = d.Bakes[projectBakes-1].ID
	}
	if d.Images, err = b.cfg.Records.Images(ctx, name); err != nil {
		b.fail(w, r, err)
		return
	}
	if d.Revoked, err = b.revoked(ctx, name); err != nil { // delivery.go
		b.fail(w, r, err)
		return
	}
	if d.Environments, err = b.environments(ctx, name, d.Images); err != nil {
		b.fail(w, r, err)
		return
	}
	dropRevoked(d.Environments, d.Revoked)
	if dl, ok := b.cfg.Records.(interface {
		Deliveries(context.Context, string, int) ([]store.Delivery, error)
	}); ok {
		ds, err := dl.Deliveries(ctx, name, 100)
		if err != nil {
			b.fail(w, r, err)
			return
		}
		for _, del := range ds {
			if del.State != store.DeliveryDelivered {
				d.Undelivered = append(d.Undelivered, del)
			}
		}
	}
	// Last: a failed page must not lose it.
	if d.Secret, err = b.ss.takeSecret(ctx, s, name); err != nil {
		b.fail(w, r, err)
		return
	}
	b.show(w, r, s, http.StatusOK, "project", "project "+name, d)
}

// environments reads project's environments for its page. An
// environment's candidates are the kept images that the one before it ran
// successfully (the newest image for the first), the default first.
func (b *bakeryPages) environments(ctx context.Context, project string, images []store.Image) ([]envRow, error) {
	envs, err := b.cfg.Records.Environments(ctx, project)
	if err != nil || len(envs) == 0 {
		return nil, err
	}
	promos, err := b.cfg.Records.Promotions(ctx, store.PromotionQuery{Project: project, Limit: 100 * len(envs)})
	if err != nil {
		return nil, err
	}
	var rows []envRow
	sts := bakery.EnvStatuses(project, envs, promos)
	if l, ok := b.cfg.Service.(interface {
		LiveStatuses(context.Context, string, []bakery.EnvStatus) []bakery.EnvStatus
	}); ok {
		sts = l.LiveStatuses(ctx, project, sts) // the groups as they are now (drift)
	}
	for i, st := range sts {
		row := envRow{EnvStatus: st}
		row.Promotions = row.Promotions[:min(len(row.Promotions), envHistory)]
		if i == 0 {
			for _, im := range images {
				row.Candidates = append(row.Candidates, im.ImageID)
			}
		} else {
			prev := rows[i-1]
			if prev.Image != "" {
				row.Candidates = append(row.Candidates, prev.Image)
			}
			for _, p := range promos {
				if p.Env == prev.Name && p.State == store.PromotionSucceeded && !slices.Contains(row.Candidates, p.ImageID) &&
					slices.ContainsFunc(images, func(im store.Image) bool { return im.ImageID == p.ImageID }) {
					row.Candidates = append(row.Candidates, p.ImageID)
				}
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// promote promotes the form's image to the environment, as POST
// /api/projects/{name}/environments/{env}/promote does; a refusal comes
// back to the project page as its message.
func (b *bakeryPages) promote(w http.ResponseWriter, r *http.Request, s *session) {
	name, env := r.PathValue("name"), r.PathValue("env")
	p, err := b.cfg.Service.Promote(r.Context(), name, env, r.FormValue("image"))
	var pe *bakery.PromotionError
	var msg string
	switch {
	case errors.As(err, &pe):
		msg = "Not promoted: " + pe.Msg
	case errors.Is(err, store.ErrPromotionRunning):
		msg = fmt.Sprintf("Not promoted: a rollout to %s is running; wait for it to end.", env)
	case err != nil:
		b.fail(w, r, err)
		return
	default:
		msg = fmt.Sprintf("Promotion %d: %s is rolling out to %s.", p.ID, p.ImageID, env)
		b.cfg.Log.Info("promotion from the pages", "project", name, "env", env, "image", p.ImageID)
	}
	if err := b.ss.putFlash(r.Context(), s, msg); err != nil {
		b.cfg.Log.Error("page", "path", r.URL.Path, "err", err)
	}
	http.Redirect(w, r, "/projects/"+url.PathEscape(name)+"#environments", http.StatusSeeOther)
}

func (b *bakeryPages) newProject(w http.ResponseWriter, r *http.Request, s *session) {
	f := projectForm{Region: "us-east-1", Type: "t3.small", Keep: strconv.Itoa(project.DefaultKeep),
		BaseOwner: "amazon", BaseMostRecent: true,
		ScriptTimeout: pipeline.DefaultScriptTimeout.String(), ImageTimeout: pipeline.DefaultImageTimeout.String()}
	b.show(w, r, s, http.StatusOK, "form", "new project", formData{Form: f, New: true})
}

func (b *bakeryPages) editProject(w http.ResponseWriter, r *http.Request, s *session) {
	p, err := b.cfg.Records.Project(r.Context(), r.PathValue("name"))
	if err != nil {
		b.fail(w, r, err)
		return
	}
	b.show(w, r, s, http.StatusOK, "form", "edit "+p.Name, formData{Form: formFromRecord(p)})
}

func (b *bakeryPages) saveProject(w http.ResponseWriter, r *http.Request, s *session) {
	f := formFromRequest(r)
	editing := r.PathValue("name")
	if editing != "" {
		if _, err := b.cfg.Records.Project(r.Context(), editing); err != nil {
			b.fail(w, r, err)
			return
		}
		f.Name = editing // the name is the project's identity; it is not edited
	}
	var keepEnvs []store.Environment
	if editing != "" {
		// The form has no environments: the stored ones stay (their
		// secrets by version, not re-entered).
		var err error
		if keepEnvs, err = b.cfg.Records.Environments(r.Context(), editing); err != nil {
			b.fail(w, r, err)
			return
		}
	}
	d := formData{Form: f, New: editing == ""}
	p, err := f.parse()
	audit.NoteOf(r).Project = f.Name
	var perrs project.Errors
	if errors.As(err, &perrs) {
		d.Errors = perrs
		d.FieldErrors = map[string][]string{}
		for _, e := range perrs {
			field, _, _ := strings.Cut(e.Field, "[")
			d.FieldErrors[field] = append(d.FieldErrors[field], e.Msg)
		}
		b.show(w, r, s, http.StatusUnprocessableEntity, "form", "project", d)
		return
	}
	if err != nil {
		d.Errors = project.Errors{{Msg: err.Error()}}
		b.show(w, r, s, http.StatusUnprocessableEntity, "form", "project", d)
		return
	}
	if d.New {
		if _, err := b.cfg.Records.Project(r.Context(), p.Name); err == nil {
			d.Errors = project.Errors{{Field: "name", Msg: fmt.Sprintf("%q exists already; edit it from its page", p.Name)}}
			d.FieldErrors = map[string][]string{"name": {d.Errors[0].Msg}}
			b.show(w, r, s, http.StatusConflict, "form", "project", d)
			return
		}
	}
	p.Environments = keepEnvs
	applied, err := b.cfg.Service.ApplyProject(r.Context(), p)
	if err != nil {
		b.fail(w, r, err)
		return
	}
	if applied.GeneratedSecret != "" {
		if err := b.ss.putSecret(r.Context(), s, p.Name, false); err != nil {
			b.fail(w, r, err) // saved, but its secret cannot be shown: say so
			return
		}
	}
	b.cfg.Log.Info("project saved from the pages", "project", p.Name, "created", applied.Created)
	http.Redirect(w, r, "/projects/"+url.PathEscape(p.Name), http.StatusSeeOther)
}

// rotateSecret gives the project a new generated webhook secret, which its
// page then shows once, as after creation. The old secret stops working at
// once, as with POST /api/projects/{name}/secret.
func (b *bakeryPages) rotateSecret(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("name")
	if _, err := b.cfg.Service.RotateSecret(r.Context(), name); err != nil {
		b.fail(w, r, err)
		return
	}
	if err := b.ss.putSecret(r.Context(), s, name, true); err != nil {
		b.fail(w, r, err) // rotated, but the new secret cannot be shown: say so
		return
	}
	b.cfg.Log.Info("webhook secret rotated from the pages", "project", name)
	http.Redirect(w, r, "/projects/"+url.PathEscape(name)+"#secret", http.StatusSeeOther)
}

// deleteData is what the delete confirmation reads.
type deleteData struct {
	Name          string
	Bakes, Images int
	Running       int64  // the bake that refused the deletion
	Error         string // why the form is shown again
}

func (b *bakeryPages) confirmDelete(w http.ResponseWriter, r *http.Request, s *session) {
	b.showDelete(w, r, s, http.StatusOK, deleteData{Name: r.PathValue("name")})
}

// showDelete shows the confirmation of deleting d.Name with what goes
// with it.
func (b *bakeryPages) showDelete(w http.ResponseWriter, r *http.Request, s *session, status int, d deleteData) {
	ctx := r.Context()
	if _, err := b.cfg.Records.Project(ctx, d.Name); err != nil {
		b.fail(w, r, err)
		return
	}
	var err error
	if d.Bakes, err = b.cfg.Records.CountBakes(ctx, store.BakeQuery{Project: d.Name}); err != nil {
		b.fail(w, r, err)
		return
	}
	ims, err := b.cfg.Records.Images(ctx, d.Name)
	if err != nil {
		b.fail(w, r, err)
		return
	}
	d.Images = len(ims)
	b.show(w, r, s, status, "delete", "delete "+d.Name, d)
}

// deleteProject deletes a project once the form's confirm box is ticked,
// refusing while a bake of it runs as DELETE /api/projects/{name} does.
func (b *bakeryPages) deleteProject(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("name")
	if r.PostForm.Get("confirm") == "" {
		b.showDelete(w, r, s, http.StatusUnprocessableEntity, deleteData{Name: name,
			Error: "Tick the box to confirm: a deleted project cannot be brought back."})
		return
	}
	err := b.cfg.Service.DeleteProject(r.Context(), name)
	var running *bakery.BakeRunningError
	if errors.As(err, &running) {
		b.showDelete(w, r, s, http.StatusConflict, deleteData{Name: name, Running: running.BakeID,
			Error: "A bake of this project is running: cancel it and let it stop first, or its builder would be left behind."})
		return
	}
	if err != nil {
		b.fail(w, r, err)
		return
	}
	b.cfg.Log.Info("project deleted from the pages", "project", name)
	msg := fmt.Sprintf("Project %s deleted, with the records of its bakes and images. Its images are still in EC2.", name)
	if err := b.ss.putFlash(r.Context(), s, msg); err != nil {
		b.cfg.Log.Error("page", "path", r.URL.Path, "err", err) // deleted all the same
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (b *bakeryPages) bakeNow(w http.ResponseWriter, r *http.Request, s *session) {
	res, err := b.cfg.Service.Trigger(r.Context(), r.PathValue("name"), "", "")
	if err != nil {
		b.fail(w, r, err)
		return
	}
	audit.NoteOf(r).Target = fmt.Sprintf("bake %d", res.BakeID)
	http.Redirect(w, r, "/bakes/"+strconv.FormatInt(res.BakeID, 10), http.StatusSeeOther)
}

// Bakes.

type bakeData struct {
	Bake   *store.Bake
	Steps  []stepRow
	Total  time.Duration
	Images []store.Image
	// Regions is the bake's image in every region (its own and the copies).
	Regions []store.BakeImage
	CSRF    string
	Now     time.Time
}

type stepRow struct {
	store.Step
	Duration time.Duration
	Width    int // of the timeline bar, in px
}

func (b *bakeryPages) loadBake(ctx context.Context, id int64, csrf string) (*bakeData, error) {
	bk, err := b.cfg.Records.Bake(ctx, id)
	if err != nil {
		return nil, err
	}
	steps, err := b.cfg.Records.Steps(ctx, id)
	if err != nil {
		return nil, err
	}
	regions, err := b.cfg.Records.BakeImages(ctx, id)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	d := &bakeData{Bake: bk, CSRF: csrf, Now: now, Regions: regions}
	var longest time.Duration
	for _, st := range steps {
		end := st.Finished
		if end.IsZero() {
			end = now
			if bk.State.Final() {
				end = bk.Finished
			}
		}
		row := stepRow{Step: st, Duration: max(0, end.Sub(st.Started))}
		longest = max(longest, row.Duration)
		d.Steps = append(d.Steps, row)
	}
	for i := range d.Steps {
		if longest > 0 {
			d.Steps[i].Width = 2 + int(300*d.Steps[i].Duration/longest)
		}
	}
	if !bk.Started.IsZero() {
		end := bk.Finished
		if end.IsZero() {
			end = now
		}
		d.Total = end.Sub(bk.Started)
	}
	return d, nil
}

func bakeIDOf(r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	return id, err == nil && id > 0
}

func (b *bakeryPages) bakePage(w http.ResponseWriter, r *http.Request, s *session) {
	id, ok := bakeIDOf(r)
	if !ok {
		http.NotFound(w, r)
		return
	}
	d, err := b.loadBake(r.Context(), id, s.csrf)
	if err != nil {
		b.fail(w, r, err)
		return
	}
	b.show(w, r, s, http.StatusOK, "bake", fmt.Sprintf("bake %d", id), d)
}

func (b *bakeryPages) bakeEvents(w http.ResponseWriter, r *http.Request, s *session) {
	id, ok := bakeIDOf(r)
	if !ok {
		http.NotFound(w, r)
		return
	}
	if _, err := b.cfg.Records.Bake(r.Context(), id); err != nil {
		b.fail(w, r, err)
		return
	}
	var wake <-chan bakery.Progress
	if ps, ok := b.cfg.Service.(progressSource); ok {
		ch, cancel := ps.Subscribe(id)
		defer cancel()
		wake = ch
	}
	stream := startSSE(w)
	poll := time.NewTicker(b.cfg.PollInterval)
	defer poll.Stop()
	quiet := time.Now()
	last := ""
	for {
		d, err := b.loadBake(r.Context(), id, s.csrf)
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := b.t.ExecuteTemplate(&buf, "bake-live", d); err != nil {
			b.cfg.Log.Error("page", "path", r.URL.Path, "err", err)
			return
		}
		if d.Bake.State.Final() {
			_ = stream.send("done", buf.String())
			return
		}
		if html := buf.String(); html != last {
			if stream.send("", html) != nil {
				return
			}
			last, quiet = html, time.Now()
		} else if time.Since(quiet) > heartbeat {
			if stream.comment() != nil {
				return
			}
			quiet = time.Now()
		}
		select {
		case <-r.Context().Done():
			return
		case <-wake:
		case <-poll.C:
		}
	}
}

func (b *bakeryPages) cancel(w http.ResponseWriter, r *http.Request, s *session) {
	id, ok := bakeIDOf(r)
	if !ok {
		http.NotFound(w, r)
		return
	}
	_, err := b.cfg.Service.Cancel(r.Context(), id, "cancelled from the bakery pages")
	if err != nil && !errors.Is(err, store.ErrBakeFinished) {
		b.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/bakes/"+strconv.FormatInt(id, 10), http.StatusSeeOther)
}
