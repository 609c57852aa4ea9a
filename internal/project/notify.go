package project

import (
	"context"
	"fmt"
	"slices"

	"go.yaml.in/yaml/v3"

	"kiln/internal/notify"
	"kiln/internal/store"
)

// NotifyTarget is one entry of the file's notify: list.
type NotifyTarget = store.NotifyTarget

// CommitStatus is the file's commit_status: where a pushed bake's state
// is reported.
type CommitStatus = store.CommitStatus

// maxNotifyTargets bounds a project's notify: list.
const maxNotifyTargets = 20

// notifyTargets decodes notify: a list of {url, secret, events}. secret
// and url expand ${VAR}; events defaults to every event.
func (pp *projectParser) notifyTargets(n *yaml.Node, lines map[string]int) []NotifyTarget {
	if n.Kind != yaml.SequenceNode {
		pp.errorf(n.Line, "notify", "want a list of targets ({url: ..., secret: ..., events: [...]})")
		return nil
	}
	if len(n.Content) > maxNotifyTargets {
		pp.errorf(n.Line, "notify", "at most %d targets", maxNotifyTargets)
	}
	var out []NotifyTarget
	seen := map[string]bool{}
	for i, c := range n.Content {
		prefix := fmt.Sprintf("notify[%d]", i)
		if c.Kind != yaml.MappingNode {
			pp.errorf(c.Line, prefix, "want {url: ..., secret: ..., events: [...]}")
			continue
		}
		var t NotifyTarget
		local := map[string]int{}
		var eventsNode *yaml.Node
		pp.fields(c, prefix+".", local, map[string]func(*yaml.Node){
			"url": func(v *yaml.Node) {
				t.URL, _ = pp.expand(pp.str(v, prefix+".url"), v.Line, prefix+".url")
			},
			"secret": func(v *yaml.Node) {
				t.Secret, _ = pp.expand(pp.str(v, prefix+".secret"), v.Line, prefix+".secret")
			},
			"events": func(v *yaml.Node) {
				eventsNode = v
				t.Events = pp.strList(v, prefix+".events")
			},
		})
		for k, l := range local {
			lines[k] = l
		}
		line := c.Line
		if l, ok := local[prefix+".url"]; ok {
			line = l
		}
		switch {
		case t.URL == "":
			if _, ok := local[prefix+".url"]; !ok {
				pp.errorf(c.Line, prefix+".url", "must be set")
			}
		case seen[t.URL]:
			pp.errorf(line, prefix+".url", "listed twice")
		default:
			if err := notify.CheckURL(context.Background(), t.URL, nil); err != nil {
				pp.errorf(line, prefix+".url", "%v", err)
			}
		}
		seen[t.URL] = true
		if eventsNode != nil {
			if len(t.Events) == 0 && eventsNode.Kind == yaml.SequenceNode {
				pp.errorf(eventsNode.Line, prefix+".events", "empty: leave it out for every event")
			}
			for _, e := range t.Events {
				if !notify.Known(e) {
					pp.errorf(eventsNode.Line, prefix+".events", "unknown event %q (want one of %v)", e, notify.Events)
				}
			}
		} else {
			t.Events = slices.Clone(notify.Events)
		}
		out = append(out, t)
	}
	return out
}

// commitStatus decodes commit_status: {provider, api, token}. token
// expands ${VAR}; api defaults to the provider's public API.
func (pp *projectParser) commitStatus(n *yaml.Node, lines map[string]int) *CommitStatus {
	if n.Kind != yaml.MappingNode {
		pp.errorf(n.Line, "commit_status", "want {provider: github|gitlab, api: URL, token: ...}")
		return nil
	}
	var c CommitStatus
	local := map[string]int{}
	pp.fields(n, "commit_status.", local, map[string]func(*yaml.Node){
		"provider": func(v *yaml.Node) { c.Provider = pp.str(v, "commit_status.provider") },
		"api":      func(v *yaml.Node) { c.APIURL = pp.str(v, "commit_status.api") },
		"token": func(v *yaml.Node) {
			c.Token, _ = pp.expand(pp.str(v, "commit_status.token"), v.Line, "commit_status.token")
		},
	})
	for k, l := range local {
		lines[k] = l
	}
	at := func(field string) int {
		if l, ok := local["commit_status."+field]; ok {
			return l
		}
		return n.Line
	}
	def, ok := notify.DefaultAPI[c.Provider]
	if !ok {
		pp.errorf(at("provider"), "commit_status.provider", "want github or gitlab, not %q", c.Provider)
	}
	if c.APIURL == "" {
		c.APIURL = def
	} else if err := notify.CheckURL(context.Background(), c.APIURL, nil); err != nil {
		pp.errorf(at("api"), "commit_status.api", "%v", err)
	}
	if _, set := local["commit_status.token"]; !set {
		pp.errorf(n.Line, "commit_status.token", "must be set (write ${VAR} to keep it out of the file)")
	}
	return &c
}
