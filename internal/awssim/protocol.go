package awssim

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
)

// maxBody bounds a Query request's form body.
const maxBody = 2 << 20

// APIError is an AWS error as the client sees it.
type APIError struct {
	Status  int // HTTP status
	Code    string
	Message string
	// Body, when set, is answered as it is (text/html) instead of the
	// protocol's error document: a proxy's error page, or an endpoint
	// that does not implement the action.
	Body string
}

func (e *APIError) Error() string { return e.Code + ": " + e.Message }

// apiErr makes a 400 error.
func apiErr(code, format string, args ...any) *APIError {
	return &APIError{Status: http.StatusBadRequest, Code: code, Message: fmt.Sprintf(format, args...)}
}

// request is one decoded Query request.
type request struct {
	Action  string
	Version string
	Params  url.Values
	Body    []byte          // the raw body, for services that are not Query APIs
	CBOR    bool            // Body is CBOR (Smithy RPC v2), not JSON
	Host    string          // the Host header, for services that answer URLs (SQS)
	ctx     context.Context // the HTTP request's, for actions that wait (long polls)
	ID      string          // request id
	Region  string          // the region the request is signed for, "" when unsigned (ec2_vpcs.go)
	// AccessKey is the access key id the request is signed with, "" when
	// unsigned (accounts.go).
	AccessKey string
}

// decodeRequest reads a Query request from the form body (POST) or the
// query string (GET). It never panics; malformed input is an *APIError.
func decodeRequest(r *http.Request) (*request, error) {
	var params url.Values
	switch r.Method {
	case http.MethodPost:
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil {
			return nil, apiErr("MalformedQueryString", "read body: %v", err)
		}
		if len(body) > maxBody {
			return nil, &APIError{Status: http.StatusRequestEntityTooLarge, Code: "RequestEntityTooLarge", Message: "Request body too large"}
		}
		return decodeForm(string(body), r.URL.RawQuery)
	case http.MethodGet:
		params = r.URL.Query()
	default:
		return nil, &APIError{Status: http.StatusMethodNotAllowed, Code: "InvalidHttpRequest", Message: "Method " + r.Method + " not allowed"}
	}
	return requestFrom(params)
}

// decodeForm parses a form body, with the URL query merged under it.
func decodeForm(body, rawQuery string) (*request, error) {
	params, err := url.ParseQuery(body)
	if err != nil {
		return nil, apiErr("MalformedQueryString", "The query string is malformed: %v", err)
	}
	if rawQuery != "" {
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return nil, apiErr("MalformedQueryString", "The query string is malformed: %v", err)
		}
		for k, v := range q {
			if _, ok := params[k]; !ok {
				params[k] = v
			}
		}
	}
	return requestFrom(params)
}

func requestFrom(params url.Values) (*request, error) {
	req := &request{Params: params, Action: params.Get("Action"), Version: params.Get("Version")}
	if req.Action == "" {
		return req, apiErr("MissingAction", "The request must contain the parameter Action")
	}
	if req.Version == "" {
		return req, apiErr("MissingParameter", "The request must contain the parameter Version")
	}
	return req, nil
}

var requestSeq atomic.Uint64

func newRequestID() string {
	n := requestSeq.Add(1)
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", uint32(n>>16), uint16(n), uint16(n>>4)&0xfff, uint16(n)&0xfff, n*0x9e3779b1)
}

// A protocol writes a service's answers and errors in its wire format.
type protocol interface {
	// writeResult writes the answer to action: body is what the action
	// returned.
	writeResult(w http.ResponseWriter, action, requestID string, body any)
	writeError(w http.ResponseWriter, requestID string, err *APIError)
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// ec2Query is EC2's protocol: the answer is the action's body as
// <ActionResponse xmlns=namespace>, with the requestId of its embedded
// ec2Meta; errors are <Response><Errors><Error><Code>.
type ec2Query struct{ namespace string }

// ec2Meta is embedded in every EC2 response body.
type ec2Meta struct {
	RequestID string `xml:"requestId"`
}

func (m *ec2Meta) setRequestID(id string) { m.RequestID = id }

func (p ec2Query) writeResult(w http.ResponseWriter, act, id string, body any) {
	if m, ok := body.(interface{ setRequestID(string) }); ok {
		m.setRequestID(id)
	}
	buf := bufPool.Get().(*bytes.Buffer)
	defer func() { buf.Reset(); bufPool.Put(buf) }()
	buf.WriteString(xml.Header)
	enc := xml.NewEncoder(buf)
	start := xml.StartElement{Name: xml.Name{Local: act + "Response"}, Attr: []xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: p.namespace}}}
	if err := enc.EncodeElement(body, start); err != nil {
		writeRaw(w, http.StatusInternalServerError, ec2ErrorXML(id, "InternalError", "encode response: "+err.Error()))
		return
	}
	writeRaw(w, http.StatusOK, buf.Bytes())
}

func (ec2Query) writeError(w http.ResponseWriter, id string, ae *APIError) {
	writeRaw(w, ae.Status, ec2ErrorXML(id, ae.Code, ae.Message))
}

func ec2ErrorXML(id, code, msg string) []byte {
	var b bytes.Buffer
	b.WriteString(xml.Header + "<Response><Errors><Error><Code>")
	xml.EscapeText(&b, []byte(code))
	b.WriteString("</Code><Message>")
	xml.EscapeText(&b, []byte(msg))
	b.WriteString("</Message></Error></Errors><RequestID>" + id + "</RequestID></Response>")
	return b.Bytes()
}

// awsQuery is the protocol of Auto Scaling (and IAM, SNS, ...): the body is
// the contents of <ActionResult> (nil for an empty result) inside
// <ActionResponse xmlns=namespace> with ResponseMetadata; errors are
// <ErrorResponse><Error><Type/><Code/><Message/>, Type Sender or Receiver.
type awsQuery struct{ namespace string }

func (p awsQuery) writeResult(w http.ResponseWriter, act, id string, result any) {
	buf := bufPool.Get().(*bytes.Buffer)
	defer func() { buf.Reset(); bufPool.Put(buf) }()
	fmt.Fprintf(buf, `<%sResponse xmlns="%s">`, act, p.namespace)
	if result != nil {
		enc := xml.NewEncoder(buf)
		if err := enc.EncodeElement(result, xml.StartElement{Name: xml.Name{Local: act + "Result"}}); err != nil {
			writeRaw(w, http.StatusInternalServerError, p.errorXML(id, "Receiver", "InternalFailure", "encode response: "+err.Error()))
			return
		}
	}
	fmt.Fprintf(buf, `<ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata></%sResponse>`, id, act)
	writeRaw(w, http.StatusOK, buf.Bytes())
}

func (p awsQuery) writeError(w http.ResponseWriter, id string, ae *APIError) {
	typ := "Sender"
	if ae.Status >= 500 {
		typ = "Receiver"
	}
	writeRaw(w, ae.Status, p.errorXML(id, typ, ae.Code, ae.Message))
}

func (p awsQuery) errorXML(id, typ, code, msg string) []byte {
	var b bytes.Buffer
	b.WriteString(`<ErrorResponse xmlns="` + p.namespace + `"><Error><Type>` + typ + `</Type><Code>`)
	xml.EscapeText(&b, []byte(code))
	b.WriteString("</Code><Message>")
	xml.EscapeText(&b, []byte(msg))
	b.WriteString("</Message></Error><RequestId>" + id + "</RequestId></ErrorResponse>")
	return b.Bytes()
}

func writeRaw(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/xml;charset=UTF-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
