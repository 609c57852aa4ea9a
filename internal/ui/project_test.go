package ui

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"kiln/internal/bakery"
	"kiln/internal/store"
)

// seededSecret is the webhook secret seedPages gives every project.
const seededSecret = "0123456789abcdef0123"

// TestRotateSecretPage: "New webhook secret" needs the CSRF token, stores
// a new secret and shows it once, beside the Git hosts' instructions.
func TestRotateSecretPage(t *testing.T) {
	srv, st := newPageServer(t)
	if code, _, _ := post(t, client(t), srv.URL+"/projects/p0/secret", nil); code != http.StatusUnauthorized {
		t.Errorf("rotate without a session = %d; want 401", code)
	}
	c := signedIn(t, srv)
	_, body, _ := get(t, c, srv.URL+"/projects/p0")
	if !strings.Contains(body, `<form class="inline" method="post" action="/projects/p0/secret" id="rotate-form">`) || strings.Contains(body, `id="secret"`) {
		t.Fatal("project page: want the rotate form and no secret")
	}
	csrf := csrfOf(t, body)

	for _, form := range []url.Values{nil, {"csrf": {"forged"}}} {
		if code, _, _ := post(t, c, srv.URL+"/projects/p0/secret", form); code != http.StatusForbidden {
			t.Errorf("rotate with CSRF token %q = %d; want 403", form.Get("csrf"), code)
		}
	}
	if got, _ := st.ProjectSecret(t.Context(), "p0"); got != seededSecret {
		t.Fatalf("a refused rotation changed the secret to %q", got)
	}

	code, _, h := post(t, c, srv.URL+"/projects/p0/secret", url.Values{"csrf": {csrf}})
	if code != http.StatusSeeOther || h.Get("Location") != "/projects/p0#secret" {
		t.Fatalf("rotate = %d, Location %q; want 303 to /projects/p0#secret", code, h.Get("Location"))
	}
	secret, err := st.ProjectSecret(t.Context(), "p0")
	if err != nil || secret == seededSecret || len(secret) != 43 {
		t.Fatalf("stored secret after rotation = %q, %v; want a new generated one", secret, err)
	}
	_, body, _ = get(t, c, srv.URL+"/projects/p0")
	for _, want := range []string{
		`<code id="secret-value">` + secret + `</code>`,
		"New webhook secret</strong>",
		"The old secret no longer works",
		"<strong>GitHub</strong>", "<strong>GitLab</strong>",
		`<code id="webhook-url">` + srv.URL + `/hooks/p0</code>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("project page after rotation lacks %q", want)
		}
	}
	_, body, _ = get(t, c, srv.URL+"/projects/p0")
	if strings.Contains(body, secret) || strings.Contains(body, `id="secret"`) {
		t.Error("the new secret is shown a second time")
	}
	if other, _ := st.ProjectSecret(t.Context(), "p1"); other != seededSecret {
		t.Errorf("rotating p0 changed p1's secret")
	}

	if code, _, _ := post(t, c, srv.URL+"/projects/nope/secret", url.Values{"csrf": {csrf}}); code != http.StatusNotFound {
		t.Errorf("rotate an unknown project = %d; want 404", code)
	}
}

// TestDeletePage: deleting needs the CSRF token and the confirm box, is
// refused while a bake runs, and ends on the projects with a message.
func TestDeletePage(t *testing.T) {
	srv, st := newPageServer(t)
	ctx := t.Context()
	exists := func() bool {
		t.Helper()
		_, err := st.Project(ctx, "p0")
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}
	if code, _, _ := post(t, client(t), srv.URL+"/projects/p0/delete", url.Values{"confirm": {"yes"}}); code != http.StatusUnauthorized {
		t.Errorf("delete without a session = %d; want 401", code)
	}
	c := signedIn(t, srv)
	_, body, _ := get(t, c, srv.URL+"/projects/p0")
	if !strings.Contains(body, `<form method="post" action="/projects/p0/delete" id="delete-form">`) ||
		!strings.Contains(body, `<input type="checkbox" name="confirm" value="yes" id="confirm" required>`) {
		t.Fatal("project page: want the delete form with its required confirm box")
	}
	csrf := csrfOf(t, body)

	code, body, _ := get(t, c, srv.URL+"/projects/p0/delete")
	if code != http.StatusOK || !strings.Contains(body, `id="delete-form"`) || !strings.Contains(body, "the records of its 5 bakes and of its 5 kept images") {
		t.Errorf("GET /projects/p0/delete = %d; want 200, the form and what goes with the project:\n%s", code, body)
	}
	if code, _, _ := get(t, c, srv.URL+"/projects/nope/delete"); code != http.StatusNotFound {
		t.Errorf("GET /projects/nope/delete = %d; want 404", code)
	}

	if code, _, _ := post(t, c, srv.URL+"/projects/p0/delete", url.Values{"csrf": {"forged"}, "confirm": {"yes"}}); code != http.StatusForbidden {
		t.Errorf("delete with a forged CSRF token = %d; want 403", code)
	}
	code, body, _ = post(t, c, srv.URL+"/projects/p0/delete", url.Values{"csrf": {csrf}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, `id="delete-error">Tick the box to confirm`) || !strings.Contains(body, `id="delete-form"`) {
		t.Errorf("delete without confirm = %d; want 422 asking to tick the box, with the form again", code)
	}
	if !exists() {
		t.Fatal("a refused delete deleted the project")
	}

	var running int64
	if err := st.DB().QueryRowContext(ctx, `UPDATE bakes SET state = 'running', finished_at = NULL
		WHERE id = (SELECT MAX(id) FROM bakes WHERE project = 'p0') RETURNING id`).Scan(&running); err != nil {
		t.Fatal(err)
	}
	code, body, _ = post(t, c, srv.URL+"/projects/p0/delete", url.Values{"csrf": {csrf}, "confirm": {"yes"}})
	if code != http.StatusConflict || !strings.Contains(body, `id="delete-error">A bake of this project is running: cancel it`) ||
		!strings.Contains(body, fmt.Sprintf(`<a href="/bakes/%d">Bake #%d</a>`, running, running)) {
		t.Errorf("delete while bake %d runs = %d; want 409 naming and linking the bake:\n%s", running, code, body)
	}
	if !exists() {
		t.Fatal("delete while a bake runs deleted the project")
	}

	if _, err := st.DB().ExecContext(ctx, `UPDATE bakes SET state = 'cancelled' WHERE id = ?`, running); err != nil {
		t.Fatal(err)
	}
	code, _, h := post(t, c, srv.URL+"/projects/p0/delete", url.Values{"csrf": {csrf}, "confirm": {"yes"}})
	if code != http.StatusSeeOther || h.Get("Location") != "/" {
		t.Fatalf("delete = %d, Location %q; want 303 to /", code, h.Get("Location"))
	}
	if exists() {
		t.Fatal("the project is still there")
	}
	if n, _ := st.CountBakes(ctx, store.BakeQuery{Project: "p0"}); n != 0 {
		t.Errorf("p0 has %d bakes left; want none", n)
	}
	_, body, _ = get(t, c, srv.URL+"/")
	if !strings.Contains(body, `<p class="notice" id="flash">Project p0 deleted`) || strings.Contains(body, `href="/projects/p0"`) || !strings.Contains(body, `href="/projects/p1"`) {
		t.Errorf("projects after delete: want the message, p1 and no p0:\n%s", body)
	}
	if _, body, _ = get(t, c, srv.URL+"/"); strings.Contains(body, `id="flash"`) {
		t.Error("the message is shown a second time")
	}
	if code, _, _ := post(t, c, srv.URL+"/projects/p0/delete", url.Values{"csrf": {csrf}, "confirm": {"yes"}}); code != http.StatusNotFound {
		t.Errorf("delete a deleted project = %d; want 404", code)
	}
}

