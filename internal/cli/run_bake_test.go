package cli

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awsapi"
	"kiln/internal/awssim"
	"kiln/internal/pipeline"
	"kiln/internal/testsupport"
)

// simEnv serves a simulator for the test and points kiln's standard AWS
// configuration at it, as an operator's AWS_ENDPOINT_URL would.
func simEnv(t *testing.T) (*awssim.Sim, *ec2.Client) {
	t.Helper()
	return simEnvWith(t, awssim.Options{TimeScale: 0.001})
}

// simEnvWith is simEnv with a simulator made with o.
func simEnvWith(t *testing.T, o awssim.Options) (*awssim.Sim, *ec2.Client) {
	t.Helper()
	sim := awssim.New(o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sim.Run(ctx) }()
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { srv.Close(); cancel(); <-done })
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL": srv.URL, "AWS_REGION": "us-east-1",
		"AWS_ACCESS_KEY_ID": awssim.AccessKeyID, "AWS_SECRET_ACCESS_KEY": awssim.SecretAccessKey,
		"AWS_CONFIG_FILE": filepath.Join(dir, "none"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "none"),
	} {
		t.Setenv(k, v)
	}
	return sim, ec2.NewFromConfig(awssim.ClientConfig(srv.URL))
}

func liveBuilders(sim *awssim.Sim) (ids []string) {
	for _, in := range sim.Instances() {
		if in.Tags[pipeline.TagRole] == "builder" && in.State != "terminated" && in.State != "shutting-down" {
			ids = append(ids, in.ID)
		}
	}
	return ids
}

// TestRunInterruptedBakeCleansUp: kiln run stopped (SIGINT, SIGTERM: its
// context ends) while an aws:ami bake waits for the builder terminates the
// builder before it exits. A builder left by a kiln that was killed, of a
// resource the graph no longer has, is terminated at the next start.
func TestRunInterruptedBakeCleansUp(t *testing.T) {
	sim, client := simEnv(t)
	graph := filepath.Join(t.TempDir(), "g.yaml")
	if err := os.WriteFile(graph, []byte(`name: bakes
resources:
  - kind: aws:ami
    name: web
    base: {owner: amazon, name: "al2023-ami-2023.*-x86_64", most_recent: true}
    type: t3.small
    script: |
      #!/bin/sh
      sleep 360000
`), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var stderr testsupport.Buffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"run", graph}, &testsupport.Buffer{}, &stderr) }()
	testsupport.Eventually(t, "a live builder", func() bool { return len(liveBuilders(sim)) == 1 })
	cancel()
	if code := <-done; code != ExitInterrupted {
		t.Errorf("kiln run = %d; want %d\n%s", code, ExitInterrupted, stderr.String())
	}
	if ids := liveBuilders(sim); len(ids) != 0 {
		t.Errorf("live builders after the interrupt = %v; want none\n%s", ids, stderr.String())
	}

	// A builder of aws:ami/old, which the graph no longer has.
	out, err := client.RunInstances(t.Context(), &ec2.RunInstancesInput{
		ImageId: aws.String("ami-000f627752e462816"), InstanceType: ec2types.InstanceTypeT3Micro,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance, Tags: []ec2types.Tag{
			{Key: aws.String(pipeline.TagRole), Value: aws.String("builder")},
			{Key: aws.String(awsapi.TagOwner), Value: aws.String("bakes")},
			{Key: aws.String(awsapi.TagResource), Value: aws.String("aws:ami/old")},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	orphan := aws.ToString(out.Instances[0].InstanceId)
	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	go func() { done <- run(ctx, []string{"run", graph}, &testsupport.Buffer{}, &stderr) }()
	testsupport.Eventually(t, "the orphan terminated and a new builder", func() bool {
		in, _ := sim.Instance(orphan)
		return (in.State == "terminated" || in.State == "shutting-down") && len(liveBuilders(sim)) == 1
	})
	cancel()
	if code := <-done; code != ExitInterrupted {
		t.Errorf("second kiln run = %d; want %d", code, ExitInterrupted)
	}
}
