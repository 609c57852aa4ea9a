package web

import (
	"context"
	"net/http"
	"os"
	"sync"
	"testing"

	"kiln/internal/hook"
	"kiln/internal/store"
)

// pushRecorder is the store's push path (EnqueuePush) noting what it was
// handed.
type pushRecorder struct {
	st     *store.Store
	mu     sync.Mutex
	pushes []store.Push
}

func (b *pushRecorder) HookTarget(ctx context.Context, project string) (store.HookTarget, error) {
	return b.st.HookTarget(ctx, project)
}

func (b *pushRecorder) Enqueue(ctx context.Context, p store.Push) (store.PushResult, error) {
	b.mu.Lock()
	b.pushes = append(b.pushes, p)
	b.mu.Unlock()
	return b.st.EnqueuePush(ctx, p, nil)
}

// TestWebhookAuditInPushTransaction: an accepted delivery's audit row is
// handed to the push, written in its transaction, and not appended a
// second time; a refused delivery still gets its row from the wrap.
func TestWebhookAuditInPushTransaction(t *testing.T) {
	var hooks http.Handler
	f := newFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hooks.ServeHTTP(w, r) }))
	b := &pushRecorder{st: f.st}
	hooks = hook.NewHandler(b, nil)
	ctx := t.Context()
	applied, err := f.c.Apply(ctx, "web.yaml", []byte(webYAML), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile("../hook/testdata/hooks/github-push.json")
	if err != nil {
		t.Fatal(err)
	}
	deliver := func(id, secret string) int {
		t.Helper()
		status, _ := f.call(t, "POST", "/hooks/web", "", string(body), map[string]string{
			"X-GitHub-Event": "push", "X-GitHub-Delivery": id,
			"X-Hub-Signature-256": hook.Sign(body, secret), "Content-Type": "application/json",
		})
		return status
	}
	if got := deliver("d-1", applied.WebhookSecret); got != http.StatusAccepted {
		t.Fatalf("push = %d; want 202", got)
	}
	if got := deliver("d-1", applied.WebhookSecret); got != http.StatusAccepted {
		t.Fatalf("the same push again = %d; want 202 (duplicate)", got)
	}
	if got := deliver("d-2", "wrong"); got != http.StatusUnauthorized {
		t.Fatalf("push with a bad signature = %d; want 401", got)
	}

	b.mu.Lock()
	pushes := b.pushes
	b.mu.Unlock()
	if len(pushes) != 2 {
		t.Fatalf("pushes handed to the store = %d; want 2", len(pushes))
	}
	for i, p := range pushes {
		if p.Audit == nil || p.Audit.Actor != "webhook d-1" || p.Audit.Action != "bake.webhook" || p.Audit.Project != "web" || p.Audit.Outcome != "ok" {
			t.Errorf("push %d audit row = %+v; want webhook d-1, bake.webhook, web, ok", i, p.Audit)
		}
	}
	rows, err := f.st.Audit(ctx, store.AuditQuery{Action: "bake.webhook"})
	if err != nil {
		t.Fatal(err)
	}
	type row struct{ actor, project, outcome string }
	want := []row{
		{"webhook d-2", "web", "401: missing or bad signature: signature does not match"},
		{"webhook d-1", "web", "ok"},
		{"webhook d-1", "web", "ok"},
	}
	if len(rows) != len(want) {
		t.Fatalf("audit rows = %+v; want %d", rows, len(want))
	}
	for i, e := range rows {
		if got := (row{e.Actor, e.Project, e.Outcome}); got != want[i] {
			t.Errorf("audit row %d = %+v; want %+v", i, got, want[i])
		}
		if e.Remote == "" || e.At.IsZero() {
			t.Errorf("audit row %d = %+v; want its address and time", i, e)
		}
	}
}
