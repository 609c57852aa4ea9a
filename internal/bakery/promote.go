package bakery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"kiln/internal/awsapi"
	"kiln/internal/awsres"
	"kiln/internal/engine"
	"kiln/internal/pipeline"
	"kiln/internal/project"
	"kiln/internal/store"
)

// Promotion is one rollout of an image to an environment.
type Promotion = store.Promotion

// PromotionError is a promotion refused before anything changed: an
// unknown environment, an image that is not available, an environment
// skipped. The API answers it 400.
type PromotionError struct{ Msg string }

func (e *PromotionError) Error() string { return e.Msg }

// deploys tracks the rollouts and soaks this process runs, so that Run
// waits for them at shutdown (they stop at once and resume at the next
// start, found again in the store).
type deploys struct {
	mu      sync.Mutex
	ctx     context.Context // Run's; nil before Run: started later by resume
	wg      sync.WaitGroup
	running map[string]bool // the leases of the owned work running here (startOwned)
}

// start runs fn in the background under Run's context; before Run, it does
// nothing (resume finds the work in the store).
func (d *deploys) start(fn func(ctx context.Context)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ctx == nil || d.ctx.Err() != nil {
		return
	}
	ctx := d.ctx
	d.wg.Go(func() { fn(ctx) })
}

// startOwned runs fn like deploys.start, but once among the servers that
// share the database: under the store lease name, taken first, renewed
// every Lease/3 while fn runs and released when it returns. A lease another
// server holds (or fn already running here under it) skips fn; a lease
// lost (this server cut off long enough for another to take it) cancels
// fn's context at once, and the work goes on where the lease is now.
func (s *Service) startOwned(name string, fn func(ctx context.Context)) {
	d := &s.deploys
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ctx == nil || d.ctx.Err() != nil || d.running[name] {
		return
	}
	parent := d.ctx
	ok, err := s.store.AcquireLease(parent, name, s.o.ServerID, s.o.Lease)
	if err != nil || !ok {
		if err != nil && parent.Err() == nil {
			s.log.Warn("taking a lease failed", "lease", name, "err", err)
		}
		return
	}
	if d.running == nil {
		d.running = map[string]bool{}
	}
	d.running[name] = true
	d.wg.Go(func() {
		ctx, cancel := context.WithCancel(parent)
		var renew sync.WaitGroup
		defer func() {
			cancel()
			renew.Wait()
			if err := s.store.ReleaseLease(context.WithoutCancel(parent), name, s.o.ServerID); err != nil {
				s.log.Warn("releasing a lease failed", "lease", name, "err", err)
			}
			d.mu.Lock()
			delete(d.running, name)
			d.mu.Unlock()
		}()
		renew.Go(func() {
			t := time.NewTicker(s.o.Lease / 3)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				ok, err := s.store.AcquireLease(ctx, name, s.o.ServerID, s.o.Lease)
				if err == nil && !ok {
					s.log.Warn("lease taken over by another server; stopping here", "lease", name)
					cancel()
					return
				}
			}
		})
		fn(ctx)
	})
}

// promotionLease names the lease a promotion's rollout and then its soak
// run under (startOwned): one lease, as deploy soaks inline.
func promotionLease(id int64) string { return "promotion/" + strconv.FormatInt(id, 10) }

// Promote rolls image out to environment env of project: "" takes the
// image the previous environment runs (for the first environment, the
// newest image). The image must be one of the project's available images
// and, past the first environment, one that the previous environment ran
// successfully: promotions go in order, a rollback is a promotion of an
// earlier image. It returns the new promotion (state rolling) at once; the
// rollout runs in the background. Errors: *PromotionError (bad request),
// store.ErrPromotionRunning, store.ErrNotFound (no such project).
// A promotion of an image older than the one env runs is recorded with
// cause "rollback", any other with "manual".
func (s *Service) Promote(ctx context.Context, project, env, image string) (*Promotion, error) {
	cause := "manual"
	if s.isRollback(ctx, project, env, image) {
		cause = CauseRollback
	}
	return s.promote(ctx, project, env, image, cause)
}

