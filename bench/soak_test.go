package main

import (
	"encoding/json"
	"os"
	"testing"
	"time"
)

// TestSoakShort is the soak for 60 s on 30 instances and 4 projects,
// storms every 10 s, a bake every 5 s, a promotion every 15 s and a
// SIGKILL every 20 s, each kiln process on one core so that the rest of
// the suite keeps the machine's others. Its assertions are the soak's
// goals: every drift repaired, every bake and promotion final, no extra
// image, no leaked builder, no duplicate instance, no panic.
func TestSoakShort(t *testing.T) {
	if testing.Short() {
		t.Skip("a 75 s soak")
	}
	f, err := soak(t.Context(), soakConfig{
		dsn:       cmpStr(os.Getenv("KILN_BENCH_POSTGRES"), os.Getenv("KILN_TEST_POSTGRES"), clusterPGDefault),
		duration:  60 * time.Second,
		instances: 30,
		storm:     10 * time.Second,
		kill:      20 * time.Second,
		seed:      27,
		procs:     1,
		projects:  4,
		bake:      5 * time.Second,
		promote:   15 * time.Second,
	})
	if err != nil {
		t.Fatalf("soak() = %v", err)
	}
	line, _ := json.Marshal(f)
	t.Logf("%s", line)
	if f.DriftRepairs == 0 || f.DriftRepairedPct != 100 {
		t.Errorf("drift repaired %d (%g %%); want all", f.DriftRepairs, f.DriftRepairedPct)
	}
	if f.InstancesDup != 0 {
		t.Errorf("instances_duplicate = %d; want 0", f.InstancesDup)
	}
	if f.Panics != 0 {
		t.Errorf("panics = %d; want 0", f.Panics)
	}
	if f.Kills < 2 {
		t.Errorf("kills = %d; want 2", f.Kills)
	}
	if f.Bakes == nil || *f.Bakes == 0 || *f.BakesFinalPct != 100 {
		t.Errorf("bakes = %v, final %v %%; want some, all final", deref(f.Bakes), deref(f.BakesFinalPct))
	}
	if f.ImagesExtra == nil || *f.ImagesExtra != 0 {
		t.Errorf("images_extra = %v; want 0", deref(f.ImagesExtra))
	}
	if f.BuildersLeaked == nil || *f.BuildersLeaked != 0 {
		t.Errorf("builders_leaked = %v; want 0", deref(f.BuildersLeaked))
	}
	if f.Promotions == 0 || f.PromotionsFinalPc == nil || *f.PromotionsFinalPc != 100 {
		t.Errorf("promotions = %d, final %v %%; want some, all final", f.Promotions, deref(f.PromotionsFinalPc))
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}
