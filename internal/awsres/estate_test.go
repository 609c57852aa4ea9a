package awsres

import (
	"encoding/json"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"kiln/internal/awsapi"
	"kiln/internal/awssim"
	"kiln/internal/engine"
)

// estateWorld makes, in graph "shop": instances web-1 and web-2 (web-2 in
// security group web), the group, and key pair ops; an instance of graph
// "other"; and an untagged instance. It returns web-2's group id.
func estateWorld(t *testing.T, w *world) string {
	t.Helper()
	sg := w.securityGroup("web", nil)
	checkSG(t, sg)
	groupID := sg.Outputs()["group_id"]
	kp := w.keyPair("ops", func(r *KeyPair) { r.PublicKey = edKey(7) })
	if _, err := kp.CheckApply(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	checkApply(t, w.instance("web-1", nil))
	checkApply(t, w.instance("web-2", func(r *Instance) { r.SecurityGroups = []string{groupID} }))
	other := NewInstance(w.hubs)
	other.Image, other.Type = w.image, "t3.micro"
	_ = other.Init(engine.Env{Graph: "other", ID: "aws:ec2/web-2", Kind: "aws:ec2", Name: "web-2", Log: testLog})
	checkApply(t, other)
	for _, tags := range []map[string]string{
		nil, // untagged
		{awsapi.TagOwner: graph, awsapi.TagResource: "aws:asg/web"}, // a group's member: the group's to remove
	} {
		out, err := w.client.RunInstances(t.Context(), &ec2.RunInstancesInput{
			ImageId: aws.String(w.image), InstanceType: "t3.micro", MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		})
		if err != nil {
			t.Fatal(err)
		}
		if tags != nil {
			if err := w.sim.SetTags(aws.ToString(out.Instances[0].InstanceId), tags); err != nil {
				t.Fatal(err)
			}
		}
	}
	return groupID
}

func ownedIDs(owned []engine.Owned) []string {
	var out []string
	for _, o := range owned {
		out = append(out, o.ID)
	}
	return out
}

// TestEstatePrunesInRankOrder: the estate lists what "shop" owns by tag;
// destroying the orphans of a graph that kept only web-1 terminates web-2,
// then deletes its security group (which waits until web-2 no longer
// holds it) and the key pair; web-1, the other graph's instance and the
// untagged one are untouched. The aws CLI checks the world.
func TestEstatePrunesInRankOrder(t *testing.T) {
	w := newWorld(t, worldOpts{})
	groupID := estateWorld(t, w)
	est := NewEstate(w.hubs, testLog)
	owned, err := est.Owned(t.Context(), graph, []string{""})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"aws:ec2/web-1", "aws:ec2/web-2", "aws:key_pair/ops", "aws:security_group/web"}
	if got := ownedIDs(owned); !slices.Equal(got, want) {
		t.Fatalf("Owned() = %q; want %q (in rank order)", got, want)
	}
	g, err := engine.NewGraph(graph, []*engine.Spec{{Kind: "aws:ec2", Name: "web-1", Build: func(engine.Lookup) (engine.Resource, string, error) { return nil, "", nil }}})
	if err != nil {
		t.Fatal(err)
	}
	orphans := engine.Orphans(g, owned)
	if got := ownedIDs(orphans); !slices.Equal(got, want[1:]) {
		t.Fatalf("Orphans() = %q; want %q", got, want[1:])
	}
	if err := est.Destroy(t.Context(), orphans); err != nil {
		t.Fatalf("Destroy() = %v", err)
	}
	if live := w.live("web-1"); len(live) != 1 {
		t.Errorf("web-1: %d live instances; want 1 (it is in the graph)", len(live))
	}
	if live := w.live("web-2"); len(live) != 0 {
		t.Errorf("web-2: %d live instances; want 0 (pruned)", len(live))
	}
	if live := w.liveIn("other", "web-2"); len(live) != 1 {
		t.Errorf("the other graph's web-2: %d live instances; want 1 (untouched)", len(live))
	}
	untagged, member := 0, 0
	for _, in := range w.sim.Instances() {
		if in.State == "terminated" || in.State == "shutting-down" {
			continue
		}
		switch in.Tags[awsapi.TagResource] {
		case "":
			untagged++
		case "aws:asg/web":
			member++
		}
	}
	if untagged != 1 || member != 1 {
		t.Errorf("live untagged instances = %d, group members = %d; want 1, 1 (untouched)", untagged, member)
	}
	left, err := est.Owned(t.Context(), graph, []string{""})
	if err != nil {
		t.Fatal(err)
	}
	if got := ownedIDs(left); !slices.Equal(got, want[:1]) {
		t.Errorf("Owned() after the prune = %q; want %q", got, want[:1])
	}
	// Destroying again is a no-op: what is gone is fine.
	if err := est.Destroy(t.Context(), orphans); err != nil {
		t.Errorf("second Destroy() = %v; want nil", err)
	}

	if _, err := exec.LookPath("aws"); err != nil {
		t.Log("the aws CLI is not installed: second-client check skipped")
		return
	}
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL": w.endpoint, "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
		"AWS_ACCESS_KEY_ID": awssim.AccessKeyID, "AWS_SECRET_ACCESS_KEY": awssim.SecretAccessKey,
		"AWS_CONFIG_FILE": os.DevNull, "AWS_SHARED_CREDENTIALS_FILE": os.DevNull, "AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}
	awsCLI := func(out any, args ...string) {
		t.Helper()
		b, err := exec.CommandContext(t.Context(), "aws", append([]string{"--output", "json"}, args...)...).Output()
		if err != nil {
			t.Fatalf("aws %s: %v", strings.Join(args, " "), err)
		}
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatal(err)
		}
	}
	var groups struct{ SecurityGroups []struct{ GroupId string } }
	awsCLI(&groups, "ec2", "describe-security-groups", "--filters", "Name=tag:kiln:owner,Values=shop")
	if len(groups.SecurityGroups) != 0 {
		t.Errorf("aws ec2 describe-security-groups: %v; want group %s gone", groups.SecurityGroups, groupID)
	}
	var keys struct{ KeyPairs []struct{ KeyName string } }
	awsCLI(&keys, "ec2", "describe-key-pairs", "--filters", "Name=tag:kiln:owner,Values=shop")
	if len(keys.KeyPairs) != 0 {
		t.Errorf("aws ec2 describe-key-pairs: %v; want none", keys.KeyPairs)
	}
	var res struct {
		Reservations []struct {
			Instances []struct {
				Tags []struct{ Key, Value string }
			}
		}
	}
	awsCLI(&res, "ec2", "describe-instances", "--filters", "Name=instance-state-name,Values=pending,running")
	var live []string
	for _, r := range res.Reservations {
		for _, in := range r.Instances {
			owner, id := "-", "-"
			for _, tag := range in.Tags {
				switch tag.Key {
				case awsapi.TagOwner:
					owner = tag.Value
				case awsapi.TagResource:
					id = tag.Value
				}
			}
			live = append(live, owner+" "+id)
		}
	}
	slices.Sort(live)
	if want := []string{"- -", "other aws:ec2/web-2", "shop aws:asg/web", "shop aws:ec2/web-1"}; !slices.Equal(live, want) {
		t.Errorf("aws ec2 describe-instances: live %q; want %q", live, want)
	}
}

