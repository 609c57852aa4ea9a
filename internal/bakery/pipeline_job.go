package bakery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"kiln/internal/awsapi"
	"kiln/internal/engine"
	"kiln/internal/hook"
	"kiln/internal/pipeline"
	"kiln/internal/project"
	"kiln/internal/store"
)

// worker is the River worker of hook.JobArgs.
type worker struct {
	river.WorkerDefaults[hook.JobArgs]
	s *Service
}

// Timeout: a bake bounds its own waits (the project's script and image
// timeouts), so River's one-minute default must not cut it short.
func (w *worker) Timeout(*river.Job[hook.JobArgs]) time.Duration { return -1 }

// Work runs one bake; see Service.work.
func (w *worker) Work(ctx context.Context, job *river.Job[hook.JobArgs]) error {
	return w.s.work(ctx, job.Args.BakeID, job.Attempt >= job.MaxAttempts)
}

// cleanupTimeout bounds the clean-up of a cancelled or failed bake, which
// runs even when the job's context has ended.
const cleanupTimeout = 2 * time.Minute

func (s *Service) run(ctx context.Context) error {
	if err := s.releaseDeadLocal(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("releasing dead servers' bakes failed", "err", err)
	}
	if err := s.requeue(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return err
	}
	if err := s.river.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("start bake workers: %w", err)
	}
	var wg sync.WaitGroup
	s.deploys.mu.Lock()
	s.deploys.ctx = ctx
	s.deploys.mu.Unlock()
	if err := s.resume(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("resume promotions", "err", err)
	}
	wg.Go(func() { s.heartbeatLoop(ctx) })
	wg.Go(func() { s.leaderLoop(ctx) })
	wg.Go(func() { s.publishLoop(ctx) })
	wg.Go(func() { s.listenLoop(ctx) })
	<-ctx.Done()
	s.deploys.mu.Lock()
	s.deploys.ctx = nil // no new rollouts: wg.Wait may begin
	s.deploys.mu.Unlock()
	s.deploys.wg.Wait()
	// Stop taking jobs and interrupt the running bakes: every step is safe
	// to cut short, and a restart (or another server) resumes them.
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	err := s.river.StopAndCancel(stopCtx)
	wg.Wait()
	// Stopped cleanly: the next claim resumes our bakes at once instead of
	// waiting for their leases to run out.
	if rerr := s.store.ReleaseBakes(stopCtx, s.o.ServerID); rerr != nil {
		s.log.Warn("releasing bakes failed", "err", rerr)
	}
	if err != nil {
		return fmt.Errorf("stop bake workers: %w", err)
	}
	return nil
}

// requeue gives every bake that a dead process left unfinished a fresh job:
// running ones, and queued ones too, because a job that the dead process had
// already fetched (or snoozed without saving the snooze) stays "running" in
// River until its rescuer notices, an hour later. A duplicate job is
// harmless: a bake is worked on by one job at a time in this process, and a
// job for a finished bake does nothing.
func (s *Service) requeue(ctx context.Context) error {
	for before := int64(0); ; {
		bakes, err := s.store.Bakes(ctx, store.BakeQuery{States: []store.BakeState{store.Queued, store.Running}, BeforeID: before, Limit: 1000})
		if err != nil {
			return fmt.Errorf("requeue unfinished bakes: %w", err)
		}
		for _, b := range bakes {
			if _, err := s.river.Insert(ctx, hook.JobArgs{BakeID: b.ID}, nil); err != nil {
				return fmt.Errorf("requeue bake %d: %w", b.ID, err)
			}
			s.log.Info("bake requeued after restart", "bake", b.ID, "project", b.Project)
		}
		if len(bakes) < 1000 {
			return nil
		}
		before = bakes[len(bakes)-1].ID
	}
}