// CauseRollback is the cause of a promotion that takes an environment back
// to an image older than the one it runs.
const CauseRollback = "rollback"

// isRollback reports whether image was baked before the image env runs.
func (s *Service) isRollback(ctx context.Context, project, env, image string) bool {
	if image == "" {
		return false
	}
	cur, err := s.current(ctx, project, env)
	if err != nil || cur == "" || cur == image {
		return false
	}
	imgs, err := s.store.Images(ctx, project)
	if err != nil {
		return false
	}
	var curAt, imgAt time.Time
	for _, im := range imgs {
		switch im.ImageID {
		case cur:
			curAt = im.Created
		case image:
			imgAt = im.Created
		}
	}
	return !curAt.IsZero() && !imgAt.IsZero() && imgAt.Before(curAt)
}

func (s *Service) promote(ctx context.Context, projectName, env, image, cause string) (*Promotion, error) {
	return s.promoteWith(ctx, projectName, env, image, cause, false)
}

// promoteWith is promote; anyOrder skips the check that the previous
// environment ran image (a revocation's replacement, revoke.go).
func (s *Service) promoteWith(ctx context.Context, projectName, env, image, cause string, anyOrder bool) (*Promotion, error) {
	if _, err := s.store.Project(ctx, projectName); err != nil {
		return nil, err
	}
	envs, err := s.store.Environments(ctx, projectName)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(envs, func(e store.Environment) bool { return e.Name == env })
	if i < 0 {
		names := make([]string, len(envs))
		for j, e := range envs {
			names[j] = e.Name
		}
		if len(names) == 0 {
			return nil, &PromotionError{Msg: fmt.Sprintf("project %q has no environments", projectName)}
		}
		return nil, &PromotionError{Msg: fmt.Sprintf("project %q has no environment %q (it has %v)", projectName, env, names)}
	}
	e := envs[i]
	if image == "" {
		if i == 0 {
			imgs, err := s.store.Images(ctx, projectName)
			if err != nil {
				return nil, err
			}
			if len(imgs) == 0 {
				return nil, &PromotionError{Msg: fmt.Sprintf("project %q has no image yet: bake first", projectName)}
			}
			image = imgs[0].ImageID
		} else {
			cur, err := s.current(ctx, projectName, envs[i-1].Name)
			if err != nil {
				return nil, err
			}
			if cur == "" {
				return nil, &PromotionError{Msg: fmt.Sprintf("environment %s runs no image yet: promote to it first", envs[i-1].Name)}
			}
			image = cur
		}
	}
	if !pipeline.IsImageID(image) {
		return nil, &PromotionError{Msg: fmt.Sprintf("%q is not an image id (ami-...)", image)}
	}
	imgs, err := s.store.Images(ctx, projectName)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(imgs, func(im store.Image) bool { return im.ImageID == image }) {
		return nil, &PromotionError{Msg: fmt.Sprintf("%s is not an image of project %q (or retention removed it)", image, projectName)}
	}
	if err := s.revokedError(ctx, projectName, image); err != nil { // revoke.go
		return nil, err
	}
	if i > 0 && !anyOrder {
		prev := envs[i-1].Name
		ok, err := s.store.Promotions(ctx, store.PromotionQuery{Project: projectName, Env: prev, ImageID: image, State: store.PromotionSucceeded, Limit: 1})
		if err != nil {
			return nil, err
		}
		if len(ok) == 0 {
			return nil, &PromotionError{Msg: fmt.Sprintf("%s has not run in %s: promote it to %s first (environments go in order)", image, prev, prev)}
		}
	}
	if err := s.sharedWith(ctx, projectName, e, image); err != nil { // envaccount.go
		return nil, err
	}
	regional, err := s.imageIn(ctx, projectName, e.Region, image) // its copy, in another region
	if err != nil {
		return nil, err
	}
	if err := s.imageAvailableIn(ctx, s.envHubs(e), project.AccountID(e), e.Region, regional); err != nil {
		return nil, err
	}
	p, err := s.store.AddPromotion(ctx, store.Promotion{Project: projectName, Env: env, ImageID: image, Cause: cause, Digest: project.Digest(e)})
	if err != nil {
		return nil, err
	}
	s.log.Info("promotion started", "project", projectName, "env", env, "image", image, "cause", cause, "promotion", p.ID)
	s.startOwned(promotionLease(p.ID), func(ctx context.Context) { s.deploy(ctx, *p) })
	return p, nil
}

