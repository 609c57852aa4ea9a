package ui

import (
	"net/http/httptest"
	"strings"
	"testing"

	"kiln/internal/engine"
)

// TestEnginePageAccounts: a resource working in another account shows its
// account in the table and the graph; one with the starting credentials
// shows none, and so does every resource of a page without accounts.
func TestEnginePageAccounts(t *testing.T) {
	view := staticView{
		{ID: "aws:ec2/web-shared", Kind: "aws:ec2", Name: "web-shared", State: engine.StateConverged},
		{ID: "aws:ec2/web-prod", Kind: "aws:ec2", Name: "web-prod", State: engine.StateChecking},
	}
	body := func(accounts func() map[string]string) string {
		t.Helper()
		rec := httptest.NewRecorder()
		EnginePageWithAccounts(view, "fleet", nil, accounts).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		if rec.Code != 200 {
			t.Fatalf("GET / = %d\n%s", rec.Code, rec.Body)
		}
		return rec.Body.String()
	}
	b := body(func() map[string]string { return map[string]string{"aws:ec2/web-prod": "prod"} })
	for _, want := range []string{
		`<tr data-id="aws:ec2/web-prod"><td><code>aws:ec2/web-prod</code> <span class="account" title="AWS account">account prod</span>`,
		`<tr data-id="aws:ec2/web-shared"><td><code>aws:ec2/web-shared</code><`,
		`<title>aws:ec2/web-prod (account prod): checking</title>`,
		`aws:ec2 · prod · checking</text>`,
		`<title>aws:ec2/web-shared: converged</title>`,
	} {
		if !strings.Contains(b, want) {
			t.Errorf("engine page lacks %q\n%s", want, b)
		}
	}
	if b := body(nil); strings.Contains(b, "account") {
		t.Errorf("engine page without accounts names one:\n%s", b)
	}
}
