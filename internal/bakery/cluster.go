package bakery

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"kiln/internal/hook"
	"kiln/internal/store"
)

// Several servers on one database are one bakery. Each runs River workers
// on the same jobs; what keeps them from stepping on each other:
//
//   - a bake is claimed in one transaction (store.ClaimBake) and then owned
//     by its server for Lease, renewed every Lease/3 (heartbeat). A server
//     that finds a bake of its own no longer renewed to it stops working on
//     it at once (fencing: another server has taken it over);
//   - the leader (a named lease in the store, renewed the same way) hands
//     every bake whose lease ran out (a dead server's) to a new job, and
//     runs the sweeper: one server at a time, whichever it is;
//   - every change of a bake is published to the other servers
//     (store.Publish; LISTEN/NOTIFY on PostgreSQL), so that a page served by
//     one stays live while another runs the bake, and a cancel reaches the
//     server running it at once.

// DefaultLease is Options.Lease's default: a SIGKILLed server's bake is
// taken over within about Lease + Lease/3 (plus River's fetch), well inside
// a minute.
const DefaultLease = 15 * time.Second

// riverRescue is River's RescueStuckJobsAfter: a job that a dead server had
// fetched is retried after this long instead of River's hour. A live bake's
// job rescued meanwhile is harmless: its claim finds the bake owned
// (ClaimElsewhere) and completes.
const riverRescue = time.Minute

// leaderLease names the bakery leader's lease in the store.
const leaderLease = "bakery-leader"

// errLeaseLost is the cause of a bake context stopped because another
// server owns the bake now.
var errLeaseLost = errors.New("bake taken over by another server")

// newServerID names this process: host, pid and a random suffix (a
// restarted process is a new server).
func newServerID() string {
	host, _ := os.Hostname()
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// localPID is the process id in server id when the server ran on this
// host (ids as newServerID makes them).
func localPID(id string) (int, bool) {
	host, _ := os.Hostname()
	rest, ok := strings.CutPrefix(id, host+"-")
	if !ok || host == "" {
		return 0, false
	}
	pid, _, ok := strings.Cut(rest, "-")
	n, err := strconv.Atoi(pid)
	return n, ok && err == nil && n > 0
}

// processGone reports whether no process pid exists on this host. Any
// doubt (no permission to ask, a system that cannot tell) is "alive".
func processGone(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return errors.Is(err, os.ErrProcessDone)
	}
	err = p.Signal(syscall.Signal(0))
	return errors.Is(err, os.ErrProcessDone) || errors.Is(err, syscall.ESRCH)
}

// releaseDeadLocal frees the bakes, and the leadership, of servers that
// ran on this host and whose process is gone (a kill, then this restart):
// they resume at once instead of after their lease. Servers elsewhere wait
// for their lease.
func (s *Service) releaseDeadLocal(ctx context.Context) error {
	dead := func(id string) bool {
		pid, local := localPID(id)
		return local && id != s.o.ServerID && processGone(pid)
	}
	owners, err := s.store.BakeOwners(ctx)
	if err != nil {
		return err
	}
	for _, o := range owners {
		if !dead(o) {
			continue
		}
		if err := s.store.ReleaseBakes(ctx, o); err != nil {
			return err
		}
		s.log.Info("released the bakes of a dead server on this host", "server", o)
	}
	leader, err := s.store.LeaseHolder(ctx, leaderLease)
	if err == nil && leader != "" && dead(leader) {
		err = s.store.ReleaseLease(ctx, leaderLease, leader)
	}
	return err
}

// heartbeatLoop renews this server's bake leases every Lease/3 and stops the
// bakes it no longer owns, until ctx is done.
func (s *Service) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(s.o.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		owned, err := s.store.RenewBakes(ctx, s.o.ServerID, s.o.Lease)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("renewing bake leases failed", "err", err)
			}
			continue
		}
		// A bake active here but not renewed: claimed just after the
		// renewal ran (it is ours), finished meanwhile, or taken over. Only
		// the last is stopped, as the store says.
		s.mu.Lock()
		var unsure []int64
		for id := range s.active {
			if !slices.Contains(owned, id) {
				unsure = append(unsure, id)
			}
		}
		s.mu.Unlock()
		for _, id := range unsure {
			owner, _, err := s.store.BakeOwner(ctx, id)
			if err != nil || owner == s.o.ServerID {
				continue
			}
			if b, err := s.store.Bake(ctx, id); err != nil || b.State != store.Running {
				continue
			}
			s.mu.Lock()
			stop := s.active[id]
			s.mu.Unlock()
			if stop != nil {
				s.log.Warn("bake lease lost to another server; stopping", "bake", id, "owner", owner)
				stop(errLeaseLost)
			}
		}
	}
}

