package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestMount(t *testing.T) {
	reg := NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "kiln_test_total", Help: "A test counter."})
	reg.MustRegister(c)
	c.Add(3)
	var fail error
	mux := http.NewServeMux()
	ready := func(context.Context) (map[string]any, error) {
		return map[string]any{"failed": []string{"aws:ec2/web"}}, errors.New("not converged")
	}
	Mount(mux, reg, func(context.Context) (map[string]any, error) {
		if fail != nil {
			return nil, fail
		}
		return map[string]any{"resources": 2}, nil
	}, ready)
	get := func(method, path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		return rec
	}

	rec := get("GET", "/metrics")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "kiln_test_total 3") || !strings.Contains(rec.Body.String(), "go_goroutines") {
		t.Errorf("/metrics = %d %q; want the counter and the Go collector", rec.Code, rec.Body.String())
	}

	rec = get("GET", "/healthz")
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != 200 || body["status"] != "ok" || body["resources"] != float64(2) {
		t.Errorf("/healthz = %d %q (%v); want 200 ok with the details", rec.Code, rec.Body.String(), err)
	}

	fail = errors.New("database unavailable")
	rec = get("GET", "/healthz")
	body = nil
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != 503 || body["status"] != "database unavailable" || body["resources"] != nil {
		t.Errorf("/healthz when failing = %d %q (%v); want 503 with the reason only", rec.Code, rec.Body.String(), err)
	}

	rec = get("GET", "/readyz")
	if rec.Code != 503 || rec.Body.String() != `{"failed":["aws:ec2/web"],"status":"not converged"}`+"\n" {
		t.Errorf("/readyz = %d %q; want 503 with the failed resources", rec.Code, rec.Body.String())
	}

	if rec := get("POST", "/healthz"); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz = %d; want 405", rec.Code)
	}
}