var bakeLinkRe = regexp.MustCompile(`<tr><td><a href="/bakes/(\d+)">`)

// bakeIDs lists the bakes of a project page's table, in order.
func bakeIDs(body string) []string {
	var ids []string
	for _, m := range bakeLinkRe.FindAllStringSubmatch(body, -1) {
		ids = append(ids, m[1])
	}
	return ids
}

// TestProjectBakesPaging: a project page lists a page of bakes, newest
// first, and links the older ones through before=ID.
func TestProjectBakesPaging(t *testing.T) {
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "kiln.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	const total = 2*projectBakes + 20
	seedPages(t, st, 1, total) // bakes 1 to total, all of p0
	srv := httptest.NewServer(Bakery(BakeryConfig{Records: st, Sessions: st, Service: noBaker{bakery.NewProjects(st)}, CheckToken: func(s string) bool { return s == adminToken }}))
	t.Cleanup(srv.Close)
	c := signedIn(t, srv)

	want := func(from, to int) []string { // ids from down to to
		var ids []string
		for id := from; id >= to; id-- {
			ids = append(ids, fmt.Sprint(id))
		}
		return ids
	}
	pages := []struct {
		path       string
		ids        []string
		older      string // the older page's link; "" for none
		newestLink bool
	}{
		{"/projects/p0", want(total, total-projectBakes+1), fmt.Sprintf("/projects/p0?before=%d#bakes", total-projectBakes+1), false},
		{fmt.Sprintf("/projects/p0?before=%d", total-projectBakes+1), want(total-projectBakes, total-2*projectBakes+1),
			fmt.Sprintf("/projects/p0?before=%d#bakes", total-2*projectBakes+1), true},
		{fmt.Sprintf("/projects/p0?before=%d", total-2*projectBakes+1), want(total-2*projectBakes, 1), "", true},
	}
	for _, p := range pages {
		code, body, _ := get(t, c, srv.URL+p.path)
		if code != http.StatusOK {
			t.Fatalf("GET %s = %d", p.path, code)
		}
		if got := bakeIDs(body); strings.Join(got, ",") != strings.Join(p.ids, ",") {
			t.Errorf("GET %s lists bakes %v; want %v", p.path, got, p.ids)
		}
		link := `<a href="` + p.older + `" id="older-bakes">`
		if p.older == "" {
			if strings.Contains(body, `id="older-bakes"`) {
				t.Errorf("GET %s links older bakes; it lists the oldest", p.path)
			}
		} else if !strings.Contains(body, link) {
			t.Errorf("GET %s lacks %s", p.path, link)
		}
		if got := strings.Contains(body, `<a href="/projects/p0#bakes" id="newest-bakes">`); got != p.newestLink {
			t.Errorf("GET %s links the newest bakes: %v; want %v", p.path, got, p.newestLink)
		}
	}

	code, body, _ := get(t, c, srv.URL+"/projects/p0?before=1")
	if code != http.StatusOK || len(bakeIDs(body)) != 0 || !strings.Contains(body, "No older bakes.") {
		t.Errorf("GET before=1 = %d; want 200 with no bakes", code)
	}
	for _, bad := range []string{"abc", "0", "-3"} {
		if code, _, _ := get(t, c, srv.URL+"/projects/p0?before="+bad); code != http.StatusBadRequest {
			t.Errorf("GET before=%s = %d; want 400", bad, code)
		}
	}
}
