package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"kiln/internal/pgtest"
)

// bothDrivers runs test twice, as the subtests sqlite and postgres;
// openTest and newTarget open the subtest's driver. The postgres one skips
// when no PostgreSQL server answers (see pgtest), unless CI is set.
func bothDrivers(t *testing.T, test func(t *testing.T)) {
	t.Run("sqlite", test)
	t.Run("postgres", test)
}

// onPostgres reports whether t runs under bothDrivers' postgres subtest.
func onPostgres(t testing.TB) bool { return strings.Contains(t.Name(), "/postgres") }

// newTarget returns a new, empty database for t in its driver: a file in a
// temporary directory, or a PostgreSQL database of its own.
func newTarget(t testing.TB, file string) string {
	if onPostgres(t) {
		return pgtest.DB(t)
	}
	return filepath.Join(t.TempDir(), file)
}

// openTest opens a fresh store (see newTarget) and returns it with its
// target; the test runs in parallel with others (opening runs River's
// migrations, the slow part).
func openTest(t *testing.T) (*Store, string) {
	t.Helper()
	t.Parallel()
	path := newTarget(t, "kiln.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func testProject(name string) Project {
	return Project{
		Name: name, Region: "us-east-1",
		BaseOwner: "amazon", BaseName: "al2023-ami-*", BaseMostRecent: true,
		Type: "t3.small", Script: "#!/bin/sh\necho hi\n",
		SecurityGroups: []string{"sg-0123abcd"}, Subnet: "subnet-0123abcd", IAMProfile: "builder",
		Tags: map[string]string{"team": "web"}, Keep: 5, Branch: "main",
		ScriptTimeout: 30 * time.Minute, ImageTimeout: time.Hour,
		DeprecateAfter: 30 * 24 * time.Hour, DisableFor: 7 * 24 * time.Hour,
	}
}

func mustPut(t *testing.T, s *Store, name string) {
	t.Helper()
	if _, err := s.PutProject(t.Context(), testProject(name), "s3cret-"+name); err != nil {
		t.Fatalf("PutProject(%q) = %v", name, err)
	}
}

func TestMigrationsIdempotent(t *testing.T) { bothDrivers(t, testMigrationsIdempotent) }

func testMigrationsIdempotent(t *testing.T) {
	s, path := openTest(t)
	v, err := s.SchemaVersion(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	all, err := loadMigrations(migrations, s.migrationDir())
	if err != nil {
		t.Fatal(err)
	}
	if v != len(all) {
		t.Fatalf("SchemaVersion() = %d; want %d", v, len(all))
	}
	mustPut(t, s, "web")
	bakery := s.BakeryID()
	if len(bakery) != 16 {
		t.Errorf("BakeryID() = %q; want 16 hex digits", bakery)
	}
	s.Close()
	for range 2 {
		s2, err := Open(t.Context(), path)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		if got := s2.BakeryID(); got != bakery {
			t.Errorf("BakeryID() after reopen = %q; want %q (made once)", got, bakery)
		}
		if v2, _ := s2.SchemaVersion(t.Context()); v2 != v {
			t.Errorf("SchemaVersion() after reopen = %d; want %d", v2, v)
		}
		var rows int
		if err := s2.DB().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM schema_version`).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if rows != len(all) {
			t.Errorf("schema_version rows = %d; want %d", rows, len(all))
		}
		if _, err := s2.Project(t.Context(), "web"); err != nil {
			t.Errorf("Project() after reopen = %v", err)
		}
		s2.Close()
	}
}

// Two databases are two bakeries.
func TestBakeryIDPerDatabase(t *testing.T) { bothDrivers(t, testBakeryIDPerDatabase) }

func testBakeryIDPerDatabase(t *testing.T) {
	a, _ := openTest(t)
	b, err := Open(t.Context(), newTarget(t, "other.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if a.BakeryID() == b.BakeryID() {
		t.Errorf("two databases share the bakery id %q", a.BakeryID())
	}
}

func TestOpenPragmas(t *testing.T) {
	s, _ := openTest(t)
	for pragma, want := range map[string]string{"journal_mode": "wal", "foreign_keys": "1", "busy_timeout": "10000"} {
		var got string
		if err := s.DB().QueryRowContext(t.Context(), "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %q; want %q", pragma, got, want)
		}
	}
}

func TestOpenRejectsURI(t *testing.T) {
	for _, p := range []string{"", "file:x.db", "x.db?mode=ro", "a#b"} {
		if _, err := Open(t.Context(), p); err == nil {
			t.Errorf("Open(%q) = nil error; want one", p)
		}
	}
}

func TestLoadMigrationsGaps(t *testing.T) {
	lite, err := loadMigrations(migrations, sqliteMigrations)
	if err != nil || len(lite) == 0 || lite[0].version != 1 {
		t.Fatalf("loadMigrations(sqlite) = %v, %v", lite, err)
	}
	pg, err := loadMigrations(migrations, postgresMigrations)
	if err != nil {
		t.Fatalf("loadMigrations(postgres) = %v", err)
	}
	// One schema, written once per dialect: the same versions and names.
	if len(pg) != len(lite) {
		t.Fatalf("postgres has %d migrations; sqlite %d", len(pg), len(lite))
	}
	for i := range lite {
		if pg[i].name != lite[i].name {
			t.Errorf("migration %d: postgres %s, sqlite %s", i+1, pg[i].name, lite[i].name)
		}
	}
}

func TestProjectCRUD(t *testing.T) { bothDrivers(t, testProjectCRUD) }

func testProjectCRUD(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	p := testProject("web")
	created, err := s.PutProject(ctx, p, "first-secret")
	if err != nil || !created {
		t.Fatalf("PutProject() = %v, %v; want true, nil", created, err)
	}
	got, err := s.Project(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	p.Created, p.Updated = got.Created, got.Updated
	if !reflect.DeepEqual(*got, p) {
		t.Errorf("Project() = %+v; want %+v", *got, p)
	}
	if sec, _ := s.ProjectSecret(ctx, "web"); sec != "first-secret" {
		t.Errorf("ProjectSecret() = %q; want first-secret", sec)
	}

	// Re-apply without a secret keeps it; with one replaces it.
	p.Keep = 2
	p.Tags = nil
	if created, err := s.PutProject(ctx, p, ""); err != nil || created {
		t.Fatalf("PutProject(update) = %v, %v; want false, nil", created, err)
	}
	if sec, _ := s.ProjectSecret(ctx, "web"); sec != "first-secret" {
		t.Errorf("secret after update without secret = %q; want kept", sec)
	}
	got, _ = s.Project(ctx, "web")
	if got.Keep != 2 || len(got.Tags) != 0 || got.Tags == nil {
		t.Errorf("after update Keep=%d Tags=%v; want 2, empty map", got.Keep, got.Tags)
	}
	if _, err := s.PutProject(ctx, p, "second-secret"); err != nil {
		t.Fatal(err)
	}
	h, err := s.HookTarget(ctx, "web")
	if err != nil || h.Secret != "second-secret" || h.Branch != "main" {
		t.Errorf("HookTarget() = %+v, %v", h, err)
	}
	if err := s.SetProjectSecret(ctx, "web", "third"); err != nil {
		t.Fatal(err)
	}
	if sec, _ := s.ProjectSecret(ctx, "web"); sec != "third" {
		t.Errorf("secret after SetProjectSecret = %q", sec)
	}
	// A write through this Store is seen at once, cached answer or not.
	if h, err := s.HookTarget(ctx, "web"); err != nil || h.Secret != "third" {
		t.Errorf("HookTarget() after SetProjectSecret = %+v, %v; want secret third", h, err)
	}

	if _, err := s.PutProject(ctx, testProject("new"), ""); !errors.Is(err, ErrSecretRequired) {
		t.Errorf("PutProject(new, no secret) = %v; want ErrSecretRequired", err)
	}
	mustPut(t, s, "api")
	list, err := s.Projects(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "api" || list[1].Name != "web" {
		t.Fatalf("Projects() = %v, %v", list, err)
	}

	if err := s.DeleteProject(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"Project":       func() error { _, err := s.Project(ctx, "web"); return err }(),
		"ProjectSecret": func() error { _, err := s.ProjectSecret(ctx, "web"); return err }(),
		"HookTarget":    func() error { _, err := s.HookTarget(ctx, "web"); return err }(),
		"DeleteProject": s.DeleteProject(ctx, "web"),
		"SetSecret":     s.SetProjectSecret(ctx, "web", "x"),
	} {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s(deleted) = %v; want ErrNotFound", name, err)
		}
	}
}

func TestEnqueuePushCoalesces(t *testing.T) { bothDrivers(t, testEnqueuePushCoalesces) }

func testEnqueuePushCoalesces(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	mustPut(t, s, "web")
	mustPut(t, s, "api")
	var enqueued []int64
	enq := func(ctx context.Context, tx *Tx, id int64) error {
		enqueued = append(enqueued, id)
		return nil
	}
	push := func(project, delivery, commit string) PushResult {
		t.Helper()
		r, err := s.EnqueuePush(ctx, Push{Project: project, DeliveryID: delivery, Commit: commit,
			Ref: "refs/heads/main", Message: "msg " + commit, Repo: "acme/" + project}, enq)
		if err != nil {
			t.Fatalf("EnqueuePush(%s) = %v", delivery, err)
		}
		return r
	}

	r1 := push("web", "d1", "aaa")
	if !r1.New || r1.Duplicate {
		t.Fatalf("first push = %+v; want New", r1)
	}
	r2 := push("web", "d2", "bbb")
	if r2.New || r2.Duplicate || r2.BakeID != r1.BakeID {
		t.Fatalf("second push = %+v; want coalesced into %d", r2, r1.BakeID)
	}
	b, _ := s.Bake(ctx, r1.BakeID)
	if b.Commit != "bbb" || b.DeliveryID != "d2" || b.State != Queued {
		t.Errorf("queued bake = %+v; want commit bbb from d2", b)
	}
	// Duplicate of the first delivery: same bake, nothing changed.
	r3 := push("web", "d1", "zzz")
	if !r3.Duplicate || r3.New || r3.BakeID != r1.BakeID {
		t.Errorf("duplicate push = %+v", r3)
	}
	if b, _ := s.Bake(ctx, r1.BakeID); b.Commit != "bbb" {
		t.Errorf("duplicate changed commit to %q", b.Commit)
	}
	// Same delivery id on another project is a different delivery.
	if r := push("api", "d1", "ccc"); !r.New || r.BakeID == r1.BakeID {
		t.Errorf("push to api = %+v; want a new bake", r)
	}

	// Once the queued bake runs, the next push queues a new one; a further
	// push coalesces into that.
	claim, _, err := s.ClaimBakeFor(ctx, r1.BakeID, "me", time.Minute)
	if err != nil || claim != ClaimStarted {
		t.Fatalf("ClaimBake() = %v, %v; want started", claim, err)
	}
	r4 := push("web", "d4", "ddd")
	r5 := push("web", "d5", "eee")
	if !r4.New || r4.BakeID == r1.BakeID || r5.BakeID != r4.BakeID || r5.New {
		t.Errorf("pushes while running = %+v, %+v", r4, r5)
	}
	if claim, _, _ := s.ClaimBakeFor(ctx, r4.BakeID, "me", time.Minute); claim != ClaimBusy {
		t.Errorf("ClaimBake(queued behind running) = %v; want busy", claim)
	}
	if len(enqueued) != 3 {
		t.Errorf("enqueued %v; want 3 jobs", enqueued)
	}
	if id, err := s.DeliveryBake(ctx, "web", "d5"); err != nil || id != r4.BakeID {
		t.Errorf("DeliveryBake(d5) = %d, %v; want %d", id, err, r4.BakeID)
	}
	if _, err := s.DeliveryBake(ctx, "web", "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeliveryBake(unknown) = %v; want ErrNotFound", err)
	}
	if _, err := s.EnqueuePush(ctx, Push{Project: "ghost", DeliveryID: "x"}, enq); !errors.Is(err, ErrNotFound) {
		t.Errorf("EnqueuePush(unknown project) = %v; want ErrNotFound", err)
	}
}

func TestEnqueuePushRollsBackOnEnqueueError(t *testing.T) {
	bothDrivers(t, testEnqueuePushRollsBackOnEnqueueError)
}

func testEnqueuePushRollsBackOnEnqueueError(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	mustPut(t, s, "web")
	boom := errors.New("boom")
	_, err := s.EnqueuePush(ctx, Push{Project: "web", DeliveryID: "d1", Commit: "a"},
		func(context.Context, *Tx, int64) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("EnqueuePush() = %v; want boom", err)
	}
	if n, _ := s.CountBakes(ctx, BakeQuery{}); n != 0 {
		t.Errorf("bakes after failed enqueue = %d; want 0", n)
	}
	if _, err := s.DeliveryBake(ctx, "web", "d1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("delivery recorded after failed enqueue: %v", err)
	}
}

// A burst of concurrent pushes to one project leaves exactly one queued bake.
func TestEnqueuePushConcurrentBurst(t *testing.T) { bothDrivers(t, testEnqueuePushConcurrentBurst) }

func testEnqueuePushConcurrentBurst(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	mustPut(t, s, "web")
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		news int
	)
	for i := range 20 {
		wg.Go(func() {
			r, err := s.EnqueuePush(ctx, Push{Project: "web", DeliveryID: fmt.Sprint("d", i), Commit: fmt.Sprint(i)}, nil)
			if err != nil {
				t.Errorf("EnqueuePush() = %v", err)
				return
			}
			if r.New {
				mu.Lock()
				news++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if news != 1 {
		t.Errorf("new bakes = %d; want 1", news)
	}
	if n, _ := s.CountBakes(ctx, BakeQuery{Project: "web"}); n != 1 {
		t.Errorf("bakes = %d; want 1", n)
	}
}

func TestBakeLifecycle(t *testing.T) { bothDrivers(t, testBakeLifecycle) }

func testBakeLifecycle(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	mustPut(t, s, "web")
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s.now = func() time.Time { return now }

	r, err := s.CreateBake(ctx, "web", "abc", "refs/heads/main", nil)
	if err != nil || !r.New {
		t.Fatalf("CreateBake() = %+v, %v", r, err)
	}
	if r2, _ := s.CreateBake(ctx, "web", "", "", nil); r2.New || r2.BakeID != r.BakeID {
		t.Errorf("CreateBake() while queued = %+v; want coalesced", r2)
	}
	if b, _ := s.Bake(ctx, r.BakeID); b.Commit != "abc" {
		t.Errorf("commit after empty CreateBake = %q; want kept", b.Commit)
	}
	if _, err := s.CreateBake(ctx, "ghost", "", "", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("CreateBake(unknown) = %v; want ErrNotFound", err)
	}
	id := r.BakeID
	claim, b, err := s.ClaimBakeFor(ctx, id, "me", time.Minute)
	if err != nil || claim != ClaimStarted || b.State != Running || !b.Started.Equal(now) {
		t.Fatalf("ClaimBake() = %v, %+v, %v", claim, b, err)
	}
	if claim, _, _ := s.ClaimBakeFor(ctx, id, "me", time.Minute); claim != ClaimResumed {
		t.Errorf("ClaimBake(running) = %v; want resumed", claim)
	}
	if err := s.SetBuilder(ctx, id, "i-0abc"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetImage(ctx, id, "ami-0abc"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetBuilder(ctx, 999, "i-x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetBuilder(unknown) = %v; want ErrNotFound", err)
	}
	for _, step := range []string{"launch", "wait-stopped"} {
		if err := s.StartStep(ctx, id, step, ""); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(time.Minute)
	if err := s.FinishStep(ctx, id, "launch", StepSucceeded, "i-0abc"); err != nil {
		t.Fatal(err)
	}
	if err := s.StartStep(ctx, id, "launch", "again"); err != nil { // a resumed step keeps its start
		t.Fatal(err)
	}
	if err := s.FinishStep(ctx, id, "launch", StepSucceeded, "i-0abc"); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishStep(ctx, id, "rollout", StepSkipped, "no group"); err != nil {
		t.Fatal(err)
	}
	steps, err := s.Steps(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	want := []Step{
		{BakeID: id, Name: "launch", State: StepSucceeded, Started: now.Add(-time.Minute), Finished: now, Detail: "i-0abc"},
		{BakeID: id, Name: "wait-stopped", State: StepRunning, Started: now.Add(-time.Minute)},
		{BakeID: id, Name: "rollout", State: StepSkipped, Started: now, Finished: now, Detail: "no group"},
	}
	if !reflect.DeepEqual(steps, want) {
		t.Errorf("Steps() = %+v\nwant %+v", steps, want)
	}

	out := Outcome{State: Succeeded, ConsoleTail: "KILN-BAKE-OK"}
	if err := s.FinishBake(ctx, id, out); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishBake(ctx, id, out); err != nil {
		t.Errorf("FinishBake() again = %v; want nil", err)
	}
	if err := s.FinishBake(ctx, id, Outcome{State: Failed}); !errors.Is(err, ErrBakeFinished) {
		t.Errorf("FinishBake(other state) = %v; want ErrBakeFinished", err)
	}
	if err := s.FinishBake(ctx, id, Outcome{State: Running}); err == nil {
		t.Errorf("FinishBake(running) = nil; want error")
	}
	b, _ = s.Bake(ctx, id)
	if b.State != Succeeded || b.ImageID != "ami-0abc" || b.BuilderID != "i-0abc" || !b.Finished.Equal(now) {
		t.Errorf("finished bake = %+v", b)
	}
	if claim, _, _ := s.ClaimBakeFor(ctx, id, "me", time.Minute); claim != ClaimFinished {
		t.Errorf("ClaimBake(finished) = %v; want finished", claim)
	}
	if _, _, err := s.ClaimBakeFor(ctx, 999, "me", time.Minute); !errors.Is(err, ErrNotFound) {
		t.Errorf("ClaimBake(unknown) = %v; want ErrNotFound", err)
	}
	if _, err := s.Bake(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Errorf("Bake(unknown) = %v; want ErrNotFound", err)
	}
}

func TestRequestCancel(t *testing.T) { bothDrivers(t, testRequestCancel) }

func testRequestCancel(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	mustPut(t, s, "web")
	r1, _ := s.CreateBake(ctx, "web", "a", "", nil)
	s.ClaimBakeFor(ctx, r1.BakeID, "me", time.Minute)
	r2, _ := s.CreateBake(ctx, "web", "b", "", nil)

	b, err := s.RequestCancel(ctx, r2.BakeID, "by user")
	if err != nil || b.State != Cancelled || !b.CancelRequested {
		t.Errorf("RequestCancel(queued) = %+v, %v; want cancelled", b, err)
	}
	b, err = s.RequestCancel(ctx, r1.BakeID, "by user")
	if err != nil || b.State != Running || !b.CancelRequested {
		t.Errorf("RequestCancel(running) = %+v, %v; want running with cancel requested", b, err)
	}
	if got, _ := s.Bake(ctx, r1.BakeID); !got.CancelRequested || got.Reason != "by user" {
		t.Errorf("stored bake = %+v", got)
	}
	if _, err := s.RequestCancel(ctx, r2.BakeID, ""); !errors.Is(err, ErrBakeFinished) {
		t.Errorf("RequestCancel(cancelled) = %v; want ErrBakeFinished", err)
	}
	if claim, _, _ := s.ClaimBakeFor(ctx, r2.BakeID, "me", time.Minute); claim != ClaimFinished {
		t.Errorf("ClaimBake(cancelled) = %v; want finished", claim)
	}
	// With the queued one cancelled, a new push queues a new bake.
	if r, _ := s.EnqueuePush(ctx, Push{Project: "web", DeliveryID: "x", Commit: "c"}, nil); !r.New {
		t.Errorf("push after cancel = %+v; want new", r)
	}
}

func TestBakesPaging(t *testing.T) { bothDrivers(t, testBakesPaging) }

func testBakesPaging(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	for _, p := range []string{"a", "b"} {
		mustPut(t, s, p)
	}
	// 3 bakes per project: finish each so the next one can queue.
	var ids []int64
	for i := range 6 {
		p := []string{"a", "b"}[i%2]
		r, err := s.CreateBake(ctx, p, fmt.Sprint(i), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.BakeID)
		if i < 4 {
			s.ClaimBakeFor(ctx, r.BakeID, "me", time.Minute)
			s.FinishBake(ctx, r.BakeID, Outcome{State: Failed, Reason: "x"})
		}
	}
	tests := []struct {
		name string
		q    BakeQuery
		want []int64
	}{
		{"all", BakeQuery{}, []int64{ids[5], ids[4], ids[3], ids[2], ids[1], ids[0]}},
		{"page", BakeQuery{Limit: 2, BeforeID: ids[4]}, []int64{ids[3], ids[2]}},
		{"project", BakeQuery{Project: "a"}, []int64{ids[4], ids[2], ids[0]}},
		{"state", BakeQuery{States: []BakeState{Queued}}, []int64{ids[5], ids[4]}},
		{"states", BakeQuery{Project: "b", States: []BakeState{Queued, Failed}, Limit: 2}, []int64{ids[5], ids[3]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Bakes(ctx, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			var gotIDs []int64
			for _, b := range got {
				gotIDs = append(gotIDs, b.ID)
			}
			if !reflect.DeepEqual(gotIDs, tt.want) {
				t.Errorf("Bakes(%+v) = %v; want %v", tt.q, gotIDs, tt.want)
			}
		})
	}
	if n, _ := s.CountBakes(ctx, BakeQuery{States: []BakeState{Failed}}); n != 4 {
		t.Errorf("CountBakes(failed) = %d; want 4", n)
	}
}

// The listing queries must use an index, not scan the table.
func TestBakesQueryPlansUseIndexes(t *testing.T) {
	s, _ := openTest(t)
	for _, q := range []string{
		`SELECT id FROM bakes WHERE project = 'a' ORDER BY id DESC LIMIT 50`,
		`SELECT id FROM bakes WHERE project = 'a' AND id < 100 ORDER BY id DESC LIMIT 50`,
		`SELECT id FROM bakes WHERE state IN ('queued') ORDER BY id DESC LIMIT 50`,
		`SELECT id FROM bakes WHERE builder_id = 'i-1'`,
	} {
		rows, err := s.DB().QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+q)
		if err != nil {
			t.Fatal(err)
		}
		var plan string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan += detail + "; "
		}
		rows.Close()
		if !regexpIndex.MatchString(plan) || regexpScanTable.MatchString(plan) {
			t.Errorf("plan of %q = %s; want an index search", q, plan)
		}
	}
}

func TestImages(t *testing.T) { bothDrivers(t, testImages) }

func testImages(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	mustPut(t, s, "web")
	r, _ := s.CreateBake(ctx, "web", "a", "", nil)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, id := range []string{"ami-1", "ami-2", "ami-3"} {
		if err := s.AddImage(ctx, Image{Project: "web", ImageID: id, Name: "web-" + id, BakeID: r.BakeID,
			Commit: "a", Created: t0.Add(time.Duration(i) * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddImage(ctx, Image{Project: "web", ImageID: "ami-2", Name: "web-ami-2", BakeID: r.BakeID,
		Commit: "a"}); err != nil { // idempotent
		t.Fatal(err)
	}
	if err := s.RemoveImage(ctx, "web", "ami-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveImage(ctx, "web", "ami-1"); err != nil {
		t.Errorf("RemoveImage() twice = %v; want nil", err)
	}
	ims, err := s.Images(ctx, "web")
	if err != nil || len(ims) != 2 || ims[0].ImageID != "ami-3" || ims[1].ImageID != "ami-2" || ims[1].BakeID != r.BakeID {
		t.Errorf("Images() = %+v, %v; want ami-3, ami-2", ims, err)
	}
	// Deleting the project removes its records.
	if err := s.DeleteProject(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if ims, _ := s.Images(ctx, "web"); len(ims) != 0 {
		t.Errorf("Images() after delete = %v", ims)
	}
	if _, err := s.Bake(ctx, r.BakeID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Bake() after project delete = %v; want ErrNotFound", err)
	}
}

type testArgs struct {
	BakeID int64 `json:"bake_id"`
}

func (testArgs) Kind() string { return "store_test" }

type testWorker struct {
	river.WorkerDefaults[testArgs]
	done chan int64
}

func (w *testWorker) Work(ctx context.Context, job *river.Job[testArgs]) error {
	select {
	case w.done <- job.Args.BakeID:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// A job inserted (with its bake, in one transaction) by one process is
// worked by another that opens the same file later.
func TestRiverJobSurvivesRestart(t *testing.T) { bothDrivers(t, testRiverJobSurvivesRestart) }

func testRiverJobSurvivesRestart(t *testing.T) {
	s, path := openTest(t)
	ctx := t.Context()
	mustPut(t, s, "web")
	inserter, err := s.NewRiverClient(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.EnqueuePush(ctx, Push{Project: "web", DeliveryID: "d1", Commit: "a"},
		func(ctx context.Context, tx *Tx, id int64) error {
			_, err := inserter.InsertTx(ctx, tx, testArgs{BakeID: id}, nil)
			return err
		})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	w := &testWorker{done: make(chan int64, 1)}
	workers := river.NewWorkers()
	river.AddWorker(workers, w)
	client, err := s2.NewRiverClient(workers, &river.Config{FetchPollInterval: 20 * time.Millisecond, TestOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := client.Start(runCtx); err != nil {
		t.Fatal(err)
	}
	defer client.Stop(context.WithoutCancel(ctx))
	select {
	case id := <-w.done:
		if id != r.BakeID {
			t.Errorf("worked bake %d; want %d", id, r.BakeID)
		}
	case <-ctx.Done():
		t.Fatal("job never worked")
	}
}

var (
	regexpIndex     = regexp.MustCompile(`USING (COVERING )?INDEX`)
	regexpScanTable = regexp.MustCompile(`SCAN bakes;|TEMP B-TREE`)
)

// One batch: a push to an unknown project and one whose enqueue fails are
// rolled back alone; the others commit.
func TestCommitPushesIsolatesFailures(t *testing.T) { bothDrivers(t, testCommitPushesIsolatesFailures) }

func testCommitPushesIsolatesFailures(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	mustPut(t, s, "web")
	mustPut(t, s, "api")
	boom := errors.New("boom")
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	mk := func(ctx context.Context, project, delivery string, enq EnqueueFunc) *pushReq {
		return &pushReq{ctx: ctx, p: Push{Project: project, DeliveryID: delivery, Commit: "c" + delivery},
			enqueue: enq, done: make(chan struct{})}
	}
	batch := []*pushReq{
		mk(ctx, "web", "1", nil),
		mk(ctx, "ghost", "2", nil),
		mk(ctx, "api", "3", func(context.Context, *Tx, int64) error { return boom }),
		mk(cancelled, "api", "4", nil),
		mk(ctx, "web", "5", nil),
		mk(ctx, "web", "1", nil), // duplicate within the batch
	}
	s.commitPushes(batch)
	for i, r := range batch {
		select {
		case <-r.done:
		default:
			t.Fatalf("request %d not completed", i)
		}
	}
	if r := batch[0]; r.err != nil || !r.res.New {
		t.Errorf("push 1 = %+v, %v; want new", r.res, r.err)
	}
	if r := batch[1]; !errors.Is(r.err, ErrNotFound) {
		t.Errorf("push to unknown project = %v; want ErrNotFound", r.err)
	}
	if r := batch[2]; !errors.Is(r.err, boom) {
		t.Errorf("push with failing enqueue = %v; want boom", r.err)
	}
	if r := batch[3]; !errors.Is(r.err, context.Canceled) {
		t.Errorf("cancelled push = %v; want context.Canceled", r.err)
	}
	if r := batch[4]; r.err != nil || r.res.New || r.res.BakeID != batch[0].res.BakeID {
		t.Errorf("push 5 = %+v, %v; want coalesced into %d", r.res, r.err, batch[0].res.BakeID)
	}
	if r := batch[5]; r.err != nil || !r.res.Duplicate || r.res.BakeID != batch[0].res.BakeID {
		t.Errorf("duplicate in batch = %+v, %v", r.res, r.err)
	}
	if n, _ := s.CountBakes(ctx, BakeQuery{}); n != 1 {
		t.Errorf("bakes = %d; want 1 (api's rolled back)", n)
	}
	if b, _ := s.Bake(ctx, batch[0].res.BakeID); b.Commit != "c5" {
		t.Errorf("commit = %q; want c5", b.Commit)
	}
}

// Many concurrent pushes, some with cancelled contexts: every call returns,
// and each successful push's delivery is recorded.
func TestEnqueuePushConcurrentMany(t *testing.T) { bothDrivers(t, testEnqueuePushConcurrentMany) }

func testEnqueuePushConcurrentMany(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	for p := range 5 {
		mustPut(t, s, fmt.Sprint("p", p))
	}
	var wg sync.WaitGroup
	results := make([]error, 200)
	for i := range results {
		wg.Go(func() {
			c := ctx
			if i%7 == 0 {
				var cancel context.CancelFunc
				c, cancel = context.WithCancel(ctx)
				cancel()
			}
			_, results[i] = s.EnqueuePush(c, Push{Project: fmt.Sprint("p", i%5), DeliveryID: fmt.Sprint(i), Commit: "a"}, nil)
		})
	}
	wg.Wait()
	for i, err := range results {
		_, derr := s.DeliveryBake(ctx, fmt.Sprint("p", i%5), fmt.Sprint(i))
		switch {
		case err == nil && derr != nil:
			t.Errorf("push %d succeeded but its delivery is missing: %v", i, derr)
		case err != nil && !errors.Is(err, context.Canceled):
			t.Errorf("push %d = %v", i, err)
		case err != nil && derr == nil:
			t.Errorf("push %d failed but was recorded", i)
		}
	}
	if n, _ := s.CountBakes(ctx, BakeQuery{}); n != 5 {
		t.Errorf("bakes = %d; want 5", n)
	}
}

func TestPruneDeliveries(t *testing.T) { bothDrivers(t, testPruneDeliveries) }

func testPruneDeliveries(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	mustPut(t, s, "web")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	s.now = func() time.Time { return now }
	for i := range 3 {
		now = t0.Add(time.Duration(i) * 24 * time.Hour)
		if _, err := s.EnqueuePush(ctx, Push{Project: "web", DeliveryID: fmt.Sprint(i), Commit: "a"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.PruneDeliveries(ctx, t0.Add(36*time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("PruneDeliveries() = %d, %v; want 2", n, err)
	}
	if _, err := s.DeliveryBake(ctx, "web", "2"); err != nil {
		t.Errorf("newest delivery pruned: %v", err)
	}
}

// TestHookTargetOtherProcess: HookTarget answers from memory, so a secret
// changed by another process (here a second Store on the same file) is seen
// once the cached answer is hookTTL old, not before.
func TestHookTargetOtherProcess(t *testing.T) { bothDrivers(t, testHookTargetOtherProcess) }

func testHookTargetOtherProcess(t *testing.T) {
	s, path := openTest(t)
	ctx := t.Context()
	now := time.Now()
	s.now = func() time.Time { return now }
	mustPut(t, s, "web")
	if h, err := s.HookTarget(ctx, "web"); err != nil || h.Secret != "s3cret-web" {
		t.Fatalf("HookTarget() = %+v, %v", h, err)
	}
	other, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.SetProjectSecret(ctx, "web", "rotated"); err != nil {
		t.Fatal(err)
	}
	if h, _ := s.HookTarget(ctx, "web"); h.Secret != "s3cret-web" {
		t.Errorf("HookTarget() within hookTTL = %q; want the cached secret", h.Secret)
	}
	now = now.Add(hookTTL)
	if h, err := s.HookTarget(ctx, "web"); err != nil || h.Secret != "rotated" {
		t.Errorf("HookTarget() after hookTTL = %+v, %v; want secret rotated", h, err)
	}
}

// TestHookCacheStalePut: a lookup that read the database before a write
// cannot cache its old answer after the write's invalidation.
func TestHookCacheStalePut(t *testing.T) { bothDrivers(t, testHookCacheStalePut) }

func testHookCacheStalePut(t *testing.T) {
	var c hookCache
	now := time.Now()
	_, gen, ok := c.get("web", now)
	if ok {
		t.Fatal("get() on an empty cache hit")
	}
	c.invalidate("web") // a write lands between the read and the put
	c.put("web", HookTarget{Secret: "old"}, now, gen)
	if h, _, ok := c.get("web", now); ok {
		t.Errorf("get() after a stale put = %+v; want a miss", h)
	}
	_, gen, _ = c.get("web", now)
	c.put("web", HookTarget{Secret: "new"}, now, gen)
	if h, _, ok := c.get("web", now); !ok || h.Secret != "new" {
		t.Errorf("get() = %+v, %v; want new", h, ok)
	}
	if _, _, ok := c.get("web", now.Add(hookTTL)); ok {
		t.Error("get() of an entry hookTTL old hit")
	}
}

// Close lets the committer finish what is pending, and a push after Close
// fails instead of waiting forever.
func TestEnqueuePushAfterClose(t *testing.T) { bothDrivers(t, testEnqueuePushAfterClose) }

func testEnqueuePushAfterClose(t *testing.T) {
	t.Parallel()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "kiln.db"))
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "web")
	if _, err := s.EnqueuePush(t.Context(), Push{Project: "web", DeliveryID: "1", Commit: "c1"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnqueuePush(t.Context(), Push{Project: "web", DeliveryID: "2", Commit: "c2"}, nil); !errors.Is(err, errClosed) {
		t.Errorf("EnqueuePush() after Close = %v; want errClosed", err)
	}
}
