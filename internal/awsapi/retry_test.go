package awsapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"golang.org/x/sync/errgroup"

	"kiln/internal/awssim"
	"kiln/internal/engine"
	"kiln/internal/testsupport"
)

// faultyHub is a hub over a simulator whose DescribeKeyPairs fails as fault
// says (posted to /_sim/faults, as an operator would), with a short retry
// timeout and its log in a buffer.
func faultyHub(t *testing.T, fault string) (*Hub, *awssim.Sim, *testsupport.Buffer) {
	t.Helper()
	sim := awssim.New(awssim.Options{TimeScale: 0.001})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	resp, err := http.Post(srv.URL+"/_sim/faults", "application/json", strings.NewReader(fault))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /_sim/faults = %v, %v", resp, err)
	}
	resp.Body.Close()
	var log testsupport.Buffer
	hs := NewHubs(Options{Config: new(awssim.ClientConfig(srv.URL)),
		Retries:      Backoff{Min: time.Millisecond, Max: 5 * time.Millisecond},
		RetryTimeout: 300 * time.Millisecond,
		Log:          slog.New(slog.NewTextHandler(&log, nil)),
	})
	ctx, cancel := context.WithCancel(context.Background())
	var g errgroup.Group
	g.Go(func() error { return hs.Run(ctx) })
	t.Cleanup(func() { cancel(); _ = g.Wait() })
	h, err := hs.Hub(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	return h, sim, &log
}

func describeKeyPairs(ctx context.Context, h *Hub) error {
	return h.Retry(ctx, func(ctx context.Context) error {
		_, err := h.EC2().DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{})
		return err
	})
}

// TestRetryGivesUpAndSaysWhy: an endpoint that answers 500 to every call
// is retried with backoff, logged from the third attempt with the action,
// error, attempt and next try, and given up after the retry timeout with
// the last error and the action named. Every attempt reaches the endpoint
// and is counted: the SDK does not retry a server fault behind Retry's back.
func TestRetryGivesUpAndSaysWhy(t *testing.T) {
	h, sim, log := faultyHub(t, `{"action":"DescribeKeyPairs","code":"InternalError","status":500,"count":1000000}`)
	err := describeKeyPairs(t.Context(), h)
	if err == nil || engine.IsPermanent(err) {
		t.Fatalf("Retry() = %v; want a retryable error after the timeout", err)
	}
	m := regexp.MustCompile(`^ec2:DescribeKeyPairs: gave up after 300ms of retries \((\d+) attempts; --aws-retry-timeout\): .*InternalError`).FindStringSubmatch(err.Error())
	if m == nil {
		t.Fatalf("Retry() = %v; want it to give up naming ec2:DescribeKeyPairs and the last error", err)
	}
	attempts, _ := strconv.Atoi(m[1])
	// The call the timeout cut short may have reached the endpoint.
	if calls := sim.Calls("DescribeKeyPairs"); attempts < 3 || calls < attempts || calls > attempts+1 {
		t.Errorf("%d attempts said, %d calls made; want at least 3, and every call counted", attempts, calls)
	}
	out := log.String()
	for _, want := range []string{
		`level=INFO msg="AWS call failed, retrying" action=ec2:DescribeKeyPairs err=`,
		`InternalError`, ` attempt=3 next_try=`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, " attempt=2 ") {
		t.Errorf("log has the second attempt; want lines from the third on:\n%s", out)
	}
}

// TestRetryNotImplemented: an action the endpoint does not implement (501,
// or a 500 whose body is not an AWS error) is said in those words; a 501
// fails at once.
func TestRetryNotImplemented(t *testing.T) {
	h, sim, _ := faultyHub(t, `{"action":"DescribeKeyPairs","code":"NotImplemented","status":501,"count":1000000}`)
	err := describeKeyPairs(t.Context(), h)
	if !engine.IsPermanent(err) || !strings.Contains(err.Error(), "ec2:DescribeKeyPairs: the endpoint does not implement this action (HTTP 501)") || sim.Calls("DescribeKeyPairs") != 1 {
		t.Errorf("Retry(501) = %v after %d calls; want a permanent error saying the action is not implemented, after 1 call", err, sim.Calls("DescribeKeyPairs"))
	}

	h, _, log := faultyHub(t, `{"action":"DescribeKeyPairs","code":"X","status":500,"count":1000000,"body":"<html><body><h1>500 Internal Server Error</h1></body></html>"}`)
	err = describeKeyPairs(t.Context(), h)
	const words = "the endpoint does not implement this action (HTTP 500 with a body that is not an AWS error)"
	if err == nil || !strings.Contains(err.Error(), "ec2:DescribeKeyPairs: gave up") || !strings.Contains(err.Error(), words) {
		t.Errorf("Retry(500, HTML) = %v; want it to say %q", err, words)
	}
	if !strings.Contains(log.String(), words) {
		t.Errorf("log lacks %q:\n%s", words, log.String())
	}
}
