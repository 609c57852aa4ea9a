package ui

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"kiln/internal/engine"
)

type staticView []engine.VertexStatus

func (v staticView) Status() []engine.VertexStatus { return v }
func (v staticView) Subscribe() (<-chan struct{}, func()) {
	return make(chan struct{}), func() {}
}

// TestEnginePageOrphans: the engine page names each orphan and whether
// prune will destroy it; without orphans (or without the section) it
// shows none.
func TestEnginePageOrphans(t *testing.T) {
	view := staticView{{ID: "aws:ec2/web-1", Kind: "aws:ec2", State: engine.StateConverged}}
	var orphans []Orphan
	page := EnginePageWithOrphans(view, "shop", func() []Orphan { return orphans })
	get := func() string {
		t.Helper()
		rec := httptest.NewRecorder()
		page.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		b, _ := io.ReadAll(rec.Result().Body)
		if rec.Code != 200 {
			t.Fatalf("GET / = %d", rec.Code)
		}
		return string(b)
	}
	if body := get(); strings.Contains(body, `id="orphans"`) {
		t.Errorf("page with no orphans has an orphan section")
	}
	orphans = []Orphan{
		{ID: "aws:ec2/web-2", Prune: true, Why: "removed from the graph"},
		{ID: "aws:key_pair/ops", Why: "prune is off"},
	}
	body := get()
	for _, want := range []string{
		`id="orphans"`,
		`<tr data-id="aws:ec2/web-2"><td><code>aws:ec2/web-2</code></td><td><span class="state failed">will destroy it</span>`,
		`<tr data-id="aws:key_pair/ops"><td><code>aws:key_pair/ops</code></td><td><span class="muted">left in place</span><br><span class="muted">prune is off</span>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("engine page lacks %q\n%s", want, body)
		}
	}
	rec := httptest.NewRecorder()
	EnginePage(view, "shop").ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if strings.Contains(rec.Body.String(), `id="orphans"`) {
		t.Errorf("EnginePage without orphans shows an orphan section")
	}
}
