package ui

import (
	"context"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kiln/internal/audit"
	"kiln/internal/bakery"
	"kiln/internal/project"
	"kiln/internal/store"
)

// deliveryBaker records revocations and approvals in the store as the
// service does (without rolling anything out), and who asked.
type deliveryBaker struct {
	promoBaker
	actors *[]string
}

func (b deliveryBaker) Revoke(ctx context.Context, project, image, reason, actor string) (*bakery.Revoked, error) {
	*b.actors = append(*b.actors, actor)
	if err := b.st.AddRevocation(ctx, store.Revocation{Project: project, ImageID: image, Reason: reason, Actor: actor}); err != nil {
		return nil, err
	}
	return &bakery.Revoked{Project: project, ImageID: image, Reason: reason, Stranded: []string{"staging"}}, nil
}

func (b deliveryBaker) Approve(ctx context.Context, project, env, actor string) (*bakery.Promotion, error) {
	*b.actors = append(*b.actors, actor)
	ps, _ := b.st.Promotions(ctx, store.PromotionQuery{Project: project, Env: "staging", Soak: store.SoakAwaiting, Limit: 1})
	if len(ps) == 0 {
		return nil, &bakery.PromotionError{Msg: "nothing awaits approval for " + env}
	}
	if _, err := b.st.ApproveSoak(ctx, store.Approval{Project: project, Env: env, PromotionID: ps[0].ID, ImageID: ps[0].ImageID, Actor: actor}); err != nil {
		return nil, err
	}
	return b.st.AddPromotion(ctx, store.Promotion{Project: project, Env: env, ImageID: ps[0].ImageID, Cause: "approved by " + actor})
}

// TestRevokeAndApproveOnProjectPage: the project page marks a revoked
// image and offers it no more; its Revoke button revokes (as the signed-in
// admin), and an environment awaiting approval has an Approve button that
// approves.
func TestRevokeAndApproveOnProjectPage(t *testing.T) {
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "kiln.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	p, err := project.Parse("shop.yaml", []byte(strings.Replace(envPageYAML, "    soak: 10m\n", "    soak: 10m\n    approval: manual\n", 1)),
		func(string) string { return "the-api-key-value" })
	if err != nil {
		t.Fatal(err)
	}
	p.Secret = seededSecret
	var actors []string
	svc := deliveryBaker{promoBaker{noBaker{bakery.NewProjects(st)}, st}, &actors}
	if _, err := svc.ApplyProject(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	const good, bad = "ami-0aaaaaaaaaaaaaaa1", "ami-0aaaaaaaaaaaaaaa2"
	for i, id := range []string{good, bad} {
		if err := st.AddImage(t.Context(), store.Image{Project: "shop", ImageID: id, Created: time.Now().Add(time.Duration(i) * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(Bakery(BakeryConfig{Records: st, Sessions: st, Service: svc,
		CheckToken: func(s string) bool { return s == adminToken }, Audit: audit.New(st, nil)}))
	t.Cleanup(srv.Close)
	c := signedIn(t, srv)

	_, body, _ := get(t, c, srv.URL+"/projects/shop")
	if !strings.Contains(body, `id="revoke-`+bad+`">Revoke</button>`) {
		t.Fatalf("no Revoke button for %s", bad)
	}
	code, _, h := post(t, c, srv.URL+"/projects/shop/images/"+bad+"/revoke", url.Values{"csrf": {csrfOf(t, body)}, "reason": {"leaks memory"}})
	if code != 303 || h.Get("Location") != "/projects/shop#images" {
		t.Fatalf("revoke = %d %q", code, h.Get("Location"))
	}
	_, body, _ = get(t, c, srv.URL+"/projects/shop")
	for _, want := range []string{
		`<code>` + bad + `</code> <span class="state revoked">revoked</span> <span class="muted">leaks memory</span>`,
		`Image ` + bad + ` revoked. No good image was baked before it: [staging] still run it`,
		`, after an approval`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("project page after the revocation lacks %q", want)
		}
	}
	if strings.Contains(body, `id="revoke-`+bad+`"`) || strings.Contains(body, `<option value="`+bad+`">`) {
		t.Errorf("the revoked image is still offered")
	}

	// A soaked promotion of staging waits at production's gate.
	sp, err := st.AddPromotion(t.Context(), store.Promotion{Project: "shop", Env: "staging", ImageID: good, Cause: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.FinishPromotion(t.Context(), sp.ID, store.PromotionSucceeded, "", "1"); err != nil {
		t.Fatal(err)
	}
	for _, soak := range []string{store.SoakRunning, store.SoakAwaiting} {
		if ok, err := st.SetSoak(t.Context(), sp.ID, soak, time.Now(), ""); err != nil || !ok {
			t.Fatalf("SetSoak(%s) = %v, %v", soak, ok, err)
		}
	}
	_, body, _ = get(t, c, srv.URL+"/projects/shop")
	if !strings.Contains(body, `id="approve-production">Approve promotion to production</button>`) {
		t.Fatalf("no Approve button:\n%s", body)
	}
	code, _, _ = post(t, c, srv.URL+"/projects/shop/environments/production/approve", url.Values{"csrf": {csrfOf(t, body)}})
	if code != 303 {
		t.Fatalf("approve = %d", code)
	}
	_, body, _ = get(t, c, srv.URL+"/projects/shop")
	if !strings.Contains(body, "Approved: promotion 2: "+good+" is rolling out to production.") {
		t.Errorf("the approval is not shown")
	}
	if len(actors) != 2 || actors[0] != "admin-token" || actors[1] != "admin-token" {
		t.Errorf("actors = %v; want the signed-in admin twice", actors)
	}
	rows, _ := st.Audit(t.Context(), store.AuditQuery{Limit: 10})
	var actions []string
	for _, r := range rows {
		actions = append(actions, r.Action)
	}
	if a := strings.Join(actions, " "); !strings.Contains(a, "image.revoke") || !strings.Contains(a, "promotion.approve") {
		t.Errorf("audit actions = %v; want image.revoke and promotion.approve", actions)
	}
}
