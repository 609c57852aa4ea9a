package awssim

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// awsJSON is the AWS JSON protocol (1.0: SQS, DynamoDB; 1.1: EventBridge,
// SSM, ...): a POST whose X-Amz-Target header is "Prefix.Action" and whose
// body is the input as a JSON object; the answer is the output as JSON
// (Content-Type application/x-amz-json-VERSION), an error is
// {"__type":"namespace#Code","message":...}. A service that was an AWS
// Query API before (SQS) also names its old error code in the
// x-amzn-query-error header ("AWS.SimpleQueueService.NonExistentQueue;Sender"),
// which the SDKs report as the error code.
type awsJSON struct {
	version   string            // "1.0" or "1.1"
	namespace string            // the error shapes' namespace, "com.amazonaws.sqs"
	query     map[string]string // error code → its Query-era code, when it differs
	queryMode bool              // answer x-amzn-query-error
}

// jsonTarget returns a service's match and decode for the JSON protocol:
// the requests whose X-Amz-Target is "prefix.Action".
func jsonTarget(prefix string) (func(*http.Request) bool, func(*http.Request) (*request, error)) {
	match := func(hr *http.Request) bool {
		t := hr.Header.Get("X-Amz-Target")
		return strings.HasPrefix(t, prefix+".")
	}
	decode := func(hr *http.Request) (*request, error) {
		req := &request{Action: strings.TrimPrefix(hr.Header.Get("X-Amz-Target"), prefix+".")}
		if hr.Method != http.MethodPost {
			return req, &APIError{Status: http.StatusMethodNotAllowed, Code: "UnknownOperationException", Message: "Method " + hr.Method + " not allowed"}
		}
		body, err := io.ReadAll(io.LimitReader(hr.Body, maxBody+1))
		if err != nil {
			return req, apiErr("SerializationException", "read body: %v", err)
		}
		if len(body) > maxBody {
			return req, &APIError{Status: http.StatusRequestEntityTooLarge, Code: "RequestEntityTooLarge", Message: "Request body too large"}
		}
		req.Body = body
		req.Host, req.ctx = hr.Host, hr.Context()
		return req, nil
	}
	return match, decode
}

func (p awsJSON) contentType() string { return "application/x-amz-json-" + p.version }

func (p awsJSON) writeResult(w http.ResponseWriter, _, id string, body any) {
	data := []byte("{}")
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			p.writeError(w, id, &APIError{Status: http.StatusInternalServerError, Code: "InternalFailure", Message: "encode response: " + err.Error()})
			return
		}
		data = b
	}
	p.write(w, http.StatusOK, id, data)
}

func (p awsJSON) writeError(w http.ResponseWriter, id string, ae *APIError) {
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
	data, _ := json.Marshal(map[string]string{"__type": p.namespace + "#" + code, "message": ae.Message})
	p.write(w, ae.Status, id, data)
}

func (p awsJSON) write(w http.ResponseWriter, status int, id string, data []byte) {
	h := w.Header()
	h.Set("Content-Type", p.contentType())
	h.Set("Content-Length", strconv.Itoa(len(data)))
	h.Set("x-amzn-RequestId", id)
	w.WriteHeader(status)
	_, _ = w.Write(data)
}
