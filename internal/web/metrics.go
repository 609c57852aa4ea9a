package web

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"kiln/internal/bakery"
	"kiln/internal/store"
)

// Metrics are the bakery's Prometheus metrics:
//
//	kiln_bakes{state}                          bakes in the database by state (read at scrape time)
//	kiln_webhook_deliveries_total{result}      webhook answers: queued, coalesced, duplicate, pong,
//	                                           ignored, unauthorized, not_found, bad_request,
//	                                           too_large, error
//	kiln_bake_step_duration_seconds{step,state} how long finished bake steps took
type Metrics struct {
	deliveries *prometheus.CounterVec
	steps      *prometheus.HistogramVec
}

// NewMetrics registers the metrics in reg; st answers the bakes gauge.
func NewMetrics(reg prometheus.Registerer, st *store.Store) *Metrics {
	m := &Metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiln_webhook_deliveries_total",
			Help: "Webhook deliveries answered, by result.",
		}, []string{"result"}),
		steps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kiln_bake_step_duration_seconds",
			Help: "Duration of finished bake steps, by step and final state.",
			// From a simulated step (milliseconds) to an hour-long image copy.
			Buckets: []float64{0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600},
		}, []string{"step", "state"}),
	}
	reg.MustRegister(m.deliveries, m.steps)
	if st != nil {
		reg.MustRegister(&bakesCollector{st: st})
	}
	return m
}

// ObserveStep records one finished step. It never blocks.
func (m *Metrics) ObserveStep(step string, state store.StepState, d time.Duration) {
	m.steps.WithLabelValues(step, string(state)).Observe(d.Seconds())
}

// Follow observes step durations from src's notifications until ctx is
// done: each time a step of a bake finishes, its recorded start and finish
// times are read back from st. It blocks; run it beside the bake service.
func (m *Metrics) Follow(ctx context.Context, src ProgressSource, st *store.Store) error {
	ch, unsubscribe := src.Subscribe(0)
	defer unsubscribe()
	for {
		var p bakery.Progress
		select {
		case <-ctx.Done():
			return nil
		case p = <-ch:
		}
		if p.Step == "" || p.StepState == "" || p.StepState == store.StepRunning || p.Remote {
			continue // Remote: the server that ran the step counts it
		}
		steps, err := st.Steps(ctx, p.BakeID)
		if err != nil {
			continue // the bake's project was deleted, or we are stopping
		}
		for _, s := range steps {
			if s.Name == p.Step && !s.Finished.IsZero() {
				m.ObserveStep(s.Name, s.State, s.Finished.Sub(s.Started))
			}
		}
	}
}

// countDeliveries wraps the webhook handler and counts its answers by
// result. The handler's 2xx bodies are tiny JSON objects whose status field
// tells a queued push from a ping or an ignored event.
func (m *Metrics) countDeliveries(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		m.deliveries.WithLabelValues(deliveryResult(rec.status, rec.body.Bytes())).Inc()
	})
}

func deliveryResult(status int, body []byte) string {
	switch status {
	case http.StatusOK, http.StatusAccepted, 0:
		var v struct {
			Status    string `json:"status"`
			Coalesced bool   `json:"coalesced"`
			Duplicate bool   `json:"duplicate"`
		}
		_ = json.Unmarshal(body, &v)
		switch {
		case v.Duplicate:
			return "duplicate"
		case v.Coalesced:
			return "coalesced"
		case v.Status == "queued", v.Status == "pong", v.Status == "ignored":
			return v.Status
		}
		return "ok"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusBadRequest:
		return "bad_request"
	case http.StatusRequestEntityTooLarge:
		return "too_large"
	case http.StatusMethodNotAllowed:
		return "bad_method"
	}
	return "error"
}

// recorder keeps the status and the first bytes of a response.
type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

// maxRecorded bounds what recorder keeps of a body.
const maxRecorded = 512

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if n := maxRecorded - r.body.Len(); n > 0 {
		r.body.Write(p[:min(n, len(p))])
	}
	return r.ResponseWriter.Write(p)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// bakesCollector reads the number of bakes per state from the database at
// scrape time, so the figure is right across restarts and processes.
type bakesCollector struct{ st *store.Store }

var bakesDesc = prometheus.NewDesc("kiln_bakes", "Bakes in the database, by state.", []string{"state"}, nil)

// scrapeTimeout bounds the database queries of one scrape.
const scrapeTimeout = 5 * time.Second

func (c *bakesCollector) Describe(ch chan<- *prometheus.Desc) { ch <- bakesDesc }

func (c *bakesCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	for _, st := range []store.BakeState{store.Queued, store.Running, store.Succeeded, store.Failed, store.Cancelled} {
		n, err := c.st.CountBakes(ctx, store.BakeQuery{States: []store.BakeState{st}})
		if err != nil {
			ch <- prometheus.NewInvalidMetric(bakesDesc, err)
			return
		}
		ch <- prometheus.MustNewConstMetric(bakesDesc, prometheus.GaugeValue, float64(n), string(st))
	}
}