// imageAvailableIn checks with EC2, with hubs (those of account, "" for
// the bakery's own), that image is available there: in another account,
// that it was shared with it.
func (s *Service) imageAvailableIn(ctx context.Context, hubs *awsapi.Hubs, account, region, image string) error {
	hub, err := hubs.Hub(ctx, region)
	if err != nil {
		return err
	}
	var state types.ImageState
	err = hub.Retry(ctx, func(ctx context.Context) error {
		out, err := hub.EC2().DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{image}})
		if awsapi.Code(err) == "InvalidAMIID.NotFound" {
			return nil
		}
		if err != nil {
			return err
		}
		if len(out.Images) > 0 {
			state = out.Images[0].State
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("look up image %s: %w", image, err)
	}
	if state != types.ImageStateAvailable {
		if state == "" && account != "" {
			return &PromotionError{Msg: fmt.Sprintf("image %s is not shared with account %s (EC2 there does not list it): bake it again after adding %s to share_with", image, account, account)}
		}
		if state == "" {
			state = "gone"
		}
		return &PromotionError{Msg: fmt.Sprintf("image %s is not available (%s)", image, state)}
	}
	return nil
}

// runs reports whether env runs image already (a configuration rollout of
// the previous environment then promotes nothing).
func (s *Service) runs(ctx context.Context, project, env, image string) bool {
	cur, err := s.current(ctx, project, env)
	return err == nil && cur == image
}

// current is the image env runs: that of its newest succeeded promotion.
func (s *Service) current(ctx context.Context, project, env string) (string, error) {
	ps, err := s.store.Promotions(ctx, store.PromotionQuery{Project: project, Env: env, State: store.PromotionSucceeded, Limit: 1})
	if err != nil || len(ps) == 0 {
		return "", err
	}
	return ps[0].ImageID, nil
}

// deployMeta are the meta-params of a promotion's aws:asg: transient
// errors are retried 7 times (8 attempts), 1 s doubling, before the
// promotion fails.
var deployMeta = engine.Meta{Retry: 7, Delay: time.Second}

// deploy rolls promotion p out: env's group converged by aws:asg through
// the engine (engine.Converge with deployMeta: created on first use; a new
// launch-template version with p's image and the environment's
// configuration; an instance refresh followed to its end), then the
// promotion is recorded as succeeded or failed. A stop (ctx done) leaves
// it rolling for the next start.
func (s *Service) deploy(ctx context.Context, p Promotion) {
	log := s.log.With("project", p.Project, "env", p.Env, "promotion", p.ID)
	envs, err := s.store.Environments(ctx, p.Project)
	i := slices.IndexFunc(envs, func(e store.Environment) bool { return e.Name == p.Env })
	if err != nil || i < 0 {
		if ctx.Err() == nil {
			s.finishPromotion(ctx, log, p, store.PromotionFailed, fmt.Sprintf("environment gone: %v", err), "")
		}
		return
	}
	e := envs[i]
	img, err := s.imageIn(ctx, p.Project, e.Region, p.ImageID) // envaccount.go
	if err != nil {
		if ctx.Err() == nil {
			s.finishPromotion(ctx, log, p, store.PromotionFailed, err.Error(), "")
		}
		return
	}
	asg := project.GroupResource(s.envHubs(e), p.Project, e, img)
	s.prepareRollout(ctx, asg, p) // alarms.go
	_, err = engine.Converge(ctx, asg, project.GroupEnv(p.Project, e, deployMeta, log))
	if ctx.Err() != nil {
		return // resumed at the next start
	}
	if err != nil {
		s.finishPromotion(ctx, log, p, store.PromotionFailed, err.Error(), "")
		return
	}
	version := asg.Outputs()["version"]
	if reason := s.awaitHealthy(ctx, e); reason != "" {
		if ctx.Err() == nil {
			s.finishPromotion(ctx, log, p, store.PromotionFailed, reason, version)
		}
		return
	}
	if p.Cause != CauseRollback {
		if reason := s.alarmsOf(ctx, log, e); reason != "" { // alarms.go
			s.alarmFailed(ctx, log, p, e, reason, version)
			return
		}
	}
	s.finishPromotion(ctx, log, p, store.PromotionSucceeded, "", version)
	p.Version = version
	s.startOwned(envWatchLease(p.Project, p.Env), func(ctx context.Context) { s.watchEnv(ctx, p.Project, p.Env) })
	if i+1 < len(envs) && envs[i+1].Promotion == project.PromoteAuto && !s.runs(ctx, p.Project, envs[i+1].Name, p.ImageID) {
		until := time.Now().Add(envs[i+1].Soak)
		if _, err := s.store.SetSoak(ctx, p.ID, store.SoakRunning, until, ""); err != nil {
			log.Warn("record soak", "err", err)
			return
		}
		p.Soak, p.SoakUntil = store.SoakRunning, until
		s.soak(ctx, p, e, envs[i+1])
	}
	s.followUp(ctx, p.Project)
}

