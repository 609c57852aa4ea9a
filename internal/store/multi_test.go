package store

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"kiln/internal/pgtest"
	"kiln/internal/testsupport"
)

// openTwo opens two Stores on one fresh database, as two servers would.
func openTwo(t *testing.T) (*Store, *Store) {
	t.Helper()
	a, target := openTest(t)
	b, err := Open(t.Context(), target)
	if err != nil {
		t.Fatalf("Open(second) = %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return a, b
}

func TestTwoServersDedupeAndCoalesce(t *testing.T) { bothDrivers(t, testTwoServersDedupeAndCoalesce) }

// Every delivery reaches both servers at once: each delivery id leads to one
// bake whichever server answers, exactly one answer is not a duplicate, and
// no project ever has two queued bakes.
func testTwoServersDedupeAndCoalesce(t *testing.T) {
	a, b := openTwo(t)
	ctx := t.Context()
	projects := []string{"api", "web", "worker"}
	for _, p := range projects {
		mustPut(t, a, p)
	}
	const deliveries = 60
	type answer struct {
		res PushResult
		err error
	}
	answers := make([][2]answer, deliveries)
	var wg sync.WaitGroup
	for i := range deliveries {
		for j, s := range []*Store{a, b} {
			wg.Go(func() {
				p := Push{Project: projects[i%len(projects)], DeliveryID: fmt.Sprint("d", i), Commit: fmt.Sprintf("%040x", i)}
				res, err := s.EnqueuePush(ctx, p, nil)
				answers[i][j] = answer{res, err}
			})
		}
	}
	wg.Wait()
	for i, pair := range answers {
		if pair[0].err != nil || pair[1].err != nil {
			t.Fatalf("delivery %d: %v, %v", i, pair[0].err, pair[1].err)
		}
		if pair[0].res.BakeID != pair[1].res.BakeID {
			t.Errorf("delivery %d: bakes %d and %d; want one", i, pair[0].res.BakeID, pair[1].res.BakeID)
		}
		if pair[0].res.Duplicate == pair[1].res.Duplicate {
			t.Errorf("delivery %d: duplicate %v and %v; want exactly one duplicate", i,
				pair[0].res.Duplicate, pair[1].res.Duplicate)
		}
	}
	for _, p := range projects {
		n, err := a.CountBakes(ctx, BakeQuery{Project: p, States: []BakeState{Queued}})
		if err != nil || n != 1 {
			t.Errorf("queued bakes of %s = %d, %v; want 1 (coalesced across servers)", p, n, err)
		}
	}
}

func TestTwoServersClaim(t *testing.T) { bothDrivers(t, testTwoServersClaim) }

// A bake is claimed by one server; the other finds it elsewhere while the
// lease lasts and takes it over after; the first then no longer renews it.
func testTwoServersClaim(t *testing.T) {
	a, b := openTwo(t)
	ctx := t.Context()
	mustPut(t, a, "web")
	r, err := a.CreateBake(ctx, "web", "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	claims := make([]Claim, 2)
	var wg sync.WaitGroup
	for i, s := range []*Store{a, b} {
		wg.Go(func() {
			c, _, err := s.ClaimBakeFor(ctx, r.BakeID, fmt.Sprint("server-", i), time.Minute)
			if err != nil {
				t.Errorf("ClaimBakeFor(server-%d) = %v", i, err)
			}
			claims[i] = c
		})
	}
	wg.Wait()
	started := 0
	for _, c := range claims {
		switch c {
		case ClaimStarted:
			started++
		case ClaimElsewhere:
		default:
			t.Errorf("claim = %v; want started or elsewhere", c)
		}
	}
	if started != 1 {
		t.Fatalf("claims = %v; want exactly one started", claims)
	}
	owner, _, _ := a.BakeOwner(ctx, r.BakeID)
	other := map[string]string{"server-0": "server-1", "server-1": "server-0"}[owner]
	if other == "" {
		t.Fatalf("BakeOwner() = %q", owner)
	}
	if ids, err := b.RenewBakes(ctx, owner, time.Millisecond); err != nil || len(ids) != 1 || ids[0] != r.BakeID {
		t.Fatalf("RenewBakes(owner) = %v, %v; want [%d]", ids, err, r.BakeID)
	}
	var ids []int64
	testsupport.Eventually(t, "the lease to run out", func() bool {
		ids, err = b.ExpiredBakes(ctx, time.Minute)
		if err != nil || len(ids) > 1 {
			t.Fatalf("ExpiredBakes() = %v, %v; want the bake", ids, err)
		}
		return len(ids) == 1
	})
	if again, _ := a.ExpiredBakes(ctx, time.Minute); len(again) != 0 {
		t.Errorf("ExpiredBakes() again = %v; want none within the grace", again)
	}
	if c, _, err := b.ClaimBakeFor(ctx, r.BakeID, other, time.Minute); err != nil || c != ClaimResumed {
		t.Fatalf("ClaimBakeFor(other) after expiry = %v, %v; want resumed", c, err)
	}
	if ids, _ := a.RenewBakes(ctx, owner, time.Minute); len(ids) != 0 {
		t.Errorf("RenewBakes(old owner) = %v; want none (taken over)", ids)
	}
	if c, _, _ := a.ClaimBakeFor(ctx, r.BakeID, owner, time.Minute); c != ClaimElsewhere {
		t.Errorf("ClaimBakeFor(old owner) = %v; want elsewhere", c)
	}
	if err := b.ReleaseBakes(ctx, other); err != nil {
		t.Fatal(err)
	}
	if c, _, _ := a.ClaimBakeFor(ctx, r.BakeID, owner, time.Minute); c != ClaimResumed {
		t.Errorf("ClaimBakeFor() after release = %v; want resumed at once", c)
	}
}

func TestLeaderLease(t *testing.T) { bothDrivers(t, testLeaderLease) }

func testLeaderLease(t *testing.T) {
	a, b := openTwo(t)
	ctx := t.Context()
	must := func(s *Store, holder string, ttl time.Duration, want bool) {
		t.Helper()
		got, err := s.AcquireLease(ctx, "leader", holder, ttl)
		if err != nil || got != want {
			t.Fatalf("AcquireLease(%s) = %v, %v; want %v", holder, got, err, want)
		}
	}
	must(a, "a", time.Minute, true)
	must(b, "b", time.Minute, false)
	must(a, "a", time.Minute, true) // renewal
	if h, _ := b.LeaseHolder(ctx, "leader"); h != "a" {
		t.Errorf("LeaseHolder() = %q; want a", h)
	}
	if err := a.ReleaseLease(ctx, "leader", "a"); err != nil {
		t.Fatal(err)
	}
	must(b, "b", time.Millisecond, true)
	testsupport.Eventually(t, "b's lease to run out", func() bool {
		h, err := a.LeaseHolder(ctx, "leader")
		if err != nil || (h != "" && h != "b") {
			t.Fatalf("LeaseHolder() = %q, %v; want b until it runs out, then none", h, err)
		}
		return h == ""
	})
	must(a, "a", time.Minute, true) // b's lease ran out
}

func TestNewerSchemaRefused(t *testing.T) { bothDrivers(t, testNewerSchemaRefused) }

func testNewerSchemaRefused(t *testing.T) {
	s, target := openTest(t)
	if _, err := s.DB().ExecContext(t.Context(),
		`INSERT INTO schema_version (version, name, applied_at) VALUES (999, '999_future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := Open(t.Context(), target)
	if err == nil || !strings.Contains(err.Error(), "schema version 999 is newer than this kiln") {
		t.Fatalf("Open(newer schema) = %v; want the version refused", err)
	}
}

func TestMigrationIsAtomic(t *testing.T) { bothDrivers(t, testMigrationIsAtomic) }

// A migration whose second statement fails leaves nothing of its first and
// no schema_version row: the database stays at the version before.
func testMigrationIsAtomic(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	dir := s.migrationDir()
	fsys := fstest.MapFS{}
	all, err := loadMigrations(migrations, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range all {
		fsys[dir+"/"+m.name] = &fstest.MapFile{Data: []byte(m.sql)}
	}
	next := len(all) + 1
	fsys[fmt.Sprintf("%s/%03d_broken.sql", dir, next)] = &fstest.MapFile{Data: []byte(
		"CREATE TABLE half (x INTEGER);\nINSERT INTO no_such_table VALUES (1);\n")}
	if err := s.migrateFS(ctx, fsys, dir); err == nil {
		t.Fatal("migrateFS(broken) = nil; want an error")
	}
	if v, _ := s.SchemaVersion(ctx); v != len(all) {
		t.Errorf("SchemaVersion() = %d; want %d (the broken one not recorded)", v, len(all))
	}
	if _, err := s.DB().ExecContext(ctx, `SELECT COUNT(*) FROM half`); err == nil {
		t.Error("table half exists: the broken migration was half applied")
	}
}

func TestOpenPostgresErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// Nothing listens on port 1: the error names host, port and database.
	_, err := Open(ctx, "postgres://kiln:secret-pw@127.0.0.1:1/bakery?connect_timeout=2")
	if err == nil || !strings.Contains(err.Error(), `postgres database "bakery" on 127.0.0.1:1`) {
		t.Errorf("Open(unreachable) = %v; want the database and host named", err)
	}
	if err != nil && strings.Contains(err.Error(), "secret-pw") {
		t.Errorf("Open(unreachable) = %v; shows the password", err)
	}
	if _, err := Open(ctx, "postgres://[::1"); err == nil {
		t.Error("Open(bad URL) = nil error")
	}

	pgtest.Require(t)
	u := pgtest.DB(t) // exists; a sibling that does not
	missing := strings.Replace(u, "kiln_test_", "kiln_missing_", 1)
	_, err = Open(ctx, missing)
	if err == nil || !strings.Contains(err.Error(), `postgres database "kiln_missing_`) ||
		!strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Open(missing database) = %v; want it named and said missing", err)
	}
}

func TestPublishListen(t *testing.T) { bothDrivers(t, testPublishListen) }

func testPublishListen(t *testing.T) {
	a, b := openTwo(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	got := make(chan string, 10)
	done := make(chan error)
	go func() { done <- b.Listen(ctx, func(p string) { got <- p }) }()
	if !a.Postgres() {
		// SQLite: nothing crosses processes; Publish is a no-op.
		if err := a.Publish(ctx, "x"); err != nil {
			t.Fatal(err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Listen() = %v", err)
		}
		return
	}
	// Listen connects asynchronously: publish until the first one arrives.
	deadline := time.After(10 * time.Second)
	for first := true; first; {
		if err := a.Publish(ctx, "hello"); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-got:
			if p != "hello" {
				t.Fatalf("payload = %q", p)
			}
			first = false
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatal("no notification within 10 s")
		}
	}
	if err := a.Publish(ctx, strings.Repeat("x", maxPayload+1)); err == nil {
		t.Error("Publish(too long) = nil error")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Listen() after cancel = %v", err)
	}
}
