package awssim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Detail types of the events the simulator pushes.
const (
	DetailInstanceState     = "EC2 Instance State-change Notification"
	DetailAMIState          = "EC2 AMI State Change"
	DetailRefreshSucceeded  = "EC2 Auto Scaling Instance Refresh Succeeded"
	DetailRefreshFailed     = "EC2 Auto Scaling Instance Refresh Failed"
	DetailRefreshCheckpoint = "EC2 Auto Scaling Instance Refresh Checkpoint Reached"
	DetailRefreshStarted    = "EC2 Auto Scaling Instance Refresh Started"
	DetailRefreshCancelled  = "EC2 Auto Scaling Instance Refresh Cancelled"
)

// Event is an EventBridge event, in the JSON an API destination receives.
type Event struct {
	Version    string   `json:"version"`
	ID         string   `json:"id"`
	DetailType string   `json:"detail-type"`
	Source     string   `json:"source"`
	Account    string   `json:"account"`
	Time       string   `json:"time"`
	Region     string   `json:"region"`
	Resources  []string `json:"resources"`
	Detail     any      `json:"detail"`
}

const eventHistory = 1000

type events struct {
	mu        sync.Mutex
	queue     []queuedEvent // in publishing order; due times may disagree
	limit     int
	seq       uint64
	dropped   int
	delivered int
	failed    int
	history   []Event // the last eventHistory events, delivered or not
	notify    chan struct{}
	client    *http.Client
}

// queuedEvent is an event waiting for its delivery time (later than its
// publication under the events fault profile).
type queuedEvent struct {
	ev  Event
	due time.Time
}

func (e *events) init(limit int) {
	e.limit = limit
	e.notify = make(chan struct{}, 1)
	e.client = &http.Client{Timeout: 5 * time.Second}
}

// PublishEvent queues an event for the targets and records it. It never
// blocks and may be called with or without s.mu held; when the queue is
// full the event is dropped (EventBridge is best effort too).
// autoscaling*.go publishes the instance-refresh events through it:
//
//	s.PublishEvent("aws.autoscaling", DetailRefreshSucceeded, []string{groupARN},
//		map[string]any{"InstanceRefreshId": id, "AutoScalingGroupName": name}, now)
func (s *Sim) PublishEvent(source, detailType string, resources []string, detail any, at time.Time) {
	copies := s.eventCopies() // the events fault profile: dropped, doubled, late
	e := &s.ev
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seq++
	ev := Event{
		Version: "0", ID: eventID(e.seq), DetailType: detailType, Source: source,
		Account: s.opts.Account, Time: at.UTC().Format(time.RFC3339), Region: s.opts.Region,
		Resources: resources, Detail: detail,
	}
	if resources == nil {
		ev.Resources = []string{}
	}
	e.history = append(e.history, ev)
	if len(e.history) > eventHistory {
		e.history = append(e.history[:0:0], e.history[len(e.history)-eventHistory/2:]...)
	}
	for _, d := range copies {
		s.routeEventLocked(ev, at, d) // EventBridge rules into SQS queues (eventbridge.go)
	}
	if len(s.opts.Events) == 0 {
		return
	}
	for _, d := range copies {
		if len(e.queue) >= e.limit {
			e.dropped++
			return
		}
		e.queue = append(e.queue, queuedEvent{ev: ev, due: at.Add(d)})
	}
	select {
	case e.notify <- struct{}{}:
	default:
	}
}

func eventID(n uint64) string {
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", uint32(n*2654435761), uint16(n>>8), 0x4000|uint16(n)&0xfff, 0x8000|uint16(n>>4)&0x3fff, n)
}

// Events returns the most recent events (up to 1000), oldest first.
func (s *Sim) Events() []Event {
	s.ev.mu.Lock()
	defer s.ev.mu.Unlock()
	return append([]Event(nil), s.ev.history...)
}

// EventStats reports delivered, failed and dropped event counts.
func (s *Sim) EventStats() (delivered, failed, dropped int) {
	s.ev.mu.Lock()
	defer s.ev.mu.Unlock()
	return s.ev.delivered, s.ev.failed, s.ev.dropped
}

func (s *Sim) instanceEventLocked(in *instance, at time.Time) {
	s.PublishEvent("aws.ec2", DetailInstanceState,
		[]string{"arn:aws:ec2:" + s.opts.Region + ":" + s.opts.Account + ":instance/" + in.id},
		map[string]string{"instance-id": in.id, "state": in.state}, at)
}

func (s *Sim) imageEventLocked(im *image, at time.Time) {
	s.PublishEvent("aws.ec2", DetailAMIState,
		[]string{"arn:aws:ec2:" + s.opts.Region + "::image/" + im.id},
		map[string]string{"RequestId": newRequestID(), "ImageId": im.id, "State": im.state, "ErrorMessage": ""}, at)
}

// flushIfManual delivers queued events right away with a manual clock, so a
// test sees the events of an out-of-band change without calling Advance.
func (s *Sim) flushIfManual() {
	if s.opts.ManualClock {
		s.ev.deliverAll(context.Background(), s.opts.Events, s.log, s.Now())
	}
}

// take removes the events due at now from the queue, in due order, and
// returns them with the earliest due time of those left (zero: none).
func (e *events) take(now time.Time) ([]Event, time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var due []queuedEvent
	var next time.Time
	left := e.queue[:0]
	for _, q := range e.queue {
		if q.due.After(now) {
			left = append(left, q)
			if next.IsZero() || q.due.Before(next) {
				next = q.due
			}
			continue
		}
		due = append(due, q)
	}
	clear(e.queue[len(left):])
	e.queue = left
	slices.SortStableFunc(due, func(a, b queuedEvent) int { return a.due.Compare(b.due) })
	out := make([]Event, len(due))
	for i, q := range due {
		out[i] = q.ev
	}
	return out, next
}

// deliverAll posts every event due at now to every target, one at a time,
// and returns when the next one falls due (zero: none queued).
func (e *events) deliverAll(ctx context.Context, targets []EventTarget, log *slog.Logger, now time.Time) time.Time {
	evs, next := e.take(now)
	for _, ev := range evs {
		body, err := json.Marshal(ev)
		if err != nil {
			continue
		}
		for _, t := range targets {
			err := e.post(ctx, t, body)
			e.mu.Lock()
			if err != nil {
				e.failed++
			} else {
				e.delivered++
			}
			e.mu.Unlock()
			if err != nil {
				log.Debug("event not delivered", "url", t.URL, "err", err)
			}
		}
	}
	return next
}

func (e *events) post(ctx context.Context, t EventTarget, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("post event %s: %w", t.URL, err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "Amazon/EventBridge/ApiDestinations")
	if t.APIKey != "" {
		req.Header.Set(t.Header, t.APIKey)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("post event %s: %w", t.URL, err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("post event %s: status %d", t.URL, resp.StatusCode)
	}
	return nil
}

// run delivers events as they fall due until ctx is done; clock is the
// simulator's.
func (e *events) run(ctx context.Context, targets []EventTarget, log *slog.Logger, clock func() time.Time) error {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-e.notify:
		case <-t.C:
		}
		now := clock()
		wait := time.Hour
		if next := e.deliverAll(ctx, targets, log, now); !next.IsZero() {
			wait = max(next.Sub(now), time.Millisecond)
		}
		t.Reset(wait)
	}
}
