package awssim

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// services is every API the simulator serves, one line per service; each
// service's file declares it with its action table. A Query request goes
// to the service whose version it names; one with an unknown or missing
// Version goes to the first, EC2, and is answered as EC2 answers it.
var services = []*service{
	ec2Service,         // ec2_service.go
	autoscalingService, // autoscaling.go
	sqsService,         // sqs.go
	eventbridgeService, // eventbridge.go
	route53Service,     // route53.go
	ssmService,         // ssm.go
	stsService,         // sts.go
	kmsService,         // kms.go

	// CloudWatch (cloudwatch.go): one action table in two protocols.
	cloudwatchService,     // RPC v2 CBOR (the Go SDK)
	cloudwatchJSONService, // AWS JSON 1.0 (the aws CLI v1)
}

// A service is one simulated AWS API: the requests that are its, the wire
// format of its answers, its actions, and what applies to it besides.
type service struct {
	// name is the service's path in the control API, /_sim/NAME/.
	name string
	// version is the Query Version parameter that routes a request here.
	version string
	// match, when not nil, claims the requests of a service that is not a
	// Query API (Route 53's REST paths, the X-Amz-Target header of the
	// JSON protocols) before any body is read; decode then reads such a
	// request into a *request (its Action, and Params or Body).
	match  func(hr *http.Request) bool
	decode func(hr *http.Request) (*request, error)
	// proto writes the service's answers and errors.
	proto protocol
	// actions is the API, by action name.
	actions map[string]action
	// admit, when not nil, takes a request's tokens from AWS's request
	// buckets while throttling is on; false refuses it with
	// RequestLimitExceeded (503), or throttled when it is set.
	admit     func(s *Sim, r *request) bool
	throttled *APIError
	// control, when not nil, serves the service's part of the control API
	// under /_sim/NAME/; parts is the path below it, split at "/".
	control func(s *Sim, w http.ResponseWriter, hr *http.Request, parts []string)
}

// An action handles one API call. It returns the response body (a pointer
// to a struct that encoding/xml can encode, in the shape the service's
// protocol expects) or an error; an *APIError goes to the client as is,
// anything else as InternalError.
type action func(s *Sim, r *request) (any, error)

// route picks the service of hr and decodes the request: a service that
// claims it by match first, else the Query service its Version names.
func route(hr *http.Request) (*service, *request, error) {
	for _, svc := range services {
		if svc.match != nil && svc.match(hr) {
			req, err := svc.decode(hr)
			return svc, req, err
		}
	}
	req, err := decodeRequest(hr)
	if req == nil {
		return services[0], nil, err
	}
	return serviceFor(req.Version), req, err
}

// serviceFor is the service a Query request of this Version goes to.
func serviceFor(version string) *service {
	for _, svc := range services {
		if svc.version != "" && svc.version == version { // services claimed by match have none
			return svc
		}
	}
	return services[0]
}

const controlPrefix = "/_sim/"

// ServeHTTP answers the Query requests of every service (see services),
// and the control API under /_sim/.
func (s *Sim) ServeHTTP(w http.ResponseWriter, hr *http.Request) {
	if strings.HasPrefix(hr.URL.Path, controlPrefix) {
		if !s.serveAccountControl(w, hr) && !s.serveRegionControl(w, hr) {
			s.serveControl(w, hr)
		}
		return
	}
	svc, req, err := route(hr)
	id := newRequestID()
	if err != nil {
		s.writeError(w, svc, id, err)
		return
	}
	world, err := s.worldFor(hr) // regions.go
	if err != nil {
		s.writeError(w, svc, id, err)
		return
	}
	req.ID = id
	req.Region = signedRegion(hr)
	req.AccessKey = accessKey(hr)
	act, ok := svc.actions[req.Action]
	if !ok {
		s.writeError(w, svc, id, apiErr("InvalidAction", "The action %s is not valid for this web service.", req.Action))
		return
	}
	body, err := s.call(hr, svc, req, act, world)
	if errors.Is(err, errConnReset) && resetConn(w) {
		return
	}
	if err != nil {
		s.writeError(w, svc, id, err)
		return
	}
	svc.proto.writeResult(w, req.Action, id, body)
}

// call applies counters, faults, throttling and Options.Policy, then runs
// the action in world (s itself, or the world of the request's region: its
// own buckets and state, s's counters, faults and policy).
func (s *Sim) call(hr *http.Request, svc *service, req *request, act action, world *Sim) (body any, err error) {
	s.counters.add(req.Action)
	if d := s.faults.latencyFor(req.Action); d > 0 {
		if err := sleepCtx(hr.Context(), d); err != nil {
			return nil, &APIError{Status: http.StatusServiceUnavailable, Code: "RequestCanceled", Message: "request canceled"}
		}
	}
	if ferr, d := s.flaky(); ferr != nil { // profiles.go
		return nil, ferr
	} else if d > 0 {
		if err := sleepCtx(hr.Context(), d); err != nil {
			return nil, &APIError{Status: http.StatusServiceUnavailable, Code: "RequestCanceled", Message: "request canceled"}
		}
	}
	f, after := s.faults.take(req.Action)
	if f != nil && !after {
		return nil, f
	}
	if svc.admit != nil && s.throttleEnabled() {
		s.tenantBurst(world)
		if !svc.admit(world, req) {
			s.counters.throttled(req.Action)
			if svc.throttled != nil {
				return nil, svc.throttled
			}
			return nil, &APIError{Status: http.StatusServiceUnavailable, Code: "RequestLimitExceeded", Message: "Request limit exceeded."}
		}
	}
	if err := world.authorize(svc, req); err != nil { // authz.go; a DryRun is authorized too
		return nil, err
	}
	if b, _ := strconv.ParseBool(req.Params.Get("DryRun")); b {
		return nil, &APIError{Status: http.StatusPreconditionFailed, Code: "DryRunOperation", Message: "Request would have succeeded, but DryRun flag is set."}
	}
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("action panicked", "action", req.Action, "panic", p)
			body, err = nil, &APIError{Status: http.StatusInternalServerError, Code: "InternalError", Message: "An internal error has occurred"}
		}
	}()
	body, err = act(world, req)
	if f != nil { // served, but the answer is lost
		return nil, f
	}
	return body, err
}

// resetConn drops the client's connection with a TCP reset and no answer,
// as a failing load balancer does; false when w's connection cannot be
// taken over (the error is then answered as a 500).
func resetConn(w http.ResponseWriter) bool {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return false
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return false
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // close sends RST, not FIN
	}
	_ = conn.Close()
	return true
}

// writeError answers err in svc's format: an *APIError as it is, any other
// error (logged) as a 500 InternalError.
func (s *Sim) writeError(w http.ResponseWriter, svc *service, id string, err error) {
	var ae *APIError
	if !errors.As(err, &ae) {
		s.log.Error("action failed", "err", err)
		ae = &APIError{Status: http.StatusInternalServerError, Code: "InternalError", Message: "An internal error has occurred"}
	}
	if ae.Body != "" {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(ae.Status)
		_, _ = io.WriteString(w, ae.Body)
		return
	}
	svc.proto.writeError(w, id, ae)
}
