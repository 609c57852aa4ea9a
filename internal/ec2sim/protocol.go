package ec2sim

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// The API versions the SDK sends, which route a request to its table.
const (
	ec2Version         = "2016-11-15"
	autoscalingVersion = "2011-01-01"
	ec2Namespace       = "http://ec2.amazonaws.com/doc/2016-11-15/"
	autoscalingNS      = "http://autoscaling.amazonaws.com/doc/2011-01-01/"
	maxBody            = 2 << 20
)

// An action handles one API call. It returns the response body (a pointer
// to a struct that encoding/xml can encode) or an error; an *APIError goes
// to the client as is, anything else as InternalError.
//
// EC2 bodies embed ec2Meta (requestId); the dispatcher names the root
// element <ActionResponse>. Auto Scaling bodies are the <ActionResult>
// contents (nil for an empty result).
type action func(s *Sim, r *request) (any, error)

// ec2Actions is the EC2 API, one line per action. Launch-template actions
// (launchtemplate*.go) are added here too.
var ec2Actions = map[string]action{
	"RunInstances":              (*Sim).runInstances,
	"DescribeInstances":         (*Sim).describeInstances,
	"DescribeInstanceStatus":    (*Sim).describeInstanceStatus,
	"StartInstances":            (*Sim).startInstances,
	"StopInstances":             (*Sim).stopInstances,
	"RebootInstances":           (*Sim).rebootInstances,
	"TerminateInstances":        (*Sim).terminateInstances,
	"ModifyInstanceAttribute":   (*Sim).modifyInstanceAttribute,
	"DescribeInstanceAttribute": (*Sim).describeInstanceAttribute,
	"GetConsoleOutput":          (*Sim).getConsoleOutput,
	"CreateTags":                (*Sim).createTags,
	"DeleteTags":                (*Sim).deleteTags,
	"DescribeTags":              (*Sim).describeTags,
	"CreateImage":               (*Sim).createImage,
	"DescribeImages":            (*Sim).describeImages,
	"DeregisterImage":           (*Sim).deregisterImage,
	"DescribeSnapshots":         (*Sim).describeSnapshots,
	"DeleteSnapshot":            (*Sim).deleteSnapshot,
	"CreateSecurityGroup":       (*Sim).createSecurityGroup,
	"DescribeSecurityGroups":    (*Sim).describeSecurityGroups,
	"DeleteSecurityGroup":       (*Sim).deleteSecurityGroup,
	"DescribeSubnets":           (*Sim).describeSubnets,

	// Instance profile associations (iamprofile.go).
	"AssociateIamInstanceProfile":            (*Sim).associateIamInstanceProfile,
	"ReplaceIamInstanceProfileAssociation":   (*Sim).replaceIamInstanceProfileAssociation,
	"DisassociateIamInstanceProfile":         (*Sim).disassociateIamInstanceProfile,
	"DescribeIamInstanceProfileAssociations": (*Sim).describeIamInstanceProfileAssociations,

	// Launch templates (launchtemplate.go).
	"CreateLaunchTemplate":           (*Sim).createLaunchTemplate,
	"CreateLaunchTemplateVersion":    (*Sim).createLaunchTemplateVersion,
	"DescribeLaunchTemplates":        (*Sim).describeLaunchTemplates,
	"DescribeLaunchTemplateVersions": (*Sim).describeLaunchTemplateVersions,
	"ModifyLaunchTemplate":           (*Sim).modifyLaunchTemplate,
	"DeleteLaunchTemplate":           (*Sim).deleteLaunchTemplate,
}

// autoscalingActions is the Auto Scaling API (awsquery, Version
// 2011-01-01), one line per action; autoscaling*.go fills it.
var autoscalingActions = map[string]action{
	"CreateAutoScalingGroup":    (*Sim).createAutoScalingGroup,
	"DescribeAutoScalingGroups": (*Sim).describeAutoScalingGroups,
	"UpdateAutoScalingGroup":    (*Sim).updateAutoScalingGroup,
	"DeleteAutoScalingGroup":    (*Sim).deleteAutoScalingGroup,
	"StartInstanceRefresh":      (*Sim).startInstanceRefresh,
	"DescribeInstanceRefreshes": (*Sim).describeInstanceRefreshes,
	"CancelInstanceRefresh":     (*Sim).cancelInstanceRefresh,
	"RollbackInstanceRefresh":   (*Sim).rollbackInstanceRefresh,
}