func (s *Service) finishPromotion(ctx context.Context, log *slog.Logger, p Promotion, state store.PromotionState, reason, version string) {
	// The event is queued in the transaction that records the end, so a
	// crash cannot record one without the other. Targets that cannot be
	// read leave the end recorded without its event (logged).
	then, err := s.prepare(ctx, promotionEvent(p, state, reason))
	if err != nil {
		log.Warn("queue notification", "err", err)
	}
	if err := s.store.FinishPromotionThen(context.WithoutCancel(ctx), p.ID, state, reason, version, then); err != nil {
		log.Warn("record promotion", "err", err)
	}
	if state == store.PromotionSucceeded {
		log.Info("promotion succeeded", "image", p.ImageID, "version", version)
	} else {
		log.Warn("promotion failed", "image", p.ImageID, "reason", reason)
	}
	s.notify(Progress{Project: p.Project, Detail: fmt.Sprintf("promotion %d to %s %s", p.ID, p.Env, state), Time: time.Now()})
	if state == store.PromotionFailed {
		s.followUp(ctx, p.Project)
	}
}

// healthyWithin bounds the wait for a converged group's instances to be in
// service and healthy (a new group's first instances boot meanwhile).
const healthyWithin = 30 * time.Minute

// awaitHealthy waits until env's group is healthy (awsres.GroupHealth),
// looking with the hubs' backoff, and returns "" then, or why not.
func (s *Service) awaitHealthy(ctx context.Context, e project.Environment) string {
	b := s.hubs.Options().Wait
	delay := b.Min
	deadline := time.Now().Add(healthyWithin)
	reason := ""
	for {
		h, err := groupHealth(ctx, s.envHubs(e), e.Region, e.Group.Name)
		switch {
		case ctx.Err() != nil:
			return "stopped"
		case err == nil && h.Healthy:
			return ""
		case err != nil:
			h.Reason = err.Error()
		}
		reason = h.Reason
		if time.Now().After(deadline) {
			return fmt.Sprintf("the group was not healthy within %s: %s", healthyWithin, reason)
		}
		select {
		case <-ctx.Done():
			return "stopped"
		case <-time.After(delay):
		}
		delay = min(2*delay, b.Max)
	}
}

// soakCheck is how often a soak looks at the group's health: ten times per
// soak, between 1 s and 30 s apart.
func soakCheck(soak time.Duration) time.Duration {
	return min(max(soak/10, time.Second), 30*time.Second)
}

