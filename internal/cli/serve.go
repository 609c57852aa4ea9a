package cli

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"kiln/internal/audit"
	"kiln/internal/auth"
	"kiln/internal/awsapi"
	"kiln/internal/awssim"
	"kiln/internal/bakery"
	"kiln/internal/events"
	"kiln/internal/hook"
	"kiln/internal/monitor"
	"kiln/internal/notify"
	"kiln/internal/store"
	"kiln/internal/ui"
	"kiln/internal/web"
)

// Defaults of kiln serve, shared with the client commands.
const (
	defaultServeListen = "127.0.0.1:8080"
	defaultServer      = "http://" + defaultServeListen
	defaultDB          = "kiln.db"
)

type serveOptions struct {
	listen    string
	db        string
	sim       simFlags
	events    eventsFlags
	addrFile  string
	publicURL string
	lease     time.Duration
	awsShare  float64
	oidc      oidcFlags
	tlsCert   string
	tlsKey    string
	secretKey secretKeyFlags
}

// oidcFlags are kiln serve's single sign-on settings.
type oidcFlags struct {
	issuer, clientID, clientSecret, groupsClaim, roleMap string
}

func (o *oidcFlags) register(f *pflag.FlagSet) {
	f.StringVar(&o.issuer, "oidc-issuer", "", "sign in through this OpenID Connect provider (its issuer URL; default $KILN_OIDC_ISSUER)")
	f.StringVar(&o.clientID, "oidc-client-id", "", "kiln's client id at the provider (default $KILN_OIDC_CLIENT_ID)")
	f.StringVar(&o.clientSecret, "oidc-client-secret", "", "kiln's client secret at the provider (default $KILN_OIDC_CLIENT_SECRET; prefer the variable: flags show in ps)")
	f.StringVar(&o.groupsClaim, "oidc-groups-claim", "groups", "the ID token's claim that lists the user's groups")
	f.StringVar(&o.roleMap, "role-map", auth.DefaultRoleMap, "groups to roles: ROLE=GROUP,... (a user gets the highest role of their groups; GROUP * is every user)")
}

// config is the pages' single sign-on, nil when no issuer is set. The
// provider's redirect comes back to publicURL (else the request's host)
// at /login/oidc/callback.
func (o *oidcFlags) config(publicURL string) (*ui.OIDC, error) {
	issuer := firstNonEmpty(o.issuer, os.Getenv("KILN_OIDC_ISSUER"))
	if issuer == "" {
		return nil, nil
	}
	c := &ui.OIDC{
		Issuer:       issuer,
		ClientID:     firstNonEmpty(o.clientID, os.Getenv("KILN_OIDC_CLIENT_ID")),
		ClientSecret: firstNonEmpty(o.clientSecret, os.Getenv("KILN_OIDC_CLIENT_SECRET")),
		GroupsClaim:  o.groupsClaim,
	}
	if c.ClientID == "" {
		return nil, errors.New("--oidc-issuer needs --oidc-client-id (or KILN_OIDC_CLIENT_ID)")
	}
	roles, err := auth.ParseRoleMap(o.roleMap)
	if err != nil {
		return nil, fmt.Errorf("--role-map: %w", err)
	}
	c.Roles = roles
	if publicURL != "" {
		c.RedirectURL = strings.TrimSuffix(publicURL, "/") + "/login/oidc/callback"
	}
	return c, nil
}