// work claims bake id and takes it through the pipeline to a final state.
// A nil error completes the job; an error makes River retry it later (a
// transient AWS error, or the service shutting down); last says this is
// the job's last attempt, so a transient error fails the bake instead.
func (s *Service) work(ctx context.Context, id int64, last bool) error {
	claim, b, err := s.store.ClaimBakeFor(ctx, id, s.o.ServerID, s.o.Lease)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil // the project (and its bakes) was deleted
	case err != nil:
		return err
	case claim == store.ClaimBusy:
		return river.JobSnooze(s.o.BusySnooze)
	case claim == store.ClaimFinished:
		return nil
	case claim == store.ClaimElsewhere:
		return nil // another server runs it; if it dies, the leader rescues the bake
	}
	bctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	s.mu.Lock()
	if s.active[id] != nil {
		s.mu.Unlock()
		return river.JobSnooze(s.o.BusySnooze) // a duplicate job: the other one works on it
	}
	s.active[id] = stop
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.active, id)
		s.mu.Unlock()
	}()
	log := s.log.With("bake", id, "project", b.Project)
	log.Info("bake "+claim.String(), "commit", b.Commit)
	if strings.HasPrefix(b.Reason, waitingPrefix) { // it waited on an earlier attempt
		if err := s.store.SetWaiting(ctx, id, ""); err != nil {
			return err
		}
		b.Reason = ""
	}
	s.notify(Progress{BakeID: id, Project: b.Project, BakeState: store.Running, Detail: claim.String(), Time: time.Now()})
	s.emit(ctx, bakeEvent(b, store.Running, "", ""))

	rp, err := s.store.Project(ctx, b.Project)
	if errors.Is(err, store.ErrNotFound) {
		return s.finish(ctx, b, store.Outcome{State: store.Failed, Reason: "project deleted"})
	}
	if err != nil {
		return err
	}
	d, err := s.store.Distribution(ctx, b.Project)
	if err != nil {
		return err
	}
	p := project.FromRecord(*rp)
	p.Distribution = project.DistributionFromRecord(d)
	tests, err := s.store.Tests(ctx, b.Project)
	if err != nil {
		return err
	}
	p.Tests = project.TestsFromRecord(tests)
	spec := SpecFor(p, b, s.store.BakeryID())
	rec := &storeRecorder{s: s, bake: b}
	if b.CancelRequested {
		if img := s.recordedImage(ctx, b); img != "" {
			// Cancelled during the rollout by a process that died: the image
			// is made and maybe in use already; keep it.
			return s.finish(ctx, b, store.Outcome{State: store.Cancelled, ImageID: img, Reason: "cancelled during the rollout"})
		}
		return s.cancelled(ctx, b, spec, rec)
	}

	res, err := s.pipe.Bake(bctx, spec, rec)
	var fe *pipeline.FailedError
	switch {
	case err == nil:
	case errors.Is(context.Cause(bctx), errLeaseLost):
		log.Warn("bake taken over by another server; this one stops", "err", err)
		return nil // the new owner finishes it (and may need its builder)
	case errors.Is(context.Cause(bctx), errCancelRequested) || errors.Is(err, errCancelRequested):
		return s.cancelled(ctx, b, spec, rec)
	case errors.As(err, &fe):
		log.Info("bake failed", "reason", fe.Reason)
		// An image that failed its tests is kept (fe.ImageID), never recorded
		// among the project's images, so never promoted.
		return s.finish(ctx, b, store.Outcome{State: store.Failed, Reason: fe.Reason, ConsoleTail: fe.ConsoleTail, ImageID: fe.ImageID})
	case ctx.Err() != nil:
		return err // shutting down: resumed by the next run
	case isNoCredentials(err):
		return s.waitForCredentials(ctx, b, spec, rec, err, last, log)
	case engine.IsPermanent(err) || last:
		log.Warn("bake failed", "err", err)
		s.cleanup(ctx, spec, rec)
		return s.finish(ctx, b, store.Outcome{State: store.Failed, Reason: err.Error()})
	default:
		log.Warn("bake interrupted; retrying later", "err", err)
		return err
	}

	if err := s.retain(bctx, p, rec); err != nil {
		if ctx.Err() != nil {
			return err
		}
		// The image is made: retention is retried by the next bake.
		log.Warn("retention failed", "err", err)
	}
	err = rec.step(ctx, pipeline.StepRecord, res.ImageID, func() error {
		return s.store.AddImage(ctx, store.Image{Project: p.Name, ImageID: res.ImageID, Name: res.ImageName,
			BakeID: b.ID, Commit: b.Commit})
	})
	if err != nil {
		return err
	}
	if p.Rollout != nil {
		image := imageIn(res, cmp.Or(p.Rollout.Region, p.Region))
		if done, err := s.rollOut(ctx, bctx, b, p, image, rec, log, last); done || err != nil {
			return err
		}
	}
	log.Info("bake succeeded", "image", res.ImageID)
	if err := s.finish(ctx, b, store.Outcome{State: store.Succeeded, ImageID: res.ImageID}); err != nil {
		return err
	}
	s.deploys.start(func(ctx context.Context) { s.followUp(ctx, p.Name) }) // the first environment's promotion
	return nil
}

