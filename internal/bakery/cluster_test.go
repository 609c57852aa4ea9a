package bakery

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"kiln/internal/awssim"
	"kiln/internal/hook"
	"kiln/internal/pgtest"
	"kiln/internal/store"
	"kiln/internal/testsupport"
)

// TestTwoServersOneBakery: two services on one PostgreSQL database, bakes
// triggered through both. Every bake succeeds once (one builder, one
// image), and each server's subscribers see every bake to its end, the
// ones the other server ran too (published across servers).
func TestTwoServersOneBakery(t *testing.T) {
	w := newWorld(t, awssim.Options{})
	w.db = pgtest.DB(t)
	stA, stB := w.open(t), w.open(t)
	var servers []*running
	finals := make([]map[int64]bool, 2)
	var mu sync.Mutex
	for i, st := range []*store.Store{stA, stB} {
		r := w.serve(t, st, nil)
		servers = append(servers, r)
		finals[i] = map[int64]bool{}
		ch, cancel := r.Subscribe(0)
		t.Cleanup(cancel)
		go func() {
			for p := range ch {
				if p.BakeState == store.Succeeded {
					mu.Lock()
					finals[i][p.BakeID] = true
					mu.Unlock()
				}
			}
		}()
	}
	if servers[0].ServerID() == servers[1].ServerID() {
		t.Fatalf("both servers are %q", servers[0].ServerID())
	}
	projects := []string{"alpha", "beta", "gamma", "delta"}
	for _, p := range projects {
		putProject(t, stA, p, "#!/bin/sh\necho "+p+"\n", nil)
	}
	var ids []int64
	for i, p := range projects {
		ids = append(ids, trigger(t, servers[i%2], p))
	}
	for _, id := range ids {
		b := waitFinal(t, stB, id)
		if b.State != store.Succeeded {
			t.Errorf("bake %d = %s (%s); want succeeded", id, b.State, b.Reason)
		}
		w.checkOneBuilderGone(t, id)
		if imgs := w.images(t, b.Project+"-*"); len(imgs) != 1 || aws.ToString(imgs[0].ImageId) != b.ImageID {
			t.Errorf("bake %d: %d images; want exactly its own", id, len(imgs))
		}
	}
	if n := w.sim.Calls("RunInstances"); n != len(ids) {
		t.Errorf("RunInstances calls = %d; want %d (each bake launched once)", n, len(ids))
	}
	testsupport.Eventually(t, "both servers' subscribers to see every bake succeed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, id := range ids {
			if !finals[0][id] || !finals[1][id] {
				return false
			}
		}
		return true
	})
	// One leader: exactly one of them holds the lease.
	holder, err := stA.LeaseHolder(t.Context(), leaderLease)
	if err != nil || (holder != servers[0].ServerID() && holder != servers[1].ServerID()) {
		t.Errorf("leader = %q, %v; want one of the servers", holder, err)
	}
}

