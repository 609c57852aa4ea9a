package awssim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"golang.org/x/sync/errgroup"
)

// Dummy credentials: the simulator does not check signatures.
const (
	AccessKeyID     = "AKIAKILNSIMULATOR00"
	SecretAccessKey = "kiln-simulator-secret"
)

// ClientConfig returns an aws.Config that points the SDK at a simulator
// endpoint (e.g. "http://127.0.0.1:4566"): static dummy credentials,
// region us-east-1 unless region is given, BaseEndpoint set. It reads no
// shared config files or environment.
func ClientConfig(endpoint string, region ...string) aws.Config {
	r := "us-east-1"
	if len(region) > 0 && region[0] != "" {
		r = region[0]
	}
	return aws.Config{
		Region:       r,
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, ""),
		BaseEndpoint: aws.String(endpoint),
		HTTPClient:   HTTPClient(),
	}
}

// HTTPClient is the SDK's default HTTP client with one change: request
// bodies are buffered in memory before they are sent. The SDK closes a
// request body as soon as the response headers arrive, and net/http may
// still be probing that body for trailing bytes; with a server as fast as
// the simulator the probe then fails and the connection is torn down
// under the response being read ("use of closed network connection").
// Real AWS answers too slowly for the race to show. Use this client
// (config.WithHTTPClient) for any SDK client pointed at the simulator.
// It also keeps more idle connections per host than the SDK's default (10),
// since every client of the simulator talks to the one host.
func HTTPClient() aws.HTTPClient {
	return bufferedBodies{awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConns = 1024
		t.MaxIdleConnsPerHost = 1024
	})}
}

type bufferedBodies struct{ next aws.HTTPClient }

func (b bufferedBodies) Do(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody {
		data, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("buffer request body: %w", err)
		}
		req.Body = io.NopCloser(bytes.NewReader(data))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
		req.ContentLength = int64(len(data))
	}
	return b.next.Do(req)
}

// Server is a simulator bound to a TCP address. NewServer only listens;
// Run serves.
type Server struct {
	Sim *Sim
	ln  net.Listener
}

// NewServer makes a simulator and listens on addr ("127.0.0.1:0" picks a
// free port). It starts no goroutines.
func NewServer(addr string, opts Options) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return &Server{Sim: New(opts), ln: ln}, nil
}

// URL is the endpoint to give the SDK, e.g. http://127.0.0.1:4566.
func (sv *Server) URL() string { return "http://" + sv.ln.Addr().String() }

// Run serves HTTP and drives the simulator until ctx is done, then shuts the
// server down and returns nil (or the first serving error).
func (sv *Server) Run(ctx context.Context) error {
	hs := &http.Server{Handler: sv.Sim, ReadHeaderTimeout: 10 * time.Second}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := hs.Serve(sv.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve simulator: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		err := sv.Sim.Run(gctx)
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
		if ctx.Err() != nil {
			return nil
		}
		return err
	})
	return g.Wait()
}

// Serve runs a simulator on addr until ctx is done, after printing to w how
// to point the AWS SDK and CLI at it. It is what `kiln sim` calls.
func Serve(ctx context.Context, addr string, opts Options, w io.Writer) error {
	sv, err := NewServer(addr, opts)
	if err != nil {
		return err
	}
	PrintUsage(w, sv.URL(), sv.Sim.Options())
	return sv.Run(ctx)
}

// PrintUsage writes the environment that points the SDK and CLI (v1 and
// v2) at url.
func PrintUsage(w io.Writer, url string, o Options) {
	fmt.Fprintf(w, "kiln EC2 + Auto Scaling simulator listening on %s (time scale %g, throttling %v)\n\n", url, o.TimeScale, o.Throttle)
	if o.Faults != nil {
		fmt.Fprintf(w, "Injecting faults: %s (seed %d; GET %s/_sim/faults/profile counts them)\n\n", strings.Join(o.Faults.Names(), ", "), o.Faults.Seed, url)
	}
	fmt.Fprintf(w, "Point the AWS SDK or CLI at it:\n\n")
	fmt.Fprintf(w, "  export AWS_ENDPOINT_URL=%s\n", url)
	fmt.Fprintf(w, "  export AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s\n", AccessKeyID, SecretAccessKey)
	// The aws CLI v1 reads only AWS_DEFAULT_REGION; the SDKs, AWS_REGION.
	fmt.Fprintf(w, "  export AWS_REGION=%s AWS_DEFAULT_REGION=%s\n\n", o.Region, o.Region)
	fmt.Fprintf(w, "  aws ec2 describe-images --owners amazon --filters Name=name,Values='al2023-ami-2023*-x86_64'\n")
	fmt.Fprintf(w, "  aws ec2 describe-images --region us-west-2 --owners amazon   # every region is a world of its own\n")
	fmt.Fprintf(w, "  curl %s/_sim/calls        # per-action call counts\n", url)
	if len(o.Accounts) > 0 {
		fmt.Fprintf(w, "\nAccounts besides %s (the static credentials'): %s. In each, STS AssumeRole on\n", o.Account, strings.Join(o.Accounts, ", "))
		fmt.Fprintf(w, "arn:aws:iam::ID:role/kiln gives credentials for that account:\n\n")
		fmt.Fprintf(w, "  aws sts assume-role --role-arn arn:aws:iam::%s:role/kiln --role-session-name me\n", o.Accounts[0])
	}
}
