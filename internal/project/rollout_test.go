package project

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

const rolloutBase = "name: web\nregion: us-east-1\nbase: {id: ami-0123abcd}\ntype: t3.small\nscript: echo\n"

func TestParseProjectRollout(t *testing.T) {
	src := rolloutBase + `rollout:
  group: web-asg
  region: eu-west-1
  min_healthy_percent: 75
  warmup: 90s
  checkpoints: [20, 100]
  checkpoint_delay: 10m
  skip_matching: false
  auto_rollback: true
  alarms: [web-5xx]
`
	p, err := Parse("p.yaml", []byte(src), nil)
	if err != nil {
		t.Fatalf("Parse() = %v", err)
	}
	pct, f, tr := 75, false, true
	want := &RolloutTarget{Group: "web-asg", Region: "eu-west-1", MinHealthyPercent: &pct, Warmup: 90 * time.Second,
		Checkpoints: []int{20, 100}, CheckpointDelay: 10 * time.Minute, SkipMatching: &f, AutoRollback: &tr, Alarms: []string{"web-5xx"}}
	if !reflect.DeepEqual(p.Rollout, want) {
		t.Errorf("Rollout = %+v; want %+v", p.Rollout, want)
	}
	if got := FromRecord(p.Record()); !reflect.DeepEqual(got.Rollout, want) {
		t.Errorf("FromRecord(Record()).Rollout = %+v", got.Rollout)
	}
	p, err = Parse("p.yaml", []byte(rolloutBase+"rollout: {group: web}\n"), nil)
	if err != nil || !reflect.DeepEqual(p.Rollout, &RolloutTarget{Group: "web"}) {
		t.Errorf("Parse(group only) = %+v, %v", p, err)
	}
	if p, err := Parse("p.yaml", []byte(rolloutBase), nil); err != nil || p.Rollout != nil {
		t.Errorf("Parse(no rollout) = %+v, %v; want no target", p, err)
	}
}

func TestParseProjectRolloutErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"not a mapping", "rollout: web\n", []string{"p.yaml:6: rollout: want {group: NAME, ...}"}},
		{"no group", "rollout: {warmup: 60s}\n", []string{"p.yaml:6: rollout.group: required: the Auto Scaling group to roll the image out to"}},
		{"bad values", `rollout:
  group: web
  region: mars
  min_healthy_percent: 101
  warmup: 1.5s
  checkpoints: [50, 20]
  checkpoint_delay: 49h
  skip_matching: maybe
  colour: red
`, []string{
			`p.yaml:8: rollout.region: "mars" is not a region name such as us-east-1`,
			"p.yaml:9: rollout.min_healthy_percent: want 0 to 100, not 101",
			"p.yaml:10: rollout.warmup: want whole seconds, more than 0 and at most 48h0m0s",
			"p.yaml:11: rollout.checkpoints[1]: want ascending percentages from 1 to 100",
			"p.yaml:12: rollout.checkpoint_delay: want whole seconds, more than 0 and at most 48h0m0s",
			"p.yaml:13: rollout.skip_matching: want true or false",
			`p.yaml:14: unknown field "rollout.colour"`,
		}},
		{"delay without checkpoints", "rollout: {group: web, checkpoint_delay: 5m}\n", []string{
			"p.yaml:6: rollout.checkpoint_delay: needs rollout.checkpoints"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("p.yaml", []byte(rolloutBase+tt.src), nil)
			var pes Errors
			if !errors.As(err, &pes) {
				t.Fatalf("Parse() = %v; want Errors", err)
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
