package awsapi

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// stateAPI is the calls StateBatcher merges, in the SDK's shape.
type stateAPI interface {
	StartInstances(context.Context, *ec2.StartInstancesInput, ...func(*ec2.Options)) (*ec2.StartInstancesOutput, error)
	StopInstances(context.Context, *ec2.StopInstancesInput, ...func(*ec2.Options)) (*ec2.StopInstancesOutput, error)
	TerminateInstances(context.Context, *ec2.TerminateInstancesInput, ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error)
}

// StateBatcher merges concurrent StartInstances, StopInstances and
// TerminateInstances calls (a drift storm, a destroy) into calls of many
// ids, so that a fleet pays the action's request bucket once per batch
// rather than once per instance (the instance buckets are paid per id
// either way). It has *ec2.Client's method shape for the three.
//
// Only calls with InstanceIds and nothing else merge; others pass straight
// to the client. A merged call that fails with anything but throttling or
// a server fault (one id in the wrong state fails the whole call) is redone
// in halves, so each caller gets the answer it would have got alone.
type StateBatcher struct {
	c    stateAPI
	o    BatchOptions
	reqs chan *stateReq
}

type stateReq struct {
	action string
	ids    []string
	done   chan stateRes
}

type stateRes struct {
	changes []types.InstanceStateChange
	err     error
}

func newStateBatcher(c stateAPI, o BatchOptions) *StateBatcher {
	o.fill()
	return &StateBatcher{c: c, o: o, reqs: make(chan *stateReq)}
}

// StartInstances joins the current start batch; it blocks until the
// batch's call returns. Cancelling ctx abandons the wait, not the batch.
func (b *StateBatcher) StartInstances(ctx context.Context, in *ec2.StartInstancesInput, optFns ...func(*ec2.Options)) (*ec2.StartInstancesOutput, error) {
	if len(optFns) > 0 || in.AdditionalInfo != nil || in.DryRun != nil {
		return b.c.StartInstances(ctx, in, optFns...)
	}
	ch, err := b.join(ctx, "StartInstances", in.InstanceIds)
	if err != nil {
		return nil, err
	}
	return &ec2.StartInstancesOutput{StartingInstances: ch}, nil
}

// StopInstances joins the current stop batch, as StartInstances.
func (b *StateBatcher) StopInstances(ctx context.Context, in *ec2.StopInstancesInput, optFns ...func(*ec2.Options)) (*ec2.StopInstancesOutput, error) {
	if len(optFns) > 0 || in.DryRun != nil || in.Force != nil || in.Hibernate != nil || in.SkipOsShutdown != nil {
		return b.c.StopInstances(ctx, in, optFns...)
	}
	ch, err := b.join(ctx, "StopInstances", in.InstanceIds)
	if err != nil {
		return nil, err
	}
	return &ec2.StopInstancesOutput{StoppingInstances: ch}, nil
}

// TerminateInstances joins the current terminate batch, as StartInstances.
func (b *StateBatcher) TerminateInstances(ctx context.Context, in *ec2.TerminateInstancesInput, optFns ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error) {
	if len(optFns) > 0 || in.DryRun != nil || in.Force != nil || in.SkipOsShutdown != nil {
		return b.c.TerminateInstances(ctx, in, optFns...)
	}
	ch, err := b.join(ctx, "TerminateInstances", in.InstanceIds)
	if err != nil {
		return nil, err
	}
	return &ec2.TerminateInstancesOutput{TerminatingInstances: ch}, nil
}

func (b *StateBatcher) join(ctx context.Context, action string, ids []string) ([]types.InstanceStateChange, error) {
	r := &stateReq{action: action, ids: ids, done: make(chan stateRes, 1)}
	select {
	case b.reqs <- r:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case res := <-r.done:
		return res.changes, res.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Run collects calls into batches and sends them until ctx is done; calls
// still waiting then fail with ctx's error. It returns ctx.Err().
func (b *StateBatcher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	pending := map[string][]*stateReq{}
	ids := map[string]int{}
	idle := time.NewTimer(time.Hour)
	idle.Stop()
	maxT := time.NewTimer(time.Hour)
	maxT.Stop()
	send := func(action string) {
		g := pending[action]
		delete(pending, action)
		delete(ids, action)
		if len(g) > 0 {
			wg.Go(func() { b.exec(ctx, action, g) })
		}
	}
	for {
		select {
		case <-ctx.Done():
			for _, g := range pending {
				for _, r := range g {
					r.done <- stateRes{err: ctx.Err()}
				}
			}
			return ctx.Err()
		case r := <-b.reqs:
			if len(pending) == 0 {
				maxT.Reset(b.o.Max)
			}
			pending[r.action] = append(pending[r.action], r)
			ids[r.action] += len(r.ids)
			idle.Reset(b.o.Idle)
			if ids[r.action] >= b.o.MaxIDs {
				send(r.action)
			}
		case <-idle.C:
			maxT.Stop()
			for a := range pending {
				send(a)
			}
		case <-maxT.C:
			idle.Stop()
			for a := range pending {
				send(a)
			}
		}
	}
}

// call is one call of action for ids.
func (b *StateBatcher) call(ctx context.Context, action string, ids []string) ([]types.InstanceStateChange, error) {
	switch action {
	case "StartInstances":
		out, err := b.c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: ids})
		if err != nil {
			return nil, err
		}
		return out.StartingInstances, nil
	case "StopInstances":
		out, err := b.c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: ids})
		if err != nil {
			return nil, err
		}
		return out.StoppingInstances, nil
	}
	out, err := b.c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids})
	if err != nil {
		return nil, err
	}
	return out.TerminatingInstances, nil
}

// exec sends g's ids in calls of up to MaxIDs (callers are not split
// between calls). A call that fails with anything but throttling or a
// server fault is split in halves, down to one caller, so a bad id costs
// a few calls rather than one call per caller.
func (b *StateBatcher) exec(ctx context.Context, action string, g []*stateReq) {
	var chunk []*stateReq
	n := 0
	for _, r := range g {
		if n+len(r.ids) > b.o.MaxIDs && len(chunk) > 0 {
			b.do(ctx, action, chunk)
			chunk, n = nil, 0
		}
		chunk = append(chunk, r)
		n += len(r.ids)
	}
	if len(chunk) > 0 {
		b.do(ctx, action, chunk)
	}
}

func (b *StateBatcher) do(ctx context.Context, action string, g []*stateReq) {
	lists := make([][]string, len(g))
	for i, r := range g {
		lists[i] = r.ids
	}
	changes, err := b.call(ctx, action, union(lists))
	if err != nil && len(g) > 1 && !IsThrottle(err) && !IsTransient(err) {
		b.do(ctx, action, g[:len(g)/2])
		b.do(ctx, action, g[len(g)/2:])
		return
	}
	for _, r := range g {
		if err != nil {
			r.done <- stateRes{err: err} // the caller's retry comes back
			continue
		}
		var mine []types.InstanceStateChange
		for _, c := range changes {
			if slices.Contains(r.ids, aws.ToString(c.InstanceId)) {
				mine = append(mine, c)
			}
		}
		r.done <- stateRes{changes: mine}
	}
}
