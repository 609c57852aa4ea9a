package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"kiln/internal/awsapi"
	"kiln/internal/awssim"
	"kiln/internal/eventqueue"
)

// queueOpenTimeout bounds opening the events queues at start: a queue
// that cannot be reached by then is an error, not a hang.
const queueOpenTimeout = 60 * time.Second

// startQueues opens every --events-queue (a URL, or a name in the default
// region) and adds its consumer to group, routing into the process's
// hubs until ctx is done. A queue that does not exist, or that kiln may
// not read, is an error before anything runs. With --sim, a queue given
// by name is first made in the simulator with its rule (as kiln events
// setup makes it on AWS). The simulator must be in group already.
func (a *app) startQueues(ctx context.Context, group *errgroup.Group, queues []string, sim bool, reg prometheus.Registerer) error {
	if len(queues) == 0 {
		return nil
	}
	hubs := a.awsHubs()
	octx, cancel := context.WithTimeout(ctx, queueOpenTimeout)
	defer cancel()
	if err := hubs.CheckCredentials(octx); err != nil {
		return err
	}
	cfg, err := hubs.Config(octx)
	if err != nil {
		return err
	}
	metrics := eventqueue.NewMetrics(reg)
	for _, q := range queues {
		region := eventqueue.Region(q)
		if region == "" {
			region = cfg.Region
		}
		api := awsapi.NewSQS(cfg, region)
		if sim && !eventqueue.IsURL(q) {
			if _, err := eventqueue.Setup(octx, api, awsapi.NewEventBridge(cfg, region), eventqueue.Plan{Region: region, Queue: q}); err != nil {
				return fmt.Errorf("simulator: events queue %s: %w", q, err)
			}
		}
		c, err := eventqueue.Open(octx, api, q, hubs, eventqueue.Options{Metrics: metrics, Log: a.log})
		if err != nil {
			return err
		}
		group.Go(func() error { return c.Run(ctx) })
	}
	return nil
}

// simQueues makes each named queue and its rule in the simulator served
// at url (kiln sim --events-queue) and returns their URLs.
func simQueues(ctx context.Context, url, region string, names []string) ([]string, error) {
	cfg := awssim.ClientConfig(url, region)
	var urls []string
	for _, n := range names {
		res, err := eventqueue.Setup(ctx, awsapi.NewSQS(cfg, region), awsapi.NewEventBridge(cfg, region), eventqueue.Plan{Region: region, Queue: n})
		if err != nil {
			return nil, fmt.Errorf("events queue %s: %w", n, err)
		}
		urls = append(urls, res.QueueURL)
	}
	return urls, nil
}

// serveSimQueues is kiln sim --events-queue: the simulator, with each
// named queue and its rule made at start and printed with the usage.
func serveSimQueues(ctx context.Context, addr string, opts awssim.Options, names []string, w io.Writer) error {
	sv, err := awssim.NewServer(addr, opts)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return sv.Run(gctx) })
	urls, err := simQueues(gctx, sv.URL(), sv.Sim.Options().Region, names)
	if err != nil {
		cancel()
		_ = g.Wait()
		return err
	}
	awssim.PrintUsage(w, sv.URL(), sv.Sim.Options())
	for i, u := range urls {
		fmt.Fprintf(w, "\nEvents queue %s (an EventBridge rule puts the EC2 and Auto Scaling events into it):\n\n", names[i])
		fmt.Fprintf(w, "  kiln run --events-queue %s graph.yaml\n", u)
		fmt.Fprintf(w, "  aws sqs receive-message --queue-url %s --wait-time-seconds 20\n", u)
	}
	return g.Wait()
}