func newServeCmd(a *app) *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the image bakery: webhooks, the API and the bake workers",
		Long: `Serve runs the bakery in one process: the webhook endpoint
(POST /hooks/{project}, authenticated by signature), the JSON API under /api
(admin token required), /healthz, /metrics, and the workers that bake.

State lives in one database (--db, or KILN_DB), migrated at start-up: a
SQLite file (default kiln.db in the working directory), or PostgreSQL
(--db postgres://user@host:5432/kiln). Bakes are durable jobs in the same
database, so a restarted server resumes them. Several servers on one
PostgreSQL database are one bakery: a webhook may reach any of them, each
bake runs on one server at a time, and a server that dies has its bakes
taken over by another once its lease (--lease) has run out. A SQLite file
serves one server: a second kiln serve on the same file refuses to start.

The admin token is KILN_TOKEN when set. Otherwise the first start generates
one and prints it once; the database keeps only its hash. It has the admin
role and is the break-glass: give people personal tokens (kiln token
create) with their role, or sign-in through an OpenID Connect provider
(--oidc-issuer, --oidc-client-id, KILN_OIDC_CLIENT_SECRET) whose groups
claim maps to roles by --role-map. Every change is in the audit log
(kiln audit).

With --sim the EC2 simulator runs inside the process on a loopback port,
its clock sped up (--sim-time-scale; at 0.01 a bake takes seconds), and the
bakes go to it, its state-change events pushed to this server: no AWS account
needed. Without --sim the standard AWS configuration is used (AWS_REGION,
profiles, AWS_ENDPOINT_URL).

With --events-queue QUEUE_URL (repeatable), bake steps waiting for an
instance or an image wake on its events from an SQS queue that an
EventBridge rule fills (kiln events setup), long-polled: no endpoint that
AWS must reach.

SIGINT or SIGTERM stops taking requests and jobs, stops the running bakes
at a safe point (a restart resumes them) and exits.` + serverExitHelp,
		Example: `  kiln serve --sim                       # a demo bakery on 127.0.0.1:8080
  KILN_TOKEN=... kiln serve --db /var/lib/kiln/kiln.db --listen :8080
  KILN_DB=postgres://kiln@db.internal:5432/kiln kiln serve --listen :8080   # one of several servers`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Read here, not as the flag's default: --help must not print a
			// DSN's password.
			if v := os.Getenv("KILN_DB"); v != "" && !cmd.Flags().Changed("db") {
				o.db = v
			}
			return a.serve(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", defaultServeListen, "serve on this address (host:port; port 0 picks a free one)")
	f.StringVar(&o.db, "db", defaultDB, "the database: a SQLite file, created when missing, or a postgres:// URL (default $KILN_DB when set)")
	f.Float64Var(&o.awsShare, "aws-share", 1, "this server's share of the account's EC2 request rate (0 < F <= 1): give each of N servers of one bakery 1/N, so that together they stay within AWS's throttling")
	f.DurationVar(&o.lease, "lease", bakery.DefaultLease, "how long this server's bakes and bakery leadership outlive it unrenewed: another server takes them over after that")
	o.sim.register(f)
	o.events.register(f)
	a.registerRetryTimeout(f)
	o.oidc.register(f)
	o.secretKey.register(f)
	f.StringVar(&o.tlsCert, "tls-cert", "", "serve HTTPS with this certificate (PEM; with --tls-key)")
	f.StringVar(&o.tlsKey, "tls-key", "", "the private key of --tls-cert (PEM)")
	f.StringVar(&o.addrFile, "addr-file", "", "write the server's URL to this file once it listens (for scripts)")
	f.StringVar(&o.publicURL, "public-url", "", "the URL webhook senders reach this server at (default: as each request came in)")
	return cmd
}

// awsReady checks at start, as run does, that the bakery has AWS
// credentials (the simulator needs none). Without them the server still
// starts (projects and webhooks work), warns, and answers /readyz not ready
// with the reason: no bake can make progress until a restart with
// credentials.
func awsReady(ctx context.Context, a *app, hubs *awsapi.Hubs, sim bool) monitor.Check {
	if sim {
		return nil
	}
	err := hubs.CheckCredentials(ctx)
	if err == nil {
		return nil
	}
	reason := err.Error()
	if ce, ok := errors.AsType[*awsapi.CredentialsError](err); ok {
		reason = ce.Short()
	}
	a.log.Warn("no usable AWS credentials: bakes cannot run; /readyz answers not ready", "err", err)
	return func(context.Context) (map[string]any, error) { return nil, errors.New(reason) }
}

