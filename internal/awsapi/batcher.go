package awsapi

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// BatchOptions tune the batcher.
type BatchOptions struct {
	// Idle: a batch is sent once no new call has joined it for this long
	// (25 ms: a burst of checks from the engine arrives within a few ms, and
	// every lookup on the event-driven drift path pays this wait once, so
	// Karpenter's 100 ms would be most of a 100 ms reaction budget). Max: a
	// batch never waits longer than this (1 s).
	Idle, Max time.Duration
	// MaxIDs is the most instance ids per call (1000).
	MaxIDs int
	// MaxValues is the most values of the merged filter per call (200,
	// EC2's limit on one filter's values).
	MaxValues int
	// LaunchSize is the most instances in one batched RunInstances (100:
	// a batch's instances are named one CreateTags each afterwards, and a
	// smaller batch keeps the share of one failed call small). The window
	// a launch batch collects in is Idle and Max.
	LaunchSize int
}

func (o *BatchOptions) fill() {
	if o.Idle <= 0 {
		o.Idle = 25 * time.Millisecond
	}
	if o.Max <= 0 {
		o.Max = time.Second
	}
	if o.MaxIDs <= 0 {
		o.MaxIDs = 1000
	}
	if o.MaxValues <= 0 {
		o.MaxValues = 200
	}
	if o.LaunchSize <= 0 {
		o.LaunchSize = 100
	}
}

type describer interface {
	DescribeInstances(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
}

// Batcher merges concurrent DescribeInstances calls into few. It has the
// method shape of *ec2.Client's, so a resource's consumer-side interface is
// satisfied by either.
//
// Two shapes of call are merged; any other passes straight to the client:
//   - by id: InstanceIds set, nothing else. A merged call that fails with
//     InvalidInstanceID.NotFound is redone with an instance-id filter, and
//     each caller gets InvalidInstanceID.NotFound only for its own missing
//     ids, as if it had called alone;
//   - by filter: Filters set, nothing else, no wildcard in the last filter.
//     Calls whose filters are equal except for the values of the last one
//     merge into one paginated call with the union of those values; each
//     caller gets the instances matching its own values.
type Batcher struct {
	c    describer
	o    BatchOptions
	reqs chan *batchReq
	// seen, when set, is handed every answer a caller gets: the hub's
	// poller compares its next poll with what kiln's resources last read.
	seen func(*ec2.DescribeInstancesOutput)
}

type batchReq struct {
	key    string         // calls with equal keys merge
	ids    []string       // by id
	common []types.Filter // by filter: all but the last
	last   types.Filter
	done   chan batchRes
}

type batchRes struct {
	out *ec2.DescribeInstancesOutput
	err error
}

func newBatcher(c describer, o BatchOptions) *Batcher {
	o.fill()
	return &Batcher{c: c, o: o, reqs: make(chan *batchReq)}
}

// NewBatcher makes a batcher over c; run it with Run.
func NewBatcher(c describer, o BatchOptions) *Batcher { return newBatcher(c, o) }

// DescribeInstances joins the current batch (blocking until the batch's
// call returns) or, for a shape that does not merge, calls the client
// directly. Cancelling ctx abandons the wait, not the batch. The batcher's
// Run must be running.
func (b *Batcher) DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	out, err := b.describe(ctx, in, optFns)
	if err == nil && b.seen != nil {
		b.seen(out)
	}
	return out, err
}

