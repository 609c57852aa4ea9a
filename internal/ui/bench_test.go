package ui

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"kiln/internal/auth"
	"kiln/internal/store"
)

// seedPages fills a store with projects projects and bakes bakes (spread
// evenly, all succeeded with an image id), 5 kept images per project and
// a full step timeline on the newest bake; it returns that bake's id.
func seedPages(tb testing.TB, st *store.Store, projects, bakes int) int64 {
	tb.Helper()
	ctx := context.Background()
	for i := range projects {
		p := store.Project{Name: fmt.Sprint("p", i), Region: "us-east-1", BaseOwner: "amazon", BaseName: alPattern,
			BaseMostRecent: true, Type: "t3.small", Script: "#!/bin/sh\ntrue\n", Keep: 5,
			ScriptTimeout: 30 * time.Minute, ImageTimeout: time.Hour}
		if _, err := st.PutProject(ctx, p, "0123456789abcdef0123"); err != nil {
			tb.Fatal(err)
		}
	}
	tx, err := st.DB().BeginTx(ctx, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback()
	now := time.Now().Add(-time.Duration(bakes) * time.Minute).UnixMilli()
	var last sql.Result
	for i := range bakes {
		at := now + int64(i)*60_000
		last, err = tx.ExecContext(ctx, `INSERT INTO bakes (project, commit_sha, state, created_at, updated_at,
			started_at, finished_at, image_id) VALUES (?, ?, 'succeeded', ?, ?, ?, ?, ?)`,
			fmt.Sprint("p", i%projects), fmt.Sprintf("%040x", i), at, at, at, at+50_000, fmt.Sprintf("ami-%017x", i))
		if err != nil {
			tb.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
	id, _ := last.LastInsertId()
	for i := range projects {
		for k := range 5 {
			if err := st.AddImage(ctx, store.Image{Project: fmt.Sprint("p", i), ImageID: fmt.Sprintf("ami-%08x%09x", i, k),
				Name: fmt.Sprint("p", i, "-", k), Commit: "c0ffee", Created: time.Now().Add(-time.Duration(k) * time.Hour)}); err != nil {
				tb.Fatal(err)
			}
		}
	}
	for _, step := range []string{"resolve base image", "launch builder", "wait for builder to stop", "create image", "wait for image", "record image"} {
		if err := st.StartStep(ctx, id, step, ""); err != nil {
			tb.Fatal(err)
		}
		if err := st.FinishStep(ctx, id, step, store.StepSucceeded, "ok"); err != nil {
			tb.Fatal(err)
		}
	}
	return id
}

// BenchmarkPages serves every bakery page over 100 projects and 10,000
// bakes. The pages must answer in well under 50 ms each.
func BenchmarkPages(b *testing.B) {
	st, err := store.Open(b.Context(), filepath.Join(b.TempDir(), "kiln.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	id := seedPages(b, st, 100, 10_000)
	bk, h := newBakery(BakeryConfig{Records: st, Sessions: st, Service: nil, CheckToken: func(string) bool { return false }})
	s, err := bk.ss.create(b.Context(), auth.Principal{Name: "admin", Kind: auth.KindAdminToken, Role: auth.Admin})
	if err != nil {
		b.Fatal(err)
	}
	cookie := &http.Cookie{Name: sessionCookie, Value: s.id}
	pages := []struct{ name, path string }{
		{"login", "/login"},
		{"projects", "/"},
		{"project", "/projects/p42"},
		{"new", "/projects/new"},
		{"edit", "/projects/p42/edit"},
		{"bake", fmt.Sprint("/bakes/", id)},
	}
	for _, p := range pages {
		b.Run(p.name, func(b *testing.B) {
			for b.Loop() {
				req := httptest.NewRequest("GET", p.path, nil)
				req.AddCookie(cookie)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("GET %s = %d", p.path, rec.Code)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/page")
		})
	}
}
