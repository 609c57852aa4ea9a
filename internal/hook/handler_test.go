package hook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"kiln/internal/project"
	"kiln/internal/store"
	"kiln/internal/store/storetest"
)

type hookEnv struct {
	st  *store.Store
	srv *httptest.Server
}

// newHookEnv serves the handler on a real store with an insert-only River
// client, and one project "web" baking branch main.
func newHookEnv(t *testing.T) *hookEnv {
	t.Helper()
	t.Parallel()
	st := storetest.Open(t)
	rc, err := st.NewRiverClient(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := project.Parse("web.yaml", []byte("name: web\nregion: us-east-1\nbase: {id: ami-0123abcd}\ntype: t3.small\nscript: echo\nbranch: main\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Secret = hookSecret
	if _, err := project.Apply(t.Context(), st, p); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /hooks/{project}", NewHandler(NewQueue(st, rc), nil))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &hookEnv{st: st, srv: srv}
}

func (e *hookEnv) post(t *testing.T, project string, h http.Header, body []byte) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.srv.URL+"/hooks/"+project, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("response %d is not JSON: %q", resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

func (e *hookEnv) jobs(t *testing.T) int {
	t.Helper()
	var n int
	if err := e.st.DB().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM river_job WHERE kind = ?`, JobKind).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (e *hookEnv) bakes(t *testing.T) int {
	t.Helper()
	n, err := e.st.CountBakes(t.Context(), store.BakeQuery{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func pushBody(branch, commit string) []byte {
	return fmt.Appendf(nil, `{"ref":"refs/heads/%s","after":"%s","repository":{"full_name":"acme/web","default_branch":"main"},"head_commit":{"id":"%[2]s","message":"m"}}`, branch, commit)
}

func TestHookHandlerAnswers(t *testing.T) {
	e := newHookEnv(t)
	ghPush := readHook(t, "github-push.json")
	big := bytes.Repeat([]byte(" "), MaxBodySize+1)
	other := pushBody("dev", "abcdef1")
	tests := []struct {
		name    string
		project string
		h       http.Header
		body    []byte
		status  int
		field   string // a response field that must be present
	}{
		{"unknown project", "nope", githubHeaders("push", "d", ghPush, hookSecret), ghPush, 404, "error"},
		{"too large", "web", githubHeaders("push", "d", big, hookSecret), big, 413, "error"},
		{"no signature", "web", hdr("X-GitHub-Event", "push"), ghPush, 401, "error"},
		{"bad signature", "web", githubHeaders("push", "d", ghPush, "wrong"), ghPush, 401, "error"},
		{"gitlab bad token", "web", gitlabHeaders("Push Hook", "u", "wrong"), ghPush, 401, "error"},
		{"malformed json", "web", githubHeaders("push", "d", []byte("{"), hookSecret), []byte("{"), 400, "error"},
		{"ping", "web", githubHeaders("ping", "p", readHook(t, "github-ping.json"), hookSecret), readHook(t, "github-ping.json"), 200, "status"},
		{"other event", "web", githubHeaders("issues", "i", []byte(`{}`), hookSecret), []byte(`{}`), 200, "reason"},
		{"other branch", "web", githubHeaders("push", "o", other, hookSecret), other, 200, "reason"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, out := e.post(t, tt.project, tt.h, tt.body)
			if status != tt.status || out[tt.field] == nil {
				t.Errorf("POST = %d %v; want %d with %q", status, out, tt.status, tt.field)
			}
		})
	}
	if n := e.bakes(t); n != 0 {
		t.Errorf("bakes after refused and ignored deliveries = %d; want 0", n)
	}
	if status, out := e.post(t, "web", githubHeaders("ping", "p", []byte(`{}`), hookSecret), []byte(`{}`)); out["status"] != "pong" {
		t.Errorf("ping = %d %v; want pong", status, out)
	}
}

func TestHookHandlerTooLargeChunked(t *testing.T) {
	e := newHookEnv(t)
	big := bytes.Repeat([]byte(" "), MaxBodySize+10)
	// No Content-Length: the limit must hold while reading.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, e.srv.URL+"/hooks/web", io.MultiReader(bytes.NewReader(big)))
	for k, v := range githubHeaders("push", "d", big, hookSecret) {
		req.Header[k] = v
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked oversize POST = %d; want 413", resp.StatusCode)
	}
}

func TestHookHandlerPushAndDuplicate(t *testing.T) {
	e := newHookEnv(t)
	body := readHook(t, "github-push.json")
	h := githubHeaders("push", "dup-1", body, hookSecret)
	status, out := e.post(t, "web", h, body)
	if status != http.StatusAccepted || out["bake_id"] == nil || out["status"] != "queued" {
		t.Fatalf("push = %d %v; want 202 with bake_id", status, out)
	}
	id := int64(out["bake_id"].(float64))
	b, err := e.st.Bake(t.Context(), id)
	if err != nil || b.Commit != "59b20b8d5c6ff8d09518454d4dd8b7a30f095ab5" || b.Repo != "acme/web" ||
		b.Ref != "refs/heads/main" || b.DeliveryID != "dup-1" || b.State != store.Queued {
		t.Errorf("stored bake = %+v, %v", b, err)
	}
	// The same delivery again: the same bake, no second bake or job.
	status, out = e.post(t, "web", h, body)
	if status != http.StatusAccepted || int64(out["bake_id"].(float64)) != id || out["duplicate"] != true {
		t.Errorf("duplicate = %d %v; want 202 with bake %d, duplicate", status, out, id)
	}
	if e.bakes(t) != 1 || e.jobs(t) != 1 {
		t.Errorf("bakes = %d, jobs = %d; want 1, 1", e.bakes(t), e.jobs(t))
	}
}

// GitLab and the generic format reach the same queue.
func TestHookHandlerOtherProviders(t *testing.T) {
	e := newHookEnv(t)
	gl := readHook(t, "gitlab-push.json")
	status, out := e.post(t, "web", gitlabHeaders("Push Hook", "u-1", hookSecret), gl)
	if status != http.StatusAccepted {
		t.Fatalf("gitlab push = %d %v; want 202", status, out)
	}
	gn := readHook(t, "generic-push.json")
	status, out2 := e.post(t, "web", genericHeaders("push", "g-1", gn, hookSecret), gn)
	if status != http.StatusAccepted || out2["bake_id"] != out["bake_id"] || out2["coalesced"] != true {
		t.Errorf("generic push = %d %v; want 202 coalesced into %v", status, out2, out["bake_id"])
	}
	b, _ := e.st.Bake(t.Context(), int64(out["bake_id"].(float64)))
	if b.Commit != "59b20b8d5c6ff8d09518454d4dd8b7a30f095ab5" || b.Message != "build 42" {
		t.Errorf("coalesced bake = %+v; want the generic push's commit", b)
	}
}

// A burst of concurrent pushes queues one bake; after it starts, the rest of
// a second burst queue exactly one more: never more than 2 at a time.
func TestHookHandlerBurstCoalesces(t *testing.T) {
	e := newHookEnv(t)
	burst := func(prefix string) map[float64]bool {
		var (
			wg  sync.WaitGroup
			mu  sync.Mutex
			ids = map[float64]bool{}
		)
		for i := range 10 {
			wg.Go(func() {
				body := pushBody("main", fmt.Sprintf("%040x", i+1))
				status, out := e.post(t, "web", githubHeaders("push", fmt.Sprint(prefix, i), body, hookSecret), body)
				if status != http.StatusAccepted {
					t.Errorf("push = %d %v", status, out)
					return
				}
				mu.Lock()
				ids[out["bake_id"].(float64)] = true
				mu.Unlock()
			})
		}
		wg.Wait()
		return ids
	}
	first := burst("a")
	if len(first) != 1 {
		t.Fatalf("first burst bakes = %v; want 1", first)
	}
	for id := range first {
		if c, _, err := e.st.ClaimBake(t.Context(), int64(id)); err != nil || c != store.ClaimStarted {
			t.Fatalf("ClaimBake() = %v, %v", c, err)
		}
	}
	second := burst("b")
	if len(second) != 1 {
		t.Fatalf("second burst bakes = %v; want 1", second)
	}
	if e.bakes(t) != 2 || e.jobs(t) != 2 {
		t.Errorf("bakes = %d, jobs = %d; want 2, 2", e.bakes(t), e.jobs(t))
	}
}

func TestHookHandlerMethodAndPath(t *testing.T) {
	t.Parallel()
	h := NewHandler(nil, nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/hooks/web", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET = %d; want 405", rec.Code)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/hooks/", strings.NewReader("{}")))
	if rec.Code != http.StatusNotFound {
		t.Errorf("POST without project = %d; want 404", rec.Code)
	}
}

func TestWebhookURL(t *testing.T) {
	plain := httptest.NewRequest("GET", "http://kiln.test:8080/api/projects", nil)
	tls := httptest.NewRequest("GET", "https://kiln.test/api/projects", nil)
	for _, c := range []struct {
		public string
		r      *http.Request
		want   string
	}{
		{"", plain, "http://kiln.test:8080/hooks/web%20app"},
		{"", tls, "https://kiln.test/hooks/web%20app"},
		{"https://bakery.example/", plain, "https://bakery.example/hooks/web%20app"},
		{"https://bakery.example//", plain, "https://bakery.example/hooks/web%20app"},
	} {
		if got := URL(c.public, c.r, "web app"); got != c.want {
			t.Errorf("URL(%q, %s) = %q; want %q", c.public, c.r.URL, got, c.want)
		}
	}
}
