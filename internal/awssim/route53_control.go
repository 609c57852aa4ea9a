package awssim

import (
	"encoding/json"
	"errors"
	"net/http"
)

// Route 53's control endpoints, under /_sim/route53/:
//
//	GET /_sim/route53/zones        every zone (id, name, private, record count)
//	GET /_sim/route53/zones/{id}   one zone and its record sets, in Route 53's order

// ZoneInfo is a hosted zone as the control API shows it.
type ZoneInfo struct {
	ID      string       `json:"id"`
	Name    string       `json:"name"`
	Private bool         `json:"private"`
	Comment string       `json:"comment,omitempty"`
	Count   int          `json:"records"`
	Records []RecordInfo `json:"record_sets,omitempty"`
}

// RecordInfo is one record set as the control API shows it.
type RecordInfo struct {
	Name          string   `json:"name"`
	Type          string   `json:"type"`
	SetIdentifier string   `json:"set_identifier,omitempty"`
	Weight        *int64   `json:"weight,omitempty"`
	TTL           *int64   `json:"ttl,omitempty"`
	Values        []string `json:"values,omitempty"`
	Alias         string   `json:"alias,omitempty"`
}

// Zones returns every hosted zone, in creation order.
func (s *Sim) Zones() []ZoneInfo {
	s.lock()
	defer s.mu.Unlock()
	out := make([]ZoneInfo, 0, len(s.r53.order))
	for _, z := range s.r53.order {
		out = append(out, z.info(false))
	}
	return out
}

// Zone returns a hosted zone (id with or without /hostedzone/) and its
// record sets.
func (s *Sim) Zone(id string) (ZoneInfo, bool) {
	s.lock()
	defer s.mu.Unlock()
	z, err := s.zoneLocked(id)
	if err != nil {
		return ZoneInfo{}, false
	}
	return z.info(true), true
}

func (z *hostedZone) info(records bool) ZoneInfo {
	zi := ZoneInfo{ID: z.id, Name: z.name, Private: z.private, Comment: z.comment, Count: len(z.records)}
	if records {
		for _, rs := range z.records {
			ri := RecordInfo{Name: rs.Name, Type: rs.Type, SetIdentifier: rs.SetIdentifier, Weight: rs.Weight, TTL: rs.TTL, Values: rs.values()}
			if rs.Alias != nil {
				ri.Alias = rs.Alias.DNSName + " (" + rs.Alias.HostedZoneID + ")"
			}
			zi.Records = append(zi.Records, ri)
		}
	}
	return zi
}

func (s *Sim) serveRoute53Control(w http.ResponseWriter, hr *http.Request, parts []string) {
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	switch {
	case hr.Method == http.MethodGet && len(parts) == 1 && parts[0] == "zones":
		reply(http.StatusOK, s.Zones())
	case hr.Method == http.MethodGet && len(parts) == 2 && parts[0] == "zones":
		z, ok := s.Zone(parts[1])
		if !ok {
			reply(http.StatusNotFound, map[string]string{"error": ErrNotFound.Error()})
			return
		}
		reply(http.StatusOK, z)
	default:
		reply(http.StatusNotFound, map[string]string{"error": errors.New("no control endpoint " + hr.Method + " " + hr.URL.Path).Error()})
	}
}
