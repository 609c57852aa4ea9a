package events

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"kiln/internal/awsapi"
)

type sink struct {
	mu  sync.Mutex
	evs []awsapi.Event
}

func (s *sink) Deliver(ev awsapi.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.evs = append(s.evs, ev)
}

func (s *sink) n() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.evs)
}

const (
	topic   = "arn:aws:sns:us-east-1:123456789012:kiln-events"
	certURL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem"
)

var now = time.Date(2026, 1, 1, 0, 0, 30, 0, time.UTC)

func stateEvent(id, instance, state string) string {
	return `{"version":"0","id":"` + id + `","detail-type":"EC2 Instance State-change Notification","source":"aws.ec2",` +
		`"account":"123456789012","time":"2026-01-01T00:00:00Z","region":"us-east-1",` +
		`"resources":["arn:aws:ec2:us-east-1:123456789012:instance/` + instance + `"],` +
		`"detail":{"instance-id":"` + instance + `","state":"` + state + `"}}`
}

// signer is a self-signed certificate standing in for SNS's.
type signer struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
}

func newSigner(t *testing.T) *signer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sns.amazonaws.com"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &signer{key: key, cert: cert}
}

func (s *signer) sign(t *testing.T, m *snsMessage) {
	t.Helper()
	var sig []byte
	var err error
	if m.SignatureVersion == "1" {
		d := sha1.Sum([]byte(m.stringToSign()))
		sig, err = rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA1, d[:])
	} else {
		d := sha256.Sum256([]byte(m.stringToSign()))
		sig, err = rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA256, d[:])
	}
	if err != nil {
		t.Fatal(err)
	}
	m.Signature = base64.StdEncoding.EncodeToString(sig)
}

func notification(id, version, msg string) *snsMessage {
	return &snsMessage{Type: "Notification", MessageID: id, TopicArn: topic, Message: msg,
		Timestamp: "2026-01-01T00:00:00.000Z", SignatureVersion: version, SigningCertURL: certURL}
}

func post(t *testing.T, h http.Handler, header map[string]string, body string) int {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, Path, strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

func TestEventBridge(t *testing.T) {
	tests := []struct {
		name   string
		header map[string]string
		body   string
		want   int
		routed int
	}{
		{"good key", map[string]string{"x-api-key": "s3cret"}, stateEvent("e1", "i-1", "stopped"), 200, 1},
		{"wrong key", map[string]string{"x-api-key": "s3creT"}, stateEvent("e1", "i-1", "stopped"), 401, 0},
		{"no key", nil, stateEvent("e1", "i-1", "stopped"), 401, 0},
		{"malformed", map[string]string{"x-api-key": "s3cret"}, `{"source":`, 400, 0},
		{"other type", map[string]string{"x-api-key": "s3cret"}, `{"id":"x","source":"aws.s3","detail-type":"Object Created","region":"us-east-1"}`, 200, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &sink{}
			h := New(s, Options{APIKey: "s3cret"})
			if got := post(t, h, tt.header, tt.body); got != tt.want {
				t.Errorf("status = %d; want %d", got, tt.want)
			}
			if s.n() != tt.routed {
				t.Errorf("routed %d events; want %d", s.n(), tt.routed)
			}
		})
	}
	t.Run("no key configured refuses", func(t *testing.T) {
		s := &sink{}
		if got := post(t, New(s, Options{}), map[string]string{"x-api-key": ""}, stateEvent("e1", "i-1", "stopped")); got != 401 || s.n() != 0 {
			t.Errorf("status = %d, routed %d; want 401, 0", got, s.n())
		}
	})
	t.Run("redelivery routed once", func(t *testing.T) {
		s := &sink{}
		h := New(s, Options{APIKey: "k"})
		for range 3 {
			if got := post(t, h, map[string]string{"x-api-key": "k"}, stateEvent("same", "i-1", "stopped")); got != 200 {
				t.Fatalf("status = %d; want 200", got)
			}
		}
		if s.n() != 1 {
			t.Errorf("routed %d; want 1", s.n())
		}
		ev := s.evs[0]
		if ev.Resource != "i-1" || ev.State != "stopped" || ev.Region != "us-east-1" {
			t.Errorf("event = %+v", ev)
		}
	})
}

