package awsapi

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/sync/errgroup"
)

func baseImage(t *testing.T, h *Hub) string {
	t.Helper()
	img, err := h.EC2().DescribeImages(t.Context(), &ec2.DescribeImagesInput{Owners: []string{"amazon"}})
	if err != nil || len(img.Images) == 0 {
		t.Fatalf("DescribeImages = %v", err)
	}
	return aws.ToString(img.Images[0].ImageId)
}

func member(graph string, i int) BatchMember {
	r := fmt.Sprintf("aws:ec2/web-%03d", i)
	return BatchMember{Owner: Owner{Graph: graph, Resource: r}, Token: ClientToken("kiln-", graph, r, ""),
		Tags: Tags(map[string]string{TagName: fmt.Sprintf("web-%03d", i), TagResource: r})}
}

// launchAll launches n members concurrently and returns resource → instance.
func launchAll(t *testing.T, h *Hub, l Launch, graph string, n int) map[string]string {
	t.Helper()
	var mu sync.Mutex
	got := map[string]string{}
	var g errgroup.Group
	for i := range n {
		g.Go(func() error {
			m := member(graph, i)
			in, err := h.LaunchInBatch(t.Context(), l, m)
			if err != nil {
				return err
			}
			mu.Lock()
			got[m.Owner.Resource] = aws.ToString(in.InstanceId)
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("LaunchInBatch() = %v", err)
	}
	return got
}

// named waits until every instance tagged kiln:owner=graph carries its
// kiln:resource tag and returns resource → instance.
func named(t *testing.T, h *Hub, graph string, n int) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		out, err := h.EC2().DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []types.Filter{
			{Name: aws.String("tag:" + TagOwner), Values: []string{graph}}}})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		total, unnamed := 0, 0
		for _, r := range out.Reservations {
			for _, in := range r.Instances {
				total++
				res := TagValue(in.Tags, TagResource)
				if res == "" {
					unnamed++
					continue
				}
				if prev, dup := got[res]; dup {
					t.Fatalf("instances %s and %s both claim %s", prev, aws.ToString(in.InstanceId), res)
				}
				got[res] = aws.ToString(in.InstanceId)
			}
		}
		if total > n {
			t.Fatalf("%d instances for %d members", total, n)
		}
		if unnamed == 0 && total == n {
			return got
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d of %d instances still unnamed", unnamed, total)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func TestLaunchInBatch(t *testing.T) {
	h, sim := simHub(t)
	l := Launch{Image: baseImage(t, h), Type: "t3.micro", Tags: Tags(map[string]string{TagOwner: "g"})}
	sim.ResetCalls()
	got := launchAll(t, h, l, "g", 250)
	// At least 3 (100 a call at most); a member arriving after the window
	// closed starts the next batch.
	if n := sim.Calls("RunInstances"); n < 3 || n > 6 {
		t.Errorf("RunInstances calls = %d for 250 identical launches; want 3 to 6", n)
	}
	tagged := named(t, h, "g", 250)
	for r, id := range got {
		if tagged[r] != id {
			t.Errorf("%s: launched %s, tagged %s", r, id, tagged[r])
		}
		if h.Claimed(Owner{Graph: "g", Resource: r}) != id {
			t.Errorf("Claimed(%s) = %q; want %s until a lookup sees its tags", r, h.Claimed(Owner{Graph: "g", Resource: r}), id)
		}
	}
	if n := sim.Calls("CreateTags"); n != 250 {
		t.Errorf("CreateTags calls = %d; want one per instance (250)", n)
	}
}

func TestLaunchInBatchAloneIsASingleLaunch(t *testing.T) {
	h, sim := simHub(t)
	l := Launch{Image: baseImage(t, h), Type: "t3.micro", Tags: Tags(map[string]string{TagOwner: "g"})}
	m := member("g", 1)
	in, err := h.LaunchInBatch(t.Context(), l, m)
	if err != nil {
		t.Fatal(err)
	}
	if TagValue(in.Tags, TagResource) != m.Owner.Resource || TagValue(in.Tags, TagBatch) != "" {
		t.Errorf("lone launch tags = %v; want its own tags at launch and no %s", in.Tags, TagBatch)
	}
	if aws.ToString(in.ClientToken) != m.Token {
		t.Errorf("lone launch token = %q; want the member's %q", aws.ToString(in.ClientToken), m.Token)
	}
	if n := sim.Calls("CreateTags"); n != 0 {
		t.Errorf("CreateTags calls = %d; want 0", n)
	}
}