func (b *Batcher) describe(ctx context.Context, in *ec2.DescribeInstancesInput, optFns []func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	r := requestOf(in, optFns)
	if r == nil {
		return b.c.DescribeInstances(ctx, in, optFns...)
	}
	select {
	case b.reqs <- r:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case res := <-r.done:
		return res.out, res.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func requestOf(in *ec2.DescribeInstancesInput, optFns []func(*ec2.Options)) *batchReq {
	if in == nil || len(optFns) > 0 || in.NextToken != nil || in.MaxResults != nil || in.DryRun != nil {
		return nil
	}
	r := &batchReq{done: make(chan batchRes, 1)}
	switch {
	case len(in.InstanceIds) > 0 && len(in.Filters) == 0:
		r.key = "ids"
		r.ids = in.InstanceIds
	case len(in.InstanceIds) == 0 && len(in.Filters) > 0:
		last := in.Filters[len(in.Filters)-1]
		name := aws.ToString(last.Name)
		if !strings.HasPrefix(name, "tag:") && name != "instance-id" || len(last.Values) == 0 {
			return nil
		}
		for _, v := range last.Values {
			if strings.ContainsAny(v, "*?") {
				return nil
			}
		}
		var k strings.Builder
		k.WriteString("filter")
		r.common = in.Filters[:len(in.Filters)-1]
		for _, f := range r.common {
			vs := slices.Clone(f.Values)
			slices.Sort(vs)
			fmt.Fprintf(&k, "\x00%s=%s", aws.ToString(f.Name), strings.Join(vs, "\x01"))
		}
		fmt.Fprintf(&k, "\x00%s", name)
		r.key = k.String()
		r.last = last
	default:
		return nil
	}
	return r
}

// Run collects calls into batches and sends them until ctx is done; calls
// still waiting then fail with ctx's error. It returns ctx.Err().
func (b *Batcher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	var pending []*batchReq
	var ids int
	idle := time.NewTimer(time.Hour)
	idle.Stop()
	maxT := time.NewTimer(time.Hour)
	maxT.Stop()
	flush := func() {
		idle.Stop()
		maxT.Stop()
		groups := map[string][]*batchReq{}
		var order []string
		for _, r := range pending {
			if _, ok := groups[r.key]; !ok {
				order = append(order, r.key)
			}
			groups[r.key] = append(groups[r.key], r)
		}
		for _, k := range order {
			g := groups[k]
			wg.Go(func() { b.exec(ctx, g) })
		}
		pending, ids = nil, 0
	}
	for {
		select {
		case <-ctx.Done():
			for _, r := range pending {
				r.done <- batchRes{err: ctx.Err()}
			}
			return ctx.Err()
		case r := <-b.reqs:
			if len(pending) == 0 {
				maxT.Reset(b.o.Max)
			}
			pending = append(pending, r)
			ids += len(r.ids) + len(r.last.Values)
			idle.Reset(b.o.Idle)
			if ids >= b.o.MaxIDs {
				flush()
			}
		case <-idle.C:
			flush()
		case <-maxT.C:
			flush()
		}
	}
}

// found collects instances with their reservations.
type found struct {
	res  map[string]types.Reservation // reservation id → reservation without instances
	inst map[string]types.Instance
	rid  map[string]string // instance id → reservation id
	ord  []string
}

func newFound() *found {
	return &found{res: map[string]types.Reservation{}, inst: map[string]types.Instance{}, rid: map[string]string{}}
}

func (f *found) add(out *ec2.DescribeInstancesOutput) {
	for _, r := range out.Reservations {
		rid := aws.ToString(r.ReservationId)
		shell := r
		shell.Instances = nil
		f.res[rid] = shell
		for _, in := range r.Instances {
			id := aws.ToString(in.InstanceId)
			if _, ok := f.inst[id]; !ok {
				f.ord = append(f.ord, id)
			}
			f.inst[id] = in
			f.rid[id] = rid
		}
	}
}

// output builds a response holding the instances ids, grouped by reservation.
func (f *found) output(ids []string) *ec2.DescribeInstancesOutput {
	out := &ec2.DescribeInstancesOutput{}
	at := map[string]int{}
	for _, id := range ids {
		in, ok := f.inst[id]
		if !ok {
			continue
		}
		rid := f.rid[id]
		i, ok := at[rid]
		if !ok {
			i = len(out.Reservations)
			at[rid] = i
			out.Reservations = append(out.Reservations, f.res[rid])
		}
		out.Reservations[i].Instances = append(out.Reservations[i].Instances, in)
	}
	return out
}

func (b *Batcher) exec(ctx context.Context, g []*batchReq) {
	if g[0].key == "ids" {
		b.execIDs(ctx, g)
		return
	}
	b.execFilter(ctx, g)
}

func union(lists [][]string) []string {
	seen := map[string]bool{}
	var out []string
	for _, l := range lists {
		for _, v := range l {
			if !seen[v] {
				seen[v] = true
				out = append(out, v)
			}
		}
	}
	return out
}

func (b *Batcher) execIDs(ctx context.Context, g []*batchReq) {
	lists := make([][]string, len(g))
	for i, r := range g {
		lists[i] = r.ids
	}
	all := union(lists)
	f := newFound()
	failed := map[string]error{}
	for chunk := range slices.Chunk(all, b.o.MaxIDs) {
		out, err := b.c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: chunk})
		if err == nil {
			f.add(out)
			continue
		}
		if IsNotFound(err) {
			// Some id is not (yet) visible; a filter returns the rest.
			err = b.filtered(ctx, f, nil, "instance-id", chunk)
		}
		if err != nil {
			for _, id := range chunk {
				failed[id] = err
			}
		}
	}
	for _, r := range g {
		var err error
		var missing []string
		for _, id := range r.ids {
			if e := failed[id]; e != nil {
				err = e
				break
			}
			if _, ok := f.inst[id]; !ok {
				missing = append(missing, id)
			}
		}
		if err == nil && len(missing) > 0 {
			err = &smithy.OperationError{ServiceID: "EC2", OperationName: "DescribeInstances", Err: &smithy.GenericAPIError{
				Code:    "InvalidInstanceID.NotFound",
				Message: fmt.Sprintf("The instance IDs '%s' do not exist", strings.Join(missing, ", ")),
				Fault:   smithy.FaultClient,
			}}
		}
		if err != nil {
			r.done <- batchRes{err: err}
			continue
		}
		r.done <- batchRes{out: f.output(r.ids)}
	}
}

