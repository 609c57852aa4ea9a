package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeWithoutCredentials: kiln serve without AWS credentials checks
// them at start as run does: it still serves (projects, webhooks), warns
// once, and /readyz answers 503 with the reason while /healthz is ok.
func TestServeWithoutCredentials(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AWS_PROFILE", "kiln-no-such-profile")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "no-aws-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "no-aws-credentials"))
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("KILN_TOKEN", "test-admin-token")
	addrFile := filepath.Join(dir, "addr")
	ctx, cancel := context.WithCancel(t.Context())
	var stdout, stderr bytes.Buffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"serve", "--db", filepath.Join(dir, "kiln.db"), "--listen", "127.0.0.1:0", "--addr-file", addrFile}, &stdout, &stderr)
	}()
	var url string
	for url == "" {
		if data, err := os.ReadFile(addrFile); err == nil && strings.HasSuffix(string(data), "\n") {
			url = strings.TrimSpace(string(data))
			break
		}
		select {
		case c := <-code:
			t.Fatalf("kiln serve exited %d before listening: %s", c, stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
	get := func(path string) (int, string) {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Status string }
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body.Status
	}
	if c, status := get("/readyz"); c != http.StatusServiceUnavailable || !strings.HasPrefix(status, `no AWS credentials (profile "kiln-no-such-profile": `) {
		t.Errorf("GET /readyz = %d %q; want 503 saying there are no AWS credentials", c, status)
	}
	if c, status := get("/healthz"); c != http.StatusOK || status != "ok" {
		t.Errorf("GET /healthz = %d %q; want 200 ok", c, status)
	}
	cancel()
	if c := <-code; c != 0 && c != 130 {
		t.Errorf("kiln serve exited %d: %s", c, stderr.String())
	}
	if log := stderr.String(); strings.Count(log, `level=WARN msg="no usable AWS credentials: bakes cannot run; /readyz answers not ready"`) != 1 {
		t.Errorf("log = %s; want one warning about the credentials", log)
	}
}
