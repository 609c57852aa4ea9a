package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"kiln/internal/awsapi"
	"kiln/internal/bake"
	"kiln/internal/ec2sim"
	"kiln/internal/events"
	"kiln/internal/store"
	"kiln/internal/web"
)

// Defaults of kiln serve, shared with the client commands.
const (
	defaultServeListen = "127.0.0.1:8080"
	defaultServer      = "http://" + defaultServeListen
	defaultDB          = "kiln.db"
	// defaultSimScale makes a demo bake against the simulator (boot 15 s,
	// stop 30 s, image 3 min, ...) take a few seconds.
	defaultSimScale = 0.01
)

type serveOptions struct {
	listen    string
	db        string
	sim       bool
	simScale  float64
	addrFile  string
	publicURL string
}

func newServeCmd(a *app) *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the image bakery: webhooks, the API and the bake workers",
		Long: `Serve runs the bakery in one process: the webhook endpoint
(POST /hooks/{project}, authenticated by signature), the JSON API under /api
(admin token required), /healthz, /metrics, and the workers that bake.

State lives in one SQLite file (--db, default kiln.db in the working
directory), migrated at start-up; bakes are durable jobs in the same file,
so a restarted server resumes them.

The admin token is KILN_TOKEN when set. Otherwise the first start generates
one and prints it once; the database keeps only its hash.

With --sim the EC2 simulator runs inside the process on a loopback port,
its clock sped up (--sim-scale), and the bakes go to it: no AWS account
needed. Without --sim the standard AWS configuration is used (AWS_REGION,
profiles, AWS_ENDPOINT_URL).

SIGINT or SIGTERM stops taking requests and jobs, stops the running bakes
at a safe point (a restart resumes them) and exits.` + exitCodesHelp,
		Example: `  kiln serve --sim                       # a demo bakery on 127.0.0.1:8080
  KILN_TOKEN=... kiln serve --db /var/lib/kiln/kiln.db --listen :8080`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.serve(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", defaultServeListen, "serve on this address (host:port; port 0 picks a free one)")
	f.StringVar(&o.db, "db", defaultDB, "the database file, created when missing")
	f.BoolVar(&o.sim, "sim", false, "bake against the built-in EC2 simulator instead of AWS")
	f.Float64Var(&o.simScale, "sim-scale", defaultSimScale, "with --sim: the simulator's time scale (1 is real time)")
	f.StringVar(&o.addrFile, "addr-file", "", "write the server's URL to this file once it listens (for scripts)")
	f.StringVar(&o.publicURL, "public-url", "", "the URL webhook senders reach this server at (default: as each request came in)")
	return cmd
}

func (a *app) serve(ctx context.Context, o serveOptions) error {
	if o.sim && o.simScale < 0 {
		return &usageError{cmd: "kiln serve", err: errors.New("--sim-scale must not be negative")}
	}
	st, err := store.Open(ctx, o.db)
	if err != nil {
		return err
	}
	defer st.Close()
	hash, source, generated, err := web.AdminToken(ctx, st.DB(), os.Getenv("KILN_TOKEN"))
	if err != nil {
		return err
	}
	if generated != "" {
		fmt.Fprintf(a.stdout, "Admin token (shown only this once; the database keeps its hash):\n\n  export KILN_TOKEN=%s\n\n", generated)
	}

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", o.listen, err)
	}
	defer ln.Close()
	url := "http://" + ln.Addr().String()

	hubOpts := awsapi.Options{Log: a.log.With("component", "aws")}
	var sim *ec2sim.Server
	var eventsKey string
	if o.sim {
		// The simulator pushes its state-change events to this server, as
		// EventBridge would through an API destination, so bakes wake on
		// events rather than on polls.
		eventsKey = web.GenerateToken()
		sim, err = ec2sim.NewServer("127.0.0.1:0", ec2sim.Options{
			TimeScale: o.simScale,
			Events:    []ec2sim.EventTarget{{URL: url + events.Path, APIKey: eventsKey}},
			Log:       a.log.With("component", "sim"),
		})
		if err != nil {
			return fmt.Errorf("start simulator: %w", err)
		}
		cfg := ec2sim.ClientConfig(sim.URL())
		hubOpts.Config = &cfg
		// The simulator's clock runs fast: re-check often.
		hubOpts.Wait = awsapi.Backoff{Min: 20 * time.Millisecond, Max: 500 * time.Millisecond}
		hubOpts.Retries = awsapi.Backoff{Min: 20 * time.Millisecond, Max: time.Second}
		hubOpts.Poll = time.Second
	}
	hubs := awsapi.NewHubs(hubOpts)
	svc, err := bake.NewService(st, hubs, a.log.With("component", "bake"), bake.Options{})
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	srv := web.New(web.Config{
		Store:     st,
		Bakery:    svc,
		Hooks:     bake.NewHookHandler(svc.Queue(), a.log.With("component", "hooks")),
		Token:     hash,
		PublicURL: o.publicURL,
		Registry:  reg,
		Log:       a.log.With("component", "api"),
	})
	if o.sim {
		srv.Handle("POST "+events.Path, events.New(hubs, events.Options{APIKey: eventsKey, Log: a.log.With("component", "events")}))
	}

	a.log.Info("serving", "url", url, "db", o.db, "token", source, "sim", o.sim)
	if sim != nil {
		a.log.Info("simulator", "url", sim.URL(), "scale", o.simScale)
	}
	if o.addrFile != "" {
		if err := os.WriteFile(o.addrFile, []byte(url+"\n"), 0o644); err != nil {
			return fmt.Errorf("write --addr-file: %w", err)
		}
	}

	g, gctx := errgroup.WithContext(ctx)
	// AWS (or the simulator) outlives the bake workers, which may still be
	// finishing a step when the signal comes.
	awsCtx, stopAWS := context.WithCancel(context.WithoutCancel(gctx))
	defer stopAWS()
	g.Go(func() error {
		defer stopAWS()
		return svc.Run(gctx)
	})
	g.Go(func() error { return hubs.Run(awsCtx) })
	if sim != nil {
		g.Go(func() error { return sim.Run(awsCtx) })
	}
	g.Go(func() error { return srv.Metrics().Follow(gctx, svc, st) })
	g.Go(func() error { return serveHTTP(gctx, ln, srv, a.log) })
	err = g.Wait()
	a.log.Info("stopped")
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
