package awssim

import (
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
)

// InstanceInfo is a read-only snapshot of an instance, for tests and the
// control API.
type InstanceInfo struct {
	ID               string            `json:"id"`
	State            string            `json:"state"`
	ImageID          string            `json:"image_id"`
	InstanceType     string            `json:"instance_type"`
	PrivateIP        string            `json:"private_ip"`
	PublicIP         string            `json:"public_ip,omitempty"`
	LaunchTime       time.Time         `json:"launch_time"`
	ShutdownBehavior string            `json:"shutdown_behavior"`
	KeyName          string            `json:"key_name,omitempty"`
	IAMProfile       string            `json:"iam_profile,omitempty"` // the active association's profile ARN
	SecurityGroupIDs []string          `json:"security_group_ids,omitempty"`
	Tags             map[string]string `json:"tags,omitempty"`
	// Console is everything the guest wrote (not only what is posted).
	Console string `json:"console,omitempty"`
	// ExitCode is the user-data script's status; -1 while it runs or when
	// there is none.
	ExitCode int `json:"exit_code"`
}

func (s *Sim) infoLocked(in *instance) InstanceInfo {
	info := InstanceInfo{
		ID: in.id, State: in.state, ImageID: in.spec.ImageID, InstanceType: in.spec.InstanceType,
		PrivateIP: in.privateIP, PublicIP: in.publicIP, LaunchTime: in.launchTime,
		ShutdownBehavior: in.spec.ShutdownBehavior, Tags: maps.Clone(s.tags.get(in.id)),
		Console: string(in.console), ExitCode: in.exitCode, KeyName: in.spec.KeyName,
		SecurityGroupIDs: slices.Clone(in.spec.SecurityGroupIDs),
	}
	if in.assoc != nil {
		info.IAMProfile = in.assoc.arn
	}
	return info
}

// Instance returns a snapshot of one instance (ignoring consistency windows).
func (s *Sim) Instance(id string) (InstanceInfo, bool) {
	s.lock()
	defer s.mu.Unlock()
	in, ok := s.instances[id]
	if !ok {
		return InstanceInfo{}, false
	}
	return s.infoLocked(in), true
}

// Instances returns snapshots of every instance, oldest first.
func (s *Sim) Instances() []InstanceInfo {
	s.lock()
	defer s.mu.Unlock()
	out := make([]InstanceInfo, 0, len(s.instances))
	for _, in := range s.instOrder {
		if !in.removed {
			out = append(out, s.infoLocked(in))
		}
	}
	return out
}

// ImageInfo is a read-only snapshot of an image, for tests and soaks.
type ImageInfo struct {
	ID    string            `json:"id"`
	Name  string            `json:"name"`
	State string            `json:"state"`
	Owner string            `json:"owner"`
	Tags  map[string]string `json:"tags,omitempty"`
}

// Images returns snapshots of every registered image (deregistered ones
// are gone), oldest first, ignoring consistency windows.
func (s *Sim) Images() []ImageInfo {
	s.lock()
	defer s.mu.Unlock()
	out := make([]ImageInfo, 0, len(s.imgOrder))
	for _, im := range s.imgOrder {
		out = append(out, ImageInfo{ID: im.id, Name: im.name, State: im.state, Owner: im.owner, Tags: maps.Clone(s.tags.get(im.id))})
	}
	return out
}

// ImageState returns an image's state ("" when unknown).
func (s *Sim) ImageState(id string) string {
	s.lock()
	defer s.mu.Unlock()
	if im, ok := s.images[id]; ok {
		return im.state
	}
	return ""
}

// DefaultSubnets returns the default VPC's subnet ids, one per zone, of
// the simulator's region.
func (s *Sim) DefaultSubnets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, sn := range s.regionSubnetsLocked(s.opts.Region) {
		out = append(out, sn.id)
	}
	return out
}

