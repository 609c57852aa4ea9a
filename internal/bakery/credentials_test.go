package bakery

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"kiln/internal/awsapi"
	"kiln/internal/awssim"
	"kiln/internal/store"
	"kiln/internal/testsupport"
)

// TestBakeWithoutCredentials: a bake whose AWS calls cannot get
// credentials does not sit at "running" saying nothing: while it waits its
// reason says "waiting: no AWS credentials (...)", and after the retry
// timeout it fails with that reason.
func TestBakeWithoutCredentials(t *testing.T) {
	w := newWorld(t, awssim.Options{})
	cfg := awssim.ClientConfig("http://127.0.0.1:9")
	cfg.Credentials = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{}, errors.New("no EC2 IMDS role found")
	})
	w.hubs = awsapi.NewHubs(awsapi.Options{Config: &cfg, RetryTimeout: time.Second,
		Retries: awsapi.Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond}})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = w.hubs.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	st := w.open(t)
	putProject(t, st, "web", "#!/bin/sh\necho hi\n", nil)
	s := w.serve(t, st, nil)
	id := trigger(t, s, "web")
	const waiting = `waiting: no AWS credentials (profile "`
	testsupport.Eventually(t, "the bake to say what it waits for", func() bool {
		b, err := st.Bake(t.Context(), id)
		return err == nil && b.State == store.Running && strings.HasPrefix(b.Reason, waiting) && strings.Contains(b.Reason, "no EC2 IMDS role found")
	})
	b := waitFinal(t, st, id)
	if b.State != store.Failed || !strings.HasPrefix(b.Reason, "no AWS credentials (") || !strings.Contains(b.Reason, "for 1s (--aws-retry-timeout)") {
		t.Errorf("bake = %s, %q; want failed for want of credentials after the retry timeout", b.State, b.Reason)
	}
}
