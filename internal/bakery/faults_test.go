package bakery

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"kiln/internal/awssim"
	"kiln/internal/store"
)

// TestBakeUnderFaultProfiles runs TestBakeDistributes' scenario (bake,
// copy to two regions, share, keep 1, twice) on a simulator that answers
// under the eventual and the flaky fault profiles: every bake succeeds,
// each region keeps exactly the last bake's image, and no builder is left.
func TestBakeUnderFaultProfiles(t *testing.T) {
	for _, name := range []string{"eventual", "flaky"} {
		t.Run(name, func(t *testing.T) {
			p, err := awssim.NamedProfile(name)
			if err != nil {
				t.Fatal(err)
			}
			p.Seed = 27
			if p.Flaky != nil { // enough faults to hit a few of a bake's ~60 calls
				p.Flaky.Errors, p.Flaky.Resets, p.Flaky.Delays = 0.05, 0.03, 0.02
			}
			w := newWorld(t, awssim.Options{Faults: p})
			st := w.open(t)
			putProject(t, st, "web", "#!/bin/sh\ntrue\n", func(p *store.Project) { p.Keep = 1 })
			if err := st.PutDistribution(t.Context(), "web", store.Distribution{CopyTo: []string{"us-west-2", "eu-west-1"}, ShareWith: []string{"210987654321"}}); err != nil {
				t.Fatal(err)
			}
			s := w.serve(t, st, nil)
			var last []store.BakeImage
			for range 2 {
				id := trigger(t, s, "web")
				b := waitFinal(t, st, id)
				if b.State != store.Succeeded {
					t.Fatalf("bake %d = %s (%s); want succeeded", id, b.State, b.Reason)
				}
				w.checkOneBuilderGone(t, id)
				imgs, err := st.BakeImages(t.Context(), id)
				if err != nil || len(imgs) != 3 {
					t.Fatalf("BakeImages() = %+v, %v; want 3 regions", imgs, err)
				}
				last = imgs
			}
			for _, im := range last {
				got := w.projectImages(t, im.Region, "web")
				if len(got) != 1 || aws.ToString(got[0].ImageId) != im.ImageID {
					t.Errorf("%s: %d images after retention; want only %s", im.Region, len(got), im.ImageID)
				}
			}
			st2 := w.sim.FaultStats()
			if name == "eventual" && st2.NotYet == 0 || name == "flaky" && st2.Errors+st2.Resets == 0 {
				t.Errorf("FaultStats() = %+v; want the profile's faults injected", st2)
			}
		})
	}
}
