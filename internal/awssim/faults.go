package awssim

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// counters count calls and throttled calls per action.
type counters struct {
	mu        sync.Mutex
	calls     map[string]int
	throttles map[string]int
}

func (c *counters) init() { c.calls, c.throttles = map[string]int{}, map[string]int{} }

func (c *counters) add(act string) {
	c.mu.Lock()
	c.calls[act]++
	c.mu.Unlock()
}

func (c *counters) throttled(act string) {
	c.mu.Lock()
	c.throttles[act]++
	c.mu.Unlock()
}

// Calls returns how many requests named action (all of them, with action
// "") have reached the simulator, including failed and throttled ones.
func (s *Sim) Calls(action string) int {
	s.counters.mu.Lock()
	defer s.counters.mu.Unlock()
	if action == "" {
		n := 0
		for _, v := range s.counters.calls {
			n += v
		}
		return n
	}
	return s.counters.calls[action]
}

// Throttled returns how many requests named action ("" for all) were
// refused with RequestLimitExceeded.
func (s *Sim) Throttled(action string) int {
	s.counters.mu.Lock()
	defer s.counters.mu.Unlock()
	if action == "" {
		n := 0
		for _, v := range s.counters.throttles {
			n += v
		}
		return n
	}
	return s.counters.throttles[action]
}

// CallCounts returns a copy of every per-action counter.
func (s *Sim) CallCounts() (calls, throttled map[string]int) {
	s.counters.mu.Lock()
	defer s.counters.mu.Unlock()
	return maps.Clone(s.counters.calls), maps.Clone(s.counters.throttles)
}

// ResetCalls zeroes the counters.
func (s *Sim) ResetCalls() {
	s.counters.mu.Lock()
	defer s.counters.mu.Unlock()
	s.counters.init()
}

// Fault is an injected error for an action: the next Count calls fail (0:
// no count limit), each with probability Rate (0 means 1).
type Fault struct {
	Action  string `json:"action"`
	Code    string `json:"code"`
	Status  int    `json:"status,omitempty"` // default 500 for codes ending in "Error"/"Unavailable", else 400
	Message string `json:"message,omitempty"`
	// Body, when set, is answered instead of an AWS error document (an
	// HTML error page: a body no SDK can read a code from).
	Body  string  `json:"body,omitempty"`
	Count int     `json:"count,omitempty"`
	Rate  float64 `json:"rate,omitempty"`
	// After serves the call first and then answers the error: the call
	// is done but its answer lost, so a retry finds it already done.
	After bool `json:"after,omitempty"`
}

type faults struct {
	mu      sync.Mutex
	list    []*Fault
	latency map[string]time.Duration // "" applies to every action
	rng     *rand.Rand

	// The fault profile (profiles.go) and its own generator, so that a
	// seed repeats its faults whatever else draws random numbers.
	profile   *Profile
	seed      uint64
	prng      *rand.Rand
	shortages []shortage
	stats     FaultStats
}

func (f *faults) init() {
	f.latency = map[string]time.Duration{}
	f.rng = rand.New(rand.NewPCG(1, 2))
}

// InjectFault makes calls to f.Action fail with f.Code. Faults are checked
// in the order they were added; a counted fault is removed when spent.
func (s *Sim) InjectFault(f Fault) {
	if f.Status == 0 {
		f.Status = http.StatusBadRequest
		switch f.Code {
		case "InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable":
			f.Status = http.StatusInternalServerError
		case "RequestLimitExceeded", "Throttling":
			f.Status = http.StatusServiceUnavailable
		}
	}
	if f.Message == "" {
		f.Message = fmt.Sprintf("Injected fault %s", f.Code)
	}
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.list = append(s.faults.list, &f)
}

// ClearFaults removes every injected fault and added latency.
func (s *Sim) ClearFaults() {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.list = nil
	clear(s.faults.latency)
}

