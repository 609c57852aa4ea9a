package engine

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the engine's Prometheus series. One Metrics may be shared by
// several engines (the bakery runs one per bake): counters and the per-state
// gauge add up; the converged gauge is set by whichever engine changed last.
type Metrics struct {
	checks    *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	errors    *prometheus.CounterVec
	events    *prometheus.CounterVec
	converged prometheus.Gauge
	vertices  *prometheus.GaugeVec

	mu    sync.Mutex
	kinds map[string]*kindMetrics
	state map[State]prometheus.Gauge
}

// kindMetrics are the series of one resource kind, bound once so the hot path
// does no label lookups.
type kindMetrics struct {
	checks, errors, events prometheus.Counter
	duration               prometheus.Observer
}

// NewMetrics makes the engine's series and registers them with reg (nil:
// not registered, e.g. in tests). It panics if they are already registered
// with reg, like prometheus.MustRegister.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiln_engine_checkapply_total",
			Help: "CheckApply calls, by resource kind.",
		}, []string{"kind"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kiln_engine_checkapply_duration_seconds",
			Help:    "CheckApply duration, by resource kind.",
			Buckets: []float64{.0001, .001, .01, .1, .5, 1, 5, 30, 120, 600},
		}, []string{"kind"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiln_engine_checkapply_errors_total",
			Help: "CheckApply (or Refresh) calls that failed, by resource kind.",
		}, []string{"kind"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiln_engine_events_total",
			Help: "Changed events reported by Watch (and poll ticks), by resource kind.",
		}, []string{"kind"}),
		converged: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kiln_engine_converged",
			Help: "1 when every vertex of the graph is converged and idle.",
		}),
		vertices: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kiln_engine_vertices",
			Help: "Vertices per state.",
		}, []string{"state"}),
		kinds: map[string]*kindMetrics{},
		state: map[State]prometheus.Gauge{},
	}
	if reg != nil {
		reg.MustRegister(m.checks, m.duration, m.errors, m.events, m.converged, m.vertices)
	}
	return m
}

func (m *Metrics) kind(kind string) *kindMetrics {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := m.kinds[kind]
	if k == nil {
		k = &kindMetrics{
			checks:   m.checks.WithLabelValues(kind),
			errors:   m.errors.WithLabelValues(kind),
			events:   m.events.WithLabelValues(kind),
			duration: m.duration.WithLabelValues(kind),
		}
		m.kinds[kind] = k
	}
	return k
}

// moveState counts one vertex out of from (if not "") and into to (if not "").
func (m *Metrics) moveState(from, to State) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	g := func(s State) prometheus.Gauge {
		x := m.state[s]
		if x == nil {
			x = m.vertices.WithLabelValues(string(s))
			m.state[s] = x
		}
		return x
	}
	if from != "" {
		g(from).Dec()
	}
	if to != "" {
		g(to).Inc()
	}
}

func (m *Metrics) setConverged(ok bool) {
	if m == nil {
		return
	}
	if ok {
		m.converged.Set(1)
	} else {
		m.converged.Set(0)
	}
}
