package notify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"kiln/internal/store"
)

// JobKind is the River kind of a delivery job.
const JobKind = "notify"

// CommitStatusTarget is the Target of a commit status delivery.
const CommitStatusTarget = "commit-status"

// JobArgs is one event's delivery to one target: a target URL of the
// project's notify: list, or CommitStatusTarget. It is unique by the
// event's id and the target, so an event emitted twice is queued once.
type JobArgs struct {
	ID     string `json:"id" river:"unique"`
	Target string `json:"target" river:"unique"`
	Event  Event  `json:"event"`
}

// Kind implements river.JobArgs.
func (JobArgs) Kind() string { return JobKind }

// Defaults of Options.
const (
	DefaultMaxAttempts = 12
	DefaultTimeout     = 10 * time.Second
)

// Options tune a Notifier. The zero value is production's.
type Options struct {
	// PublicURL is this bakery's URL, for the links to its pages; empty:
	// the events carry no links.
	PublicURL string
	// MaxAttempts is how often a delivery is tried before it is given up
	// (and shown failed). Default DefaultMaxAttempts.
	MaxAttempts int
	// Backoff is how long to wait after the attempt-th failed attempt.
	// Default: 2^attempt seconds, at most an hour.
	Backoff func(attempt int) time.Duration
	// Client sends the deliveries. Default: a client whose dialer refuses
	// link-local addresses, with DefaultTimeout. A given client should
	// keep that guard.
	Client *http.Client
	Log    *slog.Logger
}

// Store is what a Notifier reads and records; *store.Store satisfies it.
type Store interface {
	NotifyTargets(ctx context.Context, project string) ([]store.NotifyTarget, error)
	CommitStatusOf(ctx context.Context, project string) (*store.CommitStatus, error)
	StartDelivery(ctx context.Context, d store.Delivery) (bool, error)
	FinishDelivery(ctx context.Context, key, state, errMsg string) error
}

// Notifier queues the bakery's events for delivery (Emit) and delivers
// them (its River worker, added with Register to the bakery's workers).
type Notifier struct {
	store Store
	jobs  *store.Jobs
	o     Options
}