// soak waits until p.SoakUntil while env's group stays healthy
// (awsres.GroupHealth, and the same instances throughout) and none of
// env's alarms is in ALARM, then promotes p's image to next. An unhealthy
// group, or a newer promotion of env (which abandons the soak), ends it
// without a promotion; an alarm also fails p and rolls env back
// (alarms.go).
func (s *Service) soak(ctx context.Context, p Promotion, env, next project.Environment) {
	log := s.log.With("project", p.Project, "env", p.Env, "promotion", p.ID, "next", next.Name)
	log.Info("soaking before the promotion", "until", p.SoakUntil.Format(time.RFC3339))
	every := soakCheck(next.Soak)
	var first []string // the instances at the first look: a replaced one was unhealthy
	for {
		h, err := groupHealth(ctx, s.envHubs(env), env.Region, env.Group.Name)
		if ctx.Err() != nil {
			return // resumed at the next start
		}
		reason := h.Reason
		if err == nil && h.Healthy {
			if first == nil {
				first = h.Instances
			} else if !slices.Equal(first, h.Instances) {
				h.Healthy, reason = false, fmt.Sprintf("instances replaced (%v, now %v)", first, h.Instances)
			}
		}
		if err == nil && h.Healthy && p.Cause != CauseRollback {
			if a := s.alarmsOf(ctx, log, env); a != "" { // alarms.go
				if ok, _ := s.store.SetSoak(ctx, p.ID, store.SoakFailed, p.SoakUntil, a); ok {
					log.Warn("soak failed: an alarm fired; no promotion", "reason", a)
					s.alarmFailed(ctx, log, p, env, a, p.Version)
				}
				return
			}
		}
		if err != nil {
			log.Warn("soak: health check failed; trying again", "err", err)
		} else if !h.Healthy {
			if ok, _ := s.store.SetSoak(ctx, p.ID, store.SoakFailed, p.SoakUntil, "unhealthy during the soak: "+reason); ok {
				log.Warn("soak failed: no promotion", "reason", reason)
				s.notify(Progress{Project: p.Project, Detail: "soak failed", Time: time.Now()})
			}
			return
		}
		if err == nil && !time.Now().Before(p.SoakUntil) {
			break
		}
		wait := min(every, max(time.Until(p.SoakUntil), time.Millisecond))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
	if s.awaitApproval(ctx, p, next) { // approve.go: a gated next environment
		return
	}
	ok, err := s.store.SetSoak(ctx, p.ID, store.SoakPassed, p.SoakUntil, "")
	if err != nil || !ok {
		return // abandoned: a newer promotion of env came first
	}
	cause := fmt.Sprintf("auto: %s healthy for %s", p.Env, next.Soak)
	if _, err := s.promote(ctx, p.Project, next.Name, p.ImageID, cause); err != nil {
		log.Warn("automatic promotion refused", "err", err)
		_, _ = s.store.SetSoak(ctx, p.ID, store.SoakFailed, p.SoakUntil, "promotion refused: "+err.Error())
	}
}

// groupHealth is awsres.GroupHealth.
var groupHealth = awsres.GroupHealth

// followUp starts what a finished rollout may have held back in project:
// a bake's image waiting for the first environment, and rollouts of a
// changed configuration.
func (s *Service) followUp(ctx context.Context, project string) {
	if ctx.Err() != nil {
		return
	}
	if err := s.catchUp(ctx, project); err != nil {
		s.log.Warn("follow-up promotions", "project", project, "err", err)
	}
}

// catchUp promotes, where nothing rolls: the newest image to the first
// environment when it is auto and that image never went there (a bake
// finished while a rollout ran), and each environment's current image
// again when its configuration changed since.
func (s *Service) catchUp(ctx context.Context, projectName string) error {
	envs, err := s.store.Environments(ctx, projectName)
	if err != nil || len(envs) == 0 {
		return err
	}
	if err := s.replaceRevoked(ctx, projectName); err != nil { // revoke.go
		return err
	}
	for i, e := range envs {
		last, err := s.store.Promotions(ctx, store.PromotionQuery{Project: projectName, Env: e.Name, Limit: 1})
		if err != nil {
			return err
		}
		if len(last) > 0 && last[0].State == store.PromotionRolling {
			continue
		}
		if i == 0 && e.Promotion == project.PromoteAuto {
			imgs, err := s.store.Images(ctx, projectName)
			if err != nil {
				return err
			}
			if len(imgs) > 0 {
				seen, err := s.store.Promotions(ctx, store.PromotionQuery{Project: projectName, Env: e.Name, ImageID: imgs[0].ImageID, Limit: 1})
				if err != nil {
					return err
				}
				if len(seen) == 0 {
					_, err := s.promote(ctx, projectName, e.Name, imgs[0].ImageID, fmt.Sprintf("bake of %s", imgs[0].ImageID))
					if err != nil && !errors.Is(err, store.ErrPromotionRunning) {
						s.log.Warn("promotion after the bake refused", "project", projectName, "env", e.Name, "err", err)
					}
					continue
				}
			}
		}
		ok, err := s.store.Promotions(ctx, store.PromotionQuery{Project: projectName, Env: e.Name, State: store.PromotionSucceeded, Limit: 1})
		if err != nil {
			return err
		}
		if len(ok) == 1 && ok[0].Digest != project.Digest(e) && (len(last) == 0 || last[0].Digest != project.Digest(e)) {
			if _, err := s.promote(ctx, projectName, e.Name, ok[0].ImageID, "configuration changed"); err != nil && !errors.Is(err, store.ErrPromotionRunning) {
				s.log.Warn("configuration rollout refused", "project", projectName, "env", e.Name, "err", err)
			}
		}
	}
	return nil
}

// resume picks up, at start, the rollouts and soaks a stopped process left,
// and what they held back.
func (s *Service) resume(ctx context.Context) error {
	if err := s.resumeOwned(ctx); err != nil {
		return err
	}
	projects, err := s.store.Projects(ctx)
	if err != nil {
		return err
	}
	for _, pr := range projects {
		s.followUp(ctx, pr.Name)
	}
	return nil
}

// resumeOwned runs the rollouts, soaks and environment watches
// (watchEnvs) in the store that no server runs now (their leases are
// free: never taken, released, or run out with a dead server). Run calls
// it at start, and the leader at every turn, so that another server takes
// a dead one's over.
func (s *Service) resumeOwned(ctx context.Context) error {
	rolling, err := s.store.Promotions(ctx, store.PromotionQuery{State: store.PromotionRolling, Limit: 1000})
	if err != nil {
		return err
	}
	for _, p := range rolling {
		s.startOwned(promotionLease(p.ID), func(ctx context.Context) {
			s.log.Info("promotion resumed after restart", "project", p.Project, "env", p.Env, "promotion", p.ID, "server", s.o.ServerID)
			s.deploy(ctx, p)
		})
	}
	soaking, err := s.store.Promotions(ctx, store.PromotionQuery{Soak: store.SoakRunning, Limit: 1000})
	if err != nil {
		return err
	}
	for _, p := range soaking {
		envs, err := s.store.Environments(ctx, p.Project)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(envs, func(e store.Environment) bool { return e.Name == p.Env })
		if i < 0 || i+1 >= len(envs) {
			continue
		}
		s.startOwned(promotionLease(p.ID), func(ctx context.Context) { s.soak(ctx, p, envs[i], envs[i+1]) })
	}
	projects, err := s.store.Projects(ctx)
	if err != nil {
		return err
	}
	for _, pr := range projects {
		if err := s.watchEnvs(ctx, pr.Name); err != nil {
			return err
		}
	}
	return nil
}

// applySecrets puts each secret of envs into SSM Parameter Store
// (SecureString /kiln/PROJECT/ENV/KEY) unless the parameter holds that
// value already, and records the parameter's version in its ConfigValue
// (the user data pins it). Values are compared with the decrypted
// parameter, so the database never needs them.
func (s *Service) applySecrets(ctx context.Context, projectName string, envs []project.Environment) error {
	for i := range envs {
		e := &envs[i]
		for j := range e.Config {
			c := &e.Config[j]
			if !c.Secret || (c.Value == "" && c.Version > 0) {
				continue // plain, or kept as stored (a parsed file never has an empty secret)
			}
			v, err := s.putSecret(ctx, s.envHubs(*e), e.Region, project.ParameterName(projectName, e.Name, c.Key), c.Value)
			if err != nil {
				return fmt.Errorf("environment %s: secret %s: %w", e.Name, c.Key, err)
			}
			c.Version = v
		}
	}
	return nil
}

func (s *Service) putSecret(ctx context.Context, hubs *awsapi.Hubs, region, name, value string) (int64, error) {
	c, err := hubs.SSM(ctx, region)
	if err != nil {
		return 0, err
	}
	got, err := c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
	switch {
	case err == nil && aws.ToString(got.Parameter.Value) == value && got.Parameter.Type == ssmtypes.ParameterTypeSecureString:
		return got.Parameter.Version, nil
	case err != nil && awsapi.Code(err) != "ParameterNotFound":
		return 0, fmt.Errorf("read parameter %s: %w", name, err)
	}
	out, err := c.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(name), Value: aws.String(value),
		Type: ssmtypes.ParameterTypeSecureString, Overwrite: aws.Bool(err == nil)})
	if err != nil {
		return 0, fmt.Errorf("put parameter %s: %w", name, err)
	}
	return out.Version, nil
}

