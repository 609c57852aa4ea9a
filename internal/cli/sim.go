package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"kiln/internal/awsapi"
	"kiln/internal/awssim"
	"kiln/internal/events"
)

// defaultSimRegion is the simulator's region when AWS_REGION is not set.
const defaultSimRegion = "us-east-1"

// simRegion is the region the simulator plays: AWS_REGION, so a graph that
// names none and the events the simulator pushes agree.
func simRegion() string {
	if r := os.Getenv("AWS_REGION"); r != "" {
		return r
	}
	return defaultSimRegion
}

func newSimCmd(a *app) *cobra.Command {
	var (
		listen    string
		timeScale float64
		throttle  bool
		pushURL   string
		pushKey   string
		queues    []string
		accounts  []string
		roles     []string
		extIDs    []string
		policy    string
		faults    string
		seed      uint64
	)
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Run the EC2 + Auto Scaling + Route 53 simulator as a server",
		Long: `Sim serves kiln's EC2, Auto Scaling and Route 53 simulator over HTTP: the
real EC2 Query protocol (and Route 53's REST-XML under /2013-04-01/), so the
AWS SDKs and the aws CLI work against it with dummy credentials. It prints the environment that points them at it, and runs
until SIGINT or SIGTERM.

Every simulated duration (a boot takes about 15 s on AWS) is multiplied by
--time-scale: 1 is realistic, 0.01 a hundred times faster, 0 immediate.
--throttle turns on AWS's request token buckets (RequestLimitExceeded;
Route 53: 5 requests a second, Throttling).

The simulator can push its state-change events to a kiln run, as an
EventBridge API destination does: --events URL (kiln run's
http://ADDR/events/aws) with the API key from --events-api-key or
KILN_EVENTS_API_KEY. Or it can put them into an SQS queue, as an
EventBridge rule does: --events-queue NAME makes the queue and the rule at
start and prints the queue's URL for kiln run --events-queue.

--policy FILE authorizes every request against that IAM policy (JSON, as
kiln iam-policy prints it), as IAM would for a caller with that one
identity policy: a denied call gets UnauthorizedOperation (EC2) or
AccessDenied (Auto Scaling), HTTP 403. Without it everything is allowed.

--faults injects AWS's own failures at random, by profile: eventual (reads
miss what was just created, tags show up late), throttle (the token buckets,
drained by other tenants' bursts), flaky (500/503 answers, reset
connections, slow answers), capacity (InsufficientInstanceCapacity for a
type in a zone, for a while), events (events lost, doubled, late and out of
order) or chaos (all of them); several joined by commas, or a YAML profile
file for a custom mix. --faults-seed repeats a run's faults (the seed in
use is printed).

--account ID[,ID...] adds accounts besides the starting one (123456789012,
whose are the simulator's static credentials), each a world of its own:
a request lands in the account its credentials belong to. STS AssumeRole
on arn:aws:iam::ID:role/kiln (or a role named with --role NAME) from the
starting account returns temporary credentials for that account;
--external-id ROLE_ARN=ID makes a role require that external id. Any other
role is refused with AccessDenied, as STS refuses it.

The control API lives under /_sim/ (GET /_sim/instances, POST
/_sim/instances/ID/stop, GET /_sim/calls, ...).` + serverExitHelp,
		Example: `  kiln sim
  kiln sim --listen 127.0.0.1:0 --time-scale 0.1 --throttle
  KILN_EVENTS_API_KEY=secret kiln sim --events http://127.0.0.1:9100/events/aws
  kiln sim --events-queue kiln-events
  kiln iam-policy examples/ec2.yaml > policy.json && kiln sim --policy policy.json
  kiln sim --time-scale 0.01 --faults eventual,flaky --faults-seed 42
  kiln sim --faults mix.yaml
  kiln sim --account 210987654321,333333333333 --role deploy`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if timeScale < 0 {
				return &usageError{cmd: cmd.CommandPath(), err: errors.New("--time-scale must not be negative")}
			}
			opts := awssim.Options{Region: simRegion(), TimeScale: timeScale, Throttle: throttle, Log: a.log}
			if pushURL != "" {
				if pushKey == "" {
					pushKey = os.Getenv(eventsKeyEnv)
				}
				opts.Events = []awssim.EventTarget{{URL: pushURL, APIKey: pushKey}}
			}
			if policy != "" {
				p, err := loadPolicy("--policy", policy)
				if err != nil {
					return err
				}
				opts.Policy = p
				a.log.Info("policy enforced", "file", policy, "statements", len(p.Statements))
			}
			if faults != "" {
				p, err := loadFaults("--faults", faults, seed)
				if err != nil {
					return err
				}
				opts.Faults = p
				a.log.Info("faults injected", "profile", strings.Join(p.Names(), ","), "seed", p.Seed)
			} else if cmd.Flags().Changed("faults-seed") {
				return &usageError{cmd: cmd.CommandPath(), err: errors.New("--faults-seed needs --faults")}
			}
			if err := simAccounts(&opts, accounts, roles, extIDs); err != nil {
				return &usageError{cmd: cmd.CommandPath(), err: err}
			}
			if len(queues) > 0 {
				return serveSimQueues(cmd.Context(), listen, opts, queues, a.stdout)
			}
			return awssim.Serve(cmd.Context(), listen, opts, a.stdout)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:4566", "serve on this address (host:port; port 0 picks a free one)")
	f.Float64Var(&timeScale, "time-scale", 1, "multiply every simulated duration by this (0.01: a hundred times faster)")
	f.BoolVar(&throttle, "throttle", false, "throttle requests with AWS's token buckets (RequestLimitExceeded)")
	f.StringVar(&pushURL, "events", "", "push state-change events to this URL, as an EventBridge API destination")
	f.StringVar(&pushKey, "events-api-key", "", "API key sent with pushed events (default: $"+eventsKeyEnv+")")
	f.StringArrayVar(&queues, "events-queue", nil, "make this SQS queue and an EventBridge rule that puts the EC2 and Auto Scaling events into it (repeatable)")
	f.StringSliceVar(&accounts, "account", nil, "add these accounts (12-digit ids, comma-separated or repeated), reached by STS AssumeRole")
	f.StringArrayVar(&roles, "role", nil, "a role every account has besides kiln, trusting the starting account (repeatable)")
	f.StringArrayVar(&extIDs, "external-id", nil, "ROLE_ARN=ID: that role requires this external id (repeatable)")
	f.StringVar(&policy, "policy", "", "authorize every request against this IAM policy file (JSON), as IAM would")
	f.StringVar(&faults, "faults", "", "inject faults at random: "+strings.Join(awssim.ProfileNames, ", ")+" (comma-separated), or a YAML profile file")
	f.Uint64Var(&seed, "faults-seed", 0, "seed of the injected faults, to repeat a run (default: the profile file's, else random)")
	return cmd
}