func TestSNS(t *testing.T) {
	sg := newSigner(t)
	other := newSigner(t)
	var fetched []string
	fetch := func(_ context.Context, u string) (*x509.Certificate, error) {
		fetched = append(fetched, u)
		return sg.cert, nil
	}
	type tc struct {
		name   string
		msg    func() *snsMessage
		signBy *signer
		header string
		want   int
		routed int
	}
	tests := []tc{
		{name: "v1 good", msg: func() *snsMessage { return notification("m1", "1", stateEvent("e1", "i-1", "stopped")) }, signBy: sg, want: 200, routed: 1},
		{name: "v2 good", msg: func() *snsMessage { return notification("m1", "2", stateEvent("e1", "i-1", "stopped")) }, signBy: sg, want: 200, routed: 1},
		{name: "with subject", msg: func() *snsMessage {
			m := notification("m1", "2", stateEvent("e1", "i-1", "stopped"))
			s := "hi"
			m.Subject = &s
			return m
		}, signBy: sg, want: 200, routed: 1},
		{name: "bad signature", msg: func() *snsMessage { return notification("m1", "2", stateEvent("e1", "i-1", "stopped")) }, signBy: other, want: 403},
		{name: "tampered after signing", msg: func() *snsMessage { return notification("m1", "2", stateEvent("e1", "i-1", "stopped")) }, signBy: sg, want: 403},
		{name: "wrong host", msg: func() *snsMessage {
			m := notification("m1", "2", stateEvent("e1", "i-1", "stopped"))
			m.SigningCertURL = "https://sns.us-east-1.amazonaws.com.evil.example/cert.pem"
			return m
		}, signBy: sg, want: 403},
		{name: "plain http", msg: func() *snsMessage {
			m := notification("m1", "2", stateEvent("e1", "i-1", "stopped"))
			m.SigningCertURL = "http://sns.us-east-1.amazonaws.com/cert.pem"
			return m
		}, signBy: sg, want: 403},
		{name: "wrong topic", msg: func() *snsMessage {
			m := notification("m1", "2", stateEvent("e1", "i-1", "stopped"))
			m.TopicArn = "arn:aws:sns:us-east-1:999999999999:other"
			return m
		}, signBy: sg, want: 403},
		{name: "unknown version", msg: func() *snsMessage { return notification("m1", "3", stateEvent("e1", "i-1", "stopped")) }, signBy: sg, want: 403},
		{name: "too old", msg: func() *snsMessage {
			m := notification("m1", "2", stateEvent("e1", "i-1", "stopped"))
			m.Timestamp = "2025-12-31T20:00:00.000Z"
			return m
		}, signBy: sg, want: 403},
		{name: "header mismatch", msg: func() *snsMessage { return notification("m1", "2", stateEvent("e1", "i-1", "stopped")) }, signBy: sg, header: "SubscriptionConfirmation", want: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &sink{}
			h := New(s, Options{Topics: []string{topic}, FetchCert: fetch, Now: func() time.Time { return now }})
			m := tt.msg()
			v := m.SignatureVersion
			if v != "1" {
				m.SignatureVersion = "2"
			}
			tt.signBy.sign(t, m)
			m.SignatureVersion = v
			if tt.name == "tampered after signing" {
				m.Message = stateEvent("e1", "i-2", "stopped")
			}
			body, _ := json.Marshal(m)
			hdr := tt.header
			if hdr == "" {
				hdr = m.Type
			}
			if got := post(t, h, map[string]string{"x-amz-sns-message-type": hdr}, string(body)); got != tt.want {
				t.Errorf("status = %d; want %d", got, tt.want)
			}
			if s.n() != tt.routed {
				t.Errorf("routed %d; want %d", s.n(), tt.routed)
			}
		})
	}
	for _, u := range fetched {
		if u != certURL {
			t.Errorf("fetched certificate from %q; only %q may be fetched", u, certURL)
		}
	}

	t.Run("replay", func(t *testing.T) {
		s := &sink{}
		h := New(s, Options{Topics: []string{topic}, FetchCert: fetch, Now: func() time.Time { return now }})
		m := notification("m-replay", "2", stateEvent("e9", "i-9", "running"))
		sg.sign(t, m)
		body, _ := json.Marshal(m)
		for range 3 {
			if got := post(t, h, map[string]string{"x-amz-sns-message-type": "Notification"}, string(body)); got != 200 {
				t.Fatalf("status = %d; want 200", got)
			}
		}
		if s.n() != 1 {
			t.Errorf("routed %d; want 1", s.n())
		}
	})

	t.Run("subscription confirmation", func(t *testing.T) {
		s := &sink{}
		var visited []string
		h := New(s, Options{Topics: []string{topic}, FetchCert: fetch, Now: func() time.Time { return now },
			Confirm: func(_ context.Context, u string) error { visited = append(visited, u); return nil }})
		m := &snsMessage{Type: "SubscriptionConfirmation", MessageID: "c1", Token: "tok", TopicArn: topic,
			Message: "You have chosen to subscribe", SubscribeURL: "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=tok",
			Timestamp: "2026-01-01T00:00:00.000Z", SignatureVersion: "1", SigningCertURL: certURL}
		sg.sign(t, m)
		body, _ := json.Marshal(m)
		if got := post(t, h, map[string]string{"x-amz-sns-message-type": "SubscriptionConfirmation"}, string(body)); got != 200 {
			t.Fatalf("status = %d; want 200", got)
		}
		if len(visited) != 1 || visited[0] != m.SubscribeURL {
			t.Errorf("visited %v; want [%s]", visited, m.SubscribeURL)
		}
		// A confirmation pointing elsewhere is refused even when signed.
		m2 := *m
		m2.MessageID, m2.SubscribeURL = "c2", "https://evil.example/confirm"
		sg.sign(t, &m2)
		body, _ = json.Marshal(&m2)
		if got := post(t, h, map[string]string{"x-amz-sns-message-type": "SubscriptionConfirmation"}, string(body)); got != 403 {
			t.Errorf("status = %d; want 403", got)
		}
		if len(visited) != 1 || s.n() != 0 {
			t.Errorf("visited %v, routed %d; want one visit, nothing routed", visited, s.n())
		}
	})
}

