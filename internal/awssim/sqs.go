package awssim

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// SQS (AWS JSON 1.0, X-Amz-Target "AmazonSQS.Action", query-compatible
// error codes): standard queues with long polling, visibility timeouts,
// delays, retention and batch deletes. Queue URLs are
// http://HOST/ACCOUNT/NAME, HOST being the one the request was sent to;
// a URL is found again by its path, whatever its host. EventBridge rules
// (eventbridge.go) deliver events into queues through SendEvent.
// Timings are SQS's own (not multiplied by TimeScale) and read the
// simulator's clock, so a manual clock holds in-flight messages invisible
// until Advance; a long poll waits in real time.

const sqsTargetPrefix = "AmazonSQS"

// sqsSenderID is the SenderId of messages sent through the API (the
// simulator checks no credentials, so every caller is the same user).
const sqsSenderID = "AIDAKILNSIMULATOR000"

var sqsMatch, sqsDecode = jsonTarget(sqsTargetPrefix)

var sqsService = &service{
	name:   "sqs",
	match:  sqsMatch,
	decode: sqsDecode,
	proto: awsJSON{version: "1.0", namespace: "com.amazonaws.sqs", queryMode: true, query: map[string]string{
		"QueueDoesNotExist":            "AWS.SimpleQueueService.NonExistentQueue",
		"QueueNameExists":              "QueueAlreadyExists",
		"PurgeQueueInProgress":         "AWS.SimpleQueueService.PurgeQueueInProgress",
		"EmptyBatchRequest":            "AWS.SimpleQueueService.EmptyBatchRequest",
		"TooManyEntriesInBatchRequest": "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
		"BatchEntryIdsNotDistinct":     "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
		"InvalidBatchEntryId":          "AWS.SimpleQueueService.InvalidBatchEntryId",
		"UnsupportedOperation":         "AWS.SimpleQueueService.UnsupportedOperation",
	}},
	actions: sqsActions,
	control: (*Sim).serveSQSControl,
}

// sqsActions is the SQS API, one line per action.
var sqsActions = map[string]action{
	"CreateQueue":        (*Sim).createQueue,
	"GetQueueUrl":        (*Sim).getQueueURL,
	"GetQueueAttributes": (*Sim).getQueueAttributes,
	"SetQueueAttributes": (*Sim).setQueueAttributes,
	"SendMessage":        (*Sim).sendMessage,
	"ReceiveMessage":     (*Sim).receiveMessage,
	"DeleteMessage":      (*Sim).deleteMessage,
	"DeleteMessageBatch": (*Sim).deleteMessageBatch,
	"PurgeQueue":         (*Sim).purgeQueue,
}

// sqsState is every queue; its own mutex, never held while taking s.mu
// (EventBridge delivers into queues with s.mu held).
type sqsState struct {
	mu     sync.Mutex
	queues map[string]*queue
	seq    uint64
}

func (q *sqsState) init() { q.queues = map[string]*queue{} }

type queue struct {
	name, arn         string
	created, modified time.Time
	attrs             map[string]string // the settable attributes, defaults filled in
	tags              map[string]string
	msgs              []*message // send order
	receipts          map[string]*message
	wake              chan struct{} // closed (and replaced) when a message is sent
	purged            time.Time
}

type message struct {
	id, body, md5 string
	sent          time.Time
	visibleAt     time.Time // delay, then each receive's visibility timeout
	receives      int
	firstReceive  time.Time
	sender        string
	attrs         map[string]msgAttr // message attributes (sqsattrs.go)
}

// A queue attribute that CreateQueue and SetQueueAttributes take: its
// default and, for numbers, its range.
type queueAttr struct {
	def    string
	lo, hi int // numeric when hi > 0
	check  func(v string) error
}