// A process killed after its batch launched and before the naming: the
// next one adopts the unnamed instances and launches only what is missing.
func TestLaunchInBatchAdoptsUnnamed(t *testing.T) {
	h, sim := simHub(t)
	l := Launch{Image: baseImage(t, h), Type: "t3.micro", Tags: Tags(map[string]string{TagOwner: "g"})}
	key, err := launchKey("g", l)
	if err != nil {
		t.Fatal(err)
	}
	// The dead process's batch: 7 instances, 3 of them named.
	ids := launch(t, h, 7, types.Tag{Key: aws.String(TagOwner), Value: aws.String("g")}, types.Tag{Key: aws.String(TagBatch), Value: aws.String(key)})
	for i := range 3 {
		m := member("g", i)
		if _, err := h.EC2().CreateTags(t.Context(), &ec2.CreateTagsInput{Resources: []string{ids[i]}, Tags: m.Tags}); err != nil {
			t.Fatal(err)
		}
	}
	sim.ResetCalls()
	// The restart: members 3..9 have no named instance.
	var mu sync.Mutex
	got := map[string]string{}
	var g errgroup.Group
	for i := 3; i < 10; i++ {
		g.Go(func() error {
			m := member("g", i)
			in, err := h.LaunchInBatch(t.Context(), l, m)
			mu.Lock()
			got[m.Owner.Resource] = aws.ToString(in.InstanceId)
			mu.Unlock()
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if n := sim.Calls("RunInstances"); n != 1 {
		t.Errorf("RunInstances calls = %d; want 1 (for the 3 missing)", n)
	}
	tagged := named(t, h, "g", 10)
	for r, id := range got {
		if tagged[r] != id {
			t.Errorf("%s: given %s, tagged %s", r, id, tagged[r])
		}
	}
	for i := 3; i < 7; i++ {
		if got[member("g", i).Owner.Resource] == "" {
			t.Errorf("member %d got no instance", i)
		}
	}
}

func TestStateBatcherMerges(t *testing.T) {
	h, sim := simHub(t)
	ids := launch(t, h, 40)
	waitState(t, h, ids, "running")
	sim.ResetCalls()
	var g errgroup.Group
	for _, id := range ids {
		g.Go(func() error {
			out, err := h.States().StopInstances(t.Context(), &ec2.StopInstancesInput{InstanceIds: []string{id}})
			if err != nil {
				return err
			}
			if len(out.StoppingInstances) != 1 || aws.ToString(out.StoppingInstances[0].InstanceId) != id {
				return fmt.Errorf("StopInstances(%s) = %v; want its own state change", id, out.StoppingInstances)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if n := sim.Calls("StopInstances"); n > 3 {
		t.Errorf("StopInstances calls = %d for 40 concurrent stops; want them merged", n)
	}
}

// One id that the action refuses fails only its own caller.
func TestStateBatcherBadIDFailsAlone(t *testing.T) {
	h, _ := simHub(t)
	ids := launch(t, h, 8)
	waitState(t, h, ids, "running")
	ids = append(ids, "i-0000000000000dead")
	errs := make([]error, len(ids))
	var g errgroup.Group
	for i, id := range ids {
		g.Go(func() error {
			_, errs[i] = h.States().TerminateInstances(t.Context(), &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
			return nil
		})
	}
	_ = g.Wait()
	for i, err := range errs {
		bad := i == len(ids)-1
		if (err != nil) != bad {
			t.Errorf("TerminateInstances(%s) = %v; want an error only for the unknown id", ids[i], err)
		}
	}
}

func waitState(t *testing.T, h *Hub, ids []string, state string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		out, err := h.EC2().DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids})
		if err == nil {
			n := 0
			for _, r := range out.Reservations {
				for _, in := range r.Instances {
					if in.State != nil && string(in.State.Name) == state {
						n++
					}
				}
			}
			if n == len(ids) {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("instances not %s: %v", state, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
