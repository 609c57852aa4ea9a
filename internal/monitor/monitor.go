// Package monitor is the one place kiln's processes serve their health and
// metrics from: `kiln run --listen` and `kiln serve` both mount GET
// /metrics (Prometheus' text format, from one registry) and GET /healthz
// (JSON: 200 {"status":"ok", ...} while the process's Check passes, 503
// {"status": "<why>"} when it fails) through Mount.
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

// A Check says whether the process is healthy. Healthy, it returns what
// /healthz adds beside "status": "ok" (nil for nothing); unhealthy, an
// error whose text becomes the status of a 503.
type Check func(ctx context.Context) (details map[string]any, err error)

// Mount serves GET /metrics from reg and GET /healthz from check on mux.
// Other methods get 405 from the mux.
func Mount(mux *http.ServeMux, reg *prometheus.Registry, check Check) {
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.Handle("GET /healthz", healthz(check))
}

func healthz(check Check) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := map[string]any{}
		status := http.StatusOK
		details, err := check(r.Context())
		if err != nil {
			status = http.StatusServiceUnavailable
			body["status"] = err.Error()
		} else {
			for k, v := range details {
				body[k] = v
			}
			body["status"] = "ok"
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(body)
	})
}