var queueAttrs = map[string]queueAttr{
	"DelaySeconds":                  {def: "0", lo: 0, hi: 900},
	"MaximumMessageSize":            {def: "262144", lo: 1024, hi: 1048576},
	"MessageRetentionPeriod":        {def: "345600", lo: 60, hi: 1209600},
	"ReceiveMessageWaitTimeSeconds": {def: "0", lo: 0, hi: 20},
	"VisibilityTimeout":             {def: "30", lo: 0, hi: 43200},
	"KmsDataKeyReusePeriodSeconds":  {def: "300", lo: 60, hi: 86400},
	"SqsManagedSseEnabled":          {def: "true", check: checkBool},
	"KmsMasterKeyId":                {},
	"Policy":                        {check: checkPolicy},
	"RedrivePolicy":                 {check: checkJSON},
	"RedriveAllowPolicy":            {check: checkJSON},
	"FifoQueue": {check: func(v string) error {
		if v == "false" {
			return nil
		}
		return fmt.Errorf("the simulator serves standard queues only")
	}},
}

// Read-only attributes, computed by GetQueueAttributes.
var queueReadOnly = []string{
	"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed",
	"CreatedTimestamp", "LastModifiedTimestamp", "QueueArn",
}

func checkBool(v string) error {
	if v != "true" && v != "false" {
		return fmt.Errorf("want true or false")
	}
	return nil
}

func checkJSON(v string) error {
	if !json.Valid([]byte(v)) {
		return fmt.Errorf("not valid JSON")
	}
	return nil
}

func checkPolicy(v string) error {
	if _, err := parsePolicy(v); err != nil {
		return err
	}
	return nil
}

func (a queueAttr) validate(name, v string) error {
	if a.hi > 0 {
		n, err := strconv.Atoi(v)
		if err != nil || n < a.lo || n > a.hi {
			return &APIError{Status: http.StatusBadRequest, Code: "InvalidAttributeValue",
				Message: fmt.Sprintf("Invalid value for the parameter %s: must be an integer from %d to %d.", name, a.lo, a.hi)}
		}
	}
	if a.check != nil {
		if err := a.check(v); err != nil {
			return &APIError{Status: http.StatusBadRequest, Code: "InvalidAttributeValue",
				Message: fmt.Sprintf("Invalid value for the parameter %s: %v", name, err)}
		}
	}
	return nil
}