// RolloutFailedError is a rollout that failed for good (a failed, rolled
// back instance refresh): rollOut returns it and the bake fails
// with Reason, keeping its image.
type RolloutFailedError struct {
	Reason string
	Err    error // the cause, e.g. an *awsres.RolloutError
}

func (e *RolloutFailedError) Error() string { return "rollout failed: " + e.Reason }
func (e *RolloutFailedError) Unwrap() error { return e.Err }

// rollOut is the bake's last step: roll image out to p's rollout target.
// done says the bake was finished here (failed or cancelled, its image
// kept); an error makes River retry the job (transient, or shutting down).
// bctx is the bake's context (ended by Cancel); ctx the job's.
func (s *Service) rollOut(ctx, bctx context.Context, b *store.Bake, p *project.Project, image string, rec *storeRecorder, log *slog.Logger, last bool) (done bool, err error) {
	t := *p.Rollout
	region := cmp.Or(t.Region, p.Region)
	detail := fmt.Sprintf("%s to group %s in %s", image, t.Group, region)
	keep := func(state store.BakeState, stepState store.StepState, reason string) (bool, error) {
		if ferr := rec.finish(context.WithoutCancel(ctx), pipeline.StepRollout, stepState, reason); ferr != nil {
			log.Warn("record rollout step", "err", ferr)
		}
		log.Info("bake "+string(state)+" at rollout; image kept", "image", image, "reason", reason)
		return true, s.finish(ctx, b, store.Outcome{State: state, ImageID: image, Reason: reason})
	}
	if context.Cause(bctx) != nil && errors.Is(context.Cause(bctx), errCancelRequested) {
		return keep(store.Cancelled, store.StepCancelled, "cancelled before the rollout")
	}
	if err := rec.s.store.StartStep(ctx, b.ID, pipeline.StepRollout, detail); err != nil {
		return false, err
	}
	rec.s.notify(Progress{BakeID: b.ID, Project: b.Project, Step: pipeline.StepRollout, StepState: store.StepRunning,
		BakeState: store.Running, Detail: detail, Time: time.Now()})
	log.Info("rolling out", "image", image, "group", t.Group, "region", region)
	err = rollOut(bctx, s.hubs, region, t.Group, image, t, log.With("step", pipeline.StepRollout))
	var rf *RolloutFailedError
	switch {
	case err == nil:
		if ferr := rec.finish(context.WithoutCancel(ctx), pipeline.StepRollout, store.StepSucceeded,
			fmt.Sprintf("group %s runs %s", t.Group, image)); ferr != nil {
			return false, ferr
		}
		return false, nil
	case errors.Is(context.Cause(bctx), errCancelRequested):
		return keep(store.Cancelled, store.StepCancelled, "cancelled during the rollout (an instance refresh already started goes on in Auto Scaling)")
	case ctx.Err() != nil:
		return false, err // shutting down: the step stays running, resumed by the next run
	case errors.As(err, &rf):
		return keep(store.Failed, store.StepFailed, rf.Reason)
	case engine.IsPermanent(err) || last:
		return keep(store.Failed, store.StepFailed, err.Error())
	}
	log.Warn("rollout interrupted; retrying later", "err", err)
	if ferr := rec.finish(context.WithoutCancel(ctx), pipeline.StepRollout, store.StepFailed, err.Error()); ferr != nil {
		log.Warn("record rollout step", "err", ferr)
	}
	return false, err
}

