package cli

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"kiln/internal/bakery"
	"kiln/internal/pgtest"
	"kiln/internal/store"
	"kiln/internal/testsupport"
)

// notifyReceiver is a notification target: it refuses every delivery
// (500) until it is told to accept, and records what it accepted by
// delivery id, with whether the signature was right.
type notifyReceiver struct {
	secret string

	mu       sync.Mutex
	accept   bool
	refused  int
	accepted map[string][]receivedEvent
}

type receivedEvent struct {
	Event    string `json:"event"`
	Project  string `json:"project"`
	Bake     int64  `json:"bake"`
	signedOK bool
}

func (n *notifyReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	mac := hmac.New(sha256.New, []byte(n.secret))
	mac.Write(body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	var e receivedEvent
	if err := json.Unmarshal(body, &e); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	e.signedOK = hmac.Equal([]byte(r.Header.Get("X-Kiln-Signature-256")), []byte(want))
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.accept {
		n.refused++
		http.Error(w, "not now", http.StatusInternalServerError)
		return
	}
	id := r.Header.Get("X-Kiln-Delivery")
	n.accepted[id] = append(n.accepted[id], e)
}

func (n *notifyReceiver) state() (refused int, accepted map[string][]receivedEvent) {
	n.mu.Lock()
	defer n.mu.Unlock()
	accepted = map[string][]receivedEvent{}
	for k, v := range n.accepted {
		accepted[k] = append([]receivedEvent(nil), v...)
	}
	return n.refused, accepted
}

// TestNotifyAcrossServerKill is issue 30's delivery test: kiln serve, a
// real process on PostgreSQL, bakes; its notification target refuses the
// first delivery, and while the delivery waits for its retry the server
// is SIGKILLed. A second server on the same database delivers it: the
// target receives the event exactly once, signed with the target's
// secret.
func TestNotifyAcrossServerKill(t *testing.T) {
	dsn := pgtest.DB(t)
	r := newCrashRig(t, dsn, 2, bakery.DefaultLease)
	ctx := t.Context()
	const secret = "notify-crash-secret"
	recv := &notifyReceiver{secret: secret, accepted: map[string][]receivedEvent{}}
	target := httptest.NewServer(recv)
	defer target.Close()

	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// jobState is the delivery job's River state ("" while there is none).
	jobState := func() string {
		var state string
		_ = st.DB().QueryRowContext(ctx, `SELECT state FROM river_job WHERE kind = 'notify'`).Scan(&state)
		return state
	}

	first := r.start(0, 0)
	c := r.client(0)
	if _, err := c.Apply(ctx, "web.yaml", []byte(fmt.Sprintf(`name: web
region: us-east-1
base: {owner: amazon, name: "al2023-ami-*", most_recent: true}
type: t3.small
script: |
  #!/bin/sh
  echo baking
notify:
  - url: %s/hook
    secret: %s
    events: [bake.succeeded]
`, target.URL, secret)), nil); err != nil {
		t.Fatal(err)
	}
	tr, err := c.Trigger(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	// The bake succeeds; its delivery is refused once and waits for its
	// retry (River's "retryable"): the moment to kill the server.
	testsupport.EventuallyWithin(t, 2*time.Minute, "a refused delivery waiting for its retry", func() bool {
		refused, _ := recv.state()
		return refused > 0 && jobState() == "retryable"
	})
	r.kill(first)
	recv.mu.Lock()
	recv.accept = true
	recv.mu.Unlock()

	second := r.start(1, 1)
	defer r.kill(second)
	testsupport.EventuallyWithin(t, 2*time.Minute, "the delivery completed by the second server", func() bool {
		return jobState() == "completed"
	})
	var delivered string
	testsupport.EventuallyWithin(t, 30*time.Second, "the delivery recorded delivered", func() bool {
		_ = st.DB().QueryRowContext(ctx, `SELECT state FROM notify_deliveries WHERE event = 'bake.succeeded'`).Scan(&delivered)
		return delivered == store.DeliveryDelivered
	})

	refused, accepted := recv.state()
	id := fmt.Sprintf("web/bake/%d/bake.succeeded", tr.Bake.ID)
	got := accepted[id]
	if len(accepted) != 1 || len(got) != 1 {
		t.Fatalf("target accepted %v; want the event %s exactly once", accepted, id)
	}
	if e := got[0]; e.Event != "bake.succeeded" || e.Project != "web" || e.Bake != tr.Bake.ID || !e.signedOK {
		t.Errorf("delivered %+v; want bake.succeeded of web bake %d, signed with the target's secret", e, tr.Bake.ID)
	}
	t.Logf("%d attempts refused before the kill; delivered once after it", refused)
}
