package main

import (
	"os"
	"testing"
	"time"
)

// TestSoakShort is the soak for 75 s on 30 instances, storms every 10 s
// and a SIGKILL every 30 s, each kiln process on one core so that the rest
// of the suite keeps the machine's others. Its assertions are the soak's
// goals: every drift repaired, no duplicate instance, no panic.
func TestSoakShort(t *testing.T) {
	if testing.Short() {
		t.Skip("a 75 s soak")
	}
	f, err := soak(t.Context(), soakConfig{
		dsn:       cmpStr(os.Getenv("KILN_BENCH_POSTGRES"), os.Getenv("KILN_TEST_POSTGRES"), clusterPGDefault),
		duration:  75 * time.Second,
		instances: 30,
		storm:     10 * time.Second,
		kill:      30 * time.Second,
		seed:      27,
		procs:     1,
	})
	if err != nil {
		t.Fatalf("soak() = %v", err)
	}
	t.Logf("%+v", f)
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
}
