package web

import (
	"encoding/json"
	"net/http"
	"testing"

	"kiln/internal/store"
)

func TestListDeliveries(t *testing.T) {
	f := newFixture(t, nil)
	ctx := t.Context()
	if _, err := f.c.Apply(ctx, "web.yaml", []byte(webYAML), nil); err != nil {
		t.Fatal(err)
	}
	d := store.Delivery{Key: "web/bake/1/bake.failed x", Project: "web", Target: "https://ops.example.com", Event: "bake.failed"}
	if _, err := f.st.StartDelivery(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := f.st.FinishDelivery(ctx, d.Key, store.DeliveryFailed, "post to https://ops.example.com: 500 Internal Server Error"); err != nil {
		t.Fatal(err)
	}
	code, body := f.call(t, "GET", "/api/projects/web/deliveries", testToken, "", nil)
	if code != http.StatusOK {
		t.Fatalf("GET deliveries = %d %s", code, body)
	}
	var got struct{ Deliveries []Delivery }
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Deliveries) != 1 || got.Deliveries[0].State != "failed" || got.Deliveries[0].Attempts != 1 ||
		got.Deliveries[0].LastError == "" || got.Deliveries[0].Target != "https://ops.example.com" {
		t.Errorf("deliveries = %+v; want the failed one with its error", got.Deliveries)
	}
	if code, _ := f.call(t, "GET", "/api/projects/nope/deliveries", testToken, "", nil); code != http.StatusNotFound {
		t.Errorf("GET deliveries of an unknown project = %d; want 404", code)
	}
}
