package awssim

import "strings"

// CreateOrUpdateTags adds or overwrites tags of Auto Scaling groups
// (ResourceType auto-scaling-group, ResourceId the group's name): at most
// 50 tags per group; keys starting with aws: are refused.

const asgMaxTags = 50

func (s *Sim) createOrUpdateTags(r *request) (any, error) {
	type change struct {
		group, key, value string
		propagate         bool
	}
	var changes []change
	for _, p := range r.memberPrefixes("Tags") {
		if rt := r.str(p + ".ResourceType"); rt != "auto-scaling-group" {
			return nil, validation("Invalid resource type: %s (want auto-scaling-group)", rt)
		}
		k := r.str(p + ".Key")
		if k == "" {
			return nil, validation("Tag key must not be empty")
		}
		if strings.HasPrefix(strings.ToLower(k), "aws:") {
			return nil, validation("Tag keys starting with 'aws:' are reserved for internal use")
		}
		prop, err := r.boolean(p + ".PropagateAtLaunch")
		if err != nil {
			return nil, err
		}
		changes = append(changes, change{r.str(p + ".ResourceId"), k, r.str(p + ".Value"), prop})
	}
	if len(changes) == 0 {
		return nil, validation("1 validation error detected: Value null at 'tags' failed to satisfy constraint: Member must not be null")
	}
	s.lock()
	defer s.mu.Unlock()
	for _, c := range changes {
		if _, err := s.groupNamedLocked(c.group); err != nil {
			return nil, err
		}
	}
	for _, c := range changes {
		g, _ := s.groupNamedLocked(c.group)
		found := false
		for i := range g.tags {
			if g.tags[i].key == c.key {
				g.tags[i].value, g.tags[i].propagate, found = c.value, c.propagate, true
			}
		}
		if !found {
			if len(g.tags) == asgMaxTags {
				return nil, apiErr("LimitExceeded", "The quota of %d tags per group has been reached", asgMaxTags)
			}
			g.tags = append(g.tags, asgTag{key: c.key, value: c.value, propagate: c.propagate})
		}
	}
	return nil, nil
}
