package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"kiln/internal/awsapi"
	"kiln/internal/awssim"
	"kiln/internal/engine"
	"kiln/internal/lock"
	"kiln/internal/lock/locktest"
	"kiln/internal/testsupport"
)

// straggler is a resource whose apply outlives its cancelled check, as the
// clean-up of an interrupted bake does: it waits for the check's context to
// end, then sends a write on a context that is never cancelled.
type straggler struct {
	ec2     *ec2.Client
	id      string
	applies *atomic.Int32
	inApply chan struct{}
	late    chan error // the late write's result
}

func (r *straggler) Watch(ctx context.Context, ev engine.Events) error {
	ev.Running()
	<-ctx.Done()
	return nil
}

func (r *straggler) CheckApply(ctx context.Context, apply bool) (bool, error) {
	if !apply {
		return false, nil
	}
	if r.applies.Add(1) > 1 {
		return true, nil // a later lease's check: nothing left to do
	}
	close(r.inApply)
	<-ctx.Done()
	_, err := r.ec2.StopInstances(context.WithoutCancel(ctx), &ec2.StopInstancesInput{InstanceIds: []string{r.id}})
	r.late <- err
	return false, ctx.Err()
}

// An apply in flight when the lease is lost is cancelled, and what it still
// tries to write afterwards is refused before it is sent; the next apply
// comes only under a new lease, with a greater token.
func TestLockedFencesApplyInFlight(t *testing.T) {
	dsn := locktest.DSN(t)
	sim := awssim.New(awssim.Options{TimeScale: 0})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)

	name := "fence-" + strings.ToLower(rand.Text()[:8])
	var lk *locked
	hs := awsapi.NewHubs(awsapi.Options{Config: new(awssim.ClientConfig(srv.URL)), Fence: func() error { return lk.fence() }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h, err := hs.Hub(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	img, err := h.EC2().DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"}})
	if err != nil {
		t.Fatal(err)
	}
	run := func() string {
		// Launch straight into the simulator: no lease is held yet.
		out, err := ec2.NewFromConfig(awssim.ClientConfig(srv.URL)).RunInstances(ctx, &ec2.RunInstancesInput{
			ImageId: img.Images[0].ImageId, InstanceType: "t3.micro", MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.Instances[0].InstanceId)
	}
	r := &straggler{ec2: h.EC2(), id: run(), applies: new(atomic.Int32), inApply: make(chan struct{}), late: make(chan error, 1)}
	g, err := engine.NewGraph(name, []*engine.Spec{{Kind: "straggler", Name: "s", Hash: "1",
		Build: func(engine.Lookup) (engine.Resource, string, error) { return r, "1", nil }}})
	if err != nil {
		t.Fatal(err)
	}
	lk = newLocked(nil, g, engine.Options{}, slog.New(slog.DiscardHandler))
	locker, err := lock.Open(ctx, dsn, name, lock.Options{TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close()
	lk.locker = locker
	done := make(chan error, 1)
	go func() { done <- lk.run(ctx) }()

	select {
	case <-r.inApply:
	case <-time.After(5 * time.Second):
		t.Fatal("no apply under the lease")
	}
	lk.mu.Lock()
	first, pid := lk.lease.Token(), lk.holder.PID
	lk.mu.Unlock()
	if n := locktest.Terminate(t, dsn, lock.AppName(name, pid)); n != 1 {
		t.Fatalf("terminated %d backends", n)
	}
	select {
	case err := <-r.late:
		var fe *awsapi.FencedError
		if !errors.As(err, &fe) || !errors.Is(err, lock.ErrLost) {
			t.Fatalf("the write after the loss: %v, want a FencedError wrapping lock.ErrLost", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the apply in flight was not cancelled by the loss")
	}
	if n := sim.Calls("StopInstances"); n != 0 {
		t.Fatalf("the simulator received %d StopInstances after the loss", n)
	}
	// The next apply: only under a new lease, after the old one expired.
	if !testsupport.Within(5*time.Second, func() bool { return r.applies.Load() >= 2 }) {
		t.Fatal("no apply under a new lease")
	}
	lk.mu.Lock()
	second := lk.lease.Token()
	lk.mu.Unlock()
	if second <= first {
		t.Errorf("second lease token %d, first %d", second, first)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("run: %v", err)
	}
}
