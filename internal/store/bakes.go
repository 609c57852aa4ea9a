package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// BakeState is where a bake is in its life: queued → running → one of the
// final states succeeded, failed or cancelled (a queued bake can also be
// cancelled directly).
type BakeState string

// The states of a bake.
const (
	Queued    BakeState = "queued"
	Running   BakeState = "running"
	Succeeded BakeState = "succeeded"
	Failed    BakeState = "failed"
	Cancelled BakeState = "cancelled"
)

// Final reports whether the bake is over.
func (s BakeState) Final() bool { return s == Succeeded || s == Failed || s == Cancelled }

// Valid reports whether s is one of the five states.
func (s BakeState) Valid() bool { return s == Queued || s == Running || s.Final() }

// Bake is one bake of a project at a commit.
type Bake struct {
	ID              int64
	Project         string
	Commit          string
	Ref             string
	Message         string // the head commit's message
	Repo            string // e.g. "acme/web"
	DeliveryID      string // the webhook delivery that last set the commit
	State           BakeState
	CancelRequested bool // set by RequestCancel on a running bake
	Created         time.Time
	Updated         time.Time
	Started         time.Time // zero until running
	Finished        time.Time // zero until final
	ImageID         string    // set by SetImage once CreateImage returned
	BuilderID       string    // set by SetBuilder once the builder launched
	Reason          string    // why it failed or was cancelled
	ConsoleTail     string    // the end of the builder's console output
}

const bakeColumns = `id, project, commit_sha, ref, message, repo, delivery_id, state, cancel_requested,
	created_at, updated_at, started_at, finished_at, image_id, builder_id, reason, console_tail`

func scanBake(r scanner) (*Bake, error) {
	var (
		b                 Bake
		state             string
		created, updated  int64
		started, finished sql.NullInt64
	)
	err := r.Scan(&b.ID, &b.Project, &b.Commit, &b.Ref, &b.Message, &b.Repo, &b.DeliveryID, &state,
		&b.CancelRequested, &created, &updated, &started, &finished, &b.ImageID, &b.BuilderID,
		&b.Reason, &b.ConsoleTail)
	if err != nil {
		return nil, err
	}
	b.State = BakeState(state)
	b.Created, b.Updated = fromMS(created), fromMS(updated)
	b.Started, b.Finished = fromNullMS(started), fromNullMS(finished)
	return &b, nil
}

// Push is one accepted webhook push, to be baked.
type Push struct {
	Project    string
	DeliveryID string // required: the dedupe key, unique per project
	Commit     string
	Ref        string
	Message    string
	Repo       string
	// Audit, when set, is the delivery's audit row, appended in the push's
	// transaction when the push succeeds (a duplicate too), so a webhook
	// costs one commit; Outcome and At are the caller's.
	Audit *AuditEntry
}

// PushResult says what EnqueuePush did.
type PushResult struct {
	BakeID int64
	// New: a bake was created (and EnqueueFunc was called). False when the
	// push replaced the commit of the project's already-queued bake, or was a
	// duplicate.
	New bool
	// Duplicate: the delivery id was seen before; BakeID is the bake it led
	// to and nothing changed.
	Duplicate bool
}

// EnqueueFunc inserts the durable job for a new bake inside the transaction
// that creates it, e.g. jobs.InsertTx(ctx, tx, args, nil). It must use tx,
// never the pool (see the package comment), and write nothing outside it:
// when another push of the same group commit fails midway, the transaction
// is rolled back and run again, calling it again.
type EnqueueFunc func(ctx context.Context, tx *Tx, bakeID int64) error

