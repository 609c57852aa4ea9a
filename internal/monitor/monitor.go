// Package monitor is the one place kiln's processes serve their health and
// metrics from: `kiln run --listen` and `kiln serve` both mount, through
// Mount, GET /metrics (Prometheus' text format, from one registry), GET
// /healthz (alive: the process can do its work) and GET /readyz (ready:
// kiln run's graph is converged). Both answer JSON: 200 {"status":"ok",
// ...} while their Check passes, 503 {"status":"<why>", ...} when it
// fails.
package monitor

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry is a registry with the Go runtime's and the process's
// collectors, for the process's own metrics to join.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// A Check says whether the process is healthy (or ready). It returns what
// the answer adds beside "status" (nil for nothing) and, when it fails, an
// error whose text becomes the status of a 503.
type Check func(ctx context.Context) (details map[string]any, err error)

// Mount serves GET /metrics from reg, GET /healthz from health and GET
// /readyz from ready on mux. Other methods get 405 from the mux.
func Mount(mux *http.ServeMux, reg *prometheus.Registry, health, ready Check) {
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.Handle("GET /healthz", answer(health))
	mux.Handle("GET /readyz", answer(ready))
}

func answer(check Check) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		details, err := check(r.Context())
		body := make(map[string]any, len(details)+1)
		for k, v := range details {
			body[k] = v
		}
		status := http.StatusOK
		body["status"] = "ok"
		if err != nil {
			status = http.StatusServiceUnavailable
			body["status"] = err.Error()
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(body)
	})
}
