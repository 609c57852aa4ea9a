package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"

	"github.com/riverqueue/river"

	"kiln/internal/notify"
	"kiln/internal/pgtest"
	"kiln/internal/store"
)

// TestEventInFinishTransaction: a bake's or promotion's end and the
// queueing of its notification are one transaction, on both drivers. A
// crash point between them (the jobs inserted, then the transaction
// fails) leaves neither: the bake still running, no delivery queued. The
// next try stores both, once.
func TestEventInFinishTransaction(t *testing.T) {
	for _, driver := range []string{"sqlite", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			target := filepath.Join(t.TempDir(), "kiln.db")
			if driver == "postgres" {
				target = pgtest.DB(t)
			}
			testEventInFinishTransaction(t, target)
		})
	}
}

var errCrash = errors.New("crash point")

func testEventInFinishTransaction(t *testing.T, target string) {
	ctx := t.Context()
	st, err := store.Open(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.PutProject(ctx, store.Project{Name: "web", Region: "us-east-1", BaseID: "ami-1", Type: "t3.micro",
		Script: "true", Keep: 5}, "0123456789abcdef0123"); err != nil {
		t.Fatal(err)
	}
	if err := st.PutNotifyTargets(ctx, "web", []store.NotifyTarget{
		{URL: "http://127.0.0.1:9/a", Events: notify.Events},
		{URL: "http://127.0.0.1:9/b", Events: []string{notify.BakeSucceeded, notify.PromotionFailed}},
	}); err != nil {
		t.Fatal(err)
	}
	jobs, err := st.NewRiverClient(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := notify.New(st, jobs, notify.Options{})
	queued := func() []notify.JobArgs {
		t.Helper()
		rows, err := jobs.JobList(ctx, river.NewJobListParams().Kinds(notify.JobKind).First(100))
		if err != nil {
			t.Fatal(err)
		}
		var out []notify.JobArgs
		for _, r := range rows {
			var a notify.JobArgs
			if err := json.Unmarshal(r.EncodedArgs, &a); err != nil {
				t.Fatal(err)
			}
			out = append(out, a)
		}
		return out
	}
	// crashAfter runs then and fails: the jobs are in the transaction when
	// it rolls back.
	crashAfter := func(then store.TxFunc) store.TxFunc {
		return func(ctx context.Context, tx *store.Tx) error {
			if err := then(ctx, tx); err != nil {
				return err
			}
			return errCrash
		}
	}

	res, err := st.CreateBake(ctx, "web", "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	e := notify.Event{Event: notify.BakeSucceeded, Project: "web", Bake: res.BakeID, Image: "ami-2"}
	then, err := n.Prepare(ctx, e)
	if err != nil || then == nil {
		t.Fatalf("Prepare() = %v, %v; want the inserts of two deliveries", then, err)
	}
	o := store.Outcome{State: store.Succeeded, ImageID: "ami-2"}
	if err := st.FinishBakeThen(ctx, res.BakeID, o, crashAfter(then)); !errors.Is(err, errCrash) {
		t.Fatalf("FinishBakeThen() with a crash point = %v; want it", err)
	}
	if b, _ := st.Bake(ctx, res.BakeID); b.State.Final() {
		t.Errorf("bake is %s after the crash point; want the state change rolled back", b.State)
	}
	if q := queued(); len(q) != 0 {
		t.Errorf("deliveries queued after the crash point: %+v; want none", q)
	}
	if err := st.FinishBakeThen(ctx, res.BakeID, o, then); err != nil {
		t.Fatal(err)
	}
	// Finishing again (a resumed job) changes nothing and queues nothing.
	if err := st.FinishBakeThen(ctx, res.BakeID, o, then); err != nil {
		t.Fatal(err)
	}
	if b, _ := st.Bake(ctx, res.BakeID); b.State != store.Succeeded {
		t.Errorf("bake is %s; want succeeded", b.State)
	}
	q := queued()
	if len(q) != 2 || q[0].ID != e.ID() || q[1].ID != e.ID() || q[0].Target == q[1].Target {
		t.Errorf("queued %+v; want %s to both targets once", q, e.ID())
	}

	p, err := st.AddPromotion(ctx, store.Promotion{Project: "web", Env: "production", ImageID: "ami-2", Cause: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	pe := notify.Event{Event: notify.PromotionFailed, Project: "web", Promotion: p.ID, Image: "ami-2", Environment: "production"}
	if then, err = n.Prepare(ctx, pe); err != nil {
		t.Fatal(err)
	}
	if err := st.FinishPromotionThen(ctx, p.ID, store.PromotionFailed, "unhealthy", "2", crashAfter(then)); !errors.Is(err, errCrash) {
		t.Fatalf("FinishPromotionThen() with a crash point = %v; want it", err)
	}
	ps, err := st.Promotions(ctx, store.PromotionQuery{Project: "web"})
	if err != nil || len(ps) != 1 || ps[0].State != store.PromotionRolling {
		t.Errorf("promotions after the crash point = %+v, %v; want it rolling still", ps, err)
	}
	if got := len(queued()); got != 2 {
		t.Errorf("%d deliveries queued after the promotion's crash point; want the bake's 2 only", got)
	}
	if err := st.FinishPromotionThen(ctx, p.ID, store.PromotionFailed, "unhealthy", "2", then); err != nil {
		t.Fatal(err)
	}
	if got := len(queued()); got != 4 {
		t.Errorf("%d deliveries queued; want 4 (the bake's 2, the promotion's 2)", got)
	}

	// A failing insert rolls the state change back too: a bake whose event
	// cannot be queued stays unfinished, for its job to try again.
	res2, err := st.CreateBake(ctx, "web", "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	failing := func(context.Context, *store.Tx) error { return errors.New("insert failed") }
	if err := st.FinishBakeThen(ctx, res2.BakeID, store.Outcome{State: store.Failed, Reason: "x"}, failing); err == nil {
		t.Fatal("FinishBakeThen() with a failing insert = nil; want its error")
	}
	if b, _ := st.Bake(ctx, res2.BakeID); b.State.Final() {
		t.Errorf("bake is %s after a failed insert; want it unfinished", b.State)
	}
}