func TestCheckSNSURL(t *testing.T) {
	for _, tt := range []struct {
		url string
		ok  bool
	}{
		{"https://sns.eu-west-1.amazonaws.com/x.pem", true},
		{"https://sns.cn-north-1.amazonaws.com.cn/x.pem", true},
		{"http://sns.eu-west-1.amazonaws.com/x.pem", false},
		{"https://sns.eu-west-1.amazonaws.com:8443/x.pem", false},
		{"https://user@sns.eu-west-1.amazonaws.com/x.pem", false},
		{"https://evil.com/sns.eu-west-1.amazonaws.com", false},
		{"https://sns.eu-west-1.amazonaws.com.evil.com/x.pem", false},
		{"https://s3.amazonaws.com/x.pem", false},
	} {
		if err := checkSNSURL(tt.url); (err == nil) != tt.ok {
			t.Errorf("checkSNSURL(%q) = %v; want ok=%v", tt.url, err, tt.ok)
		}
	}
}

func TestParseEvent(t *testing.T) {
	ev, err := ParseEvent([]byte(`{"id":"1","source":"aws.ec2","detail-type":"EC2 AMI State Change","region":"eu-west-1","time":"2026-01-01T00:00:00Z","detail":{"ImageId":"ami-1","State":"available"}}`))
	if err != nil || ev.Resource != "ami-1" || ev.State != "available" || ev.Region != "eu-west-1" {
		t.Errorf("ParseEvent(ami) = %+v, %v", ev, err)
	}
	if _, err := ParseEvent([]byte(`{"source":"aws.ec2","detail-type":"EC2 Instance State-change Notification","region":"us-east-1","detail":{}}`)); err == nil {
		t.Error("ParseEvent(no instance id) = nil error; want one")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(stateEvent("e1", "i-1", "stopped")))
	f.Add([]byte(`{"Type":"Notification","MessageId":"m","TopicArn":"t","Message":"{}","Timestamp":"2026-01-01T00:00:00Z","SignatureVersion":"1","Signature":"eA==","SigningCertURL":"https://sns.us-east-1.amazonaws.com/c.pem"}`))
	f.Add([]byte(`{"source":"aws.autoscaling","detail-type":"EC2 Auto Scaling Instance Refresh Succeeded","region":"us-east-1","detail":{"AutoScalingGroupName":"web"}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := ParseEvent(data)
		if err == nil && (ev.Resource == "" || ev.Region == "") {
			t.Errorf("ParseEvent accepted an event without resource or region: %+v", ev)
		}
		if m, err := parseSNS(data); err == nil {
			_ = m.stringToSign()
		}
	})
}

// TestRoutesToHub: a signed SNS notification and an EventBridge delivery
// each make the owning resource re-check; forged ones do not.
func TestRoutesToHub(t *testing.T) {
	hs := awsapi.NewHubs(awsapi.Options{Config: &aws.Config{Region: "us-east-1"}})
	h, err := hs.Hub(t.Context(), "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	owner := awsapi.Owner{Graph: "shop", Resource: "aws:ec2/web"}
	var mu sync.Mutex
	checks := 0
	cancel := h.Subscribe(owner, time.Hour, func() { mu.Lock(); checks++; mu.Unlock() })
	defer cancel()
	h.Track(owner, "i-0abc")
	got := func() int { mu.Lock(); defer mu.Unlock(); return checks }

	sg, forger := newSigner(t), newSigner(t)
	rcv := New(hs, Options{APIKey: "k", Topics: []string{topic}, Now: func() time.Time { return now },
		FetchCert: func(context.Context, string) (*x509.Certificate, error) { return sg.cert, nil }})

	post(t, rcv, map[string]string{"x-api-key": "k"}, stateEvent("e1", "i-0abc", "stopped"))
	if got() != 1 {
		t.Fatalf("re-checks after an EventBridge delivery = %d; want 1", got())
	}
	post(t, rcv, map[string]string{"x-api-key": "forged"}, stateEvent("e2", "i-0abc", "stopped"))
	if got() != 1 {
		t.Fatalf("re-checks after a forged EventBridge delivery = %d; want 1", got())
	}
	m := notification("m1", "2", stateEvent("e3", "i-0abc", "running"))
	sg.sign(t, m)
	body, _ := json.Marshal(m)
	post(t, rcv, map[string]string{"x-amz-sns-message-type": "Notification"}, string(body))
	if got() != 2 {
		t.Fatalf("re-checks after an SNS notification = %d; want 2", got())
	}
	f := notification("m2", "2", stateEvent("e4", "i-0abc", "stopped"))
	forger.sign(t, f)
	body, _ = json.Marshal(f)
	post(t, rcv, map[string]string{"x-amz-sns-message-type": "Notification"}, string(body))
	if got() != 2 {
		t.Fatalf("re-checks after a forged SNS notification = %d; want 2", got())
	}
}
