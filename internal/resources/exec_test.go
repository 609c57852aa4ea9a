package resources

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kiln/internal/testsupport"
)

func TestExecCheckApply(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	exists := filepath.Join(dir, "exists")
	write(t, exists, "", 0o644)
	run := "echo run >> " + marker
	tests := []struct {
		name   string
		r      Exec
		apply  bool
		wantOK bool
		runs   int // lines in marker afterwards
	}{
		{"runs", Exec{Cmd: run}, true, false, 1},
		{"noop does not run", Exec{Cmd: run}, false, false, 0},
		{"creates exists", Exec{Cmd: run, Creates: exists}, true, true, 0},
		{"creates missing", Exec{Cmd: run, Creates: filepath.Join(dir, "nope")}, true, false, 1},
		{"if true", Exec{Cmd: run, If: "true"}, true, false, 1},
		{"if false", Exec{Cmd: run, If: "exit 3"}, true, true, 0},
		{"unless true", Exec{Cmd: run, Unless: "true"}, true, true, 0},
		{"unless false", Exec{Cmd: run, Unless: "false"}, true, false, 1},
		{"refresh only", Exec{Cmd: run, RefreshOnly: true}, true, true, 0},
		{"dir and env", Exec{Cmd: `test "$(pwd)" = "` + dir + `" && test "$GREETING" = hi && ` + run, Dir: dir, Env: map[string]string{"GREETING": "hi"}}, true, false, 1},
		{"shell", Exec{Cmd: "echo run >> " + marker, Shell: "/bin/sh -e -c"}, true, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(marker)
			ok, err := tt.r.CheckApply(t.Context(), tt.apply)
			if err != nil || ok != tt.wantOK {
				t.Fatalf("CheckApply(%v) = %v, %v; want %v, nil", tt.apply, ok, err, tt.wantOK)
			}
			data, _ := os.ReadFile(marker)
			if got := strings.Count(string(data), "run"); got != tt.runs {
				t.Errorf("command ran %d times; want %d", got, tt.runs)
			}
		})
	}
}

func TestExecRefresh(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ran")
	r := &Exec{Cmd: "echo run >> " + marker, RefreshOnly: true}
	for range 2 {
		if err := r.Refresh(t.Context()); err != nil {
			t.Fatalf("Refresh() = %v", err)
		}
	}
	data, _ := os.ReadFile(marker)
	if got := strings.Count(string(data), "run"); got != 2 {
		t.Errorf("Refresh ran the command %d times; want 2", got)
	}
	guarded := &Exec{Cmd: "echo run >> " + marker, RefreshOnly: true, Unless: "true"}
	if err := guarded.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if data2, _ := os.ReadFile(marker); len(data2) != len(data) {
		t.Errorf("Refresh ran a command whose unless guard succeeded")
	}
}

func TestExecOutputAndFailure(t *testing.T) {
	var logs testsupport.Buffer
	r := &Exec{Cmd: "echo to-stdout; echo to-stderr >&2; exit 4"}
	if err := r.Init(testEnv("exec/x", &logs)); err != nil {
		t.Fatal(err)
	}
	_, err := r.CheckApply(t.Context(), true)
	if err == nil || !strings.Contains(err.Error(), "exit status 4") || !strings.Contains(err.Error(), "to-stderr") {
		t.Errorf("CheckApply() = %v; want exit status 4 with the output's tail", err)
	}
	for _, want := range []string{"line=to-stdout", "line=to-stderr", "msg=output"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

func TestExecTimeoutAndCancel(t *testing.T) {
	r := &Exec{Cmd: "sleep 30", Timeout: 50 * time.Millisecond}
	if _, err := r.CheckApply(t.Context(), true); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("CheckApply() with timeout = %v; want DeadlineExceeded", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	r = &Exec{Cmd: "sleep 30"}
	if _, err := r.CheckApply(ctx, true); !errors.Is(err, context.Canceled) {
		t.Errorf("CheckApply() cancelled = %v; want Canceled", err)
	}
}

func TestExecValidate(t *testing.T) {
	tests := []struct {
		r    Exec
		want string
	}{
		{Exec{Cmd: "true"}, ""},
		{Exec{}, "cmd: required"},
		{Exec{Cmd: "x", Shell: "  "}, `shell: want a program and its flags, like "/bin/bash -c"`},
		{Exec{Cmd: "x", Env: map[string]string{"A=B": "c"}}, `env: bad variable name "A=B"`},
	}
	for _, tt := range tests {
		if got := errString(tt.r.Validate()); got != tt.want {
			t.Errorf("Validate(%+v) = %q; want %q", tt.r, got, tt.want)
		}
	}
}
