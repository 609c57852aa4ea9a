package cli

import (
	"github.com/prometheus/client_golang/prometheus"

	"kiln/internal/engine"
)

// newEngineMetrics registers the engine's metrics in reg.
func newEngineMetrics(reg prometheus.Registerer) *engine.Metrics { return engine.NewMetrics(reg) }
