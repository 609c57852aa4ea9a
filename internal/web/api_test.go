package web

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kiln/internal/bakery"
	"kiln/internal/hook"
	"kiln/internal/project"
	"kiln/internal/store"
)

const testToken = "test-admin-token"

// storeBakery is a Bakery on the store alone: bakes are queued without a
// River job and cancelled through the store, as the bake service does.
type storeBakery struct {
	bakery.Projects
	st *store.Store
}

func newStoreBakery(st *store.Store) storeBakery {
	return storeBakery{Projects: bakery.NewProjects(st), st: st}
}

func (b storeBakery) Trigger(ctx context.Context, project, commit, ref string) (store.PushResult, error) {
	return b.st.CreateBake(ctx, project, commit, ref, nil)
}

func (b storeBakery) Cancel(ctx context.Context, id int64, reason string) (*store.Bake, error) {
	return b.st.RequestCancel(ctx, id, reason)
}

// Promote records a promotion without a rollout (none of image
// checks of the service): an unknown environment is a PromotionError.
func (b storeBakery) Promote(ctx context.Context, project, env, image string) (*bakery.Promotion, error) {
	if _, err := b.st.Project(ctx, project); err != nil {
		return nil, err
	}
	envs, err := b.st.Environments(ctx, project)
	if err != nil {
		return nil, err
	}
	for _, e := range envs {
		if e.Name == env {
			return b.st.AddPromotion(ctx, store.Promotion{Project: project, Env: env, ImageID: image, Cause: "manual"})
		}
	}
	return nil, &bakery.PromotionError{Msg: "no environment " + env}
}

type fixture struct {
	st  *store.Store
	srv *httptest.Server
	c   *Client
}

func newFixture(t *testing.T, hooks http.Handler) *fixture {
	t.Helper()
	return newFixtureAt(t, hooks, filepath.Join(t.TempDir(), "kiln.db"))
}