// checkAttrs validates settable attributes.
func checkAttrs(attrs map[string]string) error {
	for _, k := range sortedKeys(attrs) {
		a, ok := queueAttrs[k]
		if !ok {
			return &APIError{Status: http.StatusBadRequest, Code: "InvalidAttributeName", Message: "Unknown Attribute " + k + "."}
		}
		if err := a.validate(k, attrs[k]); err != nil {
			return err
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

var queueNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)

func queueNotFound() *APIError {
	return apiErr("QueueDoesNotExist", "The specified queue does not exist.")
}

// queueURL is the URL of queue name for a request sent to host.
func (s *Sim) queueURL(host, name string) string {
	if host == "" {
		host = "localhost"
	}
	return "http://" + host + "/" + s.opts.Account + "/" + name
}

// queueByURL finds the queue a QueueUrl names, by its path /ACCOUNT/NAME;
// q.mu is held.
func (s *Sim) queueByURLLocked(u string) (*queue, error) {
	if u == "" {
		return nil, apiErr("MissingParameter", "The request must contain the parameter QueueUrl.")
	}
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
		if j := strings.IndexByte(u, '/'); j >= 0 {
			u = u[j:]
		} else {
			u = ""
		}
	}
	parts := strings.Split(strings.Trim(u, "/"), "/")
	if len(parts) != 2 || parts[0] != s.opts.Account {
		return nil, queueNotFound()
	}
	q := s.sqs.queues[parts[1]]
	if q == nil {
		return nil, queueNotFound()
	}
	return q, nil
}

type createQueueInput struct {
	QueueName  string            `json:"QueueName"`
	Attributes map[string]string `json:"Attributes"`
	Tags       map[string]string `json:"tags"`
}

type queueURLOutput struct {
	QueueURL string `json:"QueueUrl"`
}

func (s *Sim) createQueue(r *request) (any, error) {
	var in createQueueInput
	if err := r.input(&in); err != nil {
		return nil, err
	}
	if in.QueueName == "" {
		return nil, apiErr("MissingParameter", "The request must contain the parameter QueueName.")
	}
	if strings.HasSuffix(in.QueueName, ".fifo") {
		return nil, apiErr("InvalidParameterValue", "The simulator serves standard queues only: %s", in.QueueName)
	}
	if !queueNameRE.MatchString(in.QueueName) {
		return nil, apiErr("InvalidParameterValue", "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length")
	}
	if err := checkAttrs(in.Attributes); err != nil {
		return nil, err
	}
	now := s.Now()
	sq := &s.sqs
	sq.mu.Lock()
	defer sq.mu.Unlock()
	if q := sq.queues[in.QueueName]; q != nil {
		// The same name and the same attributes: the existing queue.
		for k, v := range in.Attributes {
			if q.attrs[k] != v && !(k == "FifoQueue" && v == "false") {
				return nil, apiErr("QueueNameExists", "A queue already exists with the same name and a different value for attribute %s", k)
			}
		}
		return &queueURLOutput{QueueURL: s.queueURL(r.Host, q.name)}, nil
	}
	q := &queue{
		name: in.QueueName, arn: "arn:aws:sqs:" + s.opts.Region + ":" + s.opts.Account + ":" + in.QueueName,
		created: now, modified: now, attrs: map[string]string{}, tags: map[string]string{},
		receipts: map[string]*message{}, wake: make(chan struct{}),
	}
	for k, a := range queueAttrs {
		if a.def != "" {
			q.attrs[k] = a.def
		}
	}
	for k, v := range in.Attributes {
		if k != "FifoQueue" {
			q.attrs[k] = v
		}
	}
	for k, v := range in.Tags {
		q.tags[k] = v
	}
	sq.queues[q.name] = q
	return &queueURLOutput{QueueURL: s.queueURL(r.Host, q.name)}, nil
}

type getQueueURLInput struct {
	QueueName string `json:"QueueName"`
	Owner     string `json:"QueueOwnerAWSAccountId"`
}

func (s *Sim) getQueueURL(r *request) (any, error) {
	var in getQueueURLInput
	if err := r.input(&in); err != nil {
		return nil, err
	}
	if in.QueueName == "" {
		return nil, apiErr("MissingParameter", "The request must contain the parameter QueueName.")
	}
	s.sqs.mu.Lock()
	defer s.sqs.mu.Unlock()
	if s.sqs.queues[in.QueueName] == nil || (in.Owner != "" && in.Owner != s.opts.Account) {
		return nil, queueNotFound()
	}
	return &queueURLOutput{QueueURL: s.queueURL(r.Host, in.QueueName)}, nil
}

type queueAttributesInput struct {
	QueueURL       string            `json:"QueueUrl"`
	AttributeNames []string          `json:"AttributeNames"`
	Attributes     map[string]string `json:"Attributes"`
}

type queueAttributesOutput struct {
	Attributes map[string]string `json:"Attributes,omitempty"`
}

func (s *Sim) getQueueAttributes(r *request) (any, error) {
	var in queueAttributesInput
	return s.withQueue(r, &in, &in.QueueURL, nil, func(q *queue, now time.Time) (any, error) {
		all := q.attributesLocked(now)
		out := map[string]string{}
		for _, n := range in.AttributeNames {
			if n == "All" {
				out = all
				break
			}
			_, settable := queueAttrs[n]
			if !settable && !slices.Contains(queueReadOnly, n) {
				return nil, &APIError{Status: http.StatusBadRequest, Code: "InvalidAttributeName", Message: "Unknown Attribute " + n + "."}
			}
			if v, ok := all[n]; ok {
				out[n] = v
			}
		}
		return &queueAttributesOutput{Attributes: out}, nil
	})
}

// withQueue decodes r's input into in, checks it (when check is not nil),
// and runs fn on the queue that *url names, with s.sqs.mu held.
func (s *Sim) withQueue(r *request, in any, url *string, check func() error, fn func(q *queue, now time.Time) (any, error)) (any, error) {
	if err := r.input(in); err != nil {
		return nil, err
	}
	if check != nil {
		if err := check(); err != nil {
			return nil, err
		}
	}
	now := s.Now()
	s.sqs.mu.Lock()
	defer s.sqs.mu.Unlock()
	q, err := s.queueByURLLocked(*url)
	if err != nil {
		return nil, err
	}
	return fn(q, now)
}

// attributesLocked is every attribute of q, as GetQueueAttributes All.
func (q *queue) attributesLocked(now time.Time) map[string]string {
	q.expireLocked(now)
	out := map[string]string{}
	for k, v := range q.attrs {
		out[k] = v
	}
	visible, inflight, delayed := q.countsLocked(now)
	out["ApproximateNumberOfMessages"] = strconv.Itoa(visible)
	out["ApproximateNumberOfMessagesNotVisible"] = strconv.Itoa(inflight)
	out["ApproximateNumberOfMessagesDelayed"] = strconv.Itoa(delayed)
	out["CreatedTimestamp"] = strconv.FormatInt(q.created.Unix(), 10)
	out["LastModifiedTimestamp"] = strconv.FormatInt(q.modified.Unix(), 10)
	out["QueueArn"] = q.arn
	return out
}

// countsLocked counts visible, in-flight (received, not yet visible again)
// and delayed (never received, not yet visible) messages.
func (q *queue) countsLocked(now time.Time) (visible, inflight, delayed int) {
	for _, m := range q.msgs {
		switch {
		case !m.visibleAt.After(now):
			visible++
		case m.receives > 0:
			inflight++
		default:
			delayed++
		}
	}
	return visible, inflight, delayed
}

// expireLocked drops messages older than the retention period.
func (q *queue) expireLocked(now time.Time) {
	keep, _ := strconv.Atoi(q.attrs["MessageRetentionPeriod"])
	cut := now.Add(-time.Duration(keep) * time.Second)
	if len(q.msgs) == 0 || q.msgs[0].sent.After(cut) {
		return
	}
	q.removeLocked(func(m *message) bool { return !m.sent.After(cut) })
}

// removeLocked deletes the messages del picks, and their receipt handles.
func (q *queue) removeLocked(del func(*message) bool) {
	gone := map[*message]bool{}
	q.msgs = slices.DeleteFunc(q.msgs, func(m *message) bool {
		if del(m) {
			gone[m] = true
			return true
		}
		return false
	})
	if len(gone) == 0 {
		return
	}
	for h, m := range q.receipts {
		if gone[m] {
			delete(q.receipts, h)
		}
	}
}

func (s *Sim) setQueueAttributes(r *request) (any, error) {
	var in queueAttributesInput
	check := func() error {
		if len(in.Attributes) == 0 {
			return apiErr("MissingParameter", "The request must contain the parameter Attributes.")
		}
		return checkAttrs(in.Attributes)
	}
	return s.withQueue(r, &in, &in.QueueURL, check, func(q *queue, now time.Time) (any, error) {
		for k, v := range in.Attributes {
			if k == "FifoQueue" {
				continue
			}
			if v == "" && queueAttrs[k].def == "" {
				delete(q.attrs, k) // an empty Policy removes it
				continue
			}
			q.attrs[k] = v
		}
		q.modified = now
		return nil, nil
	})
}

type sendMessageInput struct {
	QueueURL          string             `json:"QueueUrl"`
	MessageBody       *string            `json:"MessageBody"`
	DelaySeconds      *int               `json:"DelaySeconds"`
	MessageAttributes map[string]msgAttr `json:"MessageAttributes"`
}

type sendMessageOutput struct {
	MessageID              string `json:"MessageId"`
	MD5OfMessageBody       string `json:"MD5OfMessageBody"`
	MD5OfMessageAttributes string `json:"MD5OfMessageAttributes,omitempty"`
}

func (s *Sim) sendMessage(r *request) (any, error) {
	var in sendMessageInput
	check := func() error {
		if in.MessageBody == nil {
			return apiErr("MissingParameter", "The request must contain the parameter MessageBody.")
		}
		_, err := checkMessageAttrs(in.MessageAttributes)
		return err
	}
	return s.withQueue(r, &in, &in.QueueURL, check, func(q *queue, now time.Time) (any, error) {
		delay := -1
		if in.DelaySeconds != nil {
			delay = *in.DelaySeconds
		}
		m, err := q.sendLocked(s, *in.MessageBody, in.MessageAttributes, delay, now, sqsSenderID)
		if err != nil {
			return nil, err
		}
		return &sendMessageOutput{MessageID: m.id, MD5OfMessageBody: m.md5, MD5OfMessageAttributes: attrsMD5(m.attrs)}, nil
	})
}

// sendLocked adds a message (delay -1: the queue's DelaySeconds).
func (q *queue) sendLocked(s *Sim, body string, attrs map[string]msgAttr, delay int, now time.Time, sender string) (*message, error) {
	if body == "" {
		return nil, apiErr("MissingParameter", "The request must contain the parameter MessageBody.")
	}
	attrSize, err := checkMessageAttrs(attrs)
	if err != nil {
		return nil, err
	}
	if limit, _ := strconv.Atoi(q.attrs["MaximumMessageSize"]); len(body)+attrSize > limit {
		return nil, apiErr("InvalidParameterValue", "One or more parameters are invalid. Reason: Message must be shorter than %d bytes.", limit)
	}
	if !validMessageText(body) {
		return nil, apiErr("InvalidMessageContents", "Invalid characters found in the message body.")
	}
	if delay < 0 {
		delay, _ = strconv.Atoi(q.attrs["DelaySeconds"])
	} else if delay > 900 {
		return nil, apiErr("InvalidParameterValue", "Value %d for parameter DelaySeconds is invalid. Reason: must be between 0 and 900, if provided.", delay)
	}
	q.expireLocked(now)
	s.sqs.seq++
	sum := md5.Sum([]byte(body))
	m := &message{
		id: uuidFrom(s.sqs.seq, 0x5351), body: body, md5: hex.EncodeToString(sum[:]), sent: now,
		visibleAt: now.Add(time.Duration(delay) * time.Second), sender: sender, attrs: attrs,
	}
	q.msgs = append(q.msgs, m)
	close(q.wake)
	q.wake = make(chan struct{})
	return m, nil
}

// validMessageText reports whether body holds only the characters SQS
// allows: #x9 #xA #xD, #x20-#xD7FF, #xE000-#xFFFD, #x10000-#x10FFFF.
func validMessageText(body string) bool {
	if !utf8.ValidString(body) {
		return false
	}
	for _, c := range body {
		switch {
		case c == 0x9 || c == 0xA || c == 0xD:
		case c >= 0x20 && c <= 0xD7FF:
		case c >= 0xE000 && c <= 0xFFFD:
		case c >= 0x10000 && c <= 0x10FFFF:
		default:
			return false
		}
	}
	return true
}

func uuidFrom(n uint64, salt uint16) string {
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", uint32(n*2654435761), salt, uint16(n>>12)&0xfff, 0x8000|uint16(n)&0x3fff, n*0x9e3779b1&0xffffffffffff)
}

// sendEventLocked puts an EventBridge event's JSON into the queue named
// name, as a rule's target does, and reports whether it could; the
// events' mutex is held (not s.sqs.mu).
func (s *Sim) sendEventLocked(name string, body []byte, at time.Time, delay time.Duration) bool {
	s.sqs.mu.Lock()
	defer s.sqs.mu.Unlock()
	q := s.sqs.queues[name]
	if q == nil {
		return false
	}
	m, err := q.sendLocked(s, string(body), nil, -1, at, "AIDAEVENTBRIDGE00000")
	if err == nil && delay > 0 { // the events fault profile: delivered late
		m.visibleAt = m.visibleAt.Add(delay)
	}
	return err == nil
}

type receiveMessageInput struct {
	QueueURL                    string   `json:"QueueUrl"`
	MaxNumberOfMessages         *int     `json:"MaxNumberOfMessages"`
	VisibilityTimeout           *int     `json:"VisibilityTimeout"`
	WaitTimeSeconds             *int     `json:"WaitTimeSeconds"`
	AttributeNames              []string `json:"AttributeNames"`
	MessageSystemAttributeNames []string `json:"MessageSystemAttributeNames"`
	MessageAttributeNames       []string `json:"MessageAttributeNames"`
}

type sqsMessageOut struct {
	MessageID              string             `json:"MessageId"`
	ReceiptHandle          string             `json:"ReceiptHandle"`
	MD5OfBody              string             `json:"MD5OfBody"`
	Body                   string             `json:"Body"`
	Attributes             map[string]string  `json:"Attributes,omitempty"`
	MD5OfMessageAttributes string             `json:"MD5OfMessageAttributes,omitempty"`
	MessageAttributes      map[string]msgAttr `json:"MessageAttributes,omitempty"`
}

type receiveMessageOutput struct {
	Messages []sqsMessageOut `json:"Messages,omitempty"`
}

// manualPollStep is how often a long poll looks again with a manual clock,
// where visibility comes back only when Advance moves time.
const manualPollStep = 20 * time.Millisecond

func (s *Sim) receiveMessage(r *request) (any, error) {
	var in receiveMessageInput
	if err := r.input(&in); err != nil {
		return nil, err
	}
	limit := 1
	if in.MaxNumberOfMessages != nil {
		limit = *in.MaxNumberOfMessages
	}
	if limit < 1 || limit > 10 {
		return nil, apiErr("InvalidParameterValue", "Value %d for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10, if provided.", limit)
	}
	if in.WaitTimeSeconds != nil && (*in.WaitTimeSeconds < 0 || *in.WaitTimeSeconds > 20) {
		return nil, apiErr("InvalidParameterValue", "Value %d for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= 20, if provided.", *in.WaitTimeSeconds)
	}
	if in.VisibilityTimeout != nil && (*in.VisibilityTimeout < 0 || *in.VisibilityTimeout > 43200) {
		return nil, apiErr("InvalidParameterValue", "Value %d for parameter VisibilityTimeout is invalid. Reason: Must be >= 0 and <= 43200, if provided.", *in.VisibilityTimeout)
	}
	attrs := append(slices.Clone(in.AttributeNames), in.MessageSystemAttributeNames...)
	s.sqs.mu.Lock()
	q, err := s.queueByURLLocked(in.QueueURL)
	var wait time.Duration
	if err == nil {
		w, _ := strconv.Atoi(q.attrs["ReceiveMessageWaitTimeSeconds"])
		if in.WaitTimeSeconds != nil {
			w = *in.WaitTimeSeconds
		}
		wait = time.Duration(w) * time.Second
	}
	s.sqs.mu.Unlock()
	if err != nil {
		return nil, err
	}
	ctx := r.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	deadline := time.Now().Add(wait)
	for {
		now := s.Now()
		s.sqs.mu.Lock()
		if s.sqs.queues[q.name] != q {
			s.sqs.mu.Unlock()
			return nil, queueNotFound()
		}
		out := q.receiveLocked(s, now, limit, in.VisibilityTimeout, attrs, in.MessageAttributeNames)
		wake, next := q.wake, q.nextVisibleLocked(now)
		s.sqs.mu.Unlock()
		left := time.Until(deadline)
		if len(out.Messages) > 0 || left <= 0 {
			return out, nil
		}
		step := left
		if !next.IsZero() {
			step = min(step, max(next.Sub(now), time.Millisecond))
		}
		if s.opts.ManualClock {
			step = min(step, manualPollStep)
		}
		t := time.NewTimer(step)
		select {
		case <-ctx.Done():
			t.Stop()
			return out, nil
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// nextVisibleLocked is when the earliest invisible message becomes
// visible (zero when none is waiting).
func (q *queue) nextVisibleLocked(now time.Time) time.Time {
	var next time.Time
	for _, m := range q.msgs {
		if m.visibleAt.After(now) && (next.IsZero() || m.visibleAt.Before(next)) {
			next = m.visibleAt
		}
	}
	return next
}

func (q *queue) receiveLocked(s *Sim, now time.Time, limit int, vt *int, attrs, userAttrs []string) *receiveMessageOutput {
	q.expireLocked(now)
	timeout, _ := strconv.Atoi(q.attrs["VisibilityTimeout"])
	if vt != nil {
		timeout = *vt
	}
	out := &receiveMessageOutput{}
	for _, m := range q.msgs {
		if len(out.Messages) == limit {
			break
		}
		if m.visibleAt.After(now) {
			continue
		}
		m.receives++
		if m.firstReceive.IsZero() {
			m.firstReceive = now
		}
		m.visibleAt = now.Add(time.Duration(timeout) * time.Second)
		s.sqs.seq++
		h := base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%s/%s/%d/%x", q.name, m.id, s.sqs.seq, s.sqs.seq*0x9e3779b97f4a7c15))
		q.receipts[h] = m
		ua := selectAttrs(m.attrs, userAttrs)
		out.Messages = append(out.Messages, sqsMessageOut{
			MessageID: m.id, ReceiptHandle: h, MD5OfBody: m.md5, Body: m.body, Attributes: m.systemAttributes(attrs),
			MessageAttributes: ua, MD5OfMessageAttributes: attrsMD5(ua),
		})
	}
	return out
}

// systemAttributes are the message's system attributes that names asks
// for ("All" for every one).
func (m *message) systemAttributes(names []string) map[string]string {
	if len(names) == 0 {
		return nil
	}
	all := map[string]string{
		"SenderId":                         m.sender,
		"SentTimestamp":                    strconv.FormatInt(m.sent.UnixMilli(), 10),
		"ApproximateReceiveCount":          strconv.Itoa(m.receives),
		"ApproximateFirstReceiveTimestamp": strconv.FormatInt(m.firstReceive.UnixMilli(), 10),
	}
	out := map[string]string{}
	for _, n := range names {
		if n == "All" {
			return all
		}
		if v, ok := all[n]; ok {
			out[n] = v
		}
	}
	return out
}

type deleteMessageInput struct {
	QueueURL      string `json:"QueueUrl"`
	ReceiptHandle string `json:"ReceiptHandle"`
}

func (s *Sim) deleteMessage(r *request) (any, error) {
	var in deleteMessageInput
	return s.withQueue(r, &in, &in.QueueURL, nil, func(q *queue, _ time.Time) (any, error) {
		return nil, q.deleteLocked(in.ReceiptHandle)
	})
}

// deleteLocked deletes the message a receipt handle was given for. A
// handle of a message already deleted succeeds, as on SQS.
func (q *queue) deleteLocked(handle string) error {
	if handle == "" {
		return apiErr("MissingParameter", "The request must contain the parameter ReceiptHandle.")
	}
	m, ok := q.receipts[handle]
	if !ok {
		raw, err := base64.RawURLEncoding.DecodeString(handle)
		if err != nil || !strings.HasPrefix(string(raw), q.name+"/") {
			return apiErr("ReceiptHandleIsInvalid", "The input receipt handle \"%s\" is not a valid receipt handle.", handle)
		}
		return nil
	}
	q.removeLocked(func(x *message) bool { return x == m })
	return nil
}

type deleteBatchInput struct {
	QueueURL string `json:"QueueUrl"`
	Entries  []struct {
		ID            string `json:"Id"`
		ReceiptHandle string `json:"ReceiptHandle"`
	} `json:"Entries"`
}

type batchResultEntry struct {
	ID string `json:"Id"`
}

type batchErrorEntry struct {
	ID          string `json:"Id"`
	SenderFault bool   `json:"SenderFault"`
	Code        string `json:"Code"`
	Message     string `json:"Message,omitempty"`
}

type deleteBatchOutput struct {
	Successful []batchResultEntry `json:"Successful"`
	Failed     []batchErrorEntry  `json:"Failed"`
}

var batchIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)

func (s *Sim) deleteMessageBatch(r *request) (any, error) {
	var in deleteBatchInput
	check := func() error {
		switch {
		case len(in.Entries) == 0:
			return apiErr("EmptyBatchRequest", "There should be at least one DeleteMessageBatchRequestEntry in the request.")
		case len(in.Entries) > 10:
			return apiErr("TooManyEntriesInBatchRequest", "Maximum number of entries per request are 10. You have sent %d.", len(in.Entries))
		}
		seen := map[string]bool{}
		for _, e := range in.Entries {
			if !batchIDRE.MatchString(e.ID) {
				return apiErr("InvalidBatchEntryId", "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.")
			}
			if seen[e.ID] {
				return apiErr("BatchEntryIdsNotDistinct", "Id %s repeated.", e.ID)
			}
			seen[e.ID] = true
		}
		return nil
	}
	return s.withQueue(r, &in, &in.QueueURL, check, func(q *queue, _ time.Time) (any, error) {
		out := &deleteBatchOutput{Successful: []batchResultEntry{}, Failed: []batchErrorEntry{}}
		for _, e := range in.Entries {
			if err := q.deleteLocked(e.ReceiptHandle); err != nil {
				ae := err.(*APIError)
				out.Failed = append(out.Failed, batchErrorEntry{ID: e.ID, SenderFault: true, Code: ae.Code, Message: ae.Message})
				continue
			}
			out.Successful = append(out.Successful, batchResultEntry{ID: e.ID})
		}
		return out, nil
	})
}

// purgeInterval is how long after a purge another one is refused.
const purgeInterval = 60 * time.Second

func (s *Sim) purgeQueue(r *request) (any, error) {
	var in deleteMessageInput
	return s.withQueue(r, &in, &in.QueueURL, nil, func(q *queue, now time.Time) (any, error) {
		if !q.purged.IsZero() && now.Sub(q.purged) < purgeInterval {
			return nil, apiErr("PurgeQueueInProgress", "Only one PurgeQueue operation on %s is allowed every 60 seconds.", q.name)
		}
		q.purged = now
		q.removeLocked(func(*message) bool { return true })
		return nil, nil
	})
}

// QueueInfo is a snapshot of a queue, for tests and the control API.
type QueueInfo struct {
	Name     string `json:"name"`
	ARN      string `json:"arn"`
	Visible  int    `json:"visible"`
	InFlight int    `json:"in_flight"`
	Delayed  int    `json:"delayed"`
}

// Queues returns a snapshot of every queue, by name.
func (s *Sim) Queues() []QueueInfo {
	now := s.Now()
	s.sqs.mu.Lock()
	defer s.sqs.mu.Unlock()
	var out []QueueInfo
	for _, name := range sortedKeys(s.sqs.queues) {
		q := s.sqs.queues[name]
		q.expireLocked(now)
		v, f, d := q.countsLocked(now)
		out = append(out, QueueInfo{Name: name, ARN: q.arn, Visible: v, InFlight: f, Delayed: d})
	}
	return out
}

// serveSQSControl serves GET /_sim/sqs/queues: every queue with its counts.
func (s *Sim) serveSQSControl(w http.ResponseWriter, hr *http.Request, parts []string) {
	if len(parts) != 1 || parts[0] != "queues" || hr.Method != http.MethodGet {
		http.Error(w, `{"error":"not found"}`, http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s.Queues())
}
