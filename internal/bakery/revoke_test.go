package bakery_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"kiln/internal/awsapi"
	"kiln/internal/bakery"
	"kiln/internal/store"
	"kiln/internal/testsupport"
)

// TestRevokeRollsBackEveryEnvironment: two images through staging and
// production; revoking the newer one tags it, takes both environments
// back to the older one (staging first), and refuses it from then on;
// revoking the older one too leaves nothing to go back to, said loudly.
func TestRevokeRollsBackEveryEnvironment(t *testing.T) {
	w := newEnvWorld(t)
	w.apply(t, envProject("manual", "debug"))
	first := w.bakeImage(t)
	w.waitEnv(t, "staging", first)
	if _, err := w.svc.Promote(t.Context(), "web", "production", first); err != nil {
		t.Fatal(err)
	}
	w.waitEnv(t, "production", first)
	second := w.bakeImage(t)
	w.waitEnv(t, "staging", second)
	if _, err := w.svc.Promote(t.Context(), "web", "production", second); err != nil {
		t.Fatal(err)
	}
	w.waitEnv(t, "production", second)

	var re *bakery.RevokeError
	if _, err := w.svc.Revoke(t.Context(), "web", second, "  ", "user alice"); !errors.As(err, &re) {
		t.Errorf("Revoke(no reason) = %v; want a RevokeError", err)
	}
	rv, err := w.svc.Revoke(t.Context(), "web", second, "leaks memory", "user alice")
	if err != nil {
		t.Fatal(err)
	}
	want := []bakery.Replacement{{Env: "staging", To: first}, {Env: "production", To: first}}
	if !slices.Equal(rv.Replace, want) || len(rv.Stranded) != 0 {
		t.Fatalf("Revoke() = %+v; want both environments back to %s", rv, first)
	}
	st := w.waitEnvCause(t, "staging", first, "revoked ")
	pr := w.waitEnvCause(t, "production", first, "revoked ")
	if st.State != store.PromotionSucceeded || pr.State != store.PromotionSucceeded {
		t.Fatalf("replacements: staging %+v, production %+v", st, pr)
	}
	if !pr.Created.After(st.Finished) && !pr.Created.Equal(st.Finished) {
		t.Errorf("production's replacement started %s, before staging's ended %s: want pipeline order", pr.Created, st.Finished)
	}
	if !strings.Contains(pr.Cause, "leaks memory") {
		t.Errorf("cause = %q; want the reason", pr.Cause)
	}
	w.groupRuns(t, "web-production", first, "LOG_LEVEL='warn'")

	out, err := w.ec2.DescribeImages(t.Context(), &ec2.DescribeImagesInput{ImageIds: []string{second}})
	if err != nil || len(out.Images) != 1 {
		t.Fatal(out, err)
	}
	if got := awsapi.TagValue(out.Images[0].Tags, bakery.TagRevoked); got != "leaks memory" {
		t.Errorf("%s = %q; want the reason", bakery.TagRevoked, got)
	}
	var pe *bakery.PromotionError
	if _, err := w.svc.Promote(t.Context(), "web", "staging", second); !errors.As(err, &pe) ||
		err.Error() != "image "+second+" was revoked: leaks memory" {
		t.Errorf("Promote(revoked) = %v; want it refused with the reason", err)
	}
	if _, err := w.svc.Revoke(t.Context(), "web", second, "again", "user alice"); !errors.As(err, &re) || !re.Already {
		t.Errorf("Revoke(again) = %v; want revoked already", err)
	}
	rv, err = w.svc.Revoke(t.Context(), "web", first, "bad too", "user alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(rv.Replace) != 0 || !slices.Equal(rv.Stranded, []string{"staging", "production"}) {
		t.Errorf("Revoke(the only good one) = %+v; want both environments stranded", rv)
	}
	imgs, err := w.svc.Images(t.Context(), "web")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, im := range imgs {
		if im.Revoked != "" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("images listing marks %d revoked; want 2: %+v", n, imgs)
	}
}

// waitEnvCause waits until env's newest promotion is of image with a
// cause starting with cause, and over.
func (w *envWorld) waitEnvCause(t *testing.T, env, image, cause string) store.Promotion {
	t.Helper()
	var p store.Promotion
	testsupport.Eventually(t, env+" back on "+image, func() bool {
		ps, err := w.st.Promotions(t.Context(), store.PromotionQuery{Project: "web", Env: env, Limit: 1})
		if err != nil || len(ps) == 0 || ps[0].ImageID != image || !strings.HasPrefix(ps[0].Cause, cause) || ps[0].State == store.PromotionRolling {
			return false
		}
		p = ps[0]
		return true
	})
	return p
}

// TestRevokeResumesAfterRestart: a server that recorded a revocation and
// died before taking the environments off the image leaves the work to the
// next start, which does it in pipeline order.
func TestRevokeResumesAfterRestart(t *testing.T) {
	w := newEnvWorld(t)
	w.apply(t, envProject("manual", "debug"))
	first := w.bakeImage(t)
	w.waitEnv(t, "staging", first)
	second := w.bakeImage(t)
	w.waitEnv(t, "staging", second)
	if _, err := w.svc.Promote(t.Context(), "web", "production", second); err != nil {
		t.Fatal(err)
	}
	w.waitEnv(t, "production", second)
	w.stop()
	if err := w.st.AddRevocation(t.Context(), store.Revocation{Project: "web", ImageID: second, Reason: "bad", Actor: "user alice"}); err != nil {
		t.Fatal(err)
	}
	w.svc, w.stop = w.serve(t)
	st := w.waitEnvCause(t, "staging", first, "revoked ")
	pr := w.waitEnvCause(t, "production", first, "revoked ")
	if st.State != store.PromotionSucceeded || pr.State != store.PromotionSucceeded || pr.Created.Before(st.Finished) {
		t.Errorf("replacements: staging %+v, production %+v; want both, in order", st, pr)
	}
}