// newFixtureAt is newFixture on the database target (a SQLite file or a
// PostgreSQL DSN).
func newFixtureAt(t *testing.T, hooks http.Handler, target string) *fixture {
	t.Helper()
	st, err := store.Open(t.Context(), target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := New(Config{
		Store: st, Bakery: newStoreBakery(st), Hooks: hooks, Token: HashToken(testToken),
		PollInterval: 5 * time.Millisecond,
	})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c := NewClient(srv.URL, testToken)
	c.Reconnect = time.Millisecond
	return &fixture{st: st, srv: srv, c: c}
}

// call sends a raw request and returns the status and body.
func (f *fixture) call(t *testing.T, method, path, token string, body string, h map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

const webYAML = `name: web
region: us-east-1
base: {owner: amazon, name: "al2023-ami-*", most_recent: true}
type: t3.small
script: |
  #!/bin/sh
  echo hello
keep: 3
branch: main
`

func TestAPIRequiresToken(t *testing.T) {
	f := newFixture(t, nil)
	for _, tc := range []struct{ method, path string }{
		{"GET", "/api/projects"},
		{"POST", "/api/projects"},
		{"GET", "/api/projects/web"},
		{"DELETE", "/api/projects/web"},
		{"POST", "/api/projects/web/secret"},
		{"POST", "/api/projects/web/bakes"},
		{"GET", "/api/bakes"},
		{"GET", "/api/bakes/1"},
		{"POST", "/api/bakes/1/cancel"},
		{"GET", "/api/bakes/1/events"},
		{"GET", "/api/nothing"},
	} {
		for _, token := range []string{"", "wrong", testToken + "x"} {
			status, body := f.call(t, tc.method, tc.path, token, "", nil)
			if status != http.StatusUnauthorized {
				t.Errorf("%s %s with token %q = %d %s; want 401", tc.method, tc.path, token, status, body)
			}
		}
	}
	// A scheme other than Bearer is refused too.
	status, _ := f.call(t, "GET", "/api/projects", "", "", map[string]string{"Authorization": "Basic " + testToken})
	if status != http.StatusUnauthorized {
		t.Errorf("Basic auth = %d; want 401", status)
	}
	// The right token passes; /healthz and /metrics need none.
	if status, body := f.call(t, "GET", "/api/projects", testToken, "", nil); status != http.StatusOK {
		t.Errorf("GET /api/projects with the token = %d %s", status, body)
	}
	for _, path := range []string{"/healthz", "/metrics"} {
		if status, body := f.call(t, "GET", path, "", "", nil); status != http.StatusOK {
			t.Errorf("GET %s = %d %s; want 200", path, status, body)
		}
	}
	// The client names the token.
	_, err := NewClient(f.srv.URL, "wrong").Projects(t.Context())
	if err == nil || err.Error() != "bad or missing token (KILN_TOKEN)" {
		t.Errorf("Projects() with a bad token = %v", err)
	}
}

func TestProjectCRUD(t *testing.T) {
	f := newFixture(t, nil)
	ctx := t.Context()

	res, err := f.c.Apply(ctx, "web.yaml", []byte(webYAML), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || len(res.WebhookSecret) < 32 || res.WebhookURL != f.srv.URL+"/hooks/web" {
		t.Errorf("first Apply() = %+v; want created, a generated secret and the hook URL", res)
	}
	secret, err := f.st.ProjectSecret(ctx, "web")
	if err != nil || secret != res.WebhookSecret {
		t.Errorf("stored secret = %q, %v; want the one shown", secret, err)
	}

	// Updating keeps the secret and never shows it again.
	res, err = f.c.Apply(ctx, "web.yaml", []byte(strings.Replace(webYAML, "keep: 3", "keep: 4", 1)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Created || res.WebhookSecret != "" || res.Project.Keep != 4 {
		t.Errorf("second Apply() = %+v; want updated, keep 4, no secret", res)
	}
	if again, _ := f.st.ProjectSecret(ctx, "web"); again != secret {
		t.Errorf("update changed the secret")
	}

	// JSON is a project file too.
	if _, err := f.c.Apply(ctx, "api.json", []byte(`{"name": "api", "region": "eu-west-1", "base": {"id": "ami-0123abcd"}, "type": "t3.micro", "script": "#!/bin/sh\ntrue\n"}`), nil); err != nil {
		t.Fatalf("Apply(JSON) = %v", err)
	}

	ps, err := f.c.Projects(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].Name != "api" || ps[1].Name != "web" || ps[0].Base.ID != "ami-0123abcd" {
		t.Errorf("Projects() = %+v; want api, web", ps)
	}
	p, err := f.c.Project(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if p.Region != "us-east-1" || p.Base.Owner != "amazon" || p.Branch != "main" || p.Timeouts.Script != "30m0s" {
		t.Errorf("Project(web) = %+v", p)
	}
	// No answer ever carries the secret.
	for _, path := range []string{"/api/projects", "/api/projects/web"} {
		_, body := f.call(t, "GET", path, testToken, "", nil)
		if strings.Contains(body, secret) || strings.Contains(body, "secret") {
			t.Errorf("GET %s shows the secret: %s", path, body)
		}
	}

	if err := f.c.DeleteProject(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	var apiErr *APIError
	if _, err := f.c.Project(ctx, "web"); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Errorf("Project(deleted) = %v; want 404", err)
	}
	if err := f.c.DeleteProject(ctx, "web"); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Errorf("DeleteProject(deleted) = %v; want 404", err)
	}
}

func TestApplyValidation(t *testing.T) {
	f := newFixture(t, nil)
	for _, tc := range []struct {
		name, file, data string
	}{
		{"unknown field", "web.yaml", webYAML + "colour: blue\n"},
		{"several problems", "bad.yaml", "name: 'no spaces allowed'\nregion: mars\ntype: t3.small\nscript: x\n"},
		{"syntax", "web.yaml", "name: [\n"},
		{"empty", "web.yaml", ""},
		{"bad json", "web.json", `{"name": "web", "region": 3}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, want := project.Parse(tc.file, []byte(tc.data), nil)
			var perrs project.Errors
			if !errors.As(want, &perrs) {
				t.Fatalf("ParseProject() = %v; the case must be invalid", want)
			}
			_, err := f.c.Apply(t.Context(), tc.file, []byte(tc.data), nil)
			var apiErr *APIError
			if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest {
				t.Fatalf("Apply() = %v; want a 400", err)
			}
			if len(apiErr.Problems) != len(perrs) {
				t.Fatalf("problems = %q; want %d", apiErr.Problems, len(perrs))
			}
			for i, p := range apiErr.Problems {
				if p != perrs[i].Error() {
					t.Errorf("problem %d = %q; want %q", i, p, perrs[i].Error())
				}
				if !strings.HasPrefix(p, tc.file+":") {
					t.Errorf("problem %q does not name %s", p, tc.file)
				}
			}
		})
	}
	if ps, _ := f.st.Projects(t.Context()); len(ps) != 0 {
		t.Errorf("invalid files stored %d projects", len(ps))
	}
}

func TestApplySecretFromClientEnv(t *testing.T) {
	f := newFixture(t, nil)
	data := []byte(webYAML + "webhook_secret: ${WEB_SECRET}\n")
	_, err := f.c.Apply(t.Context(), "web.yaml", data, nil)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || len(apiErr.Problems) != 1 ||
		apiErr.Problems[0] != "web.yaml:10: webhook_secret: environment variable WEB_SECRET is not set" {
		t.Fatalf("Apply() without the variable = %v (%+v)", err, apiErr)
	}
	const secret = "0123456789abcdef0123"
	res, err := f.c.Apply(t.Context(), "web.yaml", data, map[string]string{"WEB_SECRET": secret})
	if err != nil {
		t.Fatal(err)
	}
	if res.WebhookSecret != "" {
		t.Errorf("Apply() showed a secret the file gave")
	}
	if got, _ := f.st.ProjectSecret(t.Context(), "web"); got != secret {
		t.Errorf("stored secret = %q; want the variable's", got)
	}
	status, body := f.call(t, "POST", "/api/projects", testToken, webYAML, map[string]string{"Kiln-Env": "novalue"})
	if status != http.StatusBadRequest {
		t.Errorf("bad Kiln-Env = %d %s; want 400", status, body)
	}
}

func TestTriggerAndCancel(t *testing.T) {
	f := newFixture(t, nil)
	ctx := t.Context()
	if _, err := f.c.Apply(ctx, "web.yaml", []byte(webYAML), nil); err != nil {
		t.Fatal(err)
	}
	tr, err := f.c.Trigger(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if !tr.New || tr.Bake.State != store.Queued || tr.Bake.Project != "web" {
		t.Errorf("Trigger() = %+v; want a new queued bake", tr)
	}
	again, err := f.c.Trigger(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if again.New || again.Bake.ID != tr.Bake.ID {
		t.Errorf("second Trigger() = %+v; want the queued bake %d", again, tr.Bake.ID)
	}
	var apiErr *APIError
	if _, err := f.c.Trigger(ctx, "nope"); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Errorf("Trigger(unknown) = %v; want 404", err)
	}

	b, err := f.c.Cancel(ctx, tr.Bake.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if b.State != store.Cancelled || b.Reason != "cancelled through the API" {
		t.Errorf("Cancel() = %+v; want cancelled", b)
	}
	if _, err := f.c.Cancel(ctx, tr.Bake.ID, ""); !errors.As(err, &apiErr) || apiErr.Status != http.StatusConflict {
		t.Errorf("Cancel(cancelled) = %v; want 409", err)
	}
	if _, err := f.c.Cancel(ctx, 999, ""); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Errorf("Cancel(unknown) = %v; want 404", err)
	}
	if status, body := f.call(t, "POST", "/api/bakes/x/cancel", testToken, "", nil); status != 400 {
		t.Errorf("cancel bad id = %d %s; want 400", status, body)
	}

	// A running bake: cancel is a request; delete is refused until it is over.
	tr, _ = f.c.Trigger(ctx, "web")
	if _, _, err := f.st.ClaimBake(ctx, tr.Bake.ID); err != nil {
		t.Fatal(err)
	}
	b, err = f.c.Cancel(ctx, tr.Bake.ID, "stop it")
	if err != nil {
		t.Fatal(err)
	}
	if b.State != store.Running || !b.CancelRequested || b.Reason != "stop it" {
		t.Errorf("Cancel(running) = %+v; want running with cancel requested", b)
	}
	if err := f.c.DeleteProject(ctx, "web"); !errors.As(err, &apiErr) || apiErr.Status != http.StatusConflict {
		t.Errorf("DeleteProject(running bake) = %v; want 409", err)
	}
}

func TestBakesPagination(t *testing.T) {
	f := newFixture(t, nil)
	ctx := t.Context()
	for _, name := range []string{"web", "api"} {
		if _, err := f.c.Apply(ctx, name+".yaml", []byte(strings.Replace(webYAML, "name: web", "name: "+name, 1)), nil); err != nil {
			t.Fatal(err)
		}
	}
	// Five finished bakes of web, two of api, interleaved.
	var webIDs []int64
	for i := range 7 {
		project := "web"
		if i%3 == 1 {
			project = "api"
		}
		res, err := f.st.CreateBake(ctx, project, "", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.st.FinishBake(ctx, res.BakeID, store.Outcome{State: store.Succeeded, ImageID: "ami-1"}); err != nil {
			t.Fatal(err)
		}
		if project == "web" {
			webIDs = append([]int64{res.BakeID}, webIDs...) // newest first
		}
	}
	var got []int64
	q := BakeQuery{Project: "web", Limit: 2}
	pages := 0
	for {
		page, err := f.c.Bakes(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, b := range page.Bakes {
			if b.Project != "web" || b.State != store.Succeeded || len(b.Steps) != 0 {
				t.Errorf("listed %+v", b)
			}
			got = append(got, b.ID)
		}
		if page.NextBefore == 0 {
			break
		}
		q.Before = page.NextBefore
	}
	if pages != 3 || len(got) != len(webIDs) {
		t.Fatalf("paged %v in %d pages; want %v in 3", got, pages, webIDs)
	}
	for i := range got {
		if got[i] != webIDs[i] {
			t.Fatalf("paged %v; want %v", got, webIDs)
		}
	}
	all, err := f.c.Bakes(ctx, BakeQuery{})
	if err != nil || len(all.Bakes) != 7 || all.NextBefore != 0 {
		t.Errorf("Bakes(all) = %+v, %v; want 7 on one page", all, err)
	}
	for _, q := range []string{"limit=0", "limit=abc", "limit=1001", "before=-1", "state=baking"} {
		if status, body := f.call(t, "GET", "/api/bakes?"+q, testToken, "", nil); status != 400 {
			t.Errorf("GET /api/bakes?%s = %d %s; want 400", q, status, body)
		}
	}
	if status, body := f.call(t, "GET", "/api/bakes?state=succeeded&project=api", testToken, "", nil); status != 200 || strings.Count(body, `"id"`) != 2 {
		t.Errorf("filter by state and project = %d %s; want 2 bakes", status, body)
	}
}

func TestShowAndFollow(t *testing.T) {
	f := newFixture(t, nil)
	ctx := t.Context()
	if _, err := f.c.Apply(ctx, "web.yaml", []byte(webYAML), nil); err != nil {
		t.Fatal(err)
	}
	tr, err := f.c.Trigger(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	id := tr.Bake.ID

	// The bake runs in the background while the client follows it; each
	// change is made only after the client saw the previous one.
	seen := make(chan *Bake, 100)
	done := make(chan error, 1)
	var final *Bake
	go func() {
		var err error
		final, err = f.c.Follow(ctx, id, func(b *Bake) { seen <- b })
		done <- err
	}()
	await := func(cond func(*Bake) bool) {
		t.Helper()
		for {
			select {
			case b := <-seen:
				if cond(b) {
					return
				}
			case err := <-done:
				t.Fatalf("Follow() ended early: %v", err)
			}
		}
	}
	await(func(b *Bake) bool { return b.State == store.Queued })
	if _, _, err := f.st.ClaimBake(ctx, id); err != nil {
		t.Fatal(err)
	}
	await(func(b *Bake) bool { return b.State == store.Running })
	if err := f.st.StartStep(ctx, id, "launch builder", ""); err != nil {
		t.Fatal(err)
	}
	await(func(b *Bake) bool { return len(b.Steps) == 1 && b.Steps[0].State == store.StepRunning })
	if err := f.st.FinishStep(ctx, id, "launch builder", store.StepSucceeded, "i-0123"); err != nil {
		t.Fatal(err)
	}
	await(func(b *Bake) bool { return len(b.Steps) == 1 && b.Steps[0].State == store.StepSucceeded })
	if err := f.st.FinishBake(ctx, id, store.Outcome{State: store.Succeeded, ImageID: "ami-0abc"}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Follow() = %v", err)
	}
	if final == nil || final.State != store.Succeeded || final.ImageID != "ami-0abc" || final.Steps[0].Detail != "i-0123" {
		t.Errorf("Follow() final = %+v", final)
	}

	b, err := f.c.Bake(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if b.State != store.Succeeded || len(b.Steps) != 1 || b.Steps[0].FinishedAt == nil || b.StartedAt == nil || b.FinishedAt == nil {
		t.Errorf("Bake() = %+v; want the finished bake with its step", b)
	}
	// Following a finished bake returns at once.
	if b, err := f.c.Follow(ctx, id, func(*Bake) {}); err != nil || b.State != store.Succeeded {
		t.Errorf("Follow(finished) = %+v, %v", b, err)
	}
	var apiErr *APIError
	if _, err := f.c.Follow(ctx, 999, func(*Bake) {}); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Errorf("Follow(unknown) = %v; want 404", err)
	}
	if _, err := f.c.Bake(ctx, 999); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Errorf("Bake(unknown) = %v; want 404", err)
	}
}

func TestMetrics(t *testing.T) {
	hooks := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("project") {
		case "web":
			writeJSON(w, http.StatusAccepted, map[string]any{"status": "queued", "bake_id": 1})
		case "dup":
			writeJSON(w, http.StatusAccepted, map[string]any{"status": "queued", "bake_id": 1, "duplicate": true})
		case "ping":
			writeJSON(w, http.StatusOK, map[string]any{"status": "pong"})
		default:
			writeError(w, http.StatusUnauthorized, "missing or bad signature")
		}
	})
	f := newFixture(t, hooks)
	for _, p := range []string{"web", "web", "dup", "ping", "other"} {
		if status, _ := f.call(t, "POST", "/hooks/"+p, "", "{}", nil); status == 0 {
			t.Fatal("no answer")
		}
	}
	if _, err := f.c.Apply(t.Context(), "web.yaml", []byte(webYAML), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.Trigger(t.Context(), "web"); err != nil {
		t.Fatal(err)
	}
	_, body := f.call(t, "GET", "/metrics", "", "", nil)
	for _, want := range []string{
		`kiln_webhook_deliveries_total{result="queued"} 2`,
		`kiln_webhook_deliveries_total{result="duplicate"} 1`,
		`kiln_webhook_deliveries_total{result="pong"} 1`,
		`kiln_webhook_deliveries_total{result="unauthorized"} 1`,
		`kiln_bakes{state="queued"} 1`,
		`kiln_bakes{state="succeeded"} 0`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestAdminToken(t *testing.T) {
	ctx := t.Context()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "kiln.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	h1, src, token, err := AdminToken(ctx, st.DB(), "")
	if err != nil || src != TokenFromGenerated || token == "" || !h1.Match(token) {
		t.Fatalf("first AdminToken() = %v, %q, %q, %v; want a generated token", h1, src, token, err)
	}
	h2, src, again, err := AdminToken(ctx, st.DB(), "")
	if err != nil || src != TokenFromDatabase || again != "" || h2 != h1 {
		t.Fatalf("second AdminToken() = %q, %q, %v; want the stored hash, nothing to print", src, again, err)
	}
	var stored string
	if err := st.DB().QueryRowContext(ctx, `SELECT sha256 FROM admin_token`).Scan(&stored); err != nil || strings.Contains(stored, token) {
		t.Errorf("stored %q, %v; want only the hash", stored, err)
	}
	h3, src, _, err := AdminToken(ctx, st.DB(), "from-env")
	if err != nil || src != TokenFromEnv || !h3.Match("from-env") || h3.Match(token) {
		t.Fatalf("AdminToken(env) = %q, %v; want the env token", src, err)
	}
	// The environment's token is remembered for a start without it.
	h4, src, _, err := AdminToken(ctx, st.DB(), "")
	if err != nil || src != TokenFromDatabase || !h4.Match("from-env") {
		t.Fatalf("AdminToken() after env = %q, %v; want the env token's hash", src, err)
	}
}

func TestBearer(t *testing.T) {
	for _, tc := range []struct {
		h    string
		want string
		ok   bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer abc", "abc", true},
		{"Bearer  abc ", "abc", true},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Basic abc", "", false},
		{"", "", false},
	} {
		got, ok := bearer(tc.h)
		if got != tc.want || ok != tc.ok {
			t.Errorf("bearer(%q) = %q, %v; want %q, %v", tc.h, got, ok, tc.want, tc.ok)
		}
	}
}

func TestErrorBodies(t *testing.T) {
	f := newFixture(t, nil)
	status, body := f.call(t, "GET", "/api/projects/nope", testToken, "", nil)
	var e Error
	if status != 404 || json.Unmarshal([]byte(body), &e) != nil || e.Error != `no project "nope"` {
		t.Errorf("GET unknown project = %d %s", status, body)
	}
	status, body = f.call(t, "POST", "/api/projects", testToken, strings.Repeat("x", maxProjectFile+1), nil)
	if status != http.StatusRequestEntityTooLarge {
		t.Errorf("huge project file = %d %s; want 413", status, body)
	}
}

// notifyingBakery is a storeBakery that is also a ProgressSource.
type notifyingBakery struct {
	storeBakery
	ch chan bakery.Progress
}

func (b notifyingBakery) Subscribe(id int64) (<-chan bakery.Progress, func()) { return b.ch, func() {} }

// TestEventsWakeOnProgress: with a ProgressSource, the stream reports a
// change when notified, without waiting for the (here: hour-long) poll.
func TestEventsWakeOnProgress(t *testing.T) {
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "kiln.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	nb := notifyingBakery{newStoreBakery(st), make(chan bakery.Progress, 1)}
	s := New(Config{Store: st, Bakery: nb, Token: HashToken(testToken), PollInterval: time.Hour})
	extra := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	s.Handle("GET /extra", extra)
	srv := httptest.NewServer(s)
	defer srv.Close()
	c := NewClient(srv.URL, testToken)
	ctx := t.Context()

	resp, err := http.Get(srv.URL + "/extra")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot {
		t.Fatalf("GET /extra = %d; want the mounted handler's 418", resp.StatusCode)
	}
	if _, err := c.Apply(ctx, "web.yaml", []byte(webYAML), nil); err != nil {
		t.Fatal(err)
	}
	tr, err := c.Trigger(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan *Bake, 10)
	done := make(chan error, 1)
	go func() {
		_, err := c.Follow(ctx, tr.Bake.ID, func(b *Bake) { seen <- b })
		done <- err
	}()
	if b := <-seen; b.State != store.Queued {
		t.Fatalf("first event = %s; want queued", b.State)
	}
	if _, err := st.RequestCancel(ctx, tr.Bake.ID, "test"); err != nil {
		t.Fatal(err)
	}
	nb.ch <- bakery.Progress{BakeID: tr.Bake.ID}
	if b := <-seen; b.State != store.Cancelled {
		t.Errorf("event after the notification = %s; want cancelled", b.State)
	}
	if err := <-done; err != nil {
		t.Errorf("Follow() = %v", err)
	}
}

func TestPublicURL(t *testing.T) {
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "kiln.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := New(Config{Store: st, Bakery: newStoreBakery(st), Token: HashToken(testToken), PublicURL: "https://kiln.example.com/"})
	srv := httptest.NewServer(s)
	defer srv.Close()
	res, err := NewClient(srv.URL, testToken).Apply(t.Context(), "web.yaml", []byte(webYAML), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.WebhookURL != "https://kiln.example.com/hooks/web" || res.Project.WebhookURL != res.WebhookURL {
		t.Errorf("webhook URL = %q, %q; want it under the public URL", res.WebhookURL, res.Project.WebhookURL)
	}
}

// storeHooks is a webhook backend on the store alone.
type storeHooks struct{ st *store.Store }

func (h storeHooks) HookTarget(ctx context.Context, project string) (store.HookTarget, error) {
	return h.st.HookTarget(ctx, project)
}

func (h storeHooks) Enqueue(ctx context.Context, p store.Push) (store.PushResult, error) {
	res, err := h.st.CreateBake(ctx, p.Project, p.Commit, p.Ref, nil)
	if err == nil && p.Audit != nil {
		_, err = h.st.AppendAudit(ctx, *p.Audit)
	}
	return res, err
}

// TestRotateSecret: the new secret is shown once, differs from the old,
// and from then on only it signs a delivery.
func TestRotateSecret(t *testing.T) {
	var hooks http.Handler
	f := newFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hooks.ServeHTTP(w, r) }))
	hooks = hook.NewHandler(storeHooks{f.st}, nil)
	ctx := t.Context()
	applied, err := f.c.Apply(ctx, "web.yaml", []byte(webYAML), nil)
	if err != nil {
		t.Fatal(err)
	}
	old := applied.WebhookSecret
	ping := func(secret string) int {
		t.Helper()
		body := `{"zen": "Keep it logically awesome."}`
		status, _ := f.call(t, "POST", "/hooks/web", "", body, map[string]string{
			"X-GitHub-Event": "ping", "X-GitHub-Delivery": "d-" + secret[:8],
			"X-Hub-Signature-256": hook.Sign([]byte(body), secret), "Content-Type": "application/json",
		})
		return status
	}
	if got := ping(old); got != http.StatusOK {
		t.Fatalf("ping signed with the first secret = %d; want 200", got)
	}

	res, err := f.c.RotateSecret(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if res.Project != "web" || len(res.WebhookSecret) != 43 || res.WebhookSecret == old || res.WebhookURL != f.srv.URL+"/hooks/web" {
		t.Fatalf("RotateSecret() = %+v; want a new 43-character secret for web and its hook URL", res)
	}
	if stored, _ := f.st.ProjectSecret(ctx, "web"); stored != res.WebhookSecret {
		t.Errorf("stored secret = %q; want the one shown", stored)
	}
	if got := ping(old); got != http.StatusUnauthorized {
		t.Errorf("ping signed with the old secret after rotation = %d; want 401", got)
	}
	if got := ping(res.WebhookSecret); got != http.StatusOK {
		t.Errorf("ping signed with the new secret = %d; want 200", got)
	}
	// Showing the project never shows it again.
	if _, body := f.call(t, "GET", "/api/projects/web", testToken, "", nil); strings.Contains(body, res.WebhookSecret) {
		t.Errorf("GET /api/projects/web shows the rotated secret")
	}

	status, body := f.call(t, "POST", "/api/projects/nope/secret", testToken, "", nil)
	if status != http.StatusNotFound || !strings.Contains(body, `"error": "no project \"nope\""`) {
		t.Errorf("rotate unknown project = %d %s; want 404 naming it", status, body)
	}
	var apiErr *APIError
	if _, err := f.c.RotateSecret(ctx, "nope"); !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound || err.Error() != `no project "nope"` {
		t.Errorf("RotateSecret(nope) = %v; want 404 no project \"nope\"", err)
	}
	for _, token := range []string{"", "wrong"} {
		if status, body := f.call(t, "POST", "/api/projects/web/secret", token, "", nil); status != http.StatusUnauthorized {
			t.Errorf("rotate with token %q = %d %s; want 401", token, status, body)
		}
	}
	if stored, _ := f.st.ProjectSecret(ctx, "web"); stored != res.WebhookSecret {
		t.Errorf("a refused call changed the secret")
	}
}