// serveControl is the JSON control API under /_sim/:
//
//	GET    /_sim/calls                      {"calls":{...},"throttled":{...}}
//	DELETE /_sim/calls                      reset the counters
//	GET    /_sim/instances                  every instance
//	GET    /_sim/instances/{id}             one instance (with console)
//	POST   /_sim/instances/{id}/{op}        op: stop | start | terminate | reboot
//	POST   /_sim/instances/{id}/tags        {"set":{"k":"v"},"remove":["k2"]} (any resource id)
//	POST   /_sim/instances/{id}/profile     {"profile":"name or ARN"} replaces the instance profile ("" removes it)
//	POST   /_sim/faults                     a Fault: {"action","code","status","count","rate","message","body","after"}
//	DELETE /_sim/faults                     clear faults and latency
//	GET    /_sim/faults/profile             the fault profile's sections and what it injected
//	POST   /_sim/faults/profile             {"profile":"eventual,flaky","seed":42} ("" turns it off)
//	POST   /_sim/latency                    {"action":"","ms":250}
//	POST   /_sim/throttle                   {"enabled":true}
//	POST   /_sim/images/fail                {"count":1}: the next CreateImage calls fail
//	POST   /_sim/advance                    {"seconds":60} (manual clock only)
//	GET    /_sim/events                     recent events and delivery counts
//	*      /_sim/{service}/...              a service's own (service.control): autoscaling
func (s *Sim) serveControl(w http.ResponseWriter, r *http.Request) {
	path := strings.Trim(strings.TrimPrefix(r.URL.Path, controlPrefix), "/")
	parts := strings.Split(path, "/")
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	fail := func(status int, err error) { reply(status, map[string]string{"error": err.Error()}) }
	decode := func(v any) bool {
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(v); err != nil {
			fail(http.StatusBadRequest, err)
			return false
		}
		return true
	}
	switch {
	case path == "calls" && r.Method == http.MethodGet:
		c, t := s.CallCounts()
		reply(http.StatusOK, map[string]any{"calls": c, "throttled": t})
	case path == "calls" && r.Method == http.MethodDelete:
		s.ResetCalls()
		reply(http.StatusOK, map[string]bool{"ok": true})
	case path == "instances" && r.Method == http.MethodGet:
		list := s.Instances()
		for i := range list {
			list[i].Console = ""
		}
		reply(http.StatusOK, list)
	case len(parts) == 2 && parts[0] == "instances" && r.Method == http.MethodGet:
		in, ok := s.Instance(parts[1])
		if !ok {
			fail(http.StatusNotFound, ErrNotFound)
			return
		}
		reply(http.StatusOK, in)
	case len(parts) == 3 && parts[0] == "instances" && parts[2] == "tags" && r.Method == http.MethodPost:
		var body struct {
			Set    map[string]string `json:"set"`
			Remove []string          `json:"remove"`
		}
		if !decode(&body) {
			return
		}
		s.controlResult(reply, fail, s.SetTags(parts[1], body.Set, body.Remove...))
	case len(parts) == 3 && parts[0] == "instances" && parts[2] == "profile" && r.Method == http.MethodPost:
		var body struct {
			Profile string `json:"profile"`
		}
		if !decode(&body) {
			return
		}
		s.controlResult(reply, fail, s.SetInstanceProfile(parts[1], body.Profile))
	case len(parts) == 3 && parts[0] == "instances" && r.Method == http.MethodPost:
		op := map[string]func(string) error{"stop": s.StopInstance, "start": s.StartInstance, "terminate": s.TerminateInstance, "reboot": s.RebootInstance}[parts[2]]
		if op == nil {
			fail(http.StatusNotFound, errors.New("unknown operation "+parts[2]))
			return
		}
		s.controlResult(reply, fail, op(parts[1]))
	case path == "faults" && r.Method == http.MethodPost:
		var f Fault
		if !decode(&f) {
			return
		}
		if f.Code == "" {
			fail(http.StatusBadRequest, errors.New("fault needs a code"))
			return
		}
		s.InjectFault(f)
		reply(http.StatusOK, map[string]bool{"ok": true})
	case path == "faults" && r.Method == http.MethodDelete:
		s.ClearFaults()
		reply(http.StatusOK, map[string]bool{"ok": true})
	case path == "faults/profile" && r.Method == http.MethodGet:
		reply(http.StatusOK, map[string]any{"profile": s.FaultProfile().Names(), "stats": s.FaultStats()})
	case path == "faults/profile" && r.Method == http.MethodPost:
		var body struct {
			Profile string `json:"profile"` // names, "eventual,flaky"; "" turns the profile off
			Seed    uint64 `json:"seed"`
		}
		if !decode(&body) {
			return
		}
		var p *Profile
		if body.Profile != "" {
			var err error
			if p, err = NamedProfile(body.Profile); err != nil {
				fail(http.StatusBadRequest, err)
				return
			}
			p.Seed = body.Seed
		}
		s.SetFaultProfile(p)
		reply(http.StatusOK, map[string]any{"profile": p.Names(), "seed": s.FaultSeed()})
	case path == "latency" && r.Method == http.MethodPost:
		var body struct {
			Action string  `json:"action"`
			MS     float64 `json:"ms"`
		}
		if !decode(&body) {
			return
		}
		s.SetLatency(body.Action, time.Duration(body.MS*float64(time.Millisecond)))
		reply(http.StatusOK, map[string]bool{"ok": true})
	case path == "throttle" && r.Method == http.MethodPost:
		var body struct {
			Enabled bool `json:"enabled"`
		}
		if !decode(&body) {
			return
		}
		s.SetThrottle(body.Enabled)
		reply(http.StatusOK, map[string]bool{"ok": true})
	case path == "images/fail" && r.Method == http.MethodPost:
		var body struct {
			Count int `json:"count"`
		}
		if !decode(&body) {
			return
		}
		s.FailNextImages(body.Count)
		reply(http.StatusOK, map[string]bool{"ok": true})
	case path == "advance" && r.Method == http.MethodPost:
		var body struct {
			Seconds float64 `json:"seconds"`
		}
		if !decode(&body) {
			return
		}
		if !s.opts.ManualClock {
			fail(http.StatusConflict, errors.New("the simulator runs on the real clock"))
			return
		}
		s.Advance(time.Duration(body.Seconds * float64(time.Second)))
		reply(http.StatusOK, map[string]string{"now": s.Now().Format(time.RFC3339)})
	case path == "events" && r.Method == http.MethodGet:
		d, f, dr := s.EventStats()
		reply(http.StatusOK, map[string]any{"events": s.Events(), "delivered": d, "failed": f, "dropped": dr})
	default:
		for _, svc := range services {
			if svc.control != nil && parts[0] == svc.name {
				svc.control(s, w, r, parts[1:])
				return
			}
		}
		fail(http.StatusNotFound, errors.New("no control endpoint "+r.Method+" "+r.URL.Path))
	}
}

func (s *Sim) controlResult(reply func(int, any), fail func(int, error), err error) {
	switch {
	case err == nil:
		reply(http.StatusOK, map[string]bool{"ok": true})
	case errors.Is(err, ErrNotFound):
		fail(http.StatusNotFound, err)
	default:
		fail(http.StatusConflict, err)
	}
}