// APIError is an AWS error as the client sees it.
type APIError struct {
	Status  int // HTTP status
	Code    string
	Message string
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
	ID      string // request id
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

const controlPrefix = "/_sim/"

// ServeHTTP answers EC2 and Auto Scaling Query requests, and the control
// API under /_sim/.
func (s *Sim) ServeHTTP(w http.ResponseWriter, hr *http.Request) {
	if strings.HasPrefix(hr.URL.Path, controlPrefix) {
		s.serveControl(w, hr)
		return
	}
	req, err := decodeRequest(hr)
	asg := req != nil && req.Version == autoscalingVersion
	id := newRequestID()
	if err != nil {
		s.writeError(w, asg, id, err)
		return
	}
	req.ID = id
	table := ec2Actions
	if asg {
		table = autoscalingActions
	}
	act, ok := table[req.Action]
	if !ok {
		s.writeError(w, asg, id, apiErr("InvalidAction", "The action %s is not valid for this web service.", req.Action))
		return
	}
	body, err := s.call(hr, req, act)
	if err != nil {
		s.writeError(w, asg, id, err)
		return
	}
	if asg {
		writeQueryResponse(w, req.Action, id, body)
		return
	}
	writeEC2Response(w, req.Action, id, body)
}

// call applies counters, faults and throttling, then runs the action.
func (s *Sim) call(hr *http.Request, req *request, act action) (body any, err error) {
	s.counters.add(req.Action)
	if d := s.faults.latencyFor(req.Action); d > 0 {
		if err := sleepCtx(hr.Context(), d); err != nil {
			return nil, &APIError{Status: http.StatusServiceUnavailable, Code: "RequestCanceled", Message: "request canceled"}
		}
	}
	if f := s.faults.take(req.Action); f != nil {
		return nil, f
	}
	if s.throttleEnabled() {
		if !s.admit(req) {
			s.counters.throttled(req.Action)
			return nil, &APIError{Status: http.StatusServiceUnavailable, Code: "RequestLimitExceeded", Message: "Request limit exceeded."}
		}
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
	return act(s, req)
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// ec2Meta is embedded in every EC2 response body.
type ec2Meta struct {
	RequestID string `xml:"requestId"`
}

func (m *ec2Meta) setRequestID(id string) { m.RequestID = id }

func writeEC2Response(w http.ResponseWriter, act, id string, body any) {
	if m, ok := body.(interface{ setRequestID(string) }); ok {
		m.setRequestID(id)
	}
	buf := bufPool.Get().(*bytes.Buffer)
	defer func() { buf.Reset(); bufPool.Put(buf) }()
	buf.WriteString(xml.Header)
	enc := xml.NewEncoder(buf)
	start := xml.StartElement{Name: xml.Name{Local: act + "Response"}, Attr: []xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: ec2Namespace}}}
	if err := enc.EncodeElement(body, start); err != nil {
		writeRaw(w, http.StatusInternalServerError, ec2ErrorXML(id, "InternalError", "encode response: "+err.Error()))
		return
	}
	writeRaw(w, http.StatusOK, buf.Bytes())
}

func writeQueryResponse(w http.ResponseWriter, act, id string, result any) {
	buf := bufPool.Get().(*bytes.Buffer)
	defer func() { buf.Reset(); bufPool.Put(buf) }()
	fmt.Fprintf(buf, `<%sResponse xmlns="%s">`, act, autoscalingNS)
	if result != nil {
		enc := xml.NewEncoder(buf)
		if err := enc.EncodeElement(result, xml.StartElement{Name: xml.Name{Local: act + "Result"}}); err != nil {
			writeRaw(w, http.StatusInternalServerError, queryErrorXML(id, "Receiver", "InternalFailure", "encode response: "+err.Error()))
			return
		}
	}
	fmt.Fprintf(buf, `<ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata></%sResponse>`, id, act)
	writeRaw(w, http.StatusOK, buf.Bytes())
}

func (s *Sim) writeError(w http.ResponseWriter, asg bool, id string, err error) {
	var ae *APIError
	if !errors.As(err, &ae) {
		s.log.Error("action failed", "err", err)
		ae = &APIError{Status: http.StatusInternalServerError, Code: "InternalError", Message: "An internal error has occurred"}
	}
	if asg {
		typ := "Sender"
		if ae.Status >= 500 {
			typ = "Receiver"
		}
		writeRaw(w, ae.Status, queryErrorXML(id, typ, ae.Code, ae.Message))
		return
	}
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

func queryErrorXML(id, typ, code, msg string) []byte {
	var b bytes.Buffer
	b.WriteString(`<ErrorResponse xmlns="` + autoscalingNS + `"><Error><Type>` + typ + `</Type><Code>`)
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