// recordedImage is the image of bake b when its record step succeeded
// (only the rollout can follow), else "".
func (s *Service) recordedImage(ctx context.Context, b *store.Bake) string {
	steps, err := s.store.Steps(ctx, b.ID)
	if err != nil {
		return ""
	}
	for _, st := range steps {
		if st.Name == pipeline.StepRecord && st.State == store.StepSucceeded {
			return cmp.Or(b.ImageID, st.Detail)
		}
	}
	return ""
}

// SpecFor is the pipeline's spec of bake b of project p in the bakery
// (store.BakeryID) bakery: the project's Builder as it is, with the commit
// among its tags (kiln:commit); bake id as the identity, image name
// "<project>-<bake id>", and the tags kiln:project, kiln:bake,
// kiln:bake-origin and kiln:bakery that find the bake's builder and image
// again.
func SpecFor(p *project.Project, b *store.Bake, bakery string) pipeline.Spec {
	id := strconv.FormatInt(b.ID, 10)
	builder := p.Builder
	builder.Tags = maps.Clone(p.Tags)
	if builder.Tags == nil {
		builder.Tags = map[string]string{}
	}
	if b.Commit != "" {
		builder.Tags[pipeline.TagCommit] = b.Commit
	}
	return pipeline.Spec{
		ID:        id,
		ImageName: p.Name + "-" + id,
		Builder:   builder,
		Match: map[string]string{pipeline.TagProject: p.Name, awsapi.TagBake: id,
			pipeline.TagOrigin: strconv.FormatInt(b.Created.UnixMilli(), 10), pipeline.TagBakery: bakery},
	}
}

// retain applies the project's keep-N to its images.
func (s *Service) retain(ctx context.Context, p *project.Project, rec *storeRecorder) error {
	return rec.step(ctx, pipeline.StepRetention, "", func() error {
		protect, err := s.protected(ctx, p.Name, max(p.Keep, 1))
		if err != nil {
			return err
		}
		rs, err := s.pipe.RetainRegions(ctx, p.Regions(), map[string]string{pipeline.TagProject: p.Name},
			pipeline.Keep{N: max(p.Keep, 1), DisableFor: p.DisableFor}, protect...)
		var kept, removed, inUse, disabled int
		for _, r := range rs {
			kept, removed, inUse, disabled = kept+len(r.Kept), removed+len(r.Removed), inUse+len(r.InUse), disabled+len(r.Disabled)
			if r.Region != p.Region {
				continue // the store records the images of the project's own region
			}
			for _, id := range r.Removed {
				if err := s.store.RemoveImage(ctx, p.Name, id); err != nil {
					return err
				}
			}
		}
		rec.detail = fmt.Sprintf("kept %d, removed %d, in use %d", kept, removed, inUse)
		if disabled > 0 {
			rec.detail += fmt.Sprintf(", disabled %d", disabled)
		}
		if len(rs) > 1 {
			rec.detail += fmt.Sprintf(" in %d regions", len(rs))
		}
		return err
	})
}

// waitingPrefix starts the reason of a running bake that cannot make
// progress.
const waitingPrefix = "waiting: "

func isNoCredentials(err error) bool {
	_, ok := awsapi.NoCredentials(err)
	return ok
}