// TestEstateInstancesFromThePoll: with the graph's poll running, listing
// what it owns reads the poll's snapshot and makes no DescribeInstances
// call of its own.
func TestEstateInstancesFromThePoll(t *testing.T) {
	w := newWorld(t, worldOpts{})
	for _, name := range []string{"web-1", "web-2", "web-3"} {
		checkApply(t, w.instance(name, nil))
	}
	h, err := w.hubs.Hub(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	cancel := h.Subscribe(awsapi.Owner{Graph: graph, Resource: "aws:ec2/web-1"}, 0, func() {})
	defer cancel()
	if err := h.Poll(t.Context(), graph); err != nil {
		t.Fatal(err)
	}
	before := w.sim.Calls("DescribeInstances")
	owned, err := listInstances(t.Context(), nil, h, graph)
	if err != nil {
		t.Fatal(err)
	}
	if n := w.sim.Calls("DescribeInstances") - before; n != 0 {
		t.Errorf("DescribeInstances calls to list what the graph owns = %d; want 0 (the poll's snapshot)", n)
	}
	engine.SortOwned(owned)
	if got := ownedIDs(owned); !slices.Equal(got, []string{"aws:ec2/web-1", "aws:ec2/web-2", "aws:ec2/web-3"}) {
		t.Errorf("owned from the poll = %q", got)
	}
}

// TestEstateDestroysASGThenTemplate: an Auto Scaling group removed from
// the graph is deleted with its instances, then its launch template; its
// members are never listed as instances of their own.
func TestEstateDestroysASGThenTemplate(t *testing.T) {
	w := newASGWorld(t)
	w.created(t, "web", func(r *ASG) { r.Min, r.Max = 2, 2 })
	est := NewEstate(w.hubs, testLog)
	owned, err := est.Owned(t.Context(), graph, []string{""})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range owned {
		got = append(got, o.ID+" "+o.Part)
	}
	if want := []string{"aws:asg/web ", "aws:asg/web launch template"}; !slices.Equal(got, want) {
		t.Fatalf("Owned() = %q; want %q (the group, then its template; no member instance)", got, want)
	}
	done := make(chan error, 1)
	go func() { done <- est.Destroy(t.Context(), owned) }()
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Destroy() = %v", err)
			}
			if _, ok := w.sim.AutoScalingGroup("web"); ok {
				t.Error("the group is still there")
			}
			left, err := est.Owned(t.Context(), graph, []string{""})
			if err != nil || len(left) != 0 {
				t.Errorf("Owned() after Destroy = %v, %v; want nothing", left, err)
			}
			return
		default:
			w.sim.Advance(10 * time.Second)
			runtime.Gosched()
		}
	}
}
