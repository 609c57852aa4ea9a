package awsapi

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// pollPageSize is DescribeInstances' largest page: one call per 1,000
// instances is the whole cost of watching a graph.
const pollPageSize = 1000

// graphPoll is the poller's state for one graph; guarded by Hub.mu.
type graphPoll struct {
	interval time.Duration
	next     time.Time
	snap     map[string]instSnap // nil until the first poll
}

// instSnap is what a poll remembers of an instance: the facts whose change
// a resource cares about.
type instSnap struct {
	owner               Owner
	state, typ, image   string
	privateIP, publicIP string
	keyName, profile    string // drift aws:ec2 checks too
	// launchedFor is the member digest an unnamed batch instance records
	// (LaunchedFor), token its ClientToken: how the poll finds extras.
	launchedFor, token string
}

// refresh recomputes the interval from the graph's subscribers and reports
// whether any are left.
func (g *graphPoll) refresh(subs map[Owner]map[*sub]struct{}, graph string) bool {
	var iv time.Duration
	for o, ss := range subs {
		if o.Graph != graph {
			continue
		}
		for s := range ss {
			if iv == 0 || s.poll < iv {
				iv = s.poll
			}
		}
	}
	if iv == 0 {
		return false
	}
	if g.interval != iv && !g.next.IsZero() {
		// A shorter interval takes effect now, not after the old one.
		g.next = g.next.Add(iv - g.interval)
	}
	g.interval = iv
	return true
}

func (h *Hub) pollLoop(ctx context.Context) error {
	for {
		now := time.Now()
		var due []string
		var next time.Time
		h.mu.Lock()
		for name, g := range h.graphs {
			if !g.next.After(now) {
				due = append(due, name)
				g.next = now.Add(g.interval)
			}
			if next.IsZero() || g.next.Before(next) {
				next = g.next
			}
		}
		h.mu.Unlock()
		for _, name := range due {
			if err := h.Poll(ctx, name); err != nil && ctx.Err() == nil {
				h.o.Log.Warn("poll failed", "region", h.region, "graph", name, "err", err)
			}
		}
		if len(due) > 0 {
			continue // polls take time: look at the clock again
		}
		var timer <-chan time.Time
		var t *time.Timer
		if !next.IsZero() {
			t = time.NewTimer(time.Until(next))
			timer = t.C
		}
		select {
		case <-ctx.Done():
		case <-h.wake:
		case <-timer:
		}
		if t != nil {
			t.Stop()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// Poll lists every instance of graph with one tag-filtered, paginated
// DescribeInstances (one call per 1,000 instances), compares with the last
// poll and notifies the owners of what changed, appeared or vanished, and
// every subscriber that has not been through a poll yet. The poller calls
// it on its interval; tests and tools may call it directly.
func (h *Hub) Poll(ctx context.Context, graph string) error {
	snap := map[string]instSnap{}
	p := ec2.NewDescribeInstancesPaginator(h.ec2, &ec2.DescribeInstancesInput{
		Filters:    []types.Filter{{Name: aws.String("tag:" + TagOwner), Values: []string{graph}}},
		MaxResults: aws.Int32(pollPageSize),
	})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("poll instances of graph %q: %w", graph, err)
		}
		for _, r := range out.Reservations {
			for _, in := range r.Instances {
				snap[aws.ToString(in.InstanceId)] = snapOf(graph, in)
			}
		}
	}

	h.reapExtras(ctx, graph, snap)

	h.mu.Lock()
	g := h.graphs[graph]
	if g == nil { // no subscriber left
		h.mu.Unlock()
		return nil
	}
	var changed []string
	var extra []Owner
	if g.snap != nil {
		for id, s := range snap {
			if old, ok := g.snap[id]; !ok || old != s {
				changed = append(changed, id)
			}
		}
		for id, old := range g.snap {
			if _, ok := snap[id]; !ok {
				changed = append(changed, id)
				extra = append(extra, old.owner)
			}
		}
	}
	for id, s := range snap {
		if s.owner.Resource != "" {
			h.owners[id] = s.owner
		}
	}
	g.snap = snap
	var polled []func()
	for o, ss := range h.subs {
		if o.Graph != graph {
			continue
		}
		for s := range ss {
			if s.fresh {
				s.fresh = false
				extra = append(extra, o)
			}
			if s.polled != nil {
				polled = append(polled, s.polled)
			}
		}
	}
	fns := h.notifyLocked(changed, extra)
	h.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
	for _, fn := range polled {
		fn()
	}
	return nil
}

// observe records instances as a resource read them through the batcher
// in their graph's poll snapshot. The snapshot is then what the owners
// last saw, not what the last poll saw: a repair kiln made itself (start
// after a stop by hand) is recorded by the owner's own read of the result,
// so the same drift happening again before the next poll still differs
// from the snapshot and wakes the owner. Every value the snapshot holds
// was either read by the owner or notified to it, so a difference between
// the world and the owner's view is never hidden.
func (h *Hub) observe(out *ec2.DescribeInstancesOutput) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			graph := TagValue(in.Tags, TagOwner)
			if g := h.graphs[graph]; g != nil && g.snap != nil {
				g.snap[aws.ToString(in.InstanceId)] = snapOf(graph, in)
			}
		}
	}
}