// EnqueuePush records a push in one transaction, coalescing bursts so that a
// project has at most one queued bake:
//
//   - a delivery id seen before returns its bake, Duplicate set, nothing changed;
//   - when the project has a queued bake, the push replaces its commit, ref,
//     message and delivery id, and that bake's id is returned (New false);
//   - otherwise a queued bake is created and enqueue (when non-nil) is called
//     with it in the same transaction; New is set.
//
// The delivery is recorded against the bake either way. A project that does
// not exist gives ErrNotFound. If enqueue fails, nothing of this push is
// written.
//
// Concurrent calls are group-committed: one caller runs the pending pushes
// in one transaction, each in its own savepoint, so a burst of webhooks costs
// one commit instead of one each and a failing push affects no other. It
// blocks until its push is committed or has failed; when ctx ends first
// while the push is still waiting, it returns ctx.Err() and the push is not
// made. enqueue runs with this call's ctx.
func (s *Store) EnqueuePush(ctx context.Context, p Push, enqueue EnqueueFunc) (PushResult, error) {
	if p.DeliveryID == "" {
		return PushResult{}, fmt.Errorf("enqueue push to %q: empty delivery id", p.Project)
	}
	res, err := s.pushes.do(ctx, s, &pushReq{ctx: ctx, p: p, enqueue: enqueue})
	if err != nil {
		return PushResult{}, fmt.Errorf("enqueue push to %q: %w", p.Project, err)
	}
	return res, nil
}

// The push path's statements, prepared once (see hotQueries). A batch
// first locks its projects (dialect.lockProjects), which serialises the
// pushes (and claims) of a project across servers and finds the unknown
// ones; qCoalesce leaves a duplicate delivery alone, so the common push (a
// new delivery for a project with a queued bake) costs two statements:
// qCoalesce and qInsertDelivery.
const (
	qDeliveryBake = `SELECT bake_id FROM deliveries WHERE project = $1 AND delivery_id = $2`
	qCoalesce     = `UPDATE bakes SET commit_sha = $1, ref = $2, message = $3, repo = $4, delivery_id = $5, updated_at = $6
		WHERE project = $7 AND state = 'queued'
		AND NOT EXISTS (SELECT 1 FROM deliveries WHERE project = $8 AND delivery_id = $9) RETURNING id`
	qInsertBake = `INSERT INTO bakes (project, commit_sha, ref, message, repo, delivery_id, state, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $8) RETURNING id`
	qInsertDelivery = `INSERT INTO deliveries (project, delivery_id, bake_id, received_at) VALUES ($1, $2, $3, $4)`
	qHookTarget     = `SELECT branch, webhook_secret FROM projects WHERE name = $1`
	qInsertAudit    = `INSERT INTO audit (at, actor, action, project, target, detail, remote, outcome)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`
)

// pushOne is one push's share of a batch transaction (see pushBatcher):
// the push, then its audit row when it has one. It returns ErrNotFound for
// an unknown project having written nothing.
func (s *Store) pushOne(ctx context.Context, bt *batchTx, p Push, enqueue EnqueueFunc, now int64) (PushResult, error) {
	res, err := s.pushRecord(ctx, bt, p, enqueue, now)
	if err != nil || p.Audit == nil {
		return res, err
	}
	e := p.Audit
	at := now
	if !e.At.IsZero() {
		at = ms(e.At)
	}
	if _, err := bt.stmt(ctx, qInsertAudit).ExecContext(ctx,
		at, e.Actor, e.Action, e.Project, e.Target, e.Detail, e.Remote, e.Outcome); err != nil {
		return res, fmt.Errorf("append audit %s: %w", e.Action, err)
	}
	return res, nil
}

