package awssim

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// A Profile is a mix of faults the simulator injects by itself, at random,
// as AWS does: reads that do not see a create yet, throttling under other
// tenants' load, 5xx answers and reset connections, capacity shortages,
// and events lost, doubled, late or out of order. A nil section is off.
// Every duration is simulated time, multiplied by Options.TimeScale like
// the state machines' durations, but throttle's: AWS's buckets refill at
// their real rates at any TimeScale, and the other tenants' bursts come
// in real time too.
//
// The random choices come from one generator seeded by Seed (0: the
// simulator's Options.Seed, else a random seed, reported by FaultSeed), so
// the same seed and the same sequence of calls make the same faults.
type Profile struct {
	Seed     uint64          `yaml:"seed"`
	Eventual *EventualFaults `yaml:"eventual"`
	Throttle *ThrottleFaults `yaml:"throttle"`
	Flaky    *FlakyFaults    `yaml:"flaky"`
	Capacity *CapacityFaults `yaml:"capacity"`
	Events   *EventFaults    `yaml:"events"`
}

// EventualFaults is eventual consistency: a new instance, image (created
// or copied), security group, key pair, Auto Scaling group or Route 53
// record answers NotFound to reads (or is not listed) for a random time
// up to NotFound;
// tags set by CreateTags appear a random time up to TagsLate later.
// Terminated instances stay listed (Durations.TerminatedVisible) anyway.
type EventualFaults struct {
	NotFound time.Duration `yaml:"not_found"` // default 2s
	TagsLate time.Duration `yaml:"tags_late"` // default 1s
}

// ThrottleFaults turns on AWS's request buckets, and every Every another
// tenant's burst takes Drain (a fraction) of the tokens of every bucket
// of the account.
type ThrottleFaults struct {
	Every time.Duration `yaml:"every"` // default 10s
	Drain float64       `yaml:"drain"` // default 0.8
}

// FlakyFaults fail or slow down calls of every service at random: a
// fraction Errors answer 500 InternalError or 503 ServiceUnavailable, a
// fraction Resets have their connection reset before any answer, and a
// fraction Delays are answered Delay late. The call is not served when
// it fails or is reset.
type FlakyFaults struct {
	Errors float64       `yaml:"errors"` // default 0.01
	Resets float64       `yaml:"resets"` // default 0.005
	Delays float64       `yaml:"delays"` // default 0.01
	Delay  time.Duration `yaml:"delay"`  // default 2s
}

// CapacityFaults are capacity shortages: a RunInstances of an instance
// type in a zone that has none starts one with probability Rate, and for
// For every RunInstances of that type in that zone answers
// InsufficientInstanceCapacity (500), as AWS does when a zone runs out.
type CapacityFaults struct {
	Rate float64       `yaml:"rate"` // default 0.05
	For  time.Duration `yaml:"for"`  // default 2m
}

// EventFaults spoil state-change events, on the push path (Options.Events)
// and through EventBridge rules into SQS alike: a fraction Drop is lost,
// a fraction Duplicate is delivered twice, and every copy is delivered a
// random time up to Delay late, so events arrive out of order.
type EventFaults struct {
	Drop      float64       `yaml:"drop"`      // default 0.05
	Duplicate float64       `yaml:"duplicate"` // default 0.05
	Delay     time.Duration `yaml:"delay"`     // default 5s
}

// ProfileNames are the built-in profiles, in the order they are listed.
var ProfileNames = []string{"eventual", "throttle", "flaky", "capacity", "events", "chaos"}

// NamedProfile returns a built-in profile with its defaults: one of
// ProfileNames, or several joined by commas ("eventual,flaky"); "chaos"
// is all of them.
func NamedProfile(names string) (*Profile, error) {
	p := &Profile{}
	for n := range strings.SplitSeq(names, ",") {
		switch n = strings.TrimSpace(n); n {
		case "eventual":
			p.Eventual = &EventualFaults{}
		case "throttle":
			p.Throttle = &ThrottleFaults{}
		case "flaky":
			p.Flaky = &FlakyFaults{}
		case "capacity":
			p.Capacity = &CapacityFaults{}
		case "events":
			p.Events = &EventFaults{}
		case "chaos":
			p.Eventual, p.Throttle, p.Flaky = &EventualFaults{}, &ThrottleFaults{}, &FlakyFaults{}
			p.Capacity, p.Events = &CapacityFaults{}, &EventFaults{}
		default:
			return nil, fmt.Errorf("unknown fault profile %q (want %s, or a profile file)", n, strings.Join(ProfileNames, ", "))
		}
	}
	p.fill()
	return p, nil
}

