package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"kiln/internal/store"
	"kiln/internal/web"
)

// followed is a bake as a progress stream shows it over time.
func followed() []*web.Bake {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { t := t0.Add(d); return &t }
	launch := web.Step{Name: "launch builder", State: store.StepRunning, StartedAt: t0}
	launched := launch
	launched.State, launched.FinishedAt, launched.Detail = store.StepSucceeded, at(1500*time.Millisecond), "i-0123\nmore"
	wait := web.Step{Name: "wait for builder to stop", State: store.StepRunning, StartedAt: *at(1500 * time.Millisecond)}
	b := func(state store.BakeState, steps ...web.Step) *web.Bake {
		return &web.Bake{ID: 7, Project: "web", State: state, Steps: steps}
	}
	return []*web.Bake{
		b(store.Queued),
		b(store.Running),
		b(store.Running, launch),
		b(store.Running, launch), // unchanged: prints nothing
		b(store.Running, launched, wait),
	}
}

// followedLines is the plain progress of followed().
const followedLines = `bake 7 of web: running
  launch builder ...
  launch builder: succeeded in 1.5s (i-0123)
  wait for builder to stop ...
`

func TestProgressLines(t *testing.T) {
	var out bytes.Buffer
	p := &progress{w: &out, state: store.Queued}
	for _, b := range followed() {
		p.update(b)
	}
	if out.String() != followedLines {
		t.Errorf("progress =\n%s\nwant\n%s", out.String(), followedLines)
	}
	if strings.Contains(out.String(), "\r") || strings.Contains(out.String(), "\033") {
		t.Errorf("plain progress has terminal control characters: %q", out.String())
	}

	out.Reset()
	start, end := time.Now().Add(-90*time.Second), time.Now()
	p.summary(&web.Bake{ID: 7, Project: "web", State: store.Failed, StartedAt: &start, FinishedAt: &end,
		Reason: "script failed: exit 3", ConsoleTail: "one\ntwo\n"})
	want := "bake 7 of web failed in 1m30s: script failed: exit 3\nconsole tail:\n  one\n  two\n"
	if out.String() != want {
		t.Errorf("summary = %q; want %q", out.String(), want)
	}
}

// A step that started and ended between two looks still gets its start
// line, so a log reads the same however fast the bake ran.
func TestProgressLinesStepSeenFinished(t *testing.T) {
	var out bytes.Buffer
	p := &progress{w: &out, state: store.Queued}
	bs := followed()
	p.update(bs[len(bs)-1])
	if out.String() != followedLines {
		t.Errorf("progress =\n%s\nwant\n%s", out.String(), followedLines)
	}
}

func TestProgressLive(t *testing.T) {
	var out bytes.Buffer
	p := &progress{w: &out, live: true, state: store.Queued}
	for _, b := range followed() {
		p.update(b)
	}
	got := out.String()
	// The running step is a redrawn line, never a line of its own.
	if strings.Contains(got, "...\n") {
		t.Errorf("live progress printed a running step as a line: %q", got)
	}
	if !strings.Contains(got, "\r\033[K  launch builder: succeeded in 1.5s (i-0123)\n") {
		t.Errorf("live progress did not clear the running line before the finished step: %q", got)
	}
	if !strings.Contains(got, "\r\033[K  wait for builder to stop ... ") {
		t.Errorf("live progress does not show the running step: %q", got)
	}
	p.clear()
	if !strings.HasSuffix(out.String(), "\r\033[K") || p.drawn {
		t.Errorf("clear did not erase the running line: %q", out.String())
	}
}

func TestIsTerminal(t *testing.T) {
	if isTerminal(&bytes.Buffer{}) {
		t.Error("isTerminal(buffer) = true")
	}
}
