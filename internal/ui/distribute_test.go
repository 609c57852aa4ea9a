package ui

import (
	"net/http"
	"strings"
	"testing"
)

// TestBakePageRegions lists a bake's image in every region with its state.
func TestBakePageRegions(t *testing.T) {
	srv, st := newPageServer(t)
	for _, im := range []struct{ region, id, state string }{
		{"us-east-1", "ami-0aaaaaaaaaaaaaaa1", "available"},
		{"us-west-2", "ami-0bbbbbbbbbbbbbbb2", "pending"},
	} {
		if err := st.SetBakeImage(t.Context(), 3, im.region, im.id, im.state); err != nil {
			t.Fatal(err)
		}
	}
	c := signedIn(t, srv)
	code, body, _ := get(t, c, srv.URL+"/bakes/3")
	if code != http.StatusOK {
		t.Fatalf("GET /bakes/3 = %d", code)
	}
	for _, want := range []string{`id="regions"`, `us-east-1 <code>ami-0aaaaaaaaaaaaaaa1</code> <span class="state available">available</span>`,
		`us-west-2 <code>ami-0bbbbbbbbbbbbbbb2</code> <span class="state pending">pending</span>`} {
		if !strings.Contains(body, want) {
			t.Errorf("bake page lacks %q", want)
		}
	}
	// A bake with its image in one region only shows no Regions row.
	if _, body, _ := get(t, c, srv.URL+"/bakes/2"); strings.Contains(body, `id="regions"`) {
		t.Error("a one-region bake shows the Regions row")
	}
}
