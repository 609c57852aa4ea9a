// Package events receives AWS's pushed state-change events over HTTP and
// hands them to the region hubs' routers (awsapi.Hubs.Deliver).
//
// Handler serves POST /events/aws for two kinds of delivery:
//
//   - EventBridge API destinations: the event JSON as the body, with the
//     connection's API key in a header (x-api-key by default), compared in
//     constant time. A missing or wrong key is 401.
//   - SNS HTTP(S) subscriptions (header x-amz-sns-message-type): the
//     signature is verified as AWS documents (SignatureVersion 1 = SHA1, 2 =
//     SHA256, over the canonical "Key\nValue\n" string) with the certificate
//     fetched over HTTPS only from an sns.<region>.amazonaws.com host; only the
//     configured TopicArns are accepted; messages older than MaxAge are
//     refused; a SubscriptionConfirmation is confirmed by visiting its
//     SubscribeURL (same host rule). Anything unverifiable is 403.
//
// Deliveries are deduplicated on their MessageId (SNS) or event id
// (EventBridge): a redelivery is answered 200 and routed no second time.
// Nothing is routed before a delivery is authenticated.
package events

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sync"
	"time"

	"kiln/internal/awsapi"
)

// Path is where the handler is mounted.
const Path = "/events/aws"

// Sink receives parsed events; *awsapi.Hubs is one.
type Sink interface {
	Deliver(awsapi.Event)
}

// Options configure a Handler.
type Options struct {
	// APIKey authenticates EventBridge API-destination deliveries; empty
	// refuses them all.
	APIKey string
	// APIKeyHeader names the header carrying it; default "x-api-key".
	APIKeyHeader string
	// Topics are the SNS TopicArns accepted; none refuses every SNS delivery.
	Topics []string
	// FetchCert fetches the SNS signing certificate. It is only called for
	// an https URL on an sns.<region>.amazonaws.com host. Default: an HTTPS GET.
	FetchCert func(ctx context.Context, url string) (*x509.Certificate, error)
	// Confirm visits a SubscriptionConfirmation's SubscribeURL (same host
	// rule). Default: an HTTPS GET.
	Confirm func(ctx context.Context, url string) error
	// MaxAge refuses SNS messages whose Timestamp is older (a replay after
	// the dedupe memory forgot it). Default 1 h; SNS gives up after ~1 min.
	MaxAge time.Duration
	// Dedupe is how many delivery ids are remembered; default 10000.
	Dedupe int
	// Now is the clock; default time.Now.
	Now func() time.Time
	Log *slog.Logger
}

// Handler is the events receiver. Safe for concurrent use.
type Handler struct {
	sink Sink
	o    Options

	mu    sync.Mutex
	certs map[string]*x509.Certificate
	seen  map[string]bool
	ring  []string
	next  int
}

// New returns a handler that routes authenticated events to sink.
func New(sink Sink, o Options) *Handler {
	if o.APIKeyHeader == "" {
		o.APIKeyHeader = "x-api-key"
	}
	if o.FetchCert == nil {
		o.FetchCert = fetchCert
	}
	if o.Confirm == nil {
		o.Confirm = visit
	}
	if o.MaxAge <= 0 {
		o.MaxAge = time.Hour
	}
	if o.Dedupe <= 0 {
		o.Dedupe = 10000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Handler{sink: sink, o: o, certs: map[string]*x509.Certificate{}, seen: map[string]bool{}, ring: make([]string, o.Dedupe)}
}

// maxBody bounds a delivery: SNS messages are at most 256 KiB.
const maxBody = 1 << 20

// ServeHTTP handles one delivery: 200 routed or deliberately ignored
// (duplicate, other event type); 400 malformed; 401 no or wrong API key;
// 403 unverifiable SNS delivery; 405 not a POST.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		http.Error(w, "body unreadable or too large", http.StatusBadRequest)
		return
	}
	if t := r.Header.Get("x-amz-sns-message-type"); t != "" {
		code, msg := h.sns(r.Context(), t, body)
		if code != http.StatusOK {
			h.o.Log.Warn("sns delivery refused", "status", code, "reason", msg)
		}
		http.Error(w, msg, code)
		return
	}
	key := r.Header.Get(h.o.APIKeyHeader)
	if h.o.APIKey == "" || subtle.ConstantTimeCompare([]byte(key), []byte(h.o.APIKey)) != 1 {
		h.o.Log.Warn("event delivery refused", "reason", "no or wrong api key")
		http.Error(w, "no or wrong api key", http.StatusUnauthorized)
		return
	}
	code, msg := h.route(body)
	http.Error(w, msg, code)
}

// route parses an authenticated EventBridge event (posted directly or as
// an SNS notification's message) and delivers it.
func (h *Handler) route(event []byte) (int, string) {
	ev, err := ParseEvent(event)
	if errors.Is(err, ErrIgnored) {
		return http.StatusOK, "ignored"
	}
	if err != nil {
		return http.StatusBadRequest, err.Error()
	}
	if ev.ID != "" && !h.first("event:"+ev.ID) {
		return http.StatusOK, "duplicate"
	}
	h.sink.Deliver(ev)
	return http.StatusOK, "ok"
}

