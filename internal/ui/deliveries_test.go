package ui

import (
	"net/http"
	"strings"
	"testing"

	"kiln/internal/store"
)

// The project page lists the deliveries that failed or wait for a retry,
// with why, and not those delivered.
func TestProjectPageUndelivered(t *testing.T) {
	srv, st := newPageServer(t)
	ctx := t.Context()
	for _, d := range []struct {
		key, event, state, msg string
	}{
		{"p0/bake/1/bake.failed a", "bake.failed", store.DeliveryFailed, "post to https://ops.example.com: 500 Internal Server Error"},
		{"p0/bake/2/bake.started a", "bake.started", store.DeliveryDelivered, ""},
	} {
		if _, err := st.StartDelivery(ctx, store.Delivery{Key: d.key, Project: "p0", Target: "https://ops.example.com", Event: d.event}); err != nil {
			t.Fatal(err)
		}
		if err := st.FinishDelivery(ctx, d.key, d.state, d.msg); err != nil {
			t.Fatal(err)
		}
	}
	code, body, _ := get(t, signedIn(t, srv), srv.URL+"/projects/p0")
	if code != http.StatusOK {
		t.Fatalf("GET /projects/p0 = %d", code)
	}
	_, table, ok := strings.Cut(body, `id="deliveries"`)
	if !ok {
		t.Fatal("project page has no deliveries table")
	}
	table, _, _ = strings.Cut(table, "</table>")
	if !strings.Contains(table, "bake.failed") || !strings.Contains(table, "500 Internal Server Error") {
		t.Errorf("deliveries table lacks the failed delivery and its error:\n%s", table)
	}
	if strings.Contains(table, "bake.started") {
		t.Errorf("deliveries table lists a delivered one:\n%s", table)
	}
}
