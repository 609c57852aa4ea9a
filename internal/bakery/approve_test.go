package bakery_test

import (
	"errors"
	"strings"
	"testing"

	"kiln/internal/bakery"
	"kiln/internal/store"
	"kiln/internal/testsupport"
)

// TestApprovalGateHolds: production is auto after staging's soak, behind
// an approval gate. The soaked image waits (staging's soak "awaiting
// approval", production "awaiting approval") and nothing reaches
// production until Approve, which records who approved and promotes.
func TestApprovalGateHolds(t *testing.T) {
	w := newEnvWorld(t)
	w.apply(t, strings.Replace(envProject("auto", "debug"), "    soak: 1s\n", "    soak: 1s\n    approval: manual\n", 1))
	var pe *bakery.PromotionError
	if _, err := w.svc.Approve(t.Context(), "web", "production", "user bob"); !errors.As(err, &pe) {
		t.Errorf("Approve(nothing soaked) = %v; want a PromotionError", err)
	}
	if _, err := w.svc.Approve(t.Context(), "web", "staging", "user bob"); !errors.As(err, &pe) || !strings.Contains(err.Error(), "no approval gate") {
		t.Errorf("Approve(staging) = %v; want no gate", err)
	}
	img := w.bakeImage(t)
	w.waitEnv(t, "staging", img)
	testsupport.Eventually(t, "staging's soak to await the approval", func() bool {
		ps, _ := w.st.Promotions(t.Context(), store.PromotionQuery{Project: "web", Env: "staging", Limit: 1})
		return len(ps) == 1 && ps[0].Soak == store.SoakAwaiting
	})
	if ps, _ := w.st.Promotions(t.Context(), store.PromotionQuery{Project: "web", Env: "production"}); len(ps) != 0 {
		t.Fatalf("production promoted before the approval: %+v", ps)
	}
	envs, _ := w.st.Environments(t.Context(), "web")
	promos, _ := w.st.Promotions(t.Context(), store.PromotionQuery{Project: "web"})
	if sts := bakery.EnvStatuses("web", envs, promos); sts[1].State != bakery.EnvAwaiting || !strings.Contains(sts[1].Detail, "kiln approve web production") {
		t.Errorf("production shows %s (%s); want %s", sts[1].State, sts[1].Detail, bakery.EnvAwaiting)
	}

	p, err := w.svc.Approve(t.Context(), "web", "production", "user bob")
	if err != nil {
		t.Fatal(err)
	}
	if p.ImageID != img || !strings.Contains(p.Cause, "approved by user bob") {
		t.Errorf("approved promotion = %+v", p)
	}
	if pr := w.waitEnv(t, "production", img); pr.State != store.PromotionSucceeded {
		t.Fatalf("production: %+v", pr)
	}
	as, err := w.st.Approvals(t.Context(), "web")
	if err != nil || len(as) != 1 || as[0].Actor != "user bob" || as[0].Env != "production" || as[0].ImageID != img {
		t.Errorf("approvals = %+v, %v; want bob's", as, err)
	}
	if _, err := w.svc.Approve(t.Context(), "web", "production", "user bob"); !errors.As(err, &pe) {
		t.Errorf("Approve(again) = %v; want nothing awaiting", err)
	}
}
