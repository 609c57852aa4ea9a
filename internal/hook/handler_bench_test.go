package hook

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"

	"kiln/internal/store"
)

// BenchmarkHookHandlerParallel: signed GitHub pushes to 100 projects through
// the handler (no network), store and River insert included.
func BenchmarkHookHandlerParallel(b *testing.B) {
	st, err := store.Open(b.Context(), filepath.Join(b.TempDir(), "kiln.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	rc, err := st.NewRiverClient(nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	for i := range 100 {
		rec := store.Project{Name: fmt.Sprint("p", i), Region: "us-east-1", BaseID: "ami-0123abcd", Type: "t3.small",
			Script: "echo", Keep: 1, Branch: "main"}
		if _, err := st.PutProject(b.Context(), rec, hookSecret); err != nil {
			b.Fatal(err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("POST /hooks/{project}", NewHandler(NewQueue(st, rc), nil))
	body := readHook(b, "github-push.json")
	sig := Sign(body, hookSecret)
	var n atomic.Int64
	b.SetParallelism(25)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			req := httptest.NewRequest(http.MethodPost, fmt.Sprintf("/hooks/p%d", i%100), bytes.NewReader(body))
			req.Header.Set("X-GitHub-Event", "push")
			req.Header.Set("X-GitHub-Delivery", fmt.Sprint(i))
			req.Header.Set("X-Hub-Signature-256", sig)
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			if rec.Code != http.StatusAccepted {
				b.Errorf("POST = %d %s", rec.Code, rec.Body)
				return
			}
		}
	})
}
