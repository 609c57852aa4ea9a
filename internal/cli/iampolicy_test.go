package cli

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/rogpeppe/go-internal/txtar"

	"kiln/internal/awsapi"
	"kiln/internal/awssim"
	"kiln/internal/testsupport"
)

// policyFor is what kiln iam-policy prints for graph, parsed as the
// simulator parses a policy file, and the actions it allows.
func policyFor(t *testing.T, graph string) (*awssim.Policy, []string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"iam-policy", graph}, &stdout, &stderr); code != ExitOK {
		t.Fatalf("kiln iam-policy %s = %d\n%s", graph, code, stderr.String())
	}
	p, err := awssim.ParsePolicy(stdout.Bytes())
	if err != nil {
		t.Fatalf("the policy of %s does not parse: %v\n%s", graph, err, stdout.String())
	}
	var acts []string
	for _, st := range p.Statements {
		acts = append(acts, st.Action...)
	}
	slices.Sort(acts)
	return p, slices.Compact(acts)
}

// policySim is simEnv with a simulator enforcing p.
func policySim(t *testing.T, p *awssim.Policy) (*awssim.Sim, *ec2.Client) {
	t.Helper()
	return simEnvWith(t, awssim.Options{TimeScale: 0.001, Policy: p})
}

// pkgDir is this package's directory (tests start there, then Chdir).
var pkgDir, _ = os.Getwd()

// graphFile writes a graph taken from a testscript (script.txtar's file
// name) into dir and returns its path.
func graphFile(t *testing.T, dir, script, name string) string {
	t.Helper()
	ar, err := txtar.ParseFile(filepath.Join(pkgDir, "testdata", "script", script))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range ar.Files {
		if f.Name == name {
			path := filepath.Join(dir, strings.TrimSuffix(script, ".txtar")+"-"+name)
			if err := os.WriteFile(path, f.Data, 0o644); err != nil {
				t.Fatal(err)
			}
			return path
		}
	}
	t.Fatalf("%s has no file %s", script, name)
	return ""
}

