package awssim_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"kiln/internal/awssim"
)

// The aws CLI is a second client of the simulator's SQS: its own
// serializers (botocore), not the Go SDK's. Skipped where it is not
// installed.
func TestSQSWithAWSCLI(t *testing.T) {
	bin, err := exec.LookPath("aws")
	if err != nil {
		t.Skip("the aws CLI is not installed")
	}
	sim := awssim.New(awssim.Options{})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	dir := t.TempDir()
	cli := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"--endpoint-url", srv.URL, "--output", "json"}, args...)...)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+awssim.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+awssim.SecretAccessKey,
			"AWS_DEFAULT_REGION=us-east-1", "AWS_REGION=us-east-1", "AWS_CONFIG_FILE="+filepath.Join(dir, "config"),
			"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "credentials"), "AWS_PAGER=")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := cli("sqs", "create-queue", "--queue-name", "cli-events")
	if err != nil {
		t.Fatalf("create-queue: %v\n%s", err, out)
	}
	var created struct{ QueueUrl string }
	if err := json.Unmarshal([]byte(out), &created); err != nil || !strings.HasSuffix(created.QueueUrl, "/123456789012/cli-events") {
		t.Fatalf("create-queue answered %q (%v)", out, err)
	}

	// The Go SDK sends, the CLI receives and deletes.
	c := sqs.NewFromConfig(awssim.ClientConfig(srv.URL))
	if _, err := c.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(created.QueueUrl), MessageBody: aws.String(`{"hello":"cli"}`)}); err != nil {
		t.Fatal(err)
	}
	out, err = cli("sqs", "receive-message", "--queue-url", created.QueueUrl, "--wait-time-seconds", "1",
		"--max-number-of-messages", "10", "--attribute-names", "All")
	if err != nil {
		t.Fatalf("receive-message: %v\n%s", err, out)
	}
	var got struct {
		Messages []struct {
			Body, ReceiptHandle string
			Attributes          map[string]string
		}
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got.Messages) != 1 || got.Messages[0].Body != `{"hello":"cli"}` {
		t.Fatalf("receive-message answered %q (%v)", out, err)
	}
	if got.Messages[0].Attributes["ApproximateReceiveCount"] != "1" {
		t.Errorf("attributes = %v", got.Messages[0].Attributes)
	}
	if out, err := cli("sqs", "delete-message", "--queue-url", created.QueueUrl, "--receipt-handle", got.Messages[0].ReceiptHandle); err != nil {
		t.Fatalf("delete-message: %v\n%s", err, out)
	}
	out, err = cli("sqs", "get-queue-attributes", "--queue-url", created.QueueUrl, "--attribute-names", "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
	if err != nil || !strings.Contains(out, `"ApproximateNumberOfMessages": "0"`) || !strings.Contains(out, `"ApproximateNumberOfMessagesNotVisible": "0"`) {
		t.Fatalf("get-queue-attributes: %v\n%s", err, out)
	}
	out, err = cli("sqs", "get-queue-url", "--queue-name", "missing")
	if err == nil || !strings.Contains(out, "NonExistentQueue") {
		t.Fatalf("get-queue-url of a missing queue: %v\n%s", err, out)
	}
	out, err = cli("events", "put-rule", "--name", "cli-rule", "--event-pattern", `{"source":["aws.ec2"]}`)
	if err != nil || !strings.Contains(out, "arn:aws:events:us-east-1:123456789012:rule/cli-rule") {
		t.Fatalf("events put-rule: %v\n%s", err, out)
	}
}
