package bakery

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"kiln/internal/awsres"
	"kiln/internal/engine"
	"kiln/internal/project"
	"kiln/internal/store"
)

// GroupLive is an environment's group as it is now in Auto Scaling.
type GroupLive struct {
	Exists    bool   `json:"exists"`
	Min       int    `json:"min"`
	Max       int    `json:"max"`
	Desired   int    `json:"desired"`
	InService int    `json:"in_service"` // InService and healthy
	Version   string `json:"launch_template_version,omitempty"`
	// Seen is when the environment watch read the group.
	Seen time.Time `json:"seen"`
}

// EnvDrifted is the state of an environment whose group differs from what
// its last promotion left: Drift says what; the bakery puts it back.
const EnvDrifted = "drifted"

// envWatchLease names the lease under which one server watches env.
func envWatchLease(project, env string) string { return "envwatch/" + project + "/" + env }

// drift lists how group g differs from env as its succeeded promotion
// (at launch-template version) left it; none when it does not.
func drift(e store.Environment, version string, g awsres.GroupState) []string {
	if !g.Exists {
		return []string{fmt.Sprintf("group %s does not exist", e.Group.Name)}
	}
	desired := e.Group.Min
	if e.Group.Desired != nil {
		desired = *e.Group.Desired
	}
	var d []string
	if g.Min != e.Group.Min || g.Max != e.Group.Max {
		d = append(d, fmt.Sprintf("size %d-%d (declared %d-%d)", g.Min, g.Max, e.Group.Min, e.Group.Max))
	}
	if g.Desired != desired {
		d = append(d, fmt.Sprintf("desired capacity %d (declared %d)", g.Desired, desired))
	}
	if version != "" && g.Version != version {
		d = append(d, fmt.Sprintf("launch template version %s (declared %s)", g.Version, version))
	}
	return d
}

// groupSeen is an environment watch's last look at its group.
type groupSeen struct {
	region, group string
	g             awsres.GroupState
	at            time.Time
}

func envKey(project, env string) string { return project + "/" + env }

// see records the watch's look at env's group.
func (s *Service) see(project, env string, e store.Environment, g awsres.GroupState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = map[string]groupSeen{}
	}
	s.seen[envKey(project, env)] = groupSeen{region: e.Region, group: e.Group.Name, g: g, at: time.Now()}
}

// unsee forgets env's group when its watch stops: a look nobody renews
// is not shown.
func (s *Service) unsee(project, env string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.seen, envKey(project, env))
}

// LiveStatuses adds to sts (EnvStatuses of project) what each environment's
// group was at the environment watch's last look (watchEnv; GroupLive.Seen
// says when): the InService count beside the declared range, and for an
// environment that runs an image with no rollout running, the drift from
// what its last promotion left (State drifted, Detail saying what
// differs). It makes no AWS call: a page or an API answer never waits on
// AWS. An environment this server does not watch (none runs an image yet,
// or another server holds its watch) has no Live.
func (s *Service) LiveStatuses(ctx context.Context, project string, sts []EnvStatus) []EnvStatus {
	out := slices.Clone(sts)
	for i := range out {
		st := &out[i]
		s.mu.Lock()
		seen, ok := s.seen[envKey(project, st.Name)]
		s.mu.Unlock()
		if !ok || seen.region != st.Region || seen.group != st.Group.Name {
			continue
		}
		g := seen.g
		st.Live = &GroupLive{Exists: g.Exists, Min: g.Min, Max: g.Max, Desired: g.Desired, InService: g.InService, Version: g.Version, Seen: seen.at}
		if st.State != EnvLive && st.State != EnvSoaking {
			continue
		}
		version := ""
		for _, p := range st.Promotions {
			if p.State == store.PromotionSucceeded {
				version = p.Version
				break
			}
		}
		if st.Drift = drift(st.Environment, version, g); len(st.Drift) > 0 {
			st.State, st.Detail = EnvDrifted, strings.Join(st.Drift, "; ")
		}
	}
	return out
}

// watchEnvs starts, once among the servers, the watch of each environment
// of project that runs an image (watchEnv).
func (s *Service) watchEnvs(ctx context.Context, project string) error {
	envs, err := s.store.Environments(ctx, project)
	if err != nil {
		return err
	}
	for _, e := range envs {
		cur, err := s.current(ctx, project, e.Name)
		if err != nil {
			return err
		}
		if cur == "" {
			continue
		}
		s.startOwned(envWatchLease(project, e.Name), func(ctx context.Context) { s.watchEnv(ctx, project, e.Name) })
	}
	return nil
}

