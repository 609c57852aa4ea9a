package cli

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"kiln/internal/engine"
	"kiln/internal/events"
	"kiln/internal/ui"
)

// monitoring is the Prometheus registry of one run and the engine's
// metrics registered in it.
type monitoring struct {
	reg     *prometheus.Registry
	metrics *engine.Metrics
}

func newMonitoring() *monitoring {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return &monitoring{reg: reg, metrics: newEngineMetrics(reg)}
}

// mux is run's HTTP surface: the graph page (/, live at ui.EventsPath),
// /metrics, /healthz and, when evh is not nil,
// the events receiver at events.Path (POST /events/aws; the handler answers
// other methods with 405 itself). It is a plain ServeMux so that more
// handlers mount beside these, one line each.
func (m *monitoring) mux(eng ui.EngineView, graph string, evh http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	mux.Handle("GET /healthz", healthz(eng))
	page := ui.EnginePage(eng, graph)
	mux.Handle("GET /{$}", page)
	mux.Handle("GET "+ui.EventsPath, page)
	if evh != nil {
		mux.Handle(events.Path, evh)
	}
	return mux
}

// healthz answers 200 while the engine runs, with a count of vertex states.
func healthz(eng ui.EngineView) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		states := map[engine.State]int{}
		st := eng.Status()
		for _, s := range st {
			states[s.State]++
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"status":    "ok",
			"resources": len(st),
			"states":    states,
		})
	})
}

// shutdownGrace bounds how long in-flight requests may finish at exit.
const shutdownGrace = 5 * time.Second

// serveHTTP serves h on ln until ctx is done, then shuts down gracefully.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	return g.Wait()
}