// ParseProfile decodes a profile file (YAML; name is used in errors).
// Decoding is strict: an unknown field, a rate outside 0-1 or a negative
// duration is an error that names the file, the line and the field. A
// section present but empty ("flaky: {}") takes its defaults.
func ParseProfile(name string, data []byte) (*Profile, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	p := &Profile{}
	if err := dec.Decode(p); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	// An empty section ("flaky:") decodes as nil: it is named, so it is on.
	for _, sec := range []struct {
		key string
		on  func()
	}{
		{"eventual", func() { p.Eventual = orDefault(p.Eventual, &EventualFaults{}) }},
		{"throttle", func() { p.Throttle = orDefault(p.Throttle, &ThrottleFaults{}) }},
		{"flaky", func() { p.Flaky = orDefault(p.Flaky, &FlakyFaults{}) }},
		{"capacity", func() { p.Capacity = orDefault(p.Capacity, &CapacityFaults{}) }},
		{"events", func() { p.Events = orDefault(p.Events, &EventFaults{}) }},
	} {
		if nodeLine(&doc, sec.key) > 0 {
			sec.on()
		}
	}
	if err := p.validate(); err != nil {
		var fe *fieldError
		if errors.As(err, &fe) {
			if line := nodeLine(&doc, fe.path...); line > 0 {
				return nil, fmt.Errorf("%s:%d: %w", name, line, err)
			}
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p.fill()
	return p, nil
}

func orDefault[T any](v, def *T) *T {
	if v != nil {
		return v
	}
	return def
}

// fieldError is a bad value at a path of the profile file.
type fieldError struct {
	path []string
	msg  string
}

func (e *fieldError) Error() string { return strings.Join(e.path, ".") + ": " + e.msg }

// nodeLine is the line of the value at path in a YAML document (0: absent).
func nodeLine(n *yaml.Node, path ...string) int {
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	for _, key := range path {
		if n.Kind != yaml.MappingNode {
			return 0
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			return 0
		}
		n = next
	}
	return n.Line
}

func (p *Profile) validate() error {
	rate := func(sec, field string, v float64) error {
		if v < 0 || v > 1 {
			return &fieldError{[]string{sec, field}, fmt.Sprintf("%g is not a rate between 0 and 1", v)}
		}
		return nil
	}
	dur := func(sec, field string, v time.Duration) error {
		if v < 0 {
			return &fieldError{[]string{sec, field}, fmt.Sprintf("%s must not be negative", v)}
		}
		return nil
	}
	var errs []error
	if e := p.Eventual; e != nil {
		errs = append(errs, dur("eventual", "not_found", e.NotFound), dur("eventual", "tags_late", e.TagsLate))
	}
	if t := p.Throttle; t != nil {
		errs = append(errs, dur("throttle", "every", t.Every), rate("throttle", "drain", t.Drain))
	}
	if f := p.Flaky; f != nil {
		errs = append(errs, rate("flaky", "errors", f.Errors), rate("flaky", "resets", f.Resets),
			rate("flaky", "delays", f.Delays), dur("flaky", "delay", f.Delay))
		if f.Errors+f.Resets+f.Delays > 1 {
			errs = append(errs, &fieldError{[]string{"flaky"}, "errors, resets and delays add up to more than 1"})
		}
	}
	if c := p.Capacity; c != nil {
		errs = append(errs, rate("capacity", "rate", c.Rate), dur("capacity", "for", c.For))
	}
	if e := p.Events; e != nil {
		errs = append(errs, rate("events", "drop", e.Drop), rate("events", "duplicate", e.Duplicate), dur("events", "delay", e.Delay))
	}
	for _, err := range errs {
		if err != nil {
			return err // the first, with its line
		}
	}
	return nil
}

// fill gives zero fields of the sections that are on their defaults.
func (p *Profile) fill() {
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if e := p.Eventual; e != nil {
		defD(&e.NotFound, 2*time.Second)
		defD(&e.TagsLate, time.Second)
	}
	if t := p.Throttle; t != nil {
		defD(&t.Every, 10*time.Second)
		def(&t.Drain, 0.8)
	}
	if f := p.Flaky; f != nil {
		if f.Errors == 0 && f.Resets == 0 && f.Delays == 0 {
			f.Errors, f.Resets, f.Delays = 0.01, 0.005, 0.01
		}
		defD(&f.Delay, 2*time.Second)
	}
	if c := p.Capacity; c != nil {
		def(&c.Rate, 0.05)
		defD(&c.For, 2*time.Minute)
	}
	if e := p.Events; e != nil {
		if e.Drop == 0 && e.Duplicate == 0 {
			e.Drop, e.Duplicate = 0.05, 0.05
		}
		defD(&e.Delay, 5*time.Second)
	}
}

// Names lists the sections that are on, in ProfileNames order.
func (p *Profile) Names() []string {
	if p == nil {
		return nil
	}
	var out []string
	for i, on := range []bool{p.Eventual != nil, p.Throttle != nil, p.Flaky != nil, p.Capacity != nil, p.Events != nil} {
		if on {
			out = append(out, ProfileNames[i])
		}
	}
	return out
}

// FaultStats counts the faults a profile has injected.
type FaultStats struct {
	NotYet        int    `json:"not_yet"`        // creates given a NotFound window
	TagsLate      int    `json:"tags_late"`      // CreateTags applied late
	Bursts        int    `json:"bursts"`         // other tenants' bursts
	Errors        int    `json:"errors"`         // 500/503 answers
	Resets        int    `json:"resets"`         // connections reset
	Delays        int    `json:"delays"`         // calls answered late
	Shortages     int    `json:"shortages"`      // capacity shortages started
	Insufficient  int    `json:"insufficient"`   // RunInstances refused for capacity
	EventsDropped int    `json:"events_dropped"` // events lost
	EventsDoubled int    `json:"events_doubled"` // events delivered twice
	EventsDelayed int    `json:"events_delayed"` // event copies delivered late
	Seed          uint64 `json:"seed"`
}

// shortage is a capacity shortage of one instance type in one zone.
type shortage struct {
	itype, az string
	until     time.Time
}

// SetFaultProfile replaces the profile in effect (nil: none). Its seed (or
// the simulator's, or a random one) restarts the fault generator.
func (s *Sim) SetFaultProfile(p *Profile) {
	if p != nil {
		p = clone(p)
		p.fill()
	}
	seed := uint64(0)
	if p != nil {
		seed = p.Seed
	}
	if seed == 0 {
		seed = s.opts.Seed
	}
	for seed == 0 {
		seed = rand.Uint64()
	}
	f := &s.faults
	f.mu.Lock()
	defer f.mu.Unlock()
	f.profile = p
	f.seed = seed
	f.prng = newRNG(seed)
	f.shortages = nil
	f.stats = FaultStats{}
}

func clone[T any](v *T) *T {
	c := *v
	return &c
}

// FaultProfile returns the profile in effect (nil: none).
func (s *Sim) FaultProfile() *Profile {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	return s.faults.profile
}

// FaultSeed is the seed of the fault generator, to repeat a run.
func (s *Sim) FaultSeed() uint64 {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	return s.faults.seed
}

// FaultStats returns what the profile has injected so far.
func (s *Sim) FaultStats() FaultStats {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	st := s.faults.stats
	st.Seed = s.faults.seed
	return st
}

// roll reports, with probability p, true; f.mu is held.
func (f *faults) roll(p float64) bool { return p > 0 && f.prng.Float64() < p }

// upTo is a random duration in [0, d]; f.mu is held.
func (f *faults) upTo(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(f.prng.Int64N(int64(d) + 1))
}

// errConnReset makes ServeHTTP reset the connection without an answer.
var errConnReset = errors.New("awssim: connection reset (flaky)")

// flaky decides the flaky fault of one call: an error to answer (or
// errConnReset), or a delay before serving it.
func (s *Sim) flaky() (error, time.Duration) {
	f := &s.faults
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.profile == nil || f.profile.Flaky == nil {
		return nil, 0
	}
	fl := f.profile.Flaky
	x := f.prng.Float64()
	switch {
	case x < fl.Errors:
		f.stats.Errors++
		if f.prng.IntN(2) == 0 {
			return &APIError{Status: http.StatusInternalServerError, Code: "InternalError", Message: "An internal error has occurred"}, 0
		}
		return &APIError{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable", Message: "The service is unavailable. Please try again shortly."}, 0
	case x < fl.Errors+fl.Resets:
		f.stats.Resets++
		return errConnReset, 0
	case x < fl.Errors+fl.Resets+fl.Delays:
		f.stats.Delays++
		return nil, s.scaled(fl.Delay)
	}
	return nil, 0
}

// notYetLocked is when a resource created at now becomes visible to reads:
// Options.Consistency later, or under the eventual profile a random time
// up to its NotFound window later. s.mu is held.
func (s *Sim) notYetLocked(now time.Time) time.Time {
	d := s.opts.Consistency
	f := &s.root().faults
	f.mu.Lock()
	if f.profile != nil && f.profile.Eventual != nil {
		d = max(d, f.upTo(f.profile.Eventual.NotFound))
		f.stats.NotYet++
	}
	f.mu.Unlock()
	return now.Add(s.scaled(d))
}

// eventualLocked is when a security group, key pair, Auto Scaling group
// or Route 53 record created at now becomes visible to reads: now, but
// under the eventual profile a random time up to its NotFound window
// later. (Options.Consistency is the instances' and images' alone.) s.mu
// is held.
func (s *Sim) eventualLocked(now time.Time) time.Time {
	f := &s.root().faults
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.profile == nil || f.profile.Eventual == nil {
		return now
	}
	f.stats.NotYet++
	return now.Add(s.scaled(f.upTo(f.profile.Eventual.NotFound)))
}

// tagsLate is how long (simulated, unscaled) CreateTags' tags take to
// appear: 0 but under the eventual profile.
func (s *Sim) tagsLate() time.Duration {
	f := &s.root().faults
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.profile == nil || f.profile.Eventual == nil {
		return 0
	}
	d := f.upTo(f.profile.Eventual.TagsLate)
	if d > 0 {
		f.stats.TagsLate++
	}
	return d
}

// throttleProfile reports whether the throttle profile is on.
func (s *Sim) throttleProfile() bool {
	f := &s.faults
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.profile != nil && f.profile.Throttle != nil
}

// tenantBurst lets other tenants drain world's buckets when one of their
// bursts is due (the throttle profile).
func (s *Sim) tenantBurst(world *Sim) {
	f := &s.faults
	f.mu.Lock()
	if f.profile == nil || f.profile.Throttle == nil {
		f.mu.Unlock()
		return
	}
	// The buckets refill in real time whatever TimeScale is (a client's
	// rate is real), so the bursts come in real time too.
	every, drain := f.profile.Throttle.Every, f.profile.Throttle.Drain
	f.mu.Unlock()
	now := world.Now()
	t := world.buckets
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lastBurst.IsZero() {
		t.lastBurst = now
		return
	}
	if now.Sub(t.lastBurst) < every {
		return
	}
	t.lastBurst = now
	for _, b := range t.buckets {
		b.refill(now)
		b.tokens *= 1 - drain
	}
	f.mu.Lock()
	f.stats.Bursts++
	f.mu.Unlock()
}

// capacityLocked answers InsufficientInstanceCapacity when the zone has
// (or, by chance, now starts) a shortage of the type (the capacity
// profile). s.mu is held.
func (s *Sim) capacityLocked(itype, az string, now time.Time) error {
	f := &s.root().faults
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.profile == nil || f.profile.Capacity == nil {
		return nil
	}
	f.shortages = slices.DeleteFunc(f.shortages, func(sh shortage) bool { return !now.Before(sh.until) })
	short := slices.ContainsFunc(f.shortages, func(sh shortage) bool { return sh.itype == itype && sh.az == az })
	if !short && f.roll(f.profile.Capacity.Rate) {
		f.shortages = append(f.shortages, shortage{itype: itype, az: az, until: now.Add(s.scaled(f.profile.Capacity.For))})
		f.stats.Shortages++
		short = true
	}
	if !short {
		return nil
	}
	f.stats.Insufficient++
	return &APIError{Status: http.StatusInternalServerError, Code: "InsufficientInstanceCapacity",
		Message: fmt.Sprintf("We currently do not have sufficient %s capacity in the Availability Zone you requested (%s). Our system will be working on provisioning additional capacity.", itype, az)}
}

// eventCopies decides what becomes of one event on one path: how many
// copies are delivered (0 dropped, 1, or 2 duplicated) and each one's
// delay (simulated, scaled).
func (s *Sim) eventCopies() []time.Duration {
	f := &s.root().faults
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.profile == nil || f.profile.Events == nil {
		return []time.Duration{0}
	}
	ef := f.profile.Events
	if f.roll(ef.Drop) {
		f.stats.EventsDropped++
		return nil
	}
	n := 1
	if f.roll(ef.Duplicate) {
		f.stats.EventsDoubled++
		n = 2
	}
	out := make([]time.Duration, n)
	for i := range out {
		if out[i] = s.scaled(f.upTo(ef.Delay)); out[i] > 0 {
			f.stats.EventsDelayed++
		}
	}
	return out
}