func (a *app) serve(ctx context.Context, o serveOptions) error {
	if err := o.sim.check("kiln serve"); err != nil {
		return err
	}
	if o.awsShare <= 0 || o.awsShare > 1 {
		return &usageError{cmd: "kiln serve", err: fmt.Errorf("--aws-share %v: want a fraction in (0, 1]", o.awsShare)}
	}
	a.aws.RateLimit.Share = o.awsShare
	if o.lease < 300*time.Millisecond {
		return &usageError{cmd: "kiln serve", err: fmt.Errorf("--lease %v: want at least 300ms", o.lease)}
	}
	sso, err := o.oidc.config(o.publicURL)
	if err != nil {
		return &usageError{cmd: "kiln serve", err: err}
	}
	tlsConfig, err := loadTLS(o.tlsCert, o.tlsKey)
	if err != nil {
		return &usageError{cmd: "kiln serve", err: err}
	}
	keys, err := o.secretKey.keyring(ctx)
	if err != nil {
		return &usageError{cmd: "kiln serve", err: err}
	}
	if !store.IsPostgres(o.db) {
		// One server per SQLite file: a second one would run a bakery of
		// its own on it. Several servers need PostgreSQL. A restart right
		// after a crash waits a moment for the dead holder's lock to go.
		lock, err := store.LockSQLiteWait(o.db, 3*time.Second)
		if err != nil {
			return err
		}
		defer lock.Release()
	}
	st, err := store.Open(ctx, o.db)
	if err != nil {
		return err
	}
	defer st.Close()
	resealed, err := sealSecrets(ctx, st, keys)
	if err != nil {
		return err
	}
	if resealed < 0 {
		a.log.Warn("secrets are kept in clear text in the database: give a key with --secret-key-file or KILN_SECRET_KEY, or an AWS KMS key with --kms-key-id or KILN_KMS_KEY_ID")
	} else if resealed > 0 {
		a.log.Info("secrets re-sealed under the current key", "count", resealed)
	}
	hash, source, generated, err := web.AdminToken(ctx, st.DB(), os.Getenv("KILN_TOKEN"))
	if err != nil {
		return err
	}
	if generated != "" {
		fmt.Fprintf(a.stdout, "Admin token (shown only this once; the database keeps its hash):\n\n  export KILN_TOKEN=%s\n\n", generated)
	}

	// Listen first: the simulator needs the events receiver's address.
	eventsKey, err := o.events.key(o.sim.on)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	defer ln.Close()
	url := "http://" + ln.Addr().String()
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
		url = "https://" + ln.Addr().String()
	}
	var push []awssim.EventTarget
	// With --events-queue the simulator fills the queue instead; over TLS
	// it could not verify this server's certificate, and bakes poll.
	if o.sim.on && len(o.events.queues) == 0 && tlsConfig == nil {
		// As EventBridge would through an API destination: bakes wake on
		// state-change events rather than on polls.
		push = []awssim.EventTarget{{URL: eventsURL(ln), APIKey: eventsKey}}
	}
	sim, err := a.startSim(o.sim, push)
	if err != nil {
		return err
	}
	hubs := a.awsHubs()
	ready := awsReady(ctx, a, hubs, o.sim.on)
	inserts, err := st.NewRiverClient(nil, nil)
	if err != nil {
		return err
	}
	notifier := notify.New(st, inserts, notify.Options{PublicURL: cmp.Or(o.publicURL, url), Log: a.log.With("component", "notify")})
	svc, err := bakery.NewService(st, hubs, a.log.With("component", "bake"), bakery.Options{Lease: o.lease, Notifier: notifier})
	if err != nil {
		return err
	}

	reg := monitor.NewRegistry()
	srv := web.New(web.Config{
		Store:     st,
		Bakery:    svc,
		Hooks:     hook.NewHandler(svc.Queue(), a.log.With("component", "hooks")),
		Token:     hash,
		PublicURL: o.publicURL,
		Ready:     ready,
		Registry:  reg,
		Log:       a.log.With("component", "api"),
	})
	srv.Handle("POST "+events.Path, events.New(hubs, events.Options{
		APIKey: eventsKey, Topics: o.events.topics, Log: a.log.With("component", "events"),
	}))
	srv.Handle("/", ui.Bakery(ui.BakeryConfig{
		Records: st, Sessions: st, Service: svc, CheckToken: hash.Match, Tokens: st, OIDC: sso, PublicURL: o.publicURL,
		Audit: audit.New(st, a.log.With("component", "audit")),
		Log:   a.log.With("component", "ui"),
	}))

	a.log.Info("serving", "url", url, "db", st.Name(), "server", svc.ServerID(), "token", source, "sim", o.sim.on,
		"eventbridge", eventsKey != "", "sns_topics", len(o.events.topics))
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
	a.runAWS(awsCtx, g, sim)
	if err := a.startQueues(awsCtx, g, o.events.queues, o.sim.on, reg); err != nil {
		stopAWS()
		_ = g.Wait()
		return err
	}
	g.Go(func() error {
		defer stopAWS()
		return svc.Run(gctx)
	})
	g.Go(func() error { return srv.Metrics().Follow(gctx, svc, st) })
	g.Go(func() error { return serveHTTP(gctx, ln, srv, a.log) })
	err = g.Wait()
	a.log.Info("stopped")
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// loadTLS reads the certificate and key of --tls-cert and --tls-key; nil
// when neither is set (plain HTTP, for behind a TLS proxy).
func loadTLS(certFile, keyFile string) (*tls.Config, error) {
	if certFile == "" && keyFile == "" {
		return nil, nil
	}
	if certFile == "" || keyFile == "" {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert %s, --tls-key %s: %w", certFile, keyFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