// New returns a Notifier over st that inserts jobs with jobs (an
// insert-only client is enough; the worker runs wherever Register put it).
func New(st Store, jobs *store.Jobs, o Options) *Notifier {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.Backoff == nil {
		o.Backoff = func(attempt int) time.Duration {
			return min(time.Duration(1)<<min(attempt, 12)*time.Second, time.Hour)
		}
	}
	if o.Client == nil {
		o.Client = GuardedClient(DefaultTimeout)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	o.PublicURL = strings.TrimRight(o.PublicURL, "/")
	return &Notifier{store: st, jobs: jobs, o: o}
}

// GuardedClient is an HTTP client whose dialer refuses link-local
// addresses (see CheckURL), with the given timeout per request.
func GuardedClient(timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: timeout, Control: guardDial}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = d.DialContext
	tr.Proxy = nil // a proxy would dial the target on our behalf, unchecked
	return &http.Client{Transport: tr, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// Register adds the delivery worker to workers.
func (n *Notifier) Register(workers *river.Workers) error {
	return river.AddWorkerSafely(workers, &worker{n: n})
}

// Emit queues e for each of its project's targets that wants it, and,
// for a bake of a pushed commit, for the project's commit status. It
// returns once the jobs are stored; emitting the same event again queues
// nothing new. An error means nothing or only part was queued: the
// caller may emit again.
func (n *Notifier) Emit(ctx context.Context, e Event) error {
	jobs, err := n.jobsOf(ctx, e)
	for _, a := range jobs {
		if _, ierr := n.jobs.Insert(ctx, a, n.insertOpts()); ierr != nil {
			err = errors.Join(err, fmt.Errorf("queue delivery to %s: %w", redact(a.Target), ierr))
		}
	}
	if err != nil {
		return fmt.Errorf("emit %s: %w", e.Event, err)
	}
	return nil
}

// Prepare reads what e goes to (as Emit does) and returns the queueing of
// its deliveries as work for the store transaction that records what e
// tells (a bake's or promotion's end): the deliveries are stored if and
// only if that is. Nil when nobody wants e. An error means nothing was
// read in full; nothing is queued.
func (n *Notifier) Prepare(ctx context.Context, e Event) (store.TxFunc, error) {
	jobs, err := n.jobsOf(ctx, e)
	if err != nil {
		return nil, fmt.Errorf("emit %s: %w", e.Event, err)
	}
	if len(jobs) == 0 {
		return nil, nil
	}
	return func(ctx context.Context, tx *store.Tx) error {
		for _, a := range jobs {
			if _, err := n.jobs.InsertTx(ctx, tx, a, n.insertOpts()); err != nil {
				return fmt.Errorf("emit %s: queue delivery to %s: %w", e.Event, redact(a.Target), err)
			}
		}
		return nil
	}, nil
}

// jobsOf returns e's deliveries: one per target of its project that wants
// it, and one for the commit status of a bake of a pushed commit. With an
// error, the jobs it could name are returned too.
func (n *Notifier) jobsOf(ctx context.Context, e Event) ([]JobArgs, error) {
	if n.o.PublicURL != "" {
		e.Links.Project = n.o.PublicURL + "/projects/" + e.Project
		if e.Bake != 0 {
			e.Links.Bake = n.o.PublicURL + "/bakes/" + strconv.FormatInt(e.Bake, 10)
		}
	}
	targets, err := n.store.NotifyTargets(ctx, e.Project)
	if err != nil {
		return nil, err
	}
	var jobs []JobArgs
	for _, t := range targets {
		if slices.Contains(t.Events, e.Event) {
			jobs = append(jobs, JobArgs{ID: e.ID(), Target: t.URL, Event: e})
		}
	}
	if e.Bake != 0 && e.Commit != "" && e.Repo != "" && statusState(GitHub, e.Event) != "" {
		cs, err := n.store.CommitStatusOf(ctx, e.Project)
		if err != nil {
			return jobs, err
		}
		if cs != nil {
			jobs = append(jobs, JobArgs{ID: e.ID(), Target: CommitStatusTarget, Event: e})
		}
	}
	return jobs, nil
}

func (n *Notifier) insertOpts() *river.InsertOpts {
	return &river.InsertOpts{MaxAttempts: n.o.MaxAttempts, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// worker delivers one JobArgs.
type worker struct {
	river.WorkerDefaults[JobArgs]
	n *Notifier
}

// NextRetry implements river.Worker: Options.Backoff.
func (w *worker) NextRetry(job *river.Job[JobArgs]) time.Time {
	return time.Now().Add(w.n.o.Backoff(job.Attempt))
}

// Work implements river.Worker. A delivery already delivered (the job
// ran again after a crash) is skipped; a failed one returns its error, so
// River retries it, and on the last attempt is recorded failed.
func (w *worker) Work(ctx context.Context, job *river.Job[JobArgs]) error {
	a := job.Args
	d := store.Delivery{Key: a.ID + " " + targetKey(a.Target), Project: a.Event.Project, Target: redact(a.Target), Event: a.Event.Event}
	send, err := w.n.store.StartDelivery(ctx, d)
	if err != nil || !send {
		return err
	}
	err = w.n.deliver(ctx, a)
	state, msg := store.DeliveryDelivered, ""
	if err != nil {
		state, msg = store.DeliveryPending, err.Error()
		if job.Attempt >= job.MaxAttempts {
			state = store.DeliveryFailed
		}
		w.n.o.Log.Warn("notification not delivered", "project", d.Project, "event", d.Event,
			"target", redact(a.Target), "attempt", job.Attempt, "err", err)
	}
	if ferr := w.n.store.FinishDelivery(context.WithoutCancel(ctx), d.Key, state, msg); ferr != nil {
		return errors.Join(err, ferr)
	}
	return err
}

// deliver sends one delivery; nil once the target answered 2xx.
func (n *Notifier) deliver(ctx context.Context, a JobArgs) error {
	var req *http.Request
	if a.Target == CommitStatusTarget {
		cs, err := n.store.CommitStatusOf(ctx, a.Event.Project)
		if err != nil {
			return err
		}
		if cs == nil {
			return nil // removed since: nothing to report to
		}
		if req, err = statusRequest(ctx, cs, a.Event); err != nil {
			return err
		}
	} else {
		targets, err := n.store.NotifyTargets(ctx, a.Event.Project)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(targets, func(t store.NotifyTarget) bool { return t.URL == a.Target })
		if i < 0 {
			return nil // the target was removed since
		}
		body, err := Body(a.Target, a.Event)
		if err != nil {
			return err
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, a.Target, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "kiln")
		req.Header.Set("X-Kiln-Event", a.Event.Event)
		req.Header.Set("X-Kiln-Delivery", a.ID)
		if s := targets[i].Secret; s != "" {
			req.Header.Set(SignatureHeader, Sign(s, body))
		}
	}
	resp, err := n.o.Client.Do(req)
	if err != nil {
		return fmt.Errorf("post to %s: %w", redact(a.Target), errors.Unwrap(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("post to %s: %s", redact(a.Target), resp.Status)
	}
	return nil
}

// targetKey names a target in a delivery's key without its URL, which
// may hold a secret.
func targetKey(target string) string {
	if target == CommitStatusTarget {
		return target
	}
	sum := sha256.Sum256([]byte(target))
	return hex.EncodeToString(sum[:8])
}

// redact cuts a URL to its scheme and host: Slack's and others' webhook
// URLs carry their secret in the path.
func redact(target string) string {
	if i := strings.Index(target, "://"); i >= 0 {
		if j := strings.IndexByte(target[i+3:], '/'); j >= 0 {
			return target[:i+3+j]
		}
	}
	return target
}