// first records id and reports whether it was new.
func (h *Handler) first(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seen[id] {
		return false
	}
	if old := h.ring[h.next]; old != "" {
		delete(h.seen, old)
	}
	h.ring[h.next] = id
	h.next = (h.next + 1) % len(h.ring)
	h.seen[id] = true
	return true
}

var snsHost = regexp.MustCompile(`^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$`)

// checkSNSURL accepts only https URLs on an SNS host (no port, no user info).
func checkSNSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("bad url: %w", err)
	}
	if u.Scheme != "https" || u.User != nil || u.Port() != "" || !snsHost.MatchString(u.Hostname()) {
		return fmt.Errorf("url %q is not https on an sns.<region>.amazonaws.com host", raw)
	}
	return nil
}

// sns verifies and handles an SNS delivery.
func (h *Handler) sns(ctx context.Context, typ string, body []byte) (int, string) {
	m, err := parseSNS(body)
	if err != nil {
		return http.StatusBadRequest, err.Error()
	}
	if m.Type != typ {
		return http.StatusBadRequest, "message type does not match its header"
	}
	if !slices.Contains(h.o.Topics, m.TopicArn) {
		return http.StatusForbidden, "topic not accepted"
	}
	if err := h.verify(ctx, m); err != nil {
		return http.StatusForbidden, err.Error()
	}
	if !h.first("sns:" + m.MessageID) {
		return http.StatusOK, "duplicate"
	}
	switch m.Type {
	case "SubscriptionConfirmation":
		if err := checkSNSURL(m.SubscribeURL); err != nil {
			return http.StatusForbidden, "SubscribeURL: " + err.Error()
		}
		if err := h.o.Confirm(ctx, m.SubscribeURL); err != nil {
			h.forget("sns:" + m.MessageID) // let SNS's retry try again
			return http.StatusBadGateway, "confirm subscription: " + err.Error()
		}
		h.o.Log.Info("sns subscription confirmed", "topic", m.TopicArn)
		return http.StatusOK, "confirmed"
	case "UnsubscribeConfirmation":
		h.o.Log.Warn("sns subscription ended", "topic", m.TopicArn)
		return http.StatusOK, "ok"
	}
	return h.route([]byte(m.Message))
}

func (h *Handler) forget(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.seen, id)
}

// verify checks the certificate URL, the signature and the age of m.
func (h *Handler) verify(ctx context.Context, m *snsMessage) error {
	var hash crypto.Hash
	switch m.SignatureVersion {
	case "1":
		hash = crypto.SHA1
	case "2":
		hash = crypto.SHA256
	default:
		return fmt.Errorf("unsupported SignatureVersion %q", m.SignatureVersion)
	}
	if err := checkSNSURL(m.SigningCertURL); err != nil {
		return fmt.Errorf("SigningCertURL: %w", err)
	}
	ts, err := time.Parse(time.RFC3339, m.Timestamp)
	if err != nil {
		return fmt.Errorf("bad Timestamp: %w", err)
	}
	if age := h.o.Now().Sub(ts); age > h.o.MaxAge {
		return fmt.Errorf("message is %s old", age.Round(time.Second))
	}
	sig, err := base64.StdEncoding.DecodeString(m.Signature)
	if err != nil {
		return errors.New("signature is not base64")
	}
	cert, err := h.cert(ctx, m.SigningCertURL)
	if err != nil {
		return err
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return errors.New("signing certificate has no RSA key")
	}
	var digest []byte
	if hash == crypto.SHA1 {
		d := sha1.Sum([]byte(m.stringToSign()))
		digest = d[:]
	} else {
		d := sha256.Sum256([]byte(m.stringToSign()))
		digest = d[:]
	}
	if err := rsa.VerifyPKCS1v15(pub, hash, digest, sig); err != nil {
		return errors.New("bad signature")
	}
	return nil
}

// maxCerts bounds the certificate cache (SNS signs with few).
const maxCerts = 64

func (h *Handler) cert(ctx context.Context, u string) (*x509.Certificate, error) {
	h.mu.Lock()
	c := h.certs[u]
	h.mu.Unlock()
	if c != nil {
		return c, nil
	}
	c, err := h.o.FetchCert(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("fetch signing certificate: %w", err)
	}
	h.mu.Lock()
	if len(h.certs) >= maxCerts {
		clear(h.certs)
	}
	h.certs[u] = c
	h.mu.Unlock()
	return c, nil
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// fetchCert GETs a PEM certificate over HTTPS from an SNS host.
func fetchCert(ctx context.Context, u string) (*x509.Certificate, error) {
	if err := checkSNSURL(u); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get %s: %s", u, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, err
	}
	return ParseCert(data)
}

// ParseCert parses the first PEM CERTIFICATE block of data.
func ParseCert(data []byte) (*x509.Certificate, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no PEM certificate")
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}

// visit GETs a SubscribeURL over HTTPS from an SNS host.
func visit(ctx context.Context, u string) error {
	if err := checkSNSURL(u); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get subscribe url: %s", resp.Status)
	}
	return nil
}
