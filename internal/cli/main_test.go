package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kiln/internal/config"
)

func TestExitCodes(t *testing.T) {
	good := filepath.Join(t.TempDir(), "g.yaml")
	if err := os.WriteFile(good, []byte("name: g\nresources: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name   string
		ctx    context.Context
		args   []string
		want   int
		stderr string
	}{
		{"ok", t.Context(), []string{"validate", good}, ExitOK, ""},
		{"usage", t.Context(), []string{"validate"}, ExitError, "kiln: missing graph FILE\nRun 'kiln validate --help' for usage.\n"},
		{"bad file", t.Context(), []string{"validate", "nope.yaml"}, ExitError, "kiln: read graph file: open nope.yaml: no such file or directory\n"},
		{"interrupted", cancelled, []string{"validate", good}, ExitInterrupted, "kiln: interrupted\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if got := run(tt.ctx, tt.args, &stdout, &stderr); got != tt.want {
				t.Errorf("run(%q) = %d; want %d (stderr %q)", tt.args, got, tt.want, stderr.String())
			}
			if stderr.String() != tt.stderr {
				t.Errorf("stderr = %q; want %q", stderr.String(), tt.stderr)
			}
		})
	}
}

func TestReport(t *testing.T) {
	tests := []struct {
		err    error
		want   int
		stderr string
	}{
		{nil, ExitOK, ""},
		{&exitError{code: ExitPending}, ExitPending, ""},
		{&exitError{code: ExitError, err: errors.New("boom")}, ExitError, "kiln: boom\n"},
		{config.Errors{{File: "g.yaml", Line: 3, Resource: `file "a"`, Field: "path", Msg: "required"}}, ExitError,
			"g.yaml:3: file \"a\": path: required\nkiln: 1 problem in the graph file\n"},
		{errors.New("plain"), ExitError, "kiln: plain\n"},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		if got := report(&stderr, tt.err); got != tt.want || stderr.String() != tt.stderr {
			t.Errorf("report(%v) = %d, %q; want %d, %q", tt.err, got, stderr.String(), tt.want, tt.stderr)
		}
	}
}

func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	log, err := newLogger(&buf, true, "warn")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown", "k", "v")
	if got := buf.String(); strings.Contains(got, "hidden") || !strings.Contains(got, `"msg":"shown"`) {
		t.Errorf("log output %q; want only the JSON warning", got)
	}
	if _, err := newLogger(&buf, false, "loud"); err == nil {
		t.Error("newLogger(loud) = nil error; want one")
	}
}