// pushRecord records push p in a batch transaction. It returns
// ErrNotFound for an unknown project having written nothing.
func (s *Store) pushRecord(ctx context.Context, bt *batchTx, p Push, enqueue EnqueueFunc, now int64) (PushResult, error) {
	var res PushResult
	if !bt.exists[p.Project] {
		return res, ErrNotFound
	}
	if q := s.dialect.coalesceRecord; q != "" {
		// One round trip for the common push: coalesce and record it.
		err := bt.stmt(ctx, q).QueryRowContext(ctx,
			p.Commit, p.Ref, p.Message, p.Repo, p.DeliveryID, now, p.Project).Scan(&res.BakeID)
		if err == nil {
			return res, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return res, err
		}
	}
	err := bt.stmt(ctx, qCoalesce).QueryRowContext(ctx,
		p.Commit, p.Ref, p.Message, p.Repo, p.DeliveryID, now, p.Project, p.Project, p.DeliveryID).Scan(&res.BakeID)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		// No queued bake, or a duplicate delivery.
		err := bt.stmt(ctx, qDeliveryBake).QueryRowContext(ctx, p.Project, p.DeliveryID).Scan(&res.BakeID)
		if err == nil {
			res.Duplicate = true
			return res, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return res, err
		}
		err = bt.stmt(ctx, qInsertBake).QueryRowContext(ctx,
			p.Project, p.Commit, p.Ref, p.Message, p.Repo, p.DeliveryID, now, now).Scan(&res.BakeID)
		if err != nil {
			return res, err
		}
		res.New = true
		if enqueue != nil {
			if err := enqueue(ctx, bt.jtx, res.BakeID); err != nil {
				return res, fmt.Errorf("enqueue bake %d: %w", res.BakeID, err)
			}
		}
	case err != nil:
		return res, err
	}
	_, err = bt.stmt(ctx, qInsertDelivery).ExecContext(ctx, p.Project, p.DeliveryID, res.BakeID, now)
	return res, err
}

// DeliveryBake returns the bake a delivery led to, or ErrNotFound.
func (s *Store) DeliveryBake(ctx context.Context, project, deliveryID string) (int64, error) {
	var id int64
	err := s.db.QueryRowContext(ctx, `SELECT bake_id FROM deliveries WHERE project = $1 AND delivery_id = $2`,
		project, deliveryID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("get delivery %q of %q: %w", deliveryID, project, err)
	}
	return id, nil
}

