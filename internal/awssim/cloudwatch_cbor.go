package awssim

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// Smithy RPC v2 CBOR (smithy.protocols#rpcv2Cbor): a POST to
// /service/SERVICE/operation/OPERATION with the header
// "smithy-protocol: rpc-v2-cbor" and the input as a CBOR map (no body for
// an empty input); the answer is the output as a CBOR map
// (application/cbor) with the same header, and an error is a map
// {"__type": "namespace#Shape", "message": ...} with the error's HTTP
// status. Timestamps are CBOR tag 1 (epoch seconds). A service that was an
// AWS Query API before (CloudWatch) also names its Query-era error code in
// x-amzn-query-error ("ResourceNotFound;Sender"), which the SDKs report as
// the error code. Both the Go SDK's cloudwatch client and the aws CLI
// (botocore picks the first protocol its model lists) speak it.

// rpcv2Path is the path prefix of service's operations.
func rpcv2Path(service string) string { return "/service/" + service + "/operation/" }

// cborTarget returns a service's match and decode for RPC v2 CBOR: the
// requests to /service/SERVICE/operation/ACTION.
func cborTarget(service string) (func(*http.Request) bool, func(*http.Request) (*request, error)) {
	prefix := rpcv2Path(service)
	match := func(hr *http.Request) bool { return strings.HasPrefix(hr.URL.Path, prefix) }
	decode := func(hr *http.Request) (*request, error) {
		req := &request{Action: strings.TrimPrefix(hr.URL.Path, prefix)}
		if hr.Method != http.MethodPost {
			return req, &APIError{Status: http.StatusMethodNotAllowed, Code: "UnknownOperationException", Message: "Method " + hr.Method + " not allowed"}
		}
		if p := hr.Header.Get("Smithy-Protocol"); p != "rpc-v2-cbor" {
			return req, apiErr("InvalidRequest", "Smithy-Protocol must be rpc-v2-cbor, got %q", p)
		}
		body, err := io.ReadAll(io.LimitReader(hr.Body, maxBody+1))
		if err != nil {
			return req, apiErr("SerializationException", "read body: %v", err)
		}
		if len(body) > maxBody {
			return req, &APIError{Status: http.StatusRequestEntityTooLarge, Code: "RequestEntityTooLarge", Message: "Request body too large"}
		}
		req.Body, req.CBOR = body, true
		req.Host, req.ctx = hr.Host, hr.Context()
		return req, nil
	}
	return match, decode
}

// cborDec decodes requests: unknown fields are ignored, as AWS ignores
// them; tag 1 and tag 0 both decode to time.Time.
var cborDec = func() cbor.DecMode {
	m, err := cbor.DecOptions{MaxNestedLevels: 32, MaxArrayElements: 10000, MaxMapPairs: 10000}.DecMode()
	if err != nil {
		panic(err)
	}
	return m
}()

// cborEnc encodes answers: time.Time as tag 1 with an integer, or a
// float when it has a fraction of a second.
var cborEnc = func() cbor.EncMode {
	m, err := cbor.EncOptions{Time: cbor.TimeUnixDynamic, TimeTag: cbor.EncTagRequired}.EncMode()
	if err != nil {
		panic(err)
	}
	return m
}()

// cwBody decodes a request's body into v: CBOR (RPC v2) or JSON (AWS
// JSON 1.0), by the protocol it came in; an empty body is an empty input.
// A malformed one is a SerializationException. v's fields carry json tags,
// which the CBOR decoder reads too.
func cwBody(r *request, v any) error {
	if len(r.Body) == 0 {
		return nil
	}
	var err error
	if r.CBOR {
		err = cborDec.Unmarshal(r.Body, v)
	} else {
		err = json.Unmarshal(r.Body, v)
	}
	if err != nil {
		return apiErr("SerializationException", "malformed request body: %v", err)
	}
	return nil
}

// rpcv2CBOR writes a service's answers and errors in RPC v2 CBOR.
type rpcv2CBOR struct {
	namespace string            // the error shapes' namespace, "com.amazonaws.cloudwatch"
	query     map[string]string // error code (its shape) → its Query-era code, when it differs
	queryMode bool              // answer x-amzn-query-error
}

func (p rpcv2CBOR) writeResult(w http.ResponseWriter, _, id string, body any) {
	if body == nil {
		p.write(w, http.StatusOK, id, nil)
		return
	}
	data, err := cborEnc.Marshal(body)
	if err != nil {
		p.writeError(w, id, &APIError{Status: http.StatusInternalServerError, Code: "InternalFailure", Message: "encode response: " + err.Error()})
		return
	}
	p.write(w, http.StatusOK, id, data)
}

func (p rpcv2CBOR) writeError(w http.ResponseWriter, id string, ae *APIError) {
	code := ae.Code
	if code == "InvalidAction" {
		code = "UnknownOperationException"
	}
	if p.queryMode {
		fault := "Sender"
		if ae.Status >= 500 {
			fault = "Receiver"
		}
		q := code
		if c, ok := p.query[code]; ok {
			q = c
		}
		w.Header().Set("x-amzn-query-error", q+";"+fault)
	}
	data, _ := cborEnc.Marshal(map[string]string{"__type": p.namespace + "#" + code, "message": ae.Message})
	p.write(w, ae.Status, id, data)
}

func (p rpcv2CBOR) write(w http.ResponseWriter, status int, id string, data []byte) {
	h := w.Header()
	h.Set("Smithy-Protocol", "rpc-v2-cbor")
	if len(data) > 0 {
		h.Set("Content-Type", "application/cbor")
	}
	h.Set("Content-Length", strconv.Itoa(len(data)))
	h.Set("x-amzn-RequestId", id)
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

// epochTime is a timestamp of an answer: CBOR tag 1 in RPC v2 CBOR, epoch
// seconds (a number) in AWS JSON.
type epochTime struct{ time.Time }

// stamp is t as an answer's timestamp, to the millisecond; the zero time
// is nil (left out with omitempty).
func stamp(t time.Time) *epochTime {
	if t.IsZero() {
		return nil
	}
	return &epochTime{t.UTC().Truncate(time.Millisecond)}
}

func (t epochTime) MarshalCBOR() ([]byte, error) { return cborEnc.Marshal(t.Time) }

func (t epochTime) MarshalJSON() ([]byte, error) {
	return []byte(strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', -1, 64)), nil
}