// waitForCredentials handles a bake that cannot call AWS for want of
// credentials: it says so in the bake's reason while it runs ("waiting: no
// AWS credentials (...)", on the page, in kiln bake show and --follow, in
// the API) and tries again soon; once it has waited the retry timeout
// (--aws-retry-timeout) since it started, or on the job's last attempt, it
// fails with that reason.
func (s *Service) waitForCredentials(ctx context.Context, b *store.Bake, spec pipeline.Spec, rec pipeline.Recorder, err error, last bool, log *slog.Logger) error {
	ce, _ := awsapi.NoCredentials(err)
	bound := s.hubs.Options().RetryTimeout
	since := cmp.Or(b.Started, b.Created)
	if last || time.Since(since) >= bound {
		log.Warn("bake failed: no AWS credentials", "err", ce.Err)
		s.cleanup(ctx, spec, rec)
		return s.finish(ctx, b, store.Outcome{State: store.Failed, Reason: fmt.Sprintf("%s, for %v (--aws-retry-timeout)", ce.Short(), bound)})
	}
	why := waitingPrefix + ce.Short()
	if err := s.store.SetWaiting(ctx, b.ID, why); err != nil {
		return err
	}
	s.notify(Progress{BakeID: b.ID, Project: b.Project, BakeState: store.Running, Detail: why, Time: time.Now()})
	log.Warn("bake waiting for AWS credentials", "err", ce.Err)
	return river.JobSnooze(min(max(bound/10, 50*time.Millisecond), 15*time.Second))
}

func (s *Service) cleanup(ctx context.Context, spec pipeline.Spec, rec pipeline.Recorder) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := s.pipe.Cleanup(cctx, spec, rec); err != nil {
		s.log.Warn("bake clean-up failed; the sweeper will retry", "bake", spec.ID, "err", err)
	}
}

// cancelled cleans a cancelled bake up and finishes it.
func (s *Service) cancelled(ctx context.Context, b *store.Bake, spec pipeline.Spec, rec pipeline.Recorder) error {
	// The step the cancel interrupted is over too.
	if steps, err := s.store.Steps(context.WithoutCancel(ctx), b.ID); err == nil {
		for _, st := range steps {
			if st.State == store.StepRunning {
				_ = s.store.FinishStep(context.WithoutCancel(ctx), b.ID, st.Name, store.StepCancelled, st.Detail)
			}
		}
	}
	s.cleanup(ctx, spec, rec)
	reason := "cancelled"
	if cur, err := s.store.Bake(context.WithoutCancel(ctx), b.ID); err == nil && cur.Reason != "" {
		reason = cur.Reason
	}
	return s.finish(ctx, b, store.Outcome{State: store.Cancelled, Reason: reason})
}

// finish records the bake's end and, in the same transaction, queues its
// notification: both are stored or neither (an error: River runs the job
// again).
func (s *Service) finish(ctx context.Context, b *store.Bake, o store.Outcome) error {
	var then store.TxFunc
	if o.State != store.Cancelled {
		var err error
		if then, err = s.prepare(ctx, bakeEvent(b, o.State, o.ImageID, o.Reason)); err != nil {
			return err
		}
	}
	if err := s.store.FinishBakeThen(context.WithoutCancel(ctx), b.ID, o, then); err != nil {
		if errors.Is(err, store.ErrBakeFinished) {
			return nil
		}
		return err
	}
	s.notify(Progress{BakeID: b.ID, Project: b.Project, BakeState: o.State, Detail: o.Reason, Time: time.Now()})
	return nil
}

// storeRecorder records a bake's steps in the store and tells subscribers.
type storeRecorder struct {
	s      *Service
	bake   *store.Bake
	detail string // set by a step function run through step
	// resumed notes the steps this process took over from one that died
	// while they ran: their times run from the first start, so they
	// include the downtime, and their detail says so.
	resumed map[string]string
}

// resumedNote is what a resumed step's detail says of its time.
func resumedNote(at time.Time) string {
	return "resumed after a restart at " + at.UTC().Format("15:04:05Z") + ": its time includes the downtime"
}

// withNote is detail with the step's resume note, if any.
func (r *storeRecorder) withNote(name, detail string) string {
	note := r.resumed[name]
	switch {
	case note == "":
		return detail
	case detail == "":
		return note
	}
	return detail + "; " + note
}