// loadFaults makes the fault profile of a --faults value: built-in
// profile names joined by commas, or a YAML profile file (a value ending
// in .yaml or .yml, or naming a path). A seed other than 0 overrides the
// file's; without either a random one is picked, so that the seed in use
// can be logged and the run repeated.
func loadFaults(flag, value string, seed uint64) (*awssim.Profile, error) {
	var p *awssim.Profile
	var err error
	if strings.HasSuffix(value, ".yaml") || strings.HasSuffix(value, ".yml") || strings.ContainsRune(value, os.PathSeparator) {
		b, rerr := os.ReadFile(value)
		if rerr != nil {
			return nil, fmt.Errorf("%s: %w", flag, rerr)
		}
		p, err = awssim.ParseProfile(value, b)
	} else if p, err = awssim.NamedProfile(value); err != nil {
		err = fmt.Errorf("%s: %w", flag, err)
	}
	if err != nil {
		return nil, err
	}
	if seed != 0 {
		p.Seed = seed
	}
	for p.Seed == 0 {
		p.Seed = mathrand.Uint64()
	}
	return p, nil
}

// loadPolicy reads and parses an IAM policy file for the simulator.
func loadPolicy(flag, path string) (*awssim.Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	p, err := awssim.ParsePolicy(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// simFlags are the --sim flags of run and plan.
type simFlags struct {
	on        bool
	timeScale float64
	policy    string // an IAM policy file the simulator enforces ("": none)
	faults    string // the simulator's fault profile: names or a file ("": none)
	seed      uint64 // the faults' seed (0: the file's, else random)
}

// defaultRunTimeScale makes the in-process simulator a hundred times faster
// than EC2: a boot takes ~0.15 s, so `kiln run --sim --once` is a demo, not
// a wait.
const defaultRunTimeScale = 0.01

func (sf *simFlags) register(f *pflag.FlagSet) {
	f.BoolVar(&sf.on, "sim", false, "run against kiln's EC2 simulator, started in-process on a loopback port (no AWS account needed)")
	f.Float64Var(&sf.timeScale, "sim-time-scale", defaultRunTimeScale, "with --sim: multiply every simulated duration by this (1: realistic)")
	f.StringVar(&sf.policy, "sim-policy", "", "with --sim: authorize every call against this IAM policy file (JSON, as kiln iam-policy prints it), as IAM would")
	f.StringVar(&sf.faults, "sim-faults", "", "with --sim: inject faults at random: "+strings.Join(awssim.ProfileNames, ", ")+" (comma-separated), or a YAML profile file")
	f.Uint64Var(&sf.seed, "sim-faults-seed", 0, "with --sim-faults: seed of the injected faults, to repeat a run (default: random, logged)")
}

func (sf *simFlags) check(cmd string) error {
	if sf.timeScale < 0 {
		return &usageError{cmd: cmd, err: errors.New("--sim-time-scale must not be negative")}
	}
	if sf.policy != "" && !sf.on {
		return &usageError{cmd: cmd, err: errors.New("--sim-policy needs --sim")}
	}
	if sf.faults != "" && !sf.on {
		return &usageError{cmd: cmd, err: errors.New("--sim-faults needs --sim")}
	}
	if sf.seed != 0 && sf.faults == "" {
		return &usageError{cmd: cmd, err: errors.New("--sim-faults-seed needs --sim-faults")}
	}
	return nil
}

// registerRetryTimeout adds --aws-retry-timeout (run, plan and serve).
func (a *app) registerRetryTimeout(f *pflag.FlagSet) {
	f.DurationVar(&a.aws.RetryTimeout, "aws-retry-timeout", awsapi.DefaultRetryTimeout,
		"give up an AWS call retried this long (server faults, throttling) and fail its check with the last error and the action")
}

// awsHubs returns the process's region hubs, made on first use with the
// options in a.aws (startSim sets them first). Making them loads no AWS
// configuration: the first region lookup does.
func (a *app) awsHubs() *awsapi.Hubs {
	if a.hubs == nil {
		o := a.aws
		o.Log = a.log
		a.hubs = awsapi.NewHubs(o)
	}
	return a.hubs
}

// startSim makes the in-process simulator (when sf.on), listening on a
// loopback port, and points the AWS hubs at it; it must run before the
// hubs are first used (a.kinds). The simulator pushes its events to push,
// when given. It starts nothing: runAWS does. Without --sim it returns nil.
func (a *app) startSim(sf simFlags, push []awssim.EventTarget) (*awssim.Server, error) {
	if !sf.on {
		return nil, nil
	}
	if a.hubs != nil {
		return nil, errors.New("start simulator: the AWS hubs are already in use")
	}
	region := simRegion()
	var policy *awssim.Policy
	if sf.policy != "" {
		p, err := loadPolicy("--sim-policy", sf.policy)
		if err != nil {
			return nil, err
		}
		policy = p
	}
	var faults *awssim.Profile
	if sf.faults != "" {
		p, err := loadFaults("--sim-faults", sf.faults, sf.seed)
		if err != nil {
			return nil, err
		}
		faults = p
	}
	sv, err := awssim.NewServer("127.0.0.1:0", awssim.Options{
		Region: region, TimeScale: sf.timeScale, Events: push, Log: a.log, Policy: policy, Faults: faults,
	})
	if err != nil {
		return nil, fmt.Errorf("start simulator: %w", err)
	}
	cfg := awssim.ClientConfig(sv.URL(), region)
	a.aws.Config = &cfg
	// The production timings assume EC2's (a boot ~15 s, a 60 s fallback
	// poll); scale them with the simulator, within sane bounds.
	a.aws.Wait = awsapi.Backoff{Min: scaled(time.Second, sf.timeScale, 20*time.Millisecond), Max: scaled(15*time.Second, sf.timeScale, 200*time.Millisecond)}
	a.aws.Poll = scaled(60*time.Second, sf.timeScale, time.Second)
	a.log.Info("simulator started", "url", sv.URL(), "region", region, "time_scale", sf.timeScale, "events_pushed", len(push) > 0,
		"policy", sf.policy)
	if faults != nil {
		a.log.Info("faults injected", "profile", strings.Join(faults.Names(), ","), "seed", faults.Seed)
	}
	return sv, nil
}

// scaled is d times scale, at least floor and at most d.
func scaled(d time.Duration, scale float64, floor time.Duration) time.Duration {
	s := time.Duration(float64(d) * scale)
	return max(min(s, d), floor)
}

// runAWS adds the simulator (may be nil) and the hubs' loops to group,
// both stopping when ctx is done.
func (a *app) runAWS(ctx context.Context, group *errgroup.Group, sv *awssim.Server) {
	if sv != nil {
		group.Go(func() error { return sv.Run(ctx) })
	}
	hubs := a.awsHubs()
	group.Go(func() error {
		_ = hubs.Run(ctx) // returns ctx.Err(): the normal end
		return nil
	})
}

// withSim gives cmd (plan) the --sim flags and runs the simulator and the
// AWS hubs around its RunE, stopping both when it returns.
func (a *app) withSim(cmd *cobra.Command) *cobra.Command {
	var sf simFlags
	sf.register(cmd.Flags())
	switch cmd.Name() {
	case "plan":
		cmd.Example += "\n  kiln plan --sim examples/ec2.yaml     # against a fresh in-process simulator: exit 2"
	default:
		cmd.Example += "\n  kiln " + cmd.Name() + " --sim examples/fleet   # an HCL graph's AWS data sources read from the simulator"
	}
	inner := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if err := sf.check(c.CommandPath()); err != nil {
			return err
		}
		sv, err := a.startSim(sf, nil)
		if err != nil {
			return err
		}
		group, gctx := errgroup.WithContext(c.Context())
		ctx, stop := context.WithCancel(gctx)
		defer stop()
		a.runAWS(ctx, group, sv)
		var runErr error
		group.Go(func() error {
			defer stop()
			c.SetContext(ctx)
			runErr = inner(c, args)
			return nil
		})
		if err := group.Wait(); err != nil {
			return err
		}
		return runErr
	}
	return cmd
}

// eventsKeyEnv holds the API key EventBridge deliveries must carry.
const eventsKeyEnv = "KILN_EVENTS_API_KEY"

// eventsFlags configure run's events receiver.
type eventsFlags struct {
	apiKey string
	topics []string
	queues []string // --events-queue (queue.go)
}

func (ef *eventsFlags) register(f *pflag.FlagSet) {
	f.StringVar(&ef.apiKey, "events-api-key", "", "with --listen: API key EventBridge deliveries to POST /events/aws must carry in x-api-key (default: $"+eventsKeyEnv+")")
	f.StringSliceVar(&ef.topics, "sns-topic", nil, "with --listen: accept SNS deliveries from this topic ARN (repeatable)")
	f.StringArrayVar(&ef.queues, "events-queue", nil, "long-poll this SQS queue (URL, or name in the default region) for EventBridge events (repeatable)")
}

// key is the API key: the flag, else the environment, else (with --sim,
// whose simulator is the only sender) a random one.
func (ef *eventsFlags) key(sim bool) (string, error) {
	if ef.apiKey != "" {
		return ef.apiKey, nil
	}
	if k := os.Getenv(eventsKeyEnv); k != "" {
		return k, nil
	}
	if !sim {
		return "", nil
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("events api key: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// eventsURL is where a local sender reaches the receiver served on ln: an
// unspecified listen address (0.0.0.0, [::]; Go listens on both stacks) is
// reached over 127.0.0.1.
func eventsURL(ln net.Listener) string {
	addr, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		return "http://" + ln.Addr().String() + events.Path
	}
	ip := addr.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return "http://" + net.JoinHostPort(ip.String(), fmt.Sprint(addr.Port)) + events.Path
}

// simAccounts puts the --account, --role and --external-id flags into o.
func simAccounts(o *awssim.Options, accounts, roles, extIDs []string) error {
	for _, id := range accounts {
		if len(id) != 12 || strings.Trim(id, "0123456789") != "" {
			return fmt.Errorf("--account %q: an account id is 12 digits", id)
		}
	}
	o.Accounts, o.Roles = accounts, roles
	for _, kv := range extIDs {
		arn, id, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(arn, "arn:aws:iam::") || !strings.Contains(arn, ":role/") || id == "" {
			return fmt.Errorf("--external-id %q: want ROLE_ARN=ID (arn:aws:iam::ACCOUNT:role/NAME=ID)", kv)
		}
		if o.ExternalIDs == nil {
			o.ExternalIDs = map[string]string{}
		}
		o.ExternalIDs[arn] = id
	}
	return nil
}
