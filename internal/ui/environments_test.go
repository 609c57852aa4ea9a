package ui

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kiln/internal/bakery"
	"kiln/internal/project"
	"kiln/internal/store"
)

// promoBaker records promotions in the store without rolling anything
// out, refusing images that are not the project's as the service does.
type promoBaker struct {
	noBaker
	st *store.Store
}

func (b promoBaker) Promote(ctx context.Context, project, env, image string) (*bakery.Promotion, error) {
	imgs, err := b.st.Images(ctx, project)
	if err != nil {
		return nil, err
	}
	for _, im := range imgs {
		if im.ImageID == image {
			return b.st.AddPromotion(ctx, store.Promotion{Project: project, Env: env, ImageID: image, Cause: "manual"})
		}
	}
	return nil, &bakery.PromotionError{Msg: image + " is not an image of project " + project}
}

const envPageYAML = `name: shop
region: us-east-1
base: {id: ami-0123abcd}
type: t3.small
script: echo
environments:
  - name: staging
    group: {type: t3.micro, min: 1, max: 2, iam_profile: shop-app}
    config:
      LOG_LEVEL: debug
      API_KEY: {value: "${API_KEY}", secret: true}
  - name: production
    promotion: auto
    soak: 10m
    group: {type: t3.small, min: 2, max: 4}
`

// TestEnvironmentsOnProjectPage: the project page shows the pipeline, each
// environment's image, configuration (the secret masked), state and
// history, and its Promote button promotes (a refusal comes back as the
// page's message, nothing changed).
func TestEnvironmentsOnProjectPage(t *testing.T) {
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "kiln.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	p, err := project.Parse("shop.yaml", []byte(envPageYAML), func(string) string { return "the-api-key-value" })
	if err != nil {
		t.Fatal(err)
	}
	p.Secret = seededSecret
	p.Environments[0].Config[0].Version = 3
	svc := promoBaker{noBaker{bakery.NewProjects(st)}, st}
	if _, err := svc.ApplyProject(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"ami-0aaaaaaaaaaaaaaa1", "ami-0aaaaaaaaaaaaaaa2"} {
		if err := st.AddImage(t.Context(), store.Image{Project: "shop", ImageID: id, Created: time.Now().Add(time.Duration(i) * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(Bakery(BakeryConfig{Records: st, Sessions: st, Service: svc, CheckToken: func(s string) bool { return s == adminToken }}))
	t.Cleanup(srv.Close)
	c := signedIn(t, srv)

	_, body, _ := get(t, c, srv.URL+"/projects/shop")
	for _, want := range []string{
		`<h2 id="environments">Environments</h2>`,
		`<strong>staging</strong> <span class="state never">never</span>`,
		`→ auto after 10m0s →`,
		`<code>LOG_LEVEL</code></td><td><code>debug</code>`,
		`<span class="secret">••••••••</span> <span class="muted">SSM <code>/kiln/shop/staging/API_KEY</code> version 3</span>`,
		`<code>shop-staging</code> in us-east-1: t3.micro, 1–2 instances`,
		`id="promote-staging">Promote to staging</button>`,
		`<option value="ami-0aaaaaaaaaaaaaaa2">`,
		`Nothing to promote yet: promote to the previous environment first.`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("project page lacks %q", want)
		}
	}
	if strings.Contains(body, "the-api-key-value") {
		t.Fatal("the secret is on the page")
	}
	csrf := csrfOf(t, body)
	if code, _, _ := post(t, c, srv.URL+"/projects/shop/environments/staging/promote", url.Values{"image": {"ami-0aaaaaaaaaaaaaaa2"}}); code != http.StatusForbidden {
		t.Errorf("promote without the CSRF token = %d; want 403", code)
	}
	code, _, h := post(t, c, srv.URL+"/projects/shop/environments/staging/promote", url.Values{"csrf": {csrf}, "image": {"ami-0aaaaaaaaaaaaaaa2"}})
	if code != http.StatusSeeOther || h.Get("Location") != "/projects/shop#environments" {
		t.Fatalf("promote = %d %q", code, h.Get("Location"))
	}
	_, body, _ = get(t, c, srv.URL+"/projects/shop")
	for _, want := range []string{
		`Promotion 1: ami-0aaaaaaaaaaaaaaa2 is rolling out to staging.`,
		`<strong>staging</strong> <span class="state rolling">rolling</span>`,
		`<td>1</td><td><code>ami-0aaaaaaaaaaaaaaa2</code></td><td><span class="state rolling">rolling</span></td><td>manual</td>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("project page after the promotion lacks %q", want)
		}
	}
	post(t, c, srv.URL+"/projects/shop/environments/staging/promote", url.Values{"csrf": {csrf}, "image": {"ami-0bbbbbbbbbbbbbbb9"}})
	_, body, _ = get(t, c, srv.URL+"/projects/shop")
	if !strings.Contains(body, "Not promoted: ami-0bbbbbbbbbbbbbbb9 is not an image of project shop") {
		t.Errorf("the refusal is not shown")
	}
	if ps, _ := st.Promotions(t.Context(), store.PromotionQuery{Project: "shop"}); len(ps) != 1 {
		t.Errorf("%d promotions; want 1 (the refused one changed nothing)", len(ps))
	}
}