// StartStep records the step; a cancel requested meanwhile (by another
// process, or before this one ran) stops the bake here.
func (r *storeRecorder) StartStep(ctx context.Context, name, detail string) error {
	cur, err := r.s.store.Bake(ctx, r.bake.ID)
	if err != nil {
		return err
	}
	if cur.CancelRequested && name != pipeline.StepCleanup {
		return errCancelRequested
	}
	if _, decided := r.resumed[name]; !decided {
		// A step already running when this process starts it was left so
		// by a process that died; its first start stands (its timeouts
		// run from it), so its time will include the downtime.
		note := ""
		if steps, err := r.s.store.Steps(ctx, r.bake.ID); err == nil {
			for _, st := range steps {
				if st.Name == name && st.State == store.StepRunning {
					note = resumedNote(time.Now())
				}
			}
		}
		if r.resumed == nil {
			r.resumed = map[string]string{}
		}
		r.resumed[name] = note
	}
	detail = r.withNote(name, detail)
	if err := r.s.store.StartStep(ctx, r.bake.ID, name, detail); err != nil {
		return err
	}
	r.s.notify(Progress{BakeID: r.bake.ID, Project: r.bake.Project, Step: name, StepState: store.StepRunning,
		BakeState: store.Running, Detail: detail, Time: time.Now()})
	return nil
}

// FinishStep records how the step ended.
func (r *storeRecorder) FinishStep(ctx context.Context, name string, state pipeline.StepState, detail string) error {
	return r.finish(ctx, name, store.StepState(state), detail) // the pipeline's ends are among the store's states
}

// finish records the end of a step in any of the store's states (the
// bakery's own steps can be skipped or cancelled too).
func (r *storeRecorder) finish(ctx context.Context, name string, state store.StepState, detail string) error {
	detail = r.withNote(name, detail)
	if err := r.s.store.FinishStep(ctx, r.bake.ID, name, state, detail); err != nil {
		return err
	}
	r.s.notify(Progress{BakeID: r.bake.ID, Project: r.bake.Project, Step: name, StepState: state,
		BakeState: store.Running, Detail: detail, Time: time.Now()})
	if r.s.testHop != nil {
		return r.s.testHop(r.bake.ID, name)
	}
	return nil
}

// FirstStarted implements StepClock from the recorded steps.
func (r *storeRecorder) FirstStarted(ctx context.Context, name string) (time.Time, bool) {
	steps, err := r.s.store.Steps(ctx, r.bake.ID)
	if err != nil {
		return time.Time{}, false
	}
	for _, st := range steps {
		if st.Name == name {
			return st.Started, true
		}
	}
	return time.Time{}, false
}

// Builder records the builder, so the API shows it and a restart finds it.
func (r *storeRecorder) Builder(ctx context.Context, id string) error {
	return r.s.store.SetBuilder(ctx, r.bake.ID, id)
}

// RegionImage records the bake's image in a region (its own, or a copy)
// and its state, for the API and the pages.
func (r *storeRecorder) RegionImage(ctx context.Context, region, imageID, state string) error {
	return r.s.store.SetBakeImage(ctx, r.bake.ID, region, imageID, state)
}

// Image records the image as soon as it exists, so cancel finds it.
func (r *storeRecorder) Image(ctx context.Context, id string) error {
	return r.s.store.SetImage(ctx, r.bake.ID, id)
}

// step records a service-side step (retention, record) around fn.
func (r *storeRecorder) step(ctx context.Context, name, detail string, fn func() error) error {
	if err := r.s.store.StartStep(ctx, r.bake.ID, name, detail); err != nil {
		return err
	}
	r.detail = ""
	err := fn()
	state, d := store.StepSucceeded, detail
	if r.detail != "" {
		d = r.detail
	}
	if err != nil {
		state, d = store.StepFailed, err.Error()
	}
	if ferr := r.finish(context.WithoutCancel(ctx), name, state, d); ferr != nil && err == nil {
		return ferr
	}
	return err
}

// imageIn is the bake's image in region: its own, or the copy there.
func imageIn(res pipeline.Result, region string) string {
	for _, ri := range res.Regions {
		if ri.Region == region {
			return ri.ImageID
		}
	}
	return res.ImageID
}