func snapOf(graph string, in types.Instance) instSnap {
	s := instSnap{
		owner:     Owner{Graph: graph, Resource: TagValue(in.Tags, TagResource)},
		typ:       string(in.InstanceType),
		image:     aws.ToString(in.ImageId),
		privateIP: aws.ToString(in.PrivateIpAddress),
		publicIP:  aws.ToString(in.PublicIpAddress),
		keyName:   aws.ToString(in.KeyName),
	}
	if in.IamInstanceProfile != nil {
		s.profile = aws.ToString(in.IamInstanceProfile.Arn)
	}
	if in.State != nil {
		s.state = string(in.State.Name)
	}
	if s.owner.Resource == "" {
		s.launchedFor, s.token = LaunchedFor(in), aws.ToString(in.ClientToken)
	}
	return s
}

// reapExtras terminates the extras a poll found: live unnamed batch
// instances launched for a resource that has a live named instance, which
// this process neither launched and still has to give or name nor gave
// to anyone. They are a second launch for one resource by a kiln that
// restarted before AWS listed the first (its token was another batch's);
// nothing uses them.
func (h *Hub) reapExtras(ctx context.Context, graph string, snap map[string]instSnap) {
	live := func(s instSnap) bool { return s.state != "shutting-down" && s.state != "terminated" }
	has := map[string]bool{}
	for _, s := range snap {
		if s.owner.Resource != "" && live(s) {
			has[MemberDigest(s.owner.Resource)] = true
		}
	}
	var extras []string
	for id, s := range snap {
		if s.owner.Resource == "" && s.launchedFor != "" && live(s) && has[s.launchedFor] && !h.launch.holds(id, s.token) {
			extras = append(extras, id)
		}
	}
	if len(extras) == 0 {
		return
	}
	slices.Sort(extras)
	h.o.Log.Warn("extra batch instances terminated", "graph", graph, "instances", extras)
	err := h.Retry(ctx, func(ctx context.Context) error {
		_, err := h.states.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: extras})
		return err
	})
	if err != nil && ctx.Err() == nil {
		h.o.Log.Warn("extra batch instances not terminated", "instances", extras, "err", err)
	}
}

// TagValue returns the value of tag key in tags ("" when absent).
func TagValue(tags []types.Tag, key string) string {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

// PolledOwned returns, from graph's last poll, the live instances (not
// shutting down or terminated) by their kiln:resource tag: what the graph
// owns, read off the poll it already makes, so finding orphans costs no
// call. ok is false when no poll of graph has happened (no aws:ec2
// resource of the graph watches in this region): the caller lists them
// itself.
func (h *Hub) PolledOwned(graph string) (owned map[string][]string, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	g := h.graphs[graph]
	if g == nil || g.snap == nil {
		return nil, false
	}
	owned = map[string][]string{}
	for id, s := range g.snap {
		if s.owner.Resource == "" || s.state == "shutting-down" || s.state == "terminated" {
			continue
		}
		owned[s.owner.Resource] = append(owned[s.owner.Resource], id)
	}
	return owned, true
}
