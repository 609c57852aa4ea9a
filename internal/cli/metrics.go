package cli

import (
	"github.com/prometheus/client_golang/prometheus"

	"kiln/internal/engine"
)

// newEngineMetrics registers the engine's metrics in reg.
// TODO: engine.NewMetrics(reg) once the engine package provides it.
func newEngineMetrics(prometheus.Registerer) *engine.Metrics { return nil }
