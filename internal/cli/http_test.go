package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"kiln/internal/engine"
)

func TestMux(t *testing.T) {
	g, err := engine.NewGraph("empty", nil)
	if err != nil {
		t.Fatal(err)
	}
	m := newMonitoring()
	mux := m.mux(engine.New(g, engine.Options{Metrics: m.metrics}), nil)
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