// SetLatency delays every call to action ("" for all actions) by d of real
// time before it is served.
func (s *Sim) SetLatency(action string, d time.Duration) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	if d <= 0 {
		delete(s.faults.latency, action)
		return
	}
	s.faults.latency[action] = d
}

func (f *faults) latencyFor(act string) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.latency[act] + f.latency[""]
}

// take returns the error of a fault that fires for this call, if any, and
// whether it comes after the call is served (Fault.After).
func (f *faults) take(act string) (*APIError, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, ft := range f.list {
		if ft.Action != act && ft.Action != "" {
			continue
		}
		if ft.Rate > 0 && ft.Rate < 1 && f.rng.Float64() >= ft.Rate {
			continue
		}
		if ft.Count > 0 {
			ft.Count--
			if ft.Count == 0 {
				f.list = append(f.list[:i], f.list[i+1:]...)
			}
		}
		return &APIError{Status: ft.Status, Code: ft.Code, Message: ft.Message, Body: ft.Body}, ft.After
	}
	return nil, false
}

// FailNextImages makes the next n CreateImage calls end in state failed.
func (s *Sim) FailNextImages(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failImgs = n
}

// --- out-of-band changes: "someone did it by hand in the console" ---

// ErrNotFound is returned by the out-of-band methods for an unknown id.
var ErrNotFound = fmt.Errorf("awssim: no such resource")

// ErrState is returned when the instance is in a state the change does not
// apply to.
var ErrState = fmt.Errorf("awssim: incorrect instance state")

func (s *Sim) outOfBand(id string, fn func(in *instance, now time.Time) error) error {
	now := s.lock()
	in, ok := s.instances[id]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("instance %s: %w", id, ErrNotFound)
	}
	err := fn(in, now)
	s.mu.Unlock()
	if err == nil {
		s.flushIfManual()
	}
	return err
}

// StopInstance stops a running instance out of band, as a person would in
// the console. Consistency windows and faults do not apply.
func (s *Sim) StopInstance(id string) error {
	return s.outOfBand(id, func(in *instance, now time.Time) error {
		if in.state != StateRunning && in.state != StatePending {
			return fmt.Errorf("stop %s in state %s: %w", id, in.state, ErrState)
		}
		s.stopLocked(in, now, userReason(now))
		return nil
	})
}

// StartInstance starts a stopped instance out of band.
func (s *Sim) StartInstance(id string) error {
	return s.outOfBand(id, func(in *instance, now time.Time) error {
		if in.state != StateStopped {
			return fmt.Errorf("start %s in state %s: %w", id, in.state, ErrState)
		}
		s.setStateLocked(in, StatePending, now, "")
		return nil
	})
}

// TerminateInstance terminates an instance out of band.
func (s *Sim) TerminateInstance(id string) error {
	return s.outOfBand(id, func(in *instance, now time.Time) error {
		s.terminateLocked(in, now, userReason(now))
		return nil
	})
}

// RebootInstance reboots a running instance out of band.
func (s *Sim) RebootInstance(id string) error {
	return s.outOfBand(id, func(in *instance, now time.Time) error {
		if in.state != StateRunning {
			return fmt.Errorf("reboot %s in state %s: %w", id, in.state, ErrState)
		}
		s.rebootLocked(in, now)
		return nil
	})
}

// SetTags changes the tags of any resource out of band: set adds or
// overwrites, remove deletes keys.
func (s *Sim) SetTags(id string, set map[string]string, remove ...string) error {
	s.lock()
	defer s.mu.Unlock()
	check, ok := taggable[resourceType(id)]
	if !ok || check(s, id, farFuture) != nil {
		return fmt.Errorf("tag %s: %w", id, ErrNotFound)
	}
	for k, v := range set {
		s.tags.set(id, k, v)
	}
	for _, k := range remove {
		s.tags.del(id, k)
	}
	return nil
}

// farFuture sees past every consistency window.
var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
