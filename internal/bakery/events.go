package bakery

import (
	"context"

	"github.com/riverqueue/river"

	"kiln/internal/notify"
	"kiln/internal/store"
)

// Notifier is told of the bakery's events and delivers them with the
// service's River workers; *notify.Notifier satisfies it. Emit must be
// idempotent per event (a resumed bake emits bake.started again).
// Prepare returns the queueing of e as work for the store transaction
// that records a bake's or promotion's end, so that a crash between the
// two cannot lose the event.
type Notifier interface {
	Emit(ctx context.Context, e notify.Event) error
	Prepare(ctx context.Context, e notify.Event) (store.TxFunc, error)
	Register(workers *river.Workers) error
}

// emit hands e to the notifier, if any. A failure is logged, not
// returned: the bake or promotion itself went as it went.
func (s *Service) emit(ctx context.Context, e notify.Event) {
	if s.o.Notifier == nil {
		return
	}
	if err := s.o.Notifier.Emit(context.WithoutCancel(ctx), e); err != nil {
		s.log.Warn("queue notification", "project", e.Project, "event", e.Event, "err", err)
	}
}

// prepare is e's queueing for the transaction that records what e tells;
// nil without a notifier or anyone who wants e.
func (s *Service) prepare(ctx context.Context, e notify.Event) (store.TxFunc, error) {
	if s.o.Notifier == nil {
		return nil, nil
	}
	return s.o.Notifier.Prepare(context.WithoutCancel(ctx), e)
}

// bakeEvent is the event of bake b reaching state; "" for states that
// send none (cancelled).
func bakeEvent(b *store.Bake, state store.BakeState, image, reason string) notify.Event {
	e := notify.Event{Project: b.Project, Bake: b.ID, Image: image, Reason: reason, Commit: b.Commit, Repo: b.Repo}
	switch state {
	case store.Running:
		e.Event = notify.BakeStarted
	case store.Succeeded:
		e.Event = notify.BakeSucceeded
	case store.Failed:
		e.Event = notify.BakeFailed
	}
	return e
}

// promotionEvent is the event of promotion p ending in state.
func promotionEvent(p Promotion, state store.PromotionState, reason string) notify.Event {
	e := notify.Event{Project: p.Project, Promotion: p.ID, Image: p.ImageID, Environment: p.Env, Reason: reason,
		Event: notify.PromotionFailed}
	if state == store.PromotionSucceeded {
		e.Event = notify.PromotionSucceeded
		if p.Cause == CauseRollback {
			e.Event = notify.PromotionRolledBack
		}
	}
	return e
}