// filtered lists instances matching common filters plus name ∈ values, in
// chunks of MaxValues values, every page, into f.
func (b *Batcher) filtered(ctx context.Context, f *found, common []types.Filter, name string, values []string) error {
	for chunk := range slices.Chunk(values, b.o.MaxValues) {
		filters := append(slices.Clone(common), types.Filter{Name: aws.String(name), Values: chunk})
		p := ec2.NewDescribeInstancesPaginator(b.c, &ec2.DescribeInstancesInput{Filters: filters, MaxResults: aws.Int32(pollPageSize)})
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				return err
			}
			f.add(out)
		}
	}
	return nil
}

func (b *Batcher) execFilter(ctx context.Context, g []*batchReq) {
	lists := make([][]string, len(g))
	for i, r := range g {
		lists[i] = r.last.Values
	}
	name := aws.ToString(g[0].last.Name)
	f := newFound()
	if err := b.filtered(ctx, f, g[0].common, name, union(lists)); err != nil {
		for _, r := range g {
			r.done <- batchRes{err: err}
		}
		return
	}
	key := func(in types.Instance) (string, bool) {
		if name == "instance-id" {
			return aws.ToString(in.InstanceId), true
		}
		k := strings.TrimPrefix(name, "tag:")
		for _, t := range in.Tags {
			if aws.ToString(t.Key) == k {
				return aws.ToString(t.Value), true
			}
		}
		return "", false
	}
	for _, r := range g {
		var ids []string
		for _, id := range f.ord {
			if v, ok := key(f.inst[id]); ok && slices.Contains(r.last.Values, v) {
				ids = append(ids, id)
			}
		}
		r.done <- batchRes{out: f.output(ids)}
	}
}
