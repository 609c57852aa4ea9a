package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"kiln/internal/store"
	"kiln/internal/ui"
)

// pagesBench serves every bakery page over a database of 100 projects and
// 10,000 finished bakes (filled through the store's own API) and an audit
// log of 100,000 rows, signed in over HTTP like a browser, and reports each
// page's latency. Target: every page under 50 ms.
//
//	KILN_BENCH_PAGES_BAKES=10000   bakes in the database
//	KILN_BENCH_PAGES_AUDIT=100000  audit rows in the database
//	KILN_BENCH_PAGES_N=50          requests per page
func pagesBench(ctx context.Context, emit func(any)) error {
	const projects = 100
	bakes := int(envFloat("KILN_BENCH_PAGES_BAKES", 10_000))
	n := int(envFloat("KILN_BENCH_PAGES_N", 50))
	auditRows := int(envFloat("KILN_BENCH_PAGES_AUDIT", 100_000))

	dir, err := os.MkdirTemp("", "kiln-bench-pages")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, err := store.Open(ctx, filepath.Join(dir, "kiln.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	seedStart := time.Now()
	last, err := seedBakes(ctx, st, projects, bakes)
	if err != nil {
		return err
	}
	if err := seedAudit(ctx, st, projects, auditRows); err != nil {
		return err
	}
	seed := time.Since(seedStart)

	const token = "bench-token"
	srv := httptest.NewServer(ui.Bakery(ui.BakeryConfig{
		Records: st, Sessions: st, CheckToken: func(t string) bool { return t == token },
	}))
	defer srv.Close()
	c, err := signIn(srv.URL, token)
	if err != nil {
		return err
	}
	for _, p := range []struct{ name, path string }{
		{"projects", "/"},
		{"project", "/projects/p42"},
		{"project-form", "/projects/p42/edit"},
		{"new-project", "/projects/new"},
		{"bake", fmt.Sprint("/bakes/", last)},
		{"login", "/login"},
		{"audit", "/audit"},
		{"audit-project", "/audit?project=p42"},
		{"audit-filtered", "/audit?actor=ci&action=bake.&since=30d"},
		{"audit-old-page", "/audit?before=1000"},
	} {
		lat := make([]time.Duration, 0, n)
		for range n {
			start := time.Now()
			res, err := c.Get(srv.URL + p.path)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				return fmt.Errorf("GET %s = %s", p.path, res.Status)
			}
			lat = append(lat, time.Since(start))
		}
		p50, p99, maxMS := latencyMS(lat)
		emit(map[string]any{
			"scenario": "pages", "case": p.name, "projects": projects, "bakes": bakes, "audit_rows": auditRows, "requests": n,
			"p50_ms": p50, "p99_ms": p99, "max_ms": maxMS,
			"seed_s": seed.Seconds(),
		})
	}
	return nil
}

// seedAudit appends rows to the audit log in one transaction (the bench
// measures reading it, not appending), one a minute back from now, round
// robin over the projects and a few actors and actions.
func seedAudit(ctx context.Context, st *store.Store, projects, rows int) error {
	tx, err := st.DB().BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	actors := []string{"token ci", "user alice@example.com", "admin-token", "webhook d-1"}
	actions := []string{"bake.trigger", "promotion.start", "project.apply", "bake.webhook", "bake.cancel"}
	start := time.Now().Add(-time.Duration(rows) * time.Minute)
	for i := range rows {
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit (at, actor, action, project, target, detail, remote, outcome)
			VALUES ($1, $2, $3, $4, $5, '', '10.0.0.1', 'ok')`,
			start.Add(time.Duration(i)*time.Minute).UnixMilli(), actors[i%len(actors)], actions[i%len(actions)],
			fmt.Sprint("p", i%projects), fmt.Sprint("bake ", i)); err != nil {
			return fmt.Errorf("seed audit: %w", err)
		}
	}
	return tx.Commit()
}

// seedBakes creates projects and walks bakes through queued → running →
// succeeded, round robin over the projects; it returns the last bake's id.
func seedBakes(ctx context.Context, st *store.Store, projects, bakes int) (int64, error) {
	for i := range projects {
		p := store.Project{Name: fmt.Sprint("p", i), Region: "us-east-1", BaseOwner: "amazon",
			BaseName: "al2023-ami-2023.*-x86_64", BaseMostRecent: true, Type: "t3.small",
			Script: "#!/bin/sh\ntrue\n", Keep: 5, ScriptTimeout: 30 * time.Minute, ImageTimeout: time.Hour}
		if _, err := st.PutProject(ctx, p, "0123456789abcdef0123"); err != nil {
			return 0, err
		}
	}
	var id int64
	for i := range bakes {
		project := fmt.Sprint("p", i%projects)
		res, err := st.CreateBake(ctx, project, fmt.Sprintf("%040x", i), "refs/heads/main", nil)
		if err != nil {
			return 0, err
		}
		id = res.BakeID
		if _, _, err := st.ClaimBake(ctx, id); err != nil {
			return 0, err
		}
		if i >= bakes-projects { // the newest bake of each project has a timeline
			for _, step := range []string{"resolve base image", "launch builder", "wait for builder to stop", "create image", "wait for image"} {
				if err := st.StartStep(ctx, id, step, ""); err != nil {
					return 0, err
				}
				if err := st.FinishStep(ctx, id, step, store.StepSucceeded, "ok"); err != nil {
					return 0, err
				}
			}
		}
		if err := st.FinishBake(ctx, id, store.Outcome{State: store.Succeeded, ImageID: fmt.Sprintf("ami-%017x", i)}); err != nil {
			return 0, err
		}
	}
	return id, nil
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn signs in through the login form, as a browser would.
func signIn(base, token string) (*http.Client, error) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	res, err := c.Get(base + "/login")
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := csrfField.FindSubmatch(body)
	if m == nil {
		return nil, fmt.Errorf("sign in: no CSRF token on the login page")
	}
	res, err = c.PostForm(base+"/login", url.Values{"csrf": {string(m[1])}, "token": {token}})
	if err != nil {
		return nil, err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("sign in: %s", res.Status)
	}
	return c, nil
}
