package hook

import (
	"context"
	"fmt"

	"kiln/internal/store"
)

// JobArgs is the durable River job of one bake. The bake pipeline registers
// a river.Worker[JobArgs]; the job carries only the id because the bake's
// row (whose commit a coalesced push may still replace while it is queued)
// is the source of truth. The worker starts with store.ClaimBake.
type JobArgs struct {
	BakeID int64 `json:"bake_id"`
}

// JobKind is the River kind of JobArgs.
const JobKind = "bake"

// Kind implements river.JobArgs.
func (JobArgs) Kind() string { return JobKind }

// Queue records pushes and manual bakes in the store and inserts their River
// job in the same transaction. It is the Backend of the webhook handler.
type Queue struct {
	store *store.Store
	river *store.Jobs
}

// NewQueue returns a Queue over st that inserts jobs with rc (an insert-only
// client from st.NewRiverClient(nil, nil) is enough; a worker client works
// too).
func NewQueue(st *store.Store, rc *store.Jobs) *Queue {
	return &Queue{store: st, river: rc}
}

// HookTarget implements Backend.
func (q *Queue) HookTarget(ctx context.Context, project string) (store.HookTarget, error) {
	return q.store.HookTarget(ctx, project)
}

// Enqueue implements Backend: store.EnqueuePush with a River job for a
// new bake.
func (q *Queue) Enqueue(ctx context.Context, p store.Push) (store.PushResult, error) {
	return q.store.EnqueuePush(ctx, p, q.insertJob)
}

// Create queues a bake without a webhook (kiln bake PROJECT, the API); it
// coalesces like a push. commit and ref may be empty (the pipeline then
// bakes the project as it is).
func (q *Queue) Create(ctx context.Context, project, commit, ref string) (store.PushResult, error) {
	return q.store.CreateBake(ctx, project, commit, ref, q.insertJob)
}

func (q *Queue) insertJob(ctx context.Context, tx *store.Tx, bakeID int64) error {
	if _, err := q.river.InsertTx(ctx, tx, JobArgs{BakeID: bakeID}, nil); err != nil {
		return fmt.Errorf("insert job of bake %d: %w", bakeID, err)
	}
	return nil
}

var _ Backend = (*Queue)(nil)
