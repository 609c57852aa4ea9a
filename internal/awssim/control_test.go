package awssim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/sync/errgroup"
)

func decodeJSON(r *http.Request, v any) error {
	defer r.Body.Close()
	return json.NewDecoder(r.Body).Decode(v)
}

func TestControlAPI(t *testing.T) {
	s, c := newTestSim(t, Options{})
	srv := httptest.NewServer(s)
	defer srv.Close()
	ami := baseImage(t, c)
	id := *run(t, c, &ec2.RunInstancesInput{ImageId: aws.String(ami)})[0].InstanceId
	call := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s = %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tests := []struct {
		name, method, path, body string
		status                   int
		want                     string
	}{
		{"advance", "POST", "/_sim/advance", `{"seconds":20}`, 200, `"now":"2026-01-01T00:00:20Z"`},
		{"stop by hand", "POST", "/_sim/instances/" + id + "/stop", "", 200, `"ok":true`},
		{"stop again", "POST", "/_sim/instances/" + id + "/stop", "", 409, "incorrect instance state"},
		{"unknown op", "POST", "/_sim/instances/" + id + "/explode", "", 404, "unknown operation"},
		{"unknown instance", "POST", "/_sim/instances/i-00000000/stop", "", 404, "no such resource"},
		{"retag", "POST", "/_sim/instances/" + id + "/tags", `{"set":{"Name":"by-hand"}}`, 200, `"ok":true`},
		{"one instance", "GET", "/_sim/instances/" + id, "", 200, `"Name":"by-hand"`},
		{"list", "GET", "/_sim/instances", "", 200, `"state":"stopping"`},
		{"fault", "POST", "/_sim/faults", `{"action":"DescribeInstances","code":"Unavailable","count":1}`, 200, `"ok":true`},
		{"bad fault", "POST", "/_sim/faults", `{"action":"x"}`, 400, "needs a code"},
		{"throttle", "POST", "/_sim/throttle", `{"enabled":false}`, 200, `"ok":true`},
		{"latency", "POST", "/_sim/latency", `{"action":"X","ms":0}`, 200, `"ok":true`},
		{"fail images", "POST", "/_sim/images/fail", `{"count":0}`, 200, `"ok":true`},
		{"events", "GET", "/_sim/events", "", 200, `"detail-type":"EC2 Instance State-change Notification"`},
		{"calls", "GET", "/_sim/calls", "", 200, `"RunInstances":1`},
		{"nothing", "GET", "/_sim/nope", "", 404, "no control endpoint"},
		{"bad json", "POST", "/_sim/advance", `{`, 400, "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := call(tt.method, tt.path, tt.body)
			if status != tt.status || !strings.Contains(body, tt.want) {
				t.Fatalf("%s %s = %d %s; want %d with %s", tt.method, tt.path, status, body, tt.status, tt.want)
			}
		})
	}
	_, err := c.DescribeInstances(t.Context(), &ec2.DescribeInstancesInput{})
	if errCode(err) != "Unavailable" {
		t.Fatalf("DescribeInstances after fault = %v; want Unavailable", err)
	}
	d, err := c.DescribeInstances(t.Context(), &ec2.DescribeInstancesInput{Filters: []types.Filter{{Name: aws.String("tag:Name"), Values: []string{"by-hand"}}}})
	if err != nil || len(d.Reservations) != 1 {
		t.Fatalf("DescribeInstances(retagged) = %v, %v", d, err)
	}
	if status, _ := call("DELETE", "/_sim/calls", ""); status != 200 || s.Calls("") != 0 {
		t.Fatalf("DELETE /_sim/calls did not reset the counters")
	}
	if status, _ := call("DELETE", "/_sim/faults", ""); status != 200 {
		t.Fatalf("DELETE /_sim/faults = %d", status)
	}
}

func TestServe(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	sv, err := NewServer("127.0.0.1:0", Options{})
	if err != nil {
		t.Fatalf("NewServer() = %v", err)
	}
	var g errgroup.Group
	g.Go(func() error { return sv.Run(ctx) })
	c := ec2.NewFromConfig(ClientConfig(sv.URL()))
	if _, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"}}); err != nil {
		t.Fatalf("DescribeImages() over TCP = %v", err)
	}
	cancel()
	if err := g.Wait(); err != nil {
		t.Fatalf("Run() = %v; want nil after cancel", err)
	}
	var out bytes.Buffer
	o := DefaultOptions()
	o.Region = "eu-west-3"
	PrintUsage(&out, "http://127.0.0.1:4566", o)
	// The aws CLI v1 reads the region only from AWS_DEFAULT_REGION.
	for _, want := range []string{"export AWS_ENDPOINT_URL=http://127.0.0.1:4566\n", "export AWS_REGION=eu-west-3 AWS_DEFAULT_REGION=eu-west-3\n"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("usage = %q; want %q in it", out.String(), want)
		}
	}
	// Serve returns when its context ends.
	sctx, scancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer scancel()
	if err := Serve(sctx, "127.0.0.1:0", Options{}, io.Discard); err != nil {
		t.Fatalf("Serve() = %v", err)
	}
}