// dropSecrets deletes the parameters of secrets that old has and envs no
// longer have.
func (s *Service) dropSecrets(ctx context.Context, projectName string, old, envs []project.Environment) {
	keep := map[string]bool{}
	for _, e := range envs {
		for _, c := range e.Config {
			if c.Secret {
				keep[project.ParameterName(projectName, e.Name, c.Key)] = true
			}
		}
	}
	for _, e := range old {
		for _, c := range e.Config {
			name := project.ParameterName(projectName, e.Name, c.Key)
			if !c.Secret || keep[name] {
				continue
			}
			cl, err := s.envHubs(e).SSM(ctx, e.Region)
			if err == nil {
				_, err = cl.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String(name)})
			}
			if err != nil && awsapi.Code(err) != "ParameterNotFound" {
				s.log.Warn("delete parameter of a removed secret", "parameter", name, "err", err)
			}
		}
	}
}

// ApplyProject stores p with its environments: secrets go to SSM first
// (only their versions to the database), then the project, then the
// environments; an environment whose configuration changed rolls its
// current image out again with it.
func (s *Service) ApplyProject(ctx context.Context, p *project.Project) (project.Applied, error) {
	old, err := s.store.Environments(ctx, p.Name)
	if err != nil {
		return project.Applied{}, err
	}
	envs := slices.Clone(p.Environments)
	for i := range envs {
		envs[i].Config = slices.Clone(envs[i].Config)
	}
	if err := s.applySecrets(ctx, p.Name, envs); err != nil {
		return project.Applied{}, fmt.Errorf("apply project %q: %w", p.Name, err)
	}
	withVersions := *p
	withVersions.Environments = envs
	a, err := s.Projects.ApplyProject(ctx, &withVersions)
	if err != nil {
		return a, err
	}
	s.dropSecrets(ctx, p.Name, old, envs)
	s.deploys.start(func(ctx context.Context) { s.followUp(ctx, p.Name) })
	return a, nil
}

// protected are the images retention keeps for project's environments:
// what each runs, and every image of its last keep promotions.
func (s *Service) protected(ctx context.Context, project string, keep int) ([]string, error) {
	envs, err := s.store.Environments(ctx, project)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range envs {
		ps, err := s.store.Promotions(ctx, store.PromotionQuery{Project: project, Env: e.Name, Limit: max(keep, 1)})
		if err != nil {
			return nil, err
		}
		cur, err := s.current(ctx, project, e.Name)
		if err != nil {
			return nil, err
		}
		if cur != "" {
			ids = append(ids, cur)
		}
		for _, p := range ps {
			ids = append(ids, p.ImageID)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}
