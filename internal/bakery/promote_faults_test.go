package bakery_test

import (
	"strings"
	"testing"

	"kiln/internal/awssim"
	"kiln/internal/store"
)

// TestEnvironmentsUnderFaultProfiles runs a bake to production twice (the
// first promotion creates each environment's Auto Scaling group, the
// second rolls the new image out by an instance refresh) on a simulator
// answering under the eventual and the flaky fault profiles: every
// promotion succeeds and every group runs the newest image.
func TestEnvironmentsUnderFaultProfiles(t *testing.T) {
	for _, name := range []string{"eventual", "flaky"} {
		t.Run(name, func(t *testing.T) {
			p, err := awssim.NamedProfile(name)
			if err != nil {
				t.Fatal(err)
			}
			p.Seed = 27
			if p.Flaky != nil { // enough faults to hit a few of a rollout's calls
				p.Flaky.Errors, p.Flaky.Resets, p.Flaky.Delays = 0.05, 0.03, 0.02
			}
			w := newEnvWorldFaults(t, p)
			w.apply(t, envProject("auto", "debug"))
			for round := range 2 {
				img := w.bakeImage(t)
				for _, env := range []string{"staging", "production"} {
					pr := w.waitEnv(t, env, img)
					if pr.State != store.PromotionSucceeded {
						t.Fatalf("round %d: %s promotion = %s (%s); want succeeded", round, env, pr.State, pr.Reason)
					}
					w.groupRuns(t, "web-"+env, img)
				}
				if round == 1 {
					ps, _ := w.st.Promotions(t.Context(), store.PromotionQuery{Project: "web", Env: "production", Limit: 1})
					if len(ps) != 1 || !strings.HasPrefix(ps[0].Cause, "auto") {
						t.Errorf("production's second promotion = %+v; want an auto one", ps)
					}
				}
			}
			st := w.sim.FaultStats()
			if name == "eventual" && st.NotYet == 0 || name == "flaky" && st.Errors+st.Resets == 0 {
				t.Errorf("FaultStats() = %+v; want the profile's faults injected", st)
			}
		})
	}
}