// TestTwoServersCancelAcross: a cancel asked of the server that does not
// run the bake stops it at once on the one that does.
func TestTwoServersCancelAcross(t *testing.T) {
	w := newWorld(t, awssim.Options{})
	w.db = pgtest.DB(t)
	stA, stB := w.open(t), w.open(t)
	servers := map[string]*running{}
	for _, st := range []*store.Store{stA, stB} {
		r := w.serve(t, st, nil)
		servers[r.ServerID()] = r
	}
	putProject(t, stA, "web", "#!/bin/sh\nsleep 100000\n", func(p *store.Project) { p.ScriptTimeout = time.Hour })
	res, err := stA.CreateBake(t.Context(), "web", "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	id := res.BakeID
	for _, r := range servers {
		if _, err := r.River().Insert(t.Context(), hook.JobArgs{BakeID: id}, nil); err != nil {
			t.Fatal(err)
		}
		break
	}
	testsupport.Eventually(t, "the builder to launch", func() bool { return len(w.builders(id)) == 1 })
	owner, _, err := stA.BakeOwner(t.Context(), id)
	if err != nil || servers[owner] == nil {
		t.Fatalf("BakeOwner() = %q, %v; want one of the servers", owner, err)
	}
	var other *running
	for sid, r := range servers {
		if sid != owner {
			other = r
		}
	}
	start := time.Now()
	if _, err := other.Cancel(t.Context(), id, "stop it"); err != nil {
		t.Fatal(err)
	}
	got := waitFinal(t, stA, id)
	if got.State != store.Cancelled {
		t.Fatalf("bake = %s; want cancelled", got.State)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("cancel across servers took %v", d)
	}
	w.checkOneBuilderGone(t, id)
}

// TestTakeoverFromDeadServer: a bake left running by a server that died
// (its lease still running) is taken over once the lease has run out, and
// the pipeline finds the dead server's builder again: one launch, one image.
func TestTakeoverFromDeadServer(t *testing.T) {
	for _, driver := range []string{"sqlite", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, awssim.Options{})
			if driver == "postgres" {
				w.db = pgtest.DB(t)
			}
			st1 := w.open(t)
			id := w.crashAfterLaunch(t, st1)
			// What a SIGKILL leaves: the bake still owned, its lease running.
			lease := 600 * time.Millisecond
			until := time.Now().Add(lease).UnixMilli()
			if _, err := st1.DB().ExecContext(t.Context(),
				`UPDATE bakes SET owner = 'dead-server', lease_until = $1 WHERE id = $2`, until, id); err != nil {
				t.Fatal(err)
			}
			st2 := w.open(t)
			start := time.Now()
			w.serve(t, st2, func(s *Service) { s.o.Lease = lease })
			b := waitFinal(t, st2, id)
			if b.State != store.Succeeded {
				t.Fatalf("bake = %s (%s); want succeeded", b.State, b.Reason)
			}
			if d := time.Since(start); d < lease/2 {
				t.Errorf("taken over after %v; want after the dead server's lease (%v)", d, lease)
			}
			if n := w.sim.Calls("RunInstances"); n != 1 {
				t.Errorf("RunInstances calls = %d; want 1", n)
			}
			w.checkOneBuilderGone(t, id)
			if imgs := w.images(t, "web-*"); len(imgs) != 1 {
				t.Errorf("%d images; want 1", len(imgs))
			}
		})
	}
}

// TestReleaseDeadLocal: at start a server frees the bakes of servers on
// its host whose process is gone, so a restart after a kill resumes them
// at once; a live process's bakes (or another host's) keep their lease.
func TestReleaseDeadLocal(t *testing.T) {
	w := newWorld(t, awssim.Options{})
	st := w.open(t)
	host, _ := os.Hostname()
	owners := map[string]string{ // project → owner of its running bake
		"dead":  fmt.Sprintf("%s-%d-0dead0", host, 1<<30), // no such pid
		"alive": fmt.Sprintf("%s-%d-0a11ve", host, os.Getpid()),
		"other": "elsewhere-1-abcdef",
	}
	ids := map[string]int64{}
	for name, owner := range owners {
		putProject(t, st, name, "#!/bin/sh\ntrue\n", nil)
		res, err := st.CreateBake(t.Context(), name, "", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if c, _, err := st.ClaimBakeFor(t.Context(), res.BakeID, owner, time.Hour); err != nil || c != store.ClaimStarted {
			t.Fatalf("ClaimBakeFor(%s) = %v, %v", owner, c, err)
		}
		ids[name] = res.BakeID
	}
	s, err := NewService(st, w.hubs, testLog, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := st.AcquireLease(t.Context(), leaderLease, owners["dead"], time.Hour); err != nil || !ok {
		t.Fatalf("AcquireLease(dead) = %v, %v", ok, err)
	}
	if err := s.releaseDeadLocal(t.Context()); err != nil {
		t.Fatal(err)
	}
	if h, _ := st.LeaseHolder(t.Context(), leaderLease); h != "" {
		t.Errorf("leader after release = %q; want none (the dead server's lease freed)", h)
	}
	for name, owner := range owners {
		got, _, err := st.BakeOwner(t.Context(), ids[name])
		want := owner
		if name == "dead" {
			want = ""
		}
		if err != nil || got != want {
			t.Errorf("owner of %s's bake = %q, %v; want %q", name, got, err, want)
		}
	}
}
