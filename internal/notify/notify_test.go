package notify_test

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"kiln/internal/notify"
	"kiln/internal/store"
	"kiln/internal/store/storetest"
)

// request is what a stand-in receiver got.
type request struct {
	path   string
	header http.Header
	body   []byte
}

// receiver is a stand-in target: it answers each request with the next
// status of codes (200 once they run out) and sends what it got on got.
type receiver struct {
	*httptest.Server
	mu    sync.Mutex
	codes []int
	got   chan request
}

func newReceiver(t *testing.T, codes ...int) *receiver {
	r := &receiver{codes: codes, got: make(chan request, 100)}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		code := http.StatusOK
		if len(r.codes) > 0 {
			code, r.codes = r.codes[0], r.codes[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(code)
		r.got <- request{path: req.URL.EscapedPath(), header: req.Header.Clone(), body: body}
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) next(t *testing.T) request {
	t.Helper()
	select {
	case q := <-r.got:
		return q
	case <-time.After(30 * time.Second):
		t.Fatal("no delivery within 30 s")
		return request{}
	}
}

// bakery is a store with project "web" and a running delivery worker.
type bakery struct {
	st   *store.Store
	n    *notify.Notifier
	jobs *store.Jobs
}

func newBakery(t *testing.T, o notify.Options) *bakery {
	t.Helper()
	st := storetest.Open(t)
	ctx := t.Context()
	if _, err := st.PutProject(ctx, store.Project{Name: "web", Region: "us-east-1", BaseID: "ami-1", Type: "t3.micro",
		Script: "true", Keep: 5}, "0123456789abcdef0123"); err != nil {
		t.Fatal(err)
	}
	ins, err := st.NewRiverClient(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.Backoff == nil {
		o.Backoff = func(int) time.Duration { return time.Millisecond }
	}
	o.PublicURL = "https://kiln.example.com/"
	n := notify.New(st, ins, o)
	workers := river.NewWorkers()
	if err := n.Register(workers); err != nil {
		t.Fatal(err)
	}
	rc, err := st.NewRiverClient(workers, &river.Config{FetchPollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rc.StopAndCancel(context.Background()) })
	return &bakery{st: st, n: n, jobs: rc}
}

func (b *bakery) targets(t *testing.T, ts ...store.NotifyTarget) {
	t.Helper()
	for i := range ts {
		if ts[i].Events == nil {
			ts[i].Events = notify.Events
		}
	}
	if err := b.st.PutNotifyTargets(t.Context(), "web", ts); err != nil {
		t.Fatal(err)
	}
}

// waitDelivery waits for the project's delivery of event to reach state.
func (b *bakery) waitDelivery(t *testing.T, event, state string) store.Delivery {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ds, err := b.st.Deliveries(t.Context(), "web", 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if d.Event == event && d.State == state {
				return d
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Deliveries() = %+v; want %s %s", ds, event, state)
		}
		time.Sleep(10 * time.Millisecond) // polls the store: River has no completion event on SQLite
	}
}

func TestSignature(t *testing.T) {
	b := newBakery(t, notify.Options{})
	rcv := newReceiver(t)
	b.targets(t, store.NotifyTarget{URL: rcv.URL + "/hook", Secret: "target-secret"},
		store.NotifyTarget{URL: rcv.URL + "/unsigned", Events: []string{notify.BakeFailed}})
	ev := notify.Event{Event: notify.BakeSucceeded, Project: "web", Bake: 7, Image: "ami-0123", Commit: "abc", Repo: "acme/web"}
	if err := b.n.Emit(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	q := rcv.next(t)
	if q.path != "/hook" {
		t.Fatalf("delivered to %s; want /hook only (the other target wants bake.failed)", q.path)
	}
	sig := q.header.Get(notify.SignatureHeader)
	if want := notify.Sign("target-secret", q.body); !hmac.Equal([]byte(sig), []byte(want)) || !strings.HasPrefix(sig, "sha256=") {
		t.Errorf("%s = %q; want %q", notify.SignatureHeader, sig, want)
	}
	var got notify.Event
	if err := json.Unmarshal(q.body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Event != notify.BakeSucceeded || got.Bake != 7 || got.Image != "ami-0123" ||
		got.Links.Bake != "https://kiln.example.com/bakes/7" || got.Links.Project != "https://kiln.example.com/projects/web" {
		t.Errorf("body = %+v", got)
	}
	b.waitDelivery(t, notify.BakeSucceeded, store.DeliveryDelivered)

	// Unsigned target: no header.
	if err := b.n.Emit(t.Context(), notify.Event{Event: notify.BakeFailed, Project: "web", Bake: 8, Reason: "script exited 1"}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		q := rcv.next(t)
		if q.path == "/unsigned" && q.header.Get(notify.SignatureHeader) != "" {
			t.Errorf("target without a secret got %s", notify.SignatureHeader)
		}
		if q.path == "/hook" && notify.Sign("target-secret", q.body) != q.header.Get(notify.SignatureHeader) {
			t.Errorf("bad signature on the second event")
		}
	}
}

func TestSlackShape(t *testing.T) {
	b := newBakery(t, notify.Options{})
	rcv := newReceiver(t)
	b.targets(t, store.NotifyTarget{URL: rcv.URL + "/services/T000/B000/XXXX"})
	if err := b.n.Emit(t.Context(), notify.Event{Event: notify.PromotionRolledBack, Project: "web", Promotion: 3,
		Image: "ami-9", Environment: "prod", Reason: "alarm <high-5xx> fired"}); err != nil {
		t.Fatal(err)
	}
	q := rcv.next(t)
	var msg struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type string `json:"type"`
			Text struct{ Type, Text string }
		} `json:"blocks"`
		Event string `json:"event"`
	}
	if err := json.Unmarshal(q.body, &msg); err != nil {
		t.Fatal(err)
	}
	if msg.Event != "" || !strings.Contains(msg.Text, "promotion.rolled_back") || len(msg.Blocks) != 1 ||
		msg.Blocks[0].Type != "section" || msg.Blocks[0].Text.Type != "mrkdwn" {
		t.Fatalf("Slack body = %s", q.body)
	}
	for _, want := range []string{"<https://kiln.example.com/projects/web|web promotion 3>", "*prod*", "&lt;high-5xx&gt;"} {
		if !strings.Contains(msg.Blocks[0].Text.Text, want) {
			t.Errorf("Slack text %q lacks %q", msg.Blocks[0].Text.Text, want)
		}
	}
}

func TestLinkLocalRefused(t *testing.T) {
	for _, tt := range []struct {
		url string
		ok  bool
	}{
		{"http://169.254.169.254/latest/meta-data/", false},
		{"http://[fe80::1]/hook", false},
		{"http://[::ffff:169.254.1.1]/", false},
		{"http://127.0.0.1:8080/hook", true},
		{"https://10.1.2.3/hook", true},
		{"http://192.168.0.9/hook", true},
		{"ftp://example.com/", false},
		{"http:///nohost", false},
	} {
		err := notify.CheckURL(t.Context(), tt.url, nil)
		if (err == nil) != tt.ok {
			t.Errorf("CheckURL(%q) = %v; want ok %v", tt.url, err, tt.ok)
		}
	}
	// A name that resolves to the metadata address is refused too.
	resolve := func(context.Context, string) ([]netipAddr, error) { return parseAddrs("169.254.169.254"), nil }
	if err := notify.CheckURL(t.Context(), "http://metadata.internal/", resolve); !errors.Is(err, notify.ErrLinkLocal) {
		t.Errorf("CheckURL(a name resolving to 169.254.169.254) = %v; want ErrLinkLocal", err)
	}
	// At delivery, the dialer refuses the address it would connect to.
	_, err := notify.GuardedClient(time.Second).Post("http://169.254.169.254/", "application/json", nil)
	if !errors.Is(err, notify.ErrLinkLocal) {
		t.Errorf("GuardedClient().Post(169.254.169.254) = %v; want ErrLinkLocal", err)
	}
}

func TestRetries(t *testing.T) {
	b := newBakery(t, notify.Options{MaxAttempts: 3})
	flaky := newReceiver(t, 500, 503)
	down := newReceiver(t, 500, 500, 500, 500)
	b.targets(t, store.NotifyTarget{URL: flaky.URL + "/flaky", Events: []string{notify.BakeStarted}},
		store.NotifyTarget{URL: down.URL + "/down", Events: []string{notify.BakeFailed}})
	if err := b.n.Emit(t.Context(), notify.Event{Event: notify.BakeStarted, Project: "web", Bake: 1}); err != nil {
		t.Fatal(err)
	}
	if err := b.n.Emit(t.Context(), notify.Event{Event: notify.BakeFailed, Project: "web", Bake: 1}); err != nil {
		t.Fatal(err)
	}
	d := b.waitDelivery(t, notify.BakeStarted, store.DeliveryDelivered)
	if d.Attempts != 3 || d.LastError != "" {
		t.Errorf("flaky delivery = %+v; want delivered on attempt 3", d)
	}
	d = b.waitDelivery(t, notify.BakeFailed, store.DeliveryFailed)
	if d.Attempts != 3 || !strings.Contains(d.LastError, "500") || strings.Contains(d.Target, "/down") {
		t.Errorf("failed delivery = %+v; want 3 attempts, the 500 shown, the URL cut to its host", d)
	}
}

func TestDeliveredOnce(t *testing.T) {
	b := newBakery(t, notify.Options{})
	rcv := newReceiver(t)
	b.targets(t, store.NotifyTarget{URL: rcv.URL + "/once"})
	ev := notify.Event{Event: notify.BakeStarted, Project: "web", Bake: 42}
	// Emitted twice (a bake resumed after a restart emits it again).
	for range 2 {
		if err := b.n.Emit(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	rcv.next(t)
	b.waitDelivery(t, notify.BakeStarted, store.DeliveryDelivered)
	// The job run again, as River does with a job a dead server had
	// fetched: the delivery row makes it skip.
	if _, err := b.jobs.Insert(t.Context(), notify.JobArgs{ID: ev.ID(), Target: rcv.URL + "/once", Event: ev}, nil); err != nil {
		t.Fatal(err)
	}
	marker := notify.Event{Event: notify.BakeSucceeded, Project: "web", Bake: 42}
	if err := b.n.Emit(t.Context(), marker); err != nil {
		t.Fatal(err)
	}
	b.waitDelivery(t, notify.BakeSucceeded, store.DeliveryDelivered)
	waitJobsDone(t, b.jobs)
	close(rcv.got)
	var events []string
	for q := range rcv.got {
		var e notify.Event
		_ = json.Unmarshal(q.body, &e)
		events = append(events, e.Event)
	}
	if len(events) != 1 || events[0] != notify.BakeSucceeded {
		t.Errorf("after the first delivery, the receiver got %v; want only bake.succeeded", events)
	}
}

// waitJobsDone waits until no notify job is left to run.
func waitJobsDone(t *testing.T, jobs *store.Jobs) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		left, err := jobs.JobList(t.Context(), river.NewJobListParams().Kinds(notify.JobKind).
			States("available", "running", "retryable", "scheduled", "pending"))
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d notify jobs left", len(left))
		}
		time.Sleep(10 * time.Millisecond) // polls River's table: no completion event on SQLite
	}
}
