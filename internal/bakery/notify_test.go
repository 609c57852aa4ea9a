package bakery

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"kiln/internal/awssim"
	"kiln/internal/notify"
	"kiln/internal/pipeline"
	"kiln/internal/store"
	"kiln/internal/testsupport"
)

// call is one request a stand-in received.
type call struct {
	Path, Auth, Token string
	Body              map[string]any
}

// standIn records every POST it gets and answers 201.
type standIn struct {
	*httptest.Server
	mu    sync.Mutex
	calls []call
}

func newStandIn(t *testing.T) *standIn {
	s := &standIn{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var body map[string]any
		_ = json.Unmarshal(b, &body)
		s.mu.Lock()
		s.calls = append(s.calls, call{Path: r.URL.EscapedPath(), Auth: r.Header.Get("Authorization"),
			Token: r.Header.Get("PRIVATE-TOKEN"), Body: body})
		s.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *standIn) got() []call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]call(nil), s.calls...)
}

// TestBakeNotifications bakes two pushed commits through the simulator,
// one that succeeds (project web, reporting to a GitHub stand-in) and
// one that fails (project api, a GitLab stand-in), and checks what the
// notify: target and the commit status APIs were told.
func TestBakeNotifications(t *testing.T) {
	w := newWorld(t, awssim.Options{})
	st := w.open(t)
	ctx := t.Context()
	putProject(t, st, "web", "#!/bin/sh\ntrue\n", nil)
	putProject(t, st, "api", "#!/bin/sh\necho about to fail\nexit 3\n", nil)
	target, github, gitlab := newStandIn(t), newStandIn(t), newStandIn(t)
	for _, p := range []string{"web", "api"} {
		if err := st.PutNotifyTargets(ctx, p, []store.NotifyTarget{{URL: target.URL + "/" + p, Secret: "s", Events: notify.Events}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.PutCommitStatus(ctx, "web", &store.CommitStatus{Provider: notify.GitHub, APIURL: github.URL + "/api/v3", Token: "ghp_x"}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutCommitStatus(ctx, "api", &store.CommitStatus{Provider: notify.GitLab, APIURL: gitlab.URL + "/api/v4", Token: "glpat-x"}); err != nil {
		t.Fatal(err)
	}

	ins, err := st.NewRiverClient(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := testOptions()
	o.Notifier = notify.New(st, ins, notify.Options{PublicURL: "https://kiln.test", Backoff: func(int) time.Duration { return time.Millisecond }})
	s, err := NewService(st, w.hubs, testLog, o)
	if err != nil {
		t.Fatal(err)
	}
	s.pipe = pipeline.NewPipeline(w.hubs, testLog, pipeline.PipelineOptions{ConsoleWait: 200 * time.Millisecond})
	runCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.Run(runCtx) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	ids := map[string]int64{}
	for _, p := range []struct{ project, repo string }{{"web", "acme/web"}, {"api", "acme/api"}} {
		res, err := s.Queue().Enqueue(ctx, store.Push{Project: p.project, DeliveryID: "d-" + p.project,
			Commit: "c0ffee", Ref: "refs/heads/main", Repo: p.repo})
		if err != nil {
			t.Fatal(err)
		}
		ids[p.project] = res.BakeID
	}
	if b := waitFinal(t, st, ids["web"]); b.State != store.Succeeded {
		t.Fatalf("web bake = %s (%s); want succeeded", b.State, b.Reason)
	}
	if b := waitFinal(t, st, ids["api"]); b.State != store.Failed {
		t.Fatalf("api bake = %s; want failed", b.State)
	}
	testsupport.Eventually(t, "4 notifications and 2+2 statuses", func() bool {
		return len(target.got()) == 4 && len(github.got()) == 2 && len(gitlab.got()) == 2
	})

	events := map[string][]string{}
	for _, c := range target.got() {
		events[c.Path] = append(events[c.Path], c.Body["event"].(string))
	}
	if got := events["/web"]; len(got) != 2 || got[0] != notify.BakeStarted || got[1] != notify.BakeSucceeded {
		t.Errorf("web target got %v; want bake.started, bake.succeeded", got)
	}
	if got := events["/api"]; len(got) != 2 || got[0] != notify.BakeStarted || got[1] != notify.BakeFailed {
		t.Errorf("api target got %v; want bake.started, bake.failed", got)
	}

	webLink := "https://kiln.test/bakes/" + strconv.FormatInt(ids["web"], 10)
	for i, want := range []string{"pending", "success"} {
		c := github.got()[i]
		if c.Path != "/api/v3/repos/acme/web/statuses/c0ffee" || c.Auth != "Bearer ghp_x" ||
			c.Body["state"] != want || c.Body["target_url"] != webLink || c.Body["context"] != "kiln/web" {
			t.Errorf("GitHub status %d = %+v; want %s linking %s", i, c, want, webLink)
		}
	}
	apiLink := "https://kiln.test/bakes/" + strconv.FormatInt(ids["api"], 10)
	for i, want := range []string{"running", "failed"} {
		c := gitlab.got()[i]
		if c.Path != "/api/v4/projects/acme%2Fapi/statuses/c0ffee" || c.Token != "glpat-x" ||
			c.Body["state"] != want || c.Body["target_url"] != apiLink || c.Body["name"] != "kiln/api" {
			t.Errorf("GitLab status %d = %+v; want %s linking %s", i, c, want, apiLink)
		}
	}
	var ds []store.Delivery
	testsupport.Eventually(t, "web's 4 deliveries recorded delivered", func() bool {
		ds, err = st.Deliveries(ctx, "web", 10)
		if err != nil || len(ds) != 4 {
			return false
		}
		for _, d := range ds {
			if d.State != store.DeliveryDelivered {
				return false
			}
		}
		return true
	})
	for _, d := range ds {
		if d.Attempts != 1 {
			t.Errorf("delivery %+v; want delivered at the first attempt", d)
		}
	}
}
