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

	"kiln/internal/testsupport"
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
	out, err := h.EC2().DescribeInstances(t.Context(), &ec2.DescribeInstancesInput{Filters: []types.Filter{
		{Name: aws.String("tag:" + TagOwner), Values: []string{"g"}}}})
	if err != nil {
		t.Fatal(err)
	}
	lone := map[string]bool{} // a member that came after its window closed, alone: a single launch
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			res := TagValue(in.Tags, TagResource)
			if TagValue(in.Tags, TagBatch) == "" {
				lone[res] = true
				continue
			}
			if LaunchedFor(in) != MemberDigest(res) {
				t.Errorf("%s records member %q at launch; want %s's %q", aws.ToString(in.InstanceId), LaunchedFor(in), res, MemberDigest(res))
			}
		}
	}
	for r, id := range got {
		if tagged[r] != id {
			t.Errorf("%s: launched %s, tagged %s", r, id, tagged[r])
		}
		if c := h.Claimed(Owner{Graph: "g", Resource: r}); c != id && !lone[r] {
			t.Errorf("Claimed(%s) = %q; want %s until a lookup sees its tags", r, c, id)
		}
	}
	if n := sim.Calls("CreateTags"); n != 250-len(lone) {
		t.Errorf("CreateTags calls = %d; want one per batched instance (%d)", n, 250-len(lone))
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

// deadBatch is a batch that a killed process launched for members (in
// this order of launch index) and never named: one RunInstances with the
// batch's tags at launch, as the launcher makes it.
func deadBatch(t *testing.T, h *Hub, l Launch, token string, members ...int) []string {
	t.Helper()
	key, err := launchKey("g", l)
	if err != nil {
		t.Fatal(err)
	}
	var digests []string
	for _, i := range members {
		digests = append(digests, MemberDigest(member("g", i).Owner.Resource))
	}
	l.Token = token
	l.Tags = mergeTags(l.Tags, append(membersTags(digests), types.Tag{Key: aws.String(TagBatch), Value: aws.String(key)}))
	in, err := l.input()
	if err != nil {
		t.Fatal(err)
	}
	in.MinCount, in.MaxCount = aws.Int32(int32(len(members))), aws.Int32(int32(len(members)))
	out, err := h.EC2().RunInstances(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(members))
	for _, in := range out.Instances {
		ids[aws.ToInt32(in.AmiLaunchIndex)] = aws.ToString(in.InstanceId)
	}
	return ids
}

// relaunch asks for members concurrently, as a restarted kiln's resources
// do, and returns resource → instance given.
func relaunch(t *testing.T, h *Hub, l Launch, members ...int) map[string]string {
	t.Helper()
	var mu sync.Mutex
	got := map[string]string{}
	var g errgroup.Group
	for _, i := range members {
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
	return got
}

// A process killed after its batch launched and before the naming
// finished: the next one gives each resource the very instance launched
// for it (its digest at the instance's launch index), whatever the dead
// batch's composition and whether its name shows yet, and launches only
// what is missing.
func TestLaunchInBatchAdoptsByMember(t *testing.T) {
	h, sim := simHub(t)
	l := Launch{Image: baseImage(t, h), Type: "t3.micro", Tags: Tags(map[string]string{TagOwner: "g"})}
	// The dead process's batch: members 8, 1, 5, 3, 0 (another
	// composition and token than any the restart makes); member 8 named,
	// member 1's name set but not visible yet (eventual consistency: to a
	// reader it is unnamed).
	launched := []int{8, 1, 5, 3, 0}
	ids := deadBatch(t, h, l, "dead-process-token", launched...)
	for k, i := range launched {
		if i == 8 {
			if _, err := h.EC2().CreateTags(t.Context(), &ec2.CreateTagsInput{Resources: []string{ids[k]}, Tags: member("g", i).Tags}); err != nil {
				t.Fatal(err)
			}
		}
	}
	sim.ResetCalls()
	// The restart: every member but 8 finds nothing under its own tags.
	got := relaunch(t, h, l, 0, 1, 2, 3, 4, 5, 6, 7, 9)
	for k, i := range launched[1:] {
		r := member("g", i).Owner.Resource
		if got[r] != ids[k+1] {
			t.Errorf("%s given %s; want %s, launched for it", r, got[r], ids[k+1])
		}
	}
	if n := sim.Calls("RunInstances"); n != 1 {
		t.Errorf("RunInstances calls = %d; want 1 (for the 5 never launched)", n)
	}
	if n := sim.Calls("TerminateInstances"); n != 0 {
		t.Errorf("TerminateInstances calls = %d; want 0", n)
	}
	tagged := named(t, h, "g", 10)
	for r, id := range got {
		if tagged[r] != id {
			t.Errorf("%s: given %s, tagged %s", r, id, tagged[r])
		}
	}
}

// Two dead batches launched for one member (the second process did not
// see the first one's instance yet): the member gets the older, the other
// is terminated, and nothing is launched.
func TestLaunchInBatchTerminatesExtras(t *testing.T) {
	h, sim := simHub(t)
	l := Launch{Image: baseImage(t, h), Type: "t3.micro", Tags: Tags(map[string]string{TagOwner: "g"})}
	a := deadBatch(t, h, l, "first-process", 1, 2)
	b := deadBatch(t, h, l, "second-process", 2, 3)
	sim.ResetCalls()
	got := relaunch(t, h, l, 1, 2, 3)
	want := map[int]string{1: a[0], 2: a[1], 3: b[1]}
	for i, id := range want {
		if r := member("g", i).Owner.Resource; got[r] != id {
			t.Errorf("%s given %s; want %s", r, got[r], id)
		}
	}
	if n := sim.Calls("RunInstances"); n != 0 {
		t.Errorf("RunInstances calls = %d; want 0", n)
	}
	testsupport.Eventually(t, "the extra instance terminated", func() bool {
		in, ok := sim.Instance(b[0])
		return ok && (in.State == "shutting-down" || in.State == "terminated")
	})
}

// A caller that gave up and asks again while its first launch is in a
// batch gets that launch's instance, never a second one.
func TestLaunchInBatchSameMemberTwice(t *testing.T) {
	h, sim := simHub(t)
	l := Launch{Image: baseImage(t, h), Type: "t3.micro", Tags: Tags(map[string]string{TagOwner: "g"})}
	ctx, cancel := context.WithCancel(t.Context())
	var g errgroup.Group
	for i := range 3 {
		g.Go(func() error {
			c := t.Context()
			if i == 0 {
				c = ctx
			}
			_, err := h.LaunchInBatch(c, l, member("g", i))
			return err
		})
	}
	cancel() // member 0's first caller gives up at once
	_ = g.Wait()
	got := relaunch(t, h, l, 0, 1, 2)
	tagged := named(t, h, "g", 3)
	for r, id := range got {
		if tagged[r] != id {
			t.Errorf("%s: given %s, tagged %s", r, id, tagged[r])
		}
	}
	if n := sim.Calls("RunInstances"); n > 2 {
		t.Errorf("RunInstances calls = %d; want at most 2", n)
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

// The poll terminates an unnamed batch instance launched for a resource
// that has a named one (a second launch by a kiln that restarted before
// AWS listed the first), and leaves alone an unnamed one whose resource
// has none yet.
func TestPollReapsExtras(t *testing.T) {
	h, _ := simHub(t)
	l := Launch{Image: baseImage(t, h), Type: "t3.micro", Tags: Tags(map[string]string{TagOwner: "g"})}
	first := deadBatch(t, h, l, "first-process", 5, 6)
	if _, err := h.EC2().CreateTags(t.Context(), &ec2.CreateTagsInput{Resources: []string{first[0]}, Tags: member("g", 5).Tags}); err != nil {
		t.Fatal(err)
	}
	extra := deadBatch(t, h, l, "second-process", 5)
	if err := h.Poll(t.Context(), "g"); err != nil {
		t.Fatal(err)
	}
	out, err := h.EC2().DescribeInstances(t.Context(), &ec2.DescribeInstancesInput{InstanceIds: append(first, extra...)})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{first[0]: true, first[1]: true, extra[0]: false}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			id := aws.ToString(in.InstanceId)
			if IsLive(in) != want[id] {
				t.Errorf("%s (recorded for %s, named %q) live = %v; want %v", id, LaunchedFor(in), TagValue(in.Tags, TagResource), IsLive(in), want[id])
			}
		}
	}
}
