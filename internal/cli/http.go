package cli

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"kiln/internal/engine"
	"kiln/internal/events"
	"kiln/internal/monitor"
	"kiln/internal/ui"
)

// monitoring is the Prometheus registry of one run and the engine's
// metrics registered in it.
type monitoring struct {
	reg     *prometheus.Registry
	metrics *engine.Metrics
	orphans *orphanSet // what run last found orphaned
	// accounts are the resources' accounts (runaccounts.go)
	accounts resourceAccounts
}

func newMonitoring() *monitoring {
	reg := monitor.NewRegistry()
	return &monitoring{reg: reg, metrics: newEngineMetrics(reg), orphans: newOrphanSet(reg)}
}

// mux is run's HTTP surface: the graph page (/, live at ui.EventsPath),
// /metrics and /healthz (monitor.Mount) and, when evh is not nil, the
// events receiver at events.Path (POST /events/aws; the handler answers
// other methods with 405 itself). It is a plain ServeMux so that more
// handlers mount beside these, one line each.
func (m *monitoring) mux(eng ui.EngineView, graph string, evh http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	monitor.Mount(mux, m.reg, engineHealth(eng), withOrphans(engineReady(eng), m.orphans))
	page := ui.EnginePageWithAccounts(eng, graph, m.orphans.page, m.accounts.get)
	mux.Handle("GET /{$}", page)
	mux.Handle("GET "+ui.EventsPath, page)
	if evh != nil {
		mux.Handle(events.Path, evh)
	}
	return mux
}

// engineHealth is healthy while the engine runs (the process answers),
// with a count of vertex states; whether the graph is converged is
// engineReady's.
func engineHealth(eng ui.EngineView) monitor.Check {
	return func(context.Context) (map[string]any, error) {
		states := map[engine.State]int{}
		st := eng.Status()
		for _, s := range st {
			states[s.State]++
		}
		return map[string]any{"resources": len(st), "states": states}, nil
	}
}

// engineReady is ready once every resource has converged and none has
// failed or is blocked now; a resource being re-checked after drift (its
// last check passed) keeps it ready. Not ready, it lists the resources
// that keep it so.
func engineReady(eng ui.EngineView) monitor.Check {
	return func(context.Context) (map[string]any, error) {
		var failed, blocked, converging []string
		for _, s := range eng.Status() {
			switch {
			case s.State == engine.StateFailed:
				failed = append(failed, s.ID)
			case s.State == engine.StateBlocked:
				blocked = append(blocked, s.ID)
			case s.State != engine.StateConverged && (s.Checks == 0 || s.LastError != ""):
				converging = append(converging, s.ID)
			}
		}
		if len(failed)+len(blocked) > 0 {
			return map[string]any{"failed": nonNil(failed), "blocked": nonNil(blocked)}, errors.New("not converged")
		}
		if len(converging) > 0 {
			return map[string]any{"converging": converging}, errors.New("converging")
		}
		return nil, nil
	}
}

// withOrphans adds the orphaned resources to a readiness check's details:
// they do not make run unready (it keeps what it lists converged), but
// an operator looking at /readyz sees them.
func withOrphans(check monitor.Check, orphans *orphanSet) monitor.Check {
	return func(ctx context.Context) (map[string]any, error) {
		details, err := check(ctx)
		if ids := orphans.get(); len(ids) > 0 {
			if details == nil {
				details = map[string]any{}
			}
			details["orphaned"] = ids
		}
		return details, err
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
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
