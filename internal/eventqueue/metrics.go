package eventqueue

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the consumers' counters, labelled by queue name:
//
//	kiln_events_queue_received_total   messages received
//	kiln_events_queue_routed_total     events handed to the router
//	kiln_events_queue_deleted_total    messages deleted after routing
//	kiln_events_queue_dropped_total    messages deleted unrouted, by reason:
//	                                   malformed (not an event) or ignored
//	                                   (an event kiln does not route)
//	kiln_events_queue_errors_total     failed receives and deletes
//	kiln_events_queue_lag_seconds      from a message's arrival in the
//	                                   queue to its receipt
type Metrics struct {
	received, routed, deleted, errors *prometheus.CounterVec
	dropped                           *prometheus.CounterVec
	lag                               *prometheus.HistogramVec
}

// NewMetrics makes the metrics and registers them in reg (nil: nowhere).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kiln_events_queue_" + name, Help: help}, append([]string{"queue"}, labels...))
	}
	m := &Metrics{
		received: counter("received_total", "Messages received from the events queue."),
		routed:   counter("routed_total", "Events from the queue handed to the router."),
		deleted:  counter("deleted_total", "Messages deleted from the queue after routing."),
		errors:   counter("errors_total", "Failed receives and deletes."),
		dropped:  counter("dropped_total", "Messages deleted without routing: malformed (not an event) or ignored (an event kiln does not route).", "reason"),
		lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kiln_events_queue_lag_seconds",
			Help:    "Time from a message's arrival in the queue to its receipt by kiln.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600},
		}, []string{"queue"}),
	}
	if reg != nil {
		reg.MustRegister(m.received, m.routed, m.deleted, m.errors, m.dropped, m.lag)
	}
	return m
}

// queueMetrics are one queue's series.
type queueMetrics struct {
	received, routed, deleted, errors prometheus.Counter
	lag                               prometheus.Observer
	dropped                           func(reason string) prometheus.Counter
}

func (m *Metrics) forQueue(name string) queueMetrics {
	return queueMetrics{
		received: m.received.WithLabelValues(name),
		routed:   m.routed.WithLabelValues(name),
		deleted:  m.deleted.WithLabelValues(name),
		errors:   m.errors.WithLabelValues(name),
		lag:      m.lag.WithLabelValues(name),
		dropped:  func(reason string) prometheus.Counter { return m.dropped.WithLabelValues(name, reason) },
	}
}
