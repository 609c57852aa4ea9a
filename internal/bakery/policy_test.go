package bakery_test

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"kiln/internal/awssim"
	"kiln/internal/iampolicy"
	"kiln/internal/project"
	"kiln/internal/store"
)

// TestBakeryPolicyIsEnough runs kiln serve under the policy kiln
// iam-policy --bakery makes of the project's file: two bakes (the second
// removes the first's image and its copy: keep 1) of a builder with an
// instance profile, copied to another region and shared, each promoted to
// staging after its bake and to production by hand, with secrets in SSM.
// No call is denied, and every action the runs needed is in the policy;
// the policy's actions the runs did not call are exactly those listed,
// each for a path the runs do not take.
func TestBakeryPolicyIsEnough(t *testing.T) {
	src := strings.Replace(envProject("manual", "debug"), "keep: 1\n",
		"keep: 1\niam_profile: builder\ncopy_to: [us-west-2]\nshare_with: ['210987654321']\n", 1)
	p, err := project.Parse("web.yaml", []byte(src), func(string) string { return "any-value-at-all" })
	if err != nil {
		t.Fatal(err)
	}
	doc := iampolicy.BakeryJSON(p.IAM())
	pol, err := awssim.ParsePolicy(doc)
	if err != nil {
		t.Fatalf("the bakery policy does not parse: %v\n%s", err, doc)
	}
	var acts []string
	for _, st := range pol.Statements {
		acts = append(acts, st.Action...)
	}
	slices.Sort(acts)
	acts = slices.Compact(acts)

	w := newEnvWorld(t)
	w.sim.SetPolicy(pol)
	w.apply(t, src)
	for range 2 {
		img := w.bakeImage(t)
		if st := w.waitEnv(t, "staging", img); st.State != store.PromotionSucceeded {
			t.Fatalf("staging: %s %s", st.State, st.Reason)
		}
		if _, err := w.svc.Promote(t.Context(), "web", "production", img); err != nil {
			t.Fatal(err)
		}
		if pr := w.waitEnv(t, "production", img); pr.State != store.PromotionSucceeded {
			t.Fatalf("production: %s %s", pr.State, pr.Reason)
		}
	}
	if d := w.sim.Denied(); len(d) != 0 {
		t.Errorf("denied = %v; want none: the policy is not enough\n%s\n%s", d, doc, w.logs)
	}
	got := slices.Sorted(maps.Keys(w.sim.Authorized()))
	for _, a := range got {
		if !slices.Contains(acts, a) {
			t.Errorf("the runs needed %s, which the policy does not name", a)
		}
	}
	unused := map[string]string{
		"autoscaling:RollbackInstanceRefresh": "a failed refresh without auto_rollback",
		"autoscaling:UpdateAutoScalingGroup":  "a group's size or settings changed (in the file, or by hand)",
		"ssm:DeleteParameter":                 "a secret removed from the file",
	}
	var notCalled []string
	for _, a := range acts {
		if !slices.Contains(got, a) {
			notCalled = append(notCalled, a)
		}
	}
	if want := slices.Sorted(maps.Keys(unused)); !slices.Equal(notCalled, want) {
		t.Errorf("policy actions the runs did not call = %v; want exactly %v\n(called: %v)", notCalled, want, got)
	}
}
