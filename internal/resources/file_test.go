package resources

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"kiln/internal/engine"
)

func ptr(s string) *string { return &s }

func TestFileValidate(t *testing.T) {
	tests := []struct {
		name string
		r    File
		want string
	}{
		{"ok", File{Path: "a", Content: ptr("x"), Mode: "0600"}, ""},
		{"ref mode skipped", File{Path: "a", Mode: "${exec/x.mode}"}, ""},
		{"no path", File{}, "path: required"},
		{"bad mode", File{Path: "a", Mode: "rw"}, `mode: want an octal mode like "0644", got "rw"`},
		{"bad state", File{Path: "a", State: "gone"}, `state: want present or absent, got "gone"`},
		{"content when absent", File{Path: "a", State: "absent", Content: ptr("")}, "content: not allowed with state absent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.r.Validate()
			if got := errString(err); got != tt.want {
				t.Errorf("Validate() = %q; want %q", got, tt.want)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestFileCheckApply(t *testing.T) {
	type step struct {
		apply  bool
		wantOK bool
	}
	tests := []struct {
		name    string
		setup   func(path string)
		r       func(path string) *File
		steps   []step
		content string // wanted afterwards; "-" means absent
		mode    os.FileMode
	}{
		{
			name:    "create in a new directory",
			r:       func(p string) *File { return &File{Path: p, Content: ptr("hi\n")} },
			steps:   []step{{false, false}, {true, false}, {false, true}, {true, true}},
			content: "hi\n", mode: 0o644,
		},
		{
			name:    "fix content",
			setup:   func(p string) { write(t, p, "old", 0o644) },
			r:       func(p string) *File { return &File{Path: p, Content: ptr("new")} },
			steps:   []step{{false, false}, {true, false}, {true, true}},
			content: "new", mode: 0o644,
		},
		{
			name:    "fix mode only",
			setup:   func(p string) { write(t, p, "same", 0o644) },
			r:       func(p string) *File { return &File{Path: p, Content: ptr("same"), Mode: "0600"} },
			steps:   []step{{false, false}, {true, false}, {true, true}},
			content: "same", mode: 0o600,
		},
		{
			name:    "content unmanaged keeps the bytes",
			setup:   func(p string) { write(t, p, "theirs", 0o600) },
			r:       func(p string) *File { return &File{Path: p} },
			steps:   []step{{true, false}, {true, true}},
			content: "theirs", mode: 0o644,
		},
		{
			name:    "remove",
			setup:   func(p string) { write(t, p, "x", 0o644) },
			r:       func(p string) *File { return &File{Path: p, State: "absent"} },
			steps:   []step{{false, false}, {true, false}, {true, true}},
			content: "-",
		},
		{
			name:    "already absent",
			r:       func(p string) *File { return &File{Path: p, State: "absent"} },
			steps:   []step{{false, true}, {true, true}},
			content: "-",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sub", "f")
			if tt.setup != nil {
				tt.setup(path)
			}
			r := tt.r(path)
			for i, s := range tt.steps {
				ok, err := r.CheckApply(t.Context(), s.apply)
				if err != nil || ok != s.wantOK {
					t.Fatalf("step %d: CheckApply(%v) = %v, %v; want %v, nil", i, s.apply, ok, err, s.wantOK)
				}
			}
			got, err := os.ReadFile(path)
			if tt.content == "-" {
				if !os.IsNotExist(err) {
					t.Fatalf("file exists (err %v); want absent", err)
				}
				return
			}
			if string(got) != tt.content {
				t.Errorf("content = %q; want %q", got, tt.content)
			}
			fi, _ := os.Stat(path)
			if fi.Mode().Perm() != tt.mode {
				t.Errorf("mode = %v; want %v", fi.Mode().Perm(), tt.mode)
			}
			entries, _ := os.ReadDir(filepath.Dir(path))
			if len(entries) != 1 {
				t.Errorf("directory holds %d entries; want 1 (no temporary files left)", len(entries))
			}
		})
	}
}

func write(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestFileNotRegular(t *testing.T) {
	dir := t.TempDir()
	for _, state := range []string{"present", "absent"} {
		r := &File{Path: dir, State: state}
		_, err := r.CheckApply(t.Context(), true)
		if err == nil || !engine.IsPermanent(err) {
			t.Errorf("CheckApply() on a directory (state %s) = %v; want a permanent error", state, err)
		}
	}
}

// TestFileWatch drives real fsnotify events: the test waits for each one,
// it never sleeps.
func TestFileWatch(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a", "b", "f")
	r := &File{Path: path, Content: ptr("want")}
	ev := watch(t, r) // a/b does not exist yet: watches dir

	if err := os.WriteFile(filepath.Join(dir, "other"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Creating the directories and the file must each be seen.
	if _, err := r.CheckApply(t.Context(), true); err != nil {
		t.Fatalf("CheckApply() error: %v", err)
	}
	ev.waitChanged(t, "creating the file and its directories")
	// Changed is reported after the watch re-armed on a/b, so an edit of
	// the file from now on is seen.
	ev.drain()
	write(t, path, "drift", 0o644)
	ev.waitChanged(t, "editing the file")
	if ok, _ := r.CheckApply(t.Context(), false); ok {
		t.Errorf("CheckApply() after drift = true; want false")
	}
	// A removal is seen too.
	if _, err := r.CheckApply(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	ev.drain()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	ev.waitChanged(t, "removing the file")
	if ok, _ := r.CheckApply(t.Context(), false); ok {
		t.Errorf("CheckApply() after removal = true; want false")
	}
}

// TestFileWatchDirectoryRecreated: the watched directory removed and made
// again keeps the watch, however fast the two happen.
func TestFileWatchDirectoryRecreated(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "f")
	ev := watch(t, &File{Path: path, Content: ptr("want")})
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ev.waitChanged(t, "removing the directory")
	// Wait for the events of the removal and the new directory to be
	// handled: each ends in Changed, and the last one re-armed the watch.
	for {
		ev.drain()
		select {
		case <-ev.changed:
			continue
		case <-time.After(200 * time.Millisecond):
		}
		break
	}
	write(t, path, "drift", 0o644)
	ev.waitChanged(t, "writing the file in the new directory")
}
