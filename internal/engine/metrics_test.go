package engine

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		m := NewMetrics(reg)
		bad := &fake{check: func(context.Context, bool, int) (bool, error) { return false, errBoom }}
		good := &fake{}
		e := New(mustGraph(t, spec("good", good), spec("bad", bad), spec("blocked", &fake{}, id("bad"))), Options{Metrics: m})
		stop := start(t, e)
		synctest.Wait()
		good.events().Changed()
		synctest.Wait()

		tests := []struct {
			name string
			c    prometheus.Collector
			want float64
		}{
			{"checks", m.checks.WithLabelValues("test"), 3},
			{"errors", m.errors.WithLabelValues("test"), 1},
			{"events", m.events.WithLabelValues("test"), 1},
			{"converged", m.converged, 0},
			{"converged vertices", m.vertices.WithLabelValues(string(StateConverged)), 1},
			{"failed vertices", m.vertices.WithLabelValues(string(StateFailed)), 1},
			{"blocked vertices", m.vertices.WithLabelValues(string(StateBlocked)), 1},
		}
		for _, tt := range tests {
			if got := value(t, tt.c); got != tt.want {
				t.Errorf("%s = %v; want %v", tt.name, got, tt.want)
			}
		}
		var h dto.Metric
		if err := m.duration.WithLabelValues("test").(prometheus.Metric).Write(&h); err != nil || h.GetHistogram().GetSampleCount() != 3 {
			t.Errorf("duration samples = %d (%v); want 3", h.GetHistogram().GetSampleCount(), err)
		}
		_ = stop()
		if got := value(t, m.vertices.WithLabelValues(string(StateConverged))); got != 0 {
			t.Errorf("converged vertices after Run = %v; want 0 (shared Metrics add up)", got)
		}
	})
}

func TestMetricsConvergedGauge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := NewMetrics(nil)
		stop := start(t, New(mustGraph(t, spec("a", &fake{})), Options{Metrics: m}))
		synctest.Wait()
		if got := value(t, m.converged); got != 1 {
			t.Errorf("converged = %v; want 1", got)
		}
		_ = stop()
	})
}

// value reads a counter or gauge.
func value(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.(prometheus.Metric).Write(&m); err != nil {
		t.Fatalf("Write() = %v", err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}