// watchEnv keeps env's group as its last succeeded promotion left it, as
// aws:asg keeps its group: woken by the group's pushed Auto Scaling events
// and every poll, it reads the group (the look LiveStatuses shows), and
// when its size or launch-template version differs (someone set it to 0
// by hand), logs the drift and puts the declared size and template back by
// converging the group's aws:asg through the engine (engine.Converge, as a
// promotion does). It leaves the group alone while a promotion of env
// rolls, and when env's configuration changed since (a configuration
// rollout follows). It returns when ctx is done or env is gone.
func (s *Service) watchEnv(ctx context.Context, project, env string) {
	log := s.log.With("project", project, "env", env)
	defer s.unsee(project, env)
	var wake <-chan struct{}
	t := time.NewTicker(s.hubs.Options().Poll)
	defer t.Stop()
	for {
		e, p, ok := s.watched(ctx, project, env)
		if ctx.Err() != nil {
			return
		}
		if e == nil {
			log.Info("environment gone: watch stopped")
			return
		}
		if wake == nil {
			if hub, err := s.envHubs(*e).Hub(ctx, e.Region); err == nil {
				ch, cancel := hub.Changes(e.Group.Name)
				defer cancel()
				wake = ch
			}
		}
		if e.Group.Name != "" { // "": not read from the store this time
			if g, err := awsres.ReadGroup(ctx, s.envHubs(*e), e.Region, e.Group.Name); err == nil {
				s.see(project, env, *e, g)
				if ok {
					s.repair(ctx, log, *e, p, g)
				}
			} // else the next wake looks again
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-t.C:
		}
	}
}

// watched returns env and its last succeeded promotion; ok is false when
// the group is not to be touched now (a promotion rolls, none succeeded,
// or the configuration changed since). e is nil when env is gone.
func (s *Service) watched(ctx context.Context, projectName, env string) (e *store.Environment, p store.Promotion, ok bool) {
	envs, err := s.store.Environments(ctx, projectName)
	if err != nil {
		return &store.Environment{Name: env}, p, false // try again at the next wake
	}
	i := slices.IndexFunc(envs, func(x store.Environment) bool { return x.Name == env })
	if i < 0 {
		return nil, p, false
	}
	e = &envs[i]
	last, err := s.store.Promotions(ctx, store.PromotionQuery{Project: projectName, Env: env, Limit: 1})
	if err != nil || len(last) == 0 || last[0].State == store.PromotionRolling {
		return e, p, false
	}
	ok1, err := s.store.Promotions(ctx, store.PromotionQuery{Project: projectName, Env: env, State: store.PromotionSucceeded, Limit: 1})
	if err != nil || len(ok1) == 0 || ok1[0].Digest != project.Digest(*e) {
		return e, p, false
	}
	return e, ok1[0], true
}

// repair puts e's group, as read (g), back when it drifted from what
// promotion p left.
func (s *Service) repair(ctx context.Context, log *slog.Logger, e store.Environment, p store.Promotion, g awsres.GroupState) {
	d := drift(e, p.Version, g)
	if len(d) == 0 {
		log.Debug("environment checked", "group", e.Group.Name, "in_service", g.InService, "desired", g.Desired)
		return
	}
	what := strings.Join(d, "; ")
	log.Warn("environment drifted: putting it back", "group", e.Group.Name, "drift", what)
	s.notify(Progress{Project: p.Project, Detail: fmt.Sprintf("environment %s drifted: %s", e.Name, what), Time: time.Now()})
	img, err := s.imageIn(ctx, p.Project, e.Region, p.ImageID) // envaccount.go: its copy in another region
	if err != nil {
		log.Warn("environment drift not repaired", "group", e.Group.Name, "err", err)
		return
	}
	asg := project.GroupResource(s.envHubs(e), p.Project, e, img)
	if _, err := engine.Converge(ctx, asg, project.GroupEnv(p.Project, e, deployMeta, log)); err != nil {
		if ctx.Err() == nil {
			log.Warn("environment drift not repaired", "group", e.Group.Name, "err", err)
		}
		return
	}
	// Read again, so what LiveStatuses shows is the group repaired.
	if g, err := awsres.ReadGroup(ctx, s.envHubs(e), e.Region, e.Group.Name); err == nil {
		s.see(p.Project, e.Name, e, g)
	}
	log.Info("environment repaired", "group", e.Group.Name, "was", what)
	s.notify(Progress{Project: p.Project, Detail: fmt.Sprintf("environment %s repaired (was: %s)", e.Name, what), Time: time.Now()})
}
