package awssim

import (
	"bytes"
	"encoding/xml"
	"net/http"
)

// restXML is the protocol of Route 53 (and S3, CloudFront): the request is
// a method, a path and a query string (and an XML body for writes); the
// answer is the action's body encoded as it is (its XMLName names the root
// element and namespace) with the status its statusCoder gives (200 by
// default, 201 for a create) and the Location its locator gives. Errors
// are <ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/>.
type restXML struct{ namespace string }

// statusCoder is a restXML answer whose status is not 200.
type statusCoder interface{ httpStatus() int }

// locator is a restXML answer that carries a Location header.
type locator interface{ location() string }

func (p restXML) writeResult(w http.ResponseWriter, _ string, id string, body any) {
	buf := bufPool.Get().(*bytes.Buffer)
	defer func() { buf.Reset(); bufPool.Put(buf) }()
	buf.WriteString(xml.Header)
	if err := xml.NewEncoder(buf).Encode(body); err != nil {
		p.writeError(w, id, &APIError{Status: http.StatusInternalServerError, Code: "InternalFailure", Message: "encode response: " + err.Error()})
		return
	}
	status := http.StatusOK
	if s, ok := body.(statusCoder); ok {
		status = s.httpStatus()
	}
	if l, ok := body.(locator); ok {
		w.Header().Set("Location", l.location())
	}
	w.Header().Set("x-amz-request-id", id)
	writeRaw(w, status, buf.Bytes())
}

func (p restXML) writeError(w http.ResponseWriter, id string, ae *APIError) {
	typ := "Sender"
	if ae.Status >= 500 {
		typ = "Receiver"
	}
	var b bytes.Buffer
	b.WriteString(xml.Header + `<ErrorResponse xmlns="` + p.namespace + `"><Error><Type>` + typ + `</Type><Code>`)
	xml.EscapeText(&b, []byte(ae.Code))
	b.WriteString("</Code><Message>")
	xml.EscapeText(&b, []byte(ae.Message))
	b.WriteString("</Message></Error><RequestId>" + id + "</RequestId></ErrorResponse>")
	w.Header().Set("x-amz-request-id", id)
	writeRaw(w, ae.Status, b.Bytes())
}
