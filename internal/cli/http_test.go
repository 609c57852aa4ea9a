package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"kiln/internal/awsapi"
	"kiln/internal/config"
	"kiln/internal/engine"
	"kiln/internal/events"
	"kiln/internal/resources"
)

func TestMux(t *testing.T) {
	g, err := engine.NewGraph("empty", nil)
	if err != nil {
		t.Fatal(err)
	}
	m := newMonitoring()
	mux := m.mux(engine.New(g, engine.Options{Metrics: m.metrics}), "g", nil)
	tests := []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/metrics", http.StatusOK, "go_goroutines"},
		{"GET", "/healthz", http.StatusOK, `"status":"ok"`},
		{"POST", "/healthz", http.StatusMethodNotAllowed, ""},
		{"GET", "/nope", http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
		if rec.Code != tt.code || !strings.Contains(rec.Body.String(), tt.body) {
			t.Errorf("%s %s = %d %q; want %d containing %q", tt.method, tt.path, rec.Code, rec.Body.String(), tt.code, tt.body)
		}
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	var h struct {
		Status    string `json:"status"`
		Resources int    `json:"resources"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &h); err != nil || h.Status != "ok" {
		t.Errorf("/healthz body %q: %v", rec.Body.String(), err)
	}
}

type recordSink struct{ got []awsapi.Event }

func (r *recordSink) Deliver(ev awsapi.Event) { r.got = append(r.got, ev) }

// TestMuxEvents: with an events handler, run's mux serves the receiver at
// POST /events/aws, and only an authenticated delivery reaches the hubs.
func TestMuxEvents(t *testing.T) {
	g, err := engine.NewGraph("empty", nil)
	if err != nil {
		t.Fatal(err)
	}
	m := newMonitoring()
	sink := &recordSink{}
	mux := m.mux(engine.New(g, engine.Options{Metrics: m.metrics}), "g", events.New(sink, events.Options{APIKey: "k1"}))
	event := `{"version":"0","id":"e1","detail-type":"EC2 Instance State-change Notification","source":"aws.ec2",` +
		`"account":"123456789012","time":"2026-01-01T00:00:00Z","region":"us-east-1",` +
		`"resources":["arn:aws:ec2:us-east-1:123456789012:instance/i-0abc"],"detail":{"instance-id":"i-0abc","state":"stopped"}}`
	tests := []struct {
		name, method, key string
		code, routed      int
	}{
		{"no key", "POST", "", http.StatusUnauthorized, 0},
		{"wrong key", "POST", "k2", http.StatusUnauthorized, 0},
		{"not a POST", "GET", "k1", http.StatusMethodNotAllowed, 0},
		{"delivered", "POST", "k1", http.StatusOK, 1},
		{"redelivered", "POST", "k1", http.StatusOK, 1},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(tt.method, events.Path, strings.NewReader(event))
		if tt.key != "" {
			req.Header.Set("x-api-key", tt.key)
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if rec.Code != tt.code || len(sink.got) != tt.routed {
			t.Errorf("%s: %s %s = %d, %d routed; want %d, %d", tt.name, tt.method, events.Path, rec.Code, len(sink.got), tt.code, tt.routed)
		}
	}
	if len(sink.got) == 1 && (sink.got[0].Resource != "i-0abc" || sink.got[0].State != "stopped") {
		t.Errorf("routed %+v; want i-0abc stopped", sink.got[0])
	}
	// Without a handler nothing is mounted there.
	rec := httptest.NewRecorder()
	m.mux(engine.New(g, engine.Options{}), "g", nil).ServeHTTP(rec, httptest.NewRequest("POST", events.Path, strings.NewReader(event)))
	if rec.Code != http.StatusNotFound {
		t.Errorf("POST %s with no receiver = %d; want 404", events.Path, rec.Code)
	}
}

// TestReadyz: /readyz is 503 "converging" before the first checks, 200
// once every resource converged, and 503 listing the failed and blocked
// resources when some did not; /healthz stays 200 throughout.
func TestReadyz(t *testing.T) {
	kinds := config.Kinds{
		"noop": func() engine.Resource { return &resources.Noop{} },
		"exec": func() engine.Resource { return &resources.Exec{} },
	}
	for _, tt := range []struct {
		name, graph string
		code        int
		body        string
	}{
		{"converged", "name: g\nresources:\n  - {kind: noop, name: a}\n", 200, `{"status":"ok"}`},
		{"failed", "name: g\nresources:\n  - {kind: exec, name: bad, cmd: \"false\", meta: {retry: 0}}\n  - {kind: noop, name: after, depends_on: [exec/bad]}\n",
			503, `{"blocked":["noop/after"],"failed":["exec/bad"],"status":"not converged"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g, err := config.Parse("g.yaml", []byte(tt.graph), kinds)
			if err != nil {
				t.Fatal(err)
			}
			m := newMonitoring()
			eng := engine.New(g, engine.Options{Once: true, Metrics: m.metrics})
			mux := m.mux(eng, "g", nil)
			get := func(path string) *httptest.ResponseRecorder {
				rec := httptest.NewRecorder()
				mux.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
				return rec
			}
			if rec := get("/readyz"); rec.Code != 503 || !strings.Contains(rec.Body.String(), `"status":"converging"`) {
				t.Errorf("/readyz before the run = %d %q; want 503 converging", rec.Code, rec.Body.String())
			}
			_ = eng.Run(t.Context())
			if rec := get("/readyz"); rec.Code != tt.code || strings.TrimSpace(rec.Body.String()) != tt.body {
				t.Errorf("/readyz = %d %q; want %d %q", rec.Code, rec.Body.String(), tt.code, tt.body)
			}
			if rec := get("/healthz"); rec.Code != 200 {
				t.Errorf("/healthz = %d; want 200 whatever the graph's state", rec.Code)
			}
		})
	}
}
