package project

import (
	"strings"
	"testing"
	"time"
)

const lifecycleProject = `name: web
region: us-east-1
base: {owner: amazon, name: "al2023-ami-*", most_recent: true}
type: t3.small
script: "#!/bin/sh\ntrue\n"
keep: 3
`

// TestParseImageLifecycle: deprecate_after and disable_for read days,
// weeks and Go durations, survive the store, and name their line when wrong.
func TestParseImageLifecycle(t *testing.T) {
	p, err := Parse("web.yaml", []byte(lifecycleProject+"deprecate_after: 30d\ndisable_for: 2w\n"), nil)
	if err != nil {
		t.Fatalf("Parse() = %v", err)
	}
	if p.DeprecateAfter != 30*24*time.Hour || p.DisableFor != 14*24*time.Hour {
		t.Errorf("Parse() deprecate_after %s, disable_for %s; want 720h, 336h", p.DeprecateAfter, p.DisableFor)
	}
	if back := FromRecord(p.Record()); back.DeprecateAfter != p.DeprecateAfter || back.DisableFor != p.DisableFor {
		t.Errorf("FromRecord(Record()) = %s, %s; want %s, %s", back.DeprecateAfter, back.DisableFor, p.DeprecateAfter, p.DisableFor)
	}
	for _, tt := range []struct{ add, want string }{
		{"deprecate_after: 30x\n", `web.yaml:7: deprecate_after: "30x": want a duration such as 30d, 2w or 36h`},
		{"deprecate_after: 4000d\n", "web.yaml:7: deprecate_after: must be more than 0 and at most 10 years (3650d)"},
		{"deprecate_after: 10s\n", "web.yaml:7: deprecate_after: at least 1m"},
		{"disable_for: 0d\n", `web.yaml:7: disable_for: "0d": want a duration such as 30d, 2w or 36h`},
		{"disable_for: [1d]\n", "web.yaml:7: disable_for: want a duration such as 30d, 2w or 36h"},
	} {
		_, err := Parse("web.yaml", []byte(lifecycleProject+tt.add), nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = %v; want %s", tt.add, err, tt.want)
		}
	}
}