// CreateBake inserts a queued bake directly (a manual `kiln bake PROJECT`)
// and calls enqueue in the same transaction. Like a push it coalesces: when
// the project already has a queued bake, that one is returned with New false
// and its commit is replaced only when commit is non-empty.
func (s *Store) CreateBake(ctx context.Context, project, commit, ref string, enqueue EnqueueFunc) (PushResult, error) {
	var res PushResult
	now := ms(s.now())
	err := s.inJobTx(ctx, func(jtx *Tx) error {
		res = PushResult{}
		tx := jtx.sql
		if err := s.lockProject(ctx, tx, project); err != nil {
			return err
		}
		err := tx.QueryRowContext(ctx, `UPDATE bakes SET
			commit_sha = CASE WHEN $1 = '' THEN commit_sha ELSE $2 END,
			ref = CASE WHEN $3 = '' THEN ref ELSE $4 END, updated_at = $5
			WHERE project = $6 AND state = 'queued' RETURNING id`,
			commit, commit, ref, ref, now, project).Scan(&res.BakeID)
		if err == nil {
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		err = tx.QueryRowContext(ctx, `INSERT INTO bakes (project, commit_sha, ref, state, created_at, updated_at)
			VALUES ($1, $2, $3, 'queued', $4, $5) RETURNING id`, project, commit, ref, now, now).Scan(&res.BakeID)
		if err != nil {
			return err
		}
		res.New = true
		if enqueue != nil {
			if err := enqueue(ctx, jtx, res.BakeID); err != nil {
				return fmt.Errorf("enqueue bake %d: %w", res.BakeID, err)
			}
		}
		return nil
	})
	if err != nil {
		return PushResult{}, fmt.Errorf("create bake of %q: %w", project, err)
	}
	return res, nil
}

// lockProject locks the project's row until tx ends (PostgreSQL's row
// lock; SQLite's transactions hold the whole file), so that what follows
// in tx is serialised with every other server's pushes and claims of the
// project. It returns ErrNotFound, having written nothing, when there is
// no such project.
func (s *Store) lockProject(ctx context.Context, tx *sql.Tx, name string) error {
	var one int
	err := tx.StmtContext(ctx, s.stmts[s.dialect.lockProject]).QueryRowContext(ctx, name).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// Bake returns one bake, or ErrNotFound.
func (s *Store) Bake(ctx context.Context, id int64) (*Bake, error) {
	b, err := scanBake(s.db.QueryRowContext(ctx, `SELECT `+bakeColumns+` FROM bakes WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get bake %d: %w", id, err)
	}
	return b, nil
}

// BakeQuery selects a page of bakes, newest first.
type BakeQuery struct {
	Project  string      // empty: every project
	States   []BakeState // empty: every state
	BeforeID int64       // keyset cursor: only bakes with id < BeforeID; 0: from the newest
	Limit    int         // 0: 50; capped at 1000
}

// Bakes returns a page of bakes, newest (highest id) first. For the next
// page pass the last bake's ID as BeforeID.
func (s *Store) Bakes(ctx context.Context, q BakeQuery) ([]Bake, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 1000)
	where, args := q.where()
	query := `SELECT ` + bakeColumns + ` FROM bakes` + where + ` ORDER BY id DESC LIMIT $` + strconv.Itoa(len(args)+1)
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list bakes: %w", err)
	}
	defer rows.Close()
	var out []Bake
	for rows.Next() {
		b, err := scanBake(rows)
		if err != nil {
			return nil, fmt.Errorf("list bakes: %w", err)
		}
		out = append(out, *b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list bakes: %w", err)
	}
	return out, nil
}

// where is the WHERE clause (empty, or with a leading space) of the bakes q
// selects, with its arguments. Limit is not part of it.
func (q BakeQuery) where() (string, []any) {
	var (
		conds []string
		args  []any
	)
	arg := func(v any) string { // the next placeholder, $1, $2, ...
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if q.Project != "" {
		conds = append(conds, "project = "+arg(q.Project))
	}
	if len(q.States) > 0 {
		ph := make([]string, len(q.States))
		for i, st := range q.States {
			ph[i] = arg(string(st))
		}
		conds = append(conds, "state IN ("+strings.Join(ph, ", ")+")")
	}
	if q.BeforeID > 0 {
		conds = append(conds, "id < "+arg(q.BeforeID))
	}
	if len(conds) == 0 {
		return "", args
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// CountBakes counts the bakes the query selects, ignoring BeforeID and Limit.
func (s *Store) CountBakes(ctx context.Context, q BakeQuery) (int, error) {
	q.BeforeID = 0
	where, args := q.where()
	query := `SELECT COUNT(*) FROM bakes` + where
	var n int
	if err := s.db.QueryRowContext(ctx, query, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count bakes: %w", err)
	}
	return n, nil
}

// Claim is the outcome of ClaimBake.
type Claim int

// The outcomes of ClaimBake.
const (
	// ClaimStarted: the bake was queued and is now running; run it.
	ClaimStarted Claim = iota + 1
	// ClaimResumed: the bake was already running (the process died or the
	// job was retried); resume it, each step finding its earlier work again.
	ClaimResumed
	// ClaimBusy: another bake of the project is running; snooze the job and
	// claim again later.
	ClaimBusy
	// ClaimFinished: the bake is over (done, or cancelled while queued);
	// complete the job without doing anything.
	ClaimFinished
	// ClaimElsewhere: the bake is running on another server whose lease
	// lasts; complete the job without doing anything (if that server dies,
	// its lease runs out and the bake is rescued with a new job).
	ClaimElsewhere
)

func (c Claim) String() string {
	switch c {
	case ClaimStarted:
		return "started"
	case ClaimResumed:
		return "resumed"
	case ClaimBusy:
		return "busy"
	case ClaimFinished:
		return "finished"
	case ClaimElsewhere:
		return "elsewhere"
	}
	return fmt.Sprintf("Claim(%d)", int(c))
}

// ClaimBake is ClaimBakeFor with no owner: the bake is claimed for nobody
// in particular, so any server may resume it (tests and tools).
func (s *Store) ClaimBake(ctx context.Context, id int64) (Claim, *Bake, error) {
	return s.ClaimBakeFor(ctx, id, "", 0)
}

// ClaimBakeFor is how a bake job starts on server owner: in one transaction,
// with the project locked against every other server, it moves the bake
// from queued to running unless another bake of the project is running, and
// makes owner the bake's owner for lease (see RenewBakes). A running bake is
// resumed (ClaimResumed) when owner already holds it, nobody does, or its
// owner's lease ran out (a dead server's bake, taken over); while another
// server's lease lasts it is ClaimElsewhere. It returns the bake as it is
// afterwards, or ErrNotFound.
func (s *Store) ClaimBakeFor(ctx context.Context, id int64, owner string, lease time.Duration) (Claim, *Bake, error) {
	var claim Claim
	var b *Bake
	now := ms(s.now())
	until := now + lease.Milliseconds()
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var project, holder string
		var held int64
		err := tx.QueryRowContext(ctx, `SELECT project FROM bakes WHERE id = $1`, id).Scan(&project)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if err := s.lockProject(ctx, tx, project); err != nil {
			return err
		}
		// Read under the lock: another server may have just claimed it.
		err = tx.QueryRowContext(ctx, `SELECT owner, lease_until FROM bakes WHERE id = $1`, id).Scan(&holder, &held)
		if err != nil {
			return err
		}
		b, err = scanBake(tx.QueryRowContext(ctx, `SELECT `+bakeColumns+` FROM bakes WHERE id = $1`, id))
		if err != nil {
			return err
		}
		switch b.State {
		case Running:
			if holder != "" && holder != owner && held > now {
				claim = ClaimElsewhere
				return nil
			}
			claim = ClaimResumed
			_, err = tx.ExecContext(ctx, `UPDATE bakes SET owner = $1, lease_until = $2 WHERE id = $3`, owner, until, id)
			return err
		case Queued:
		default:
			claim = ClaimFinished
			return nil
		}
		var running int
		err = tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM bakes WHERE project = $1 AND state = 'running'`,
			b.Project).Scan(&running)
		if err != nil {
			return err
		}
		if running > 0 {
			claim = ClaimBusy
			return nil
		}
		_, err = tx.ExecContext(ctx, `UPDATE bakes SET state = 'running', started_at = $1, updated_at = $2,
			owner = $3, lease_until = $4 WHERE id = $5`, now, now, owner, until, id)
		if err != nil {
			return err
		}
		claim = ClaimStarted
		b.State, b.Started, b.Updated = Running, fromMS(now), fromMS(now)
		return nil
	})
	if err != nil {
		return 0, nil, fmt.Errorf("claim bake %d: %w", id, err)
	}
	return claim, b, nil
}

// SetBuilder records the builder instance of a running bake, so a restart
// and the sweeper find it.
func (s *Store) SetBuilder(ctx context.Context, id int64, instanceID string) error {
	return s.setField(ctx, "set builder of bake", id, "builder_id", instanceID)
}

// SetImage records the image of a running bake as soon as CreateImage
// returned, so cancel and a restart find a partial image.
func (s *Store) SetImage(ctx context.Context, id int64, imageID string) error {
	return s.setField(ctx, "set image of bake", id, "image_id", imageID)
}

// SetWaiting records why a running bake cannot make progress ("waiting:
// no AWS credentials (...)") in its reason, shown while it runs; "" clears
// it once the bake moves again.
func (s *Store) SetWaiting(ctx context.Context, id int64, why string) error {
	return s.setField(ctx, "set waiting reason of bake", id, "reason", why)
}

func (s *Store) setField(ctx context.Context, op string, id int64, column, value string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE bakes SET `+column+` = $1, updated_at = $2 WHERE id = $3`,
		value, ms(s.now()), id)
	if err == nil {
		err = wantOne(res)
	}
	if err != nil {
		return fmt.Errorf("%s %d: %w", op, id, err)
	}
	return nil
}

// Outcome is how a bake ended.
type Outcome struct {
	State       BakeState // Succeeded, Failed or Cancelled
	ImageID     string    // kept when empty
	Reason      string
	ConsoleTail string
}

// ErrBakeFinished is returned when a bake that is already over is asked to
// finish differently or to cancel.
var ErrBakeFinished = errors.New("bake already finished")

// FinishBake moves a queued or running bake to a final state. Finishing a
// bake again with the same state is a no-op (a retried job); with another
// state it is ErrBakeFinished.
func (s *Store) FinishBake(ctx context.Context, id int64, o Outcome) error {
	return s.FinishBakeThen(ctx, id, o, nil)
}

// TxFunc is work done inside a store transaction, such as inserting River
// jobs with Jobs.InsertTx: it commits or rolls back with the transaction.
type TxFunc func(ctx context.Context, tx *Tx) error

// FinishBakeThen is FinishBake that also runs then (if not nil) inside the
// transaction that records the final state: the bake's notifications are
// stored if and only if its state is. then runs only when the state
// changes (not when the bake had reached o.State before); an error from
// it rolls the state change back and is returned.
func (s *Store) FinishBakeThen(ctx context.Context, id int64, o Outcome, then TxFunc) error {
	if !o.State.Final() {
		return fmt.Errorf("finish bake %d: %q is not a final state", id, o.State)
	}
	now := ms(s.now())
	err := s.inJobTx(ctx, func(jtx *Tx) error {
		tx := jtx.sql
		var state string
		err := tx.QueryRowContext(ctx, `SELECT state FROM bakes WHERE id = $1`, id).Scan(&state)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if BakeState(state).Final() {
			if BakeState(state) == o.State {
				return nil
			}
			return fmt.Errorf("%w (%s)", ErrBakeFinished, state)
		}
		_, err = tx.ExecContext(ctx, `UPDATE bakes SET state = $1, finished_at = $2, updated_at = $3,
			image_id = CASE WHEN $4 = '' THEN image_id ELSE $5 END, reason = $6, console_tail = $7
			WHERE id = $8`, string(o.State), now, now, o.ImageID, o.ImageID, o.Reason, o.ConsoleTail, id)
		if err != nil || then == nil {
			return err
		}
		return then(ctx, jtx)
	})
	if err != nil {
		return fmt.Errorf("finish bake %d: %w", id, err)
	}
	return nil
}

// RequestCancel cancels a bake: a queued one becomes cancelled at once; a
// running one gets CancelRequested set, and its worker (which checks it
// between steps) terminates the builder, removes a partial image and
// finishes it as cancelled. It returns the bake afterwards; a bake already
// over gives ErrBakeFinished.
func (s *Store) RequestCancel(ctx context.Context, id int64, reason string) (*Bake, error) {
	now := ms(s.now())
	var b *Bake
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		b, err = scanBake(tx.QueryRowContext(ctx, `SELECT `+bakeColumns+` FROM bakes WHERE id = $1`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		switch b.State {
		case Queued:
			_, err = tx.ExecContext(ctx, `UPDATE bakes SET state = 'cancelled', cancel_requested = 1,
				reason = $1, finished_at = $2, updated_at = $3 WHERE id = $4`, reason, now, now, id)
			b.State, b.Finished, b.Reason = Cancelled, fromMS(now), reason
		case Running:
			_, err = tx.ExecContext(ctx, `UPDATE bakes SET cancel_requested = 1, reason = $1, updated_at = $2
				WHERE id = $3`, reason, now, id)
			b.Reason = reason
		default:
			return fmt.Errorf("%w (%s)", ErrBakeFinished, b.State)
		}
		b.CancelRequested, b.Updated = true, fromMS(now)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cancel bake %d: %w", id, err)
	}
	return b, nil
}

// PruneDeliveries forgets deliveries received before t, so the dedupe table
// does not grow forever; senders redeliver within days, not months. It
// returns how many were removed.
func (s *Store) PruneDeliveries(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM deliveries WHERE received_at < $1`, ms(before))
	if err != nil {
		return 0, fmt.Errorf("prune deliveries: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune deliveries: %w", err)
	}
	return n, nil
}