// example copies examples/NAME into dir (the graphs write relative paths).
func example(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(pkgDir, "..", "..", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// liveInstance is the id of the live instance tagged kiln:resource=res.
func liveInstance(t *testing.T, sim *awssim.Sim, res string) string {
	t.Helper()
	for _, in := range sim.Instances() {
		if in.Tags[awsapi.TagResource] == res && in.State != "terminated" && in.State != "shutting-down" {
			return in.ID
		}
	}
	t.Fatalf("no live instance of %s", res)
	return ""
}

// TestPolicyIsEnough runs every example graph, and the testscripts' graphs
// of AWS kinds, against a simulator enforcing the policy kiln iam-policy
// prints for it: each converges with no call denied. Then it compares the
// actions the simulator authorized during the runs (drift repaired by a
// second run included) with the policy's: none missing, and none in the
// policy that the runs did not need except those listed, each for a path
// the runs do not take.
//
// The testscripts' other AWS graphs cannot converge by design:
// aws_offline.txtar's bad.yaml (an instance type EC2 refuses),
// iam_policy.txtar's profile.yaml (its image reads an output noop does not
// have) and bad.yaml, sim_policy.txtar's other.yaml (denied on purpose);
// sim.txtar runs examples/ec2.yaml; examples/local.yaml has no AWS kind
// (iam_policy.txtar checks its "nothing to allow").
func TestPolicyIsEnough(t *testing.T) {
	for _, tt := range []struct {
		name  string
		graph func(t *testing.T, dir string) string
		// drift, when set, changes the world by hand (or the graph) after
		// the first converge; a second run repairs it (or applies it).
		drift func(t *testing.T, sim *awssim.Sim, graph string)
		// unused are the policy's actions the runs do not call, and why.
		unused map[string]string
	}{
		{
			name:  "examples/ec2.yaml",
			graph: func(t *testing.T, dir string) string { return example(t, dir, "ec2.yaml") },
			drift: func(t *testing.T, sim *awssim.Sim, _ string) {
				id := liveInstance(t, sim, "aws:ec2/web-1")
				if err := sim.StopInstance(id); err != nil {
					t.Fatal(err)
				}
				sim.SetTags(id, nil, "team") // kiln puts the tag back
			},
			unused: map[string]string{
				"ec2:TerminateInstances":      "a replace, or state: terminated",
				"ec2:ModifyInstanceAttribute": "a type or user_data change of web-2 (allow_restart)",
			},
		},
		{
			name:  "examples/asg.yaml",
			graph: func(t *testing.T, dir string) string { return example(t, dir, "asg.yaml") },
			// Someone shrinks the group, and the graph's user data changes:
			// kiln puts the capacity back and rolls a new version out.
			drift: func(t *testing.T, sim *awssim.Sim, graph string) {
				as := autoscaling.NewFromConfig(awssim.ClientConfig(os.Getenv("AWS_ENDPOINT_URL")))
				sim.SetPolicy(nil)
				defer sim.SetPolicy(sim.Options().Policy)
				if _, err := as.UpdateAutoScalingGroup(t.Context(), &autoscaling.UpdateAutoScalingGroupInput{
					AutoScalingGroupName: aws.String("web"), DesiredCapacity: aws.Int32(2)}); err != nil {
					t.Fatal(err)
				}
				b, _ := os.ReadFile(graph)
				if err := os.WriteFile(graph, bytes.Replace(b, []byte("systemctl start nginx"), []byte("systemctl start nginx # v2"), 1), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			unused: map[string]string{
				"autoscaling:RollbackInstanceRefresh": "a failed refresh without auto_rollback",
				"ec2:DeregisterImage":                 "retention (keep) and a bake cut short",
				"ec2:DeleteSnapshot":                  "retention (keep)",
			},
		},
		{
			name:  "run_sim.txtar ami.yaml",
			graph: func(t *testing.T, dir string) string { return graphFile(t, dir, "run_sim.txtar", "ami.yaml") },
			drift: func(t *testing.T, sim *awssim.Sim, _ string) {
				id := liveInstance(t, sim, "aws:ec2/web-1")
				if err := sim.StopInstance(id); err != nil {
					t.Fatal(err)
				}
			},
			unused: map[string]string{
				"ec2:DeregisterImage":                "retention (keep) and a bake cut short",
				"ec2:DeleteSnapshot":                 "retention (keep)",
				"ec2:DescribeLaunchTemplateVersions": "retention: images in use by Auto Scaling groups",
				"ec2:StopInstances":                  "web-1 stopped by hand is started: a stop is for state: stopped",
			},
		},
		{
			name:  "iam_policy.txtar ami.yaml",
			graph: func(t *testing.T, dir string) string { return graphFile(t, dir, "iam_policy.txtar", "ami.yaml") },
			unused: map[string]string{
				"ec2:DeregisterImage":                "retention (keep) and a bake cut short",
				"ec2:DeleteSnapshot":                 "retention (keep)",
				"ec2:DescribeLaunchTemplateVersions": "retention: images in use by Auto Scaling groups",
				"ec2:StopInstances":                  "drift of web-1 (stopped by hand is started)",
				"ec2:StartInstances":                 "drift of web-1 (stopped by hand)",
			},
		},
		{
			// Every aws:ec2 field that adds an action, and aws:ami's
			// retention and builder profile.
			name:  "fields",
			graph: func(t *testing.T, dir string) string { return writeGraph(t, dir, fieldsGraph) },
			drift: func(t *testing.T, sim *awssim.Sim, graph string) {
				web := liveInstance(t, sim, "aws:ec2/web")
				if err := sim.SetInstanceProfile(web, ""); err != nil { // kiln associates it again
					t.Fatal(err)
				}
				b, _ := os.ReadFile(graph)
				b = bytes.Replace(b, []byte("echo v1"), []byte("echo v2"), 1)                     // a new bake; keep: 1 removes v1
				b = bytes.Replace(b, []byte("type: t3.micro # web"), []byte("type: t3.small"), 1) // stop, modify, start
				b = bytes.Replace(b, []byte("state: running # gone"), []byte("state: terminated"), 1)
				if err := os.WriteFile(graph, b, 0o644); err != nil {
					t.Fatal(err)
				}
			},
			unused: map[string]string{
				"ec2:ReplaceIamInstanceProfileAssociation": "another profile on a running instance",
				"ec2:DisassociateIamInstanceProfile":       "another profile on a stopped instance",
				"ec2:DescribeLaunchTemplateVersions":       "retention: images in use by Auto Scaling groups (there are none)",
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir)
			graph := tt.graph(t, dir)
			p, acts := policyFor(t, graph)
			sim, _ := policySim(t, p)
			converge := func(what string) {
				var stdout, stderr testsupport.Buffer
				if code := run(t.Context(), []string{"run", "--once", graph}, &stdout, &stderr); code != ExitOK {
					t.Fatalf("%s: kiln run --once = %d\n%s", what, code, stderr.String())
				}
			}
			converge("first run")
			if tt.drift != nil {
				tt.drift(t, sim, graph)
				converge("repair")
			}
			if d := sim.Denied(); len(d) != 0 {
				t.Errorf("denied = %v; want none: the policy is not enough", d)
			}
			got := slices.Sorted(maps.Keys(sim.Authorized()))
			t.Logf("authorized: %v", sim.Authorized())
			// Every call the simulator counted was authorized as its action.
			calls, _ := sim.CallCounts()
			for c := range calls {
				if !slices.ContainsFunc(got, func(a string) bool { return strings.HasSuffix(a, ":"+c) }) {
					t.Errorf("%s was called %d times but never authorized", c, calls[c])
				}
			}
			for _, a := range got {
				if !slices.Contains(acts, a) {
					t.Errorf("the runs needed %s, which the policy does not name", a)
				}
			}
			var unused []string
			for _, a := range acts {
				if !slices.Contains(got, a) {
					unused = append(unused, a)
				}
			}
			// The orphan scan lists hosted zones; with none, it reads no
			// zone's tags or records.
			unusedWant := maps.Clone(tt.unused)
			unusedWant["route53:ListTagsForResources"] = "the orphan scan: the tags of hosted zones (there are none)"
			unusedWant["route53:ListResourceRecordSets"] = "the orphan scan: records of hosted zones (there are none)"
			want := slices.Sorted(maps.Keys(unusedWant))
			if !slices.Equal(unused, want) {
				t.Errorf("policy actions the runs did not call = %v; want exactly %v\n(called: %v)", unused, want, got)
			}
		})
	}
}

// fieldsGraph uses every field that adds an action to the policy.
const fieldsGraph = `name: fields
resources:
  - kind: aws:ami
    name: base
    base: {owner: amazon, name: "al2023-ami-2023.*-x86_64", most_recent: true}
    type: t3.small
    keep: 1
    iam_profile: builder
    script: |
      #!/bin/sh
      echo v1
  - kind: aws:ec2
    name: web
    image: ami-000f627752e462816
    type: t3.micro # web
    iam_profile: web
    security_groups: [sg-001ff30e595de067a]
    allow_restart: true
    depends_on: [aws:ami/base]
  - kind: aws:ec2
    name: gone
    image: ami-000f627752e462816
    type: t3.micro
    state: running # gone
`

func writeGraph(t *testing.T, dir, text string) string {
	t.Helper()
	path := filepath.Join(dir, "graph.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPolicyDenies: the policy iam-policy prints for a graph does not let
// kiln stop an instance that is not the graph's, nor launch one without
// the graph's tag.
func TestPolicyDenies(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	p, _ := policyFor(t, example(t, dir, "ec2.yaml"))
	sim, c := policySim(t, p)
	ctx := t.Context()
	launch := func(tags ...ec2types.Tag) (*ec2.RunInstancesOutput, error) {
		in := &ec2.RunInstancesInput{ImageId: aws.String("ami-000f627752e462816"), InstanceType: ec2types.InstanceTypeT3Micro,
			MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}
		if len(tags) > 0 {
			in.TagSpecifications = []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance, Tags: tags},
				{ResourceType: ec2types.ResourceTypeVolume, Tags: tags}}
		}
		return c.RunInstances(ctx, in)
	}
	tag := func(k, v string) ec2types.Tag { return ec2types.Tag{Key: aws.String(k), Value: aws.String(v)} }

	if _, err := launch(); awsapi.Code(err) != "UnauthorizedOperation" {
		t.Errorf("untagged launch = %v; want UnauthorizedOperation", err)
	}
	if _, err := launch(tag(awsapi.TagOwner, "shop")); awsapi.Code(err) != "UnauthorizedOperation" {
		t.Errorf("launch tagged for another graph = %v; want UnauthorizedOperation", err)
	}

	// Someone else's instance, and one of another graph: never stopped,
	// terminated or retagged as the graph's.
	sim.SetPolicy(nil)
	theirs, err := launch(tag("team", "ops"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := launch(tag(awsapi.TagOwner, "shop"))
	if err != nil {
		t.Fatal(err)
	}
	sim.SetPolicy(p)
	for _, out := range []*ec2.RunInstancesOutput{theirs, other} {
		id := aws.ToString(out.Instances[0].InstanceId)
		if _, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}}); awsapi.Code(err) != "UnauthorizedOperation" {
			t.Errorf("stop %s = %v; want UnauthorizedOperation", id, err)
		}
		if _, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); awsapi.Code(err) != "UnauthorizedOperation" {
			t.Errorf("terminate %s = %v; want UnauthorizedOperation", id, err)
		}
		if _, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id}, Tags: []ec2types.Tag{tag(awsapi.TagOwner, "ec2-demo")}}); awsapi.Code(err) != "UnauthorizedOperation" {
			t.Errorf("tag %s as the graph's = %v; want UnauthorizedOperation", id, err)
		}
		if in, _ := sim.Instance(id); in.State == "stopping" || in.State == "stopped" || in.Tags[awsapi.TagOwner] == "ec2-demo" {
			t.Errorf("%s after denied calls: %+v", id, in)
		}
	}
	// The graph's own launch is allowed.
	if _, err := launch(tag(awsapi.TagOwner, "ec2-demo")); err != nil {
		t.Errorf("launch tagged for the graph = %v", err)
	}
}