// leaderLoop takes or renews the bakery's leadership every Lease/3 and,
// while this server leads, hands expired bakes to new jobs, takes over the
// promotions no server runs, and sweeps (at once on election, then every
// SweepInterval). It gives the lease up
// when ctx is done.
func (s *Service) leaderLoop(ctx context.Context) {
	t := time.NewTicker(s.o.Lease / 3)
	defer t.Stop()
	leader := false
	var swept time.Time
	defer func() {
		if leader {
			_ = s.store.ReleaseLease(context.WithoutCancel(ctx), leaderLease, s.o.ServerID)
		}
	}()
	for {
		ok, err := s.store.AcquireLease(ctx, leaderLease, s.o.ServerID, s.o.Lease)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("leader election failed", "err", err)
		}
		if ok != leader {
			s.log.Info(map[bool]string{true: "elected bakery leader", false: "no longer the bakery leader"}[ok], "server", s.o.ServerID)
			leader = ok
			swept = time.Time{}
		}
		if leader {
			s.rescue(ctx)
			// Rollouts and soaks of environments that no server runs (their
			// server died): taken over here (promote.go).
			if err := s.resumeOwned(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("resume promotions", "err", err)
			}
			if time.Since(swept) >= s.o.SweepInterval {
				if _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
					s.log.Warn("sweep failed", "err", err)
				}
				swept = time.Now()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// rescue gives every bake whose owner's lease ran out a new job; whichever
// server claims it takes it over.
func (s *Service) rescue(ctx context.Context) {
	ids, err := s.store.ExpiredBakes(ctx, s.o.Lease)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("finding expired bakes failed", "err", err)
		}
		return
	}
	for _, id := range ids {
		if _, err := s.river.Insert(ctx, hook.JobArgs{BakeID: id}, nil); err != nil {
			s.log.Warn("rescuing bake failed", "bake", id, "err", err)
			continue
		}
		s.log.Info("bake rescued from a server that stopped renewing it", "bake", id)
	}
	s.rescueQueued(ctx)
}

// rescueQueued gives a new job to every bake queued for longer than Lease
// whose project runs no bake: nothing holds such a bake back, so its job
// is lost, fetched by a server that died before it could claim or snooze
// it (River would retry that job only after riverRescue). A job too many
// is harmless: its claim finds the bake taken and completes.
func (s *Service) rescueQueued(ctx context.Context) {
	queued, err := s.store.Bakes(ctx, store.BakeQuery{States: []store.BakeState{store.Queued}, Limit: 1000})
	if err != nil {
		return
	}
	running, err := s.store.Bakes(ctx, store.BakeQuery{States: []store.BakeState{store.Running}, Limit: 1000})
	if err != nil {
		return
	}
	busy := map[string]bool{}
	for _, b := range running {
		busy[b.Project] = true
	}
	for _, b := range queued {
		if busy[b.Project] || time.Since(b.Updated) < s.o.Lease {
			continue
		}
		busy[b.Project] = true // one job per project and turn: the first claims it, the rest wait
		if _, err := s.river.Insert(ctx, hook.JobArgs{BakeID: b.ID}, nil); err != nil {
			s.log.Warn("rescuing queued bake failed", "bake", b.ID, "err", err)
			continue
		}
		s.log.Info("queued bake given a new job: nothing held it back", "bake", b.ID, "project", b.Project)
	}
}

// wireProgress is Progress as published to the other servers.
type wireProgress struct {
	Server    string          `json:"server"`
	BakeID    int64           `json:"bake"`
	Project   string          `json:"project"`
	Step      string          `json:"step,omitempty"`
	StepState store.StepState `json:"step_state,omitempty"`
	BakeState store.BakeState `json:"bake_state,omitempty"`
	Detail    string          `json:"detail,omitempty"`
	Time      time.Time       `json:"time"`
	Cancel    bool            `json:"cancel,omitempty"`
}

// maxWireDetail bounds a published Detail (a notification's payload is
// small); subscribers re-read the store for the whole of it.
const maxWireDetail = 1000

// publishLoop sends this server's progress to the other servers until ctx
// is done.
func (s *Service) publishLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-s.sent:
			w := wireProgress{Server: s.o.ServerID, BakeID: p.BakeID, Project: p.Project, Step: p.Step,
				StepState: p.StepState, BakeState: p.BakeState, Detail: p.Detail, Time: p.Time, Cancel: p.cancel}
			if len(w.Detail) > maxWireDetail {
				w.Detail = w.Detail[:maxWireDetail]
			}
			b, err := json.Marshal(w)
			if err == nil {
				err = s.store.Publish(ctx, string(b))
			}
			if err != nil && ctx.Err() == nil {
				s.log.Debug("publishing progress failed", "err", err)
			}
		}
	}
}

// listenLoop delivers the other servers' progress to this server's
// subscribers, and stops a bake running here when another server was asked
// to cancel it, until ctx is done.
func (s *Service) listenLoop(ctx context.Context) {
	err := s.store.Listen(ctx, func(payload string) {
		var w wireProgress
		if json.Unmarshal([]byte(payload), &w) != nil || w.Server == s.o.ServerID {
			return
		}
		if w.Cancel {
			s.mu.Lock()
			stop := s.active[w.BakeID]
			s.mu.Unlock()
			if stop != nil {
				stop(errCancelRequested)
			}
		}
		s.deliver(Progress{BakeID: w.BakeID, Project: w.Project, Step: w.Step, StepState: w.StepState,
			BakeState: w.BakeState, Detail: w.Detail, Time: w.Time, Remote: true})
	})
	if err != nil && ctx.Err() == nil {
		s.log.Warn("listening for other servers' progress failed", "err", err)
	}
}
