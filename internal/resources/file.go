package resources

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/aymanbagabas/go-udiff"

	"kiln/internal/config"
	"kiln/internal/engine"
	"kiln/internal/fswatch"
)

// File keeps a regular file present with the given content and mode, or
// absent. Relative paths are relative to kiln's working directory. Missing
// parent directories are created (0755).
type File struct {
	Path    string  `yaml:"path"`
	Content *string `yaml:"content"` // nil: the content is not managed
	Mode    string  `yaml:"mode"`    // octal, default "0644"
	State   string  `yaml:"state"`   // present (default) | absent

	planned []engine.Change  // what the last check-only pass found
	watcher *fswatch.Watcher // nil: the process's (tests use their own)
}

const (
	statePresent = "present"
	stateAbsent  = "absent"
)

// Validate checks the fields.
func (r *File) Validate() error {
	var errs []error
	if r.Path == "" {
		errs = append(errs, config.Fieldf("path", "required"))
	}
	if r.Mode != "" && !config.HasRef(r.Mode) {
		if m, err := strconv.ParseUint(r.Mode, 8, 32); err != nil || m > 0o7777 {
			errs = append(errs, config.Fieldf("mode", "want an octal mode like \"0644\", got %q", r.Mode))
		}
	}
	switch r.State {
	case "", statePresent:
	case stateAbsent:
		if r.Content != nil {
			errs = append(errs, config.Fieldf("content", "not allowed with state absent"))
		}
	default:
		errs = append(errs, config.Fieldf("state", "want present or absent, got %q", r.State))
	}
	return errors.Join(errs...)
}

func (r *File) mode() fs.FileMode {
	if r.Mode == "" {
		return 0o644
	}
	m, _ := strconv.ParseUint(r.Mode, 8, 32)
	return fs.FileMode(m) & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
}

// Outputs exposes the path as written in the graph.
func (r *File) Outputs() map[string]string {
	return map[string]string{"path": r.Path}
}

// Watch watches the file's directory (the nearest existing ancestor while
// the directory does not exist yet) through the process's shared watcher
// (fswatch.Shared) and reports any event that touches the path or a
// directory on the way to it.
func (r *File) Watch(ctx context.Context, ev engine.Events) error {
	w := r.watcher
	if w == nil {
		w = fswatch.Shared()
	}
	sub, err := w.Watch(r.Path, ev.Changed)
	if err != nil {
		return fmt.Errorf("watch file %s: %w", r.Path, err)
	}
	defer sub.Close()
	ev.Running()
	select {
	case <-ctx.Done():
		return nil
	case err := <-sub.Err():
		return fmt.Errorf("watch file %s: %w", r.Path, err)
	}
}

// CheckApply compares the file with the spec and, with apply, writes it
// atomically (temporary file in the same directory, then rename) or
// removes it.
func (r *File) CheckApply(ctx context.Context, apply bool) (bool, error) {
	r.planned = nil
	if r.State == stateAbsent {
		return r.checkAbsent(apply)
	}
	fi, err := os.Lstat(r.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if !apply {
			r.plan(engine.ActionCreate, "create file", nil, 0)
			return false, nil
		}
		return false, r.write()
	case err != nil:
		return false, fmt.Errorf("stat file %s: %w", r.Path, err)
	case !fi.Mode().IsRegular():
		return false, engine.Permanent(fmt.Errorf("file %s: exists and is not a regular file (%s)", r.Path, fi.Mode().Type()))
	}
	contentOK := true
	var have []byte
	if r.Content != nil {
		have, err = os.ReadFile(r.Path)
		if err != nil {
			return false, fmt.Errorf("read file %s: %w", r.Path, err)
		}
		contentOK = bytes.Equal(have, []byte(*r.Content))
	}
	mode := fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	modeOK := mode == r.mode()
	if contentOK && modeOK {
		return true, nil
	}
	if !apply {
		if contentOK {
			have = nil // the diff is about content only
		}
		r.plan(engine.ActionUpdate, "update file", have, mode)
		return false, nil
	}
	if !contentOK {
		return false, r.write()
	}
	if err := os.Chmod(r.Path, r.mode()); err != nil {
		return false, fmt.Errorf("chmod file %s: %w", r.Path, err)
	}
	return false, nil
}

func (r *File) checkAbsent(apply bool) (bool, error) {
	fi, err := os.Lstat(r.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("stat file %s: %w", r.Path, err)
	case fi.IsDir():
		return false, engine.Permanent(fmt.Errorf("remove file %s: is a directory", r.Path))
	}
	if !apply {
		r.planned = []engine.Change{{Action: engine.ActionDelete, Summary: "remove file " + r.Path}}
		return false, nil
	}
	if err := os.Remove(r.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("remove file %s: %w", r.Path, err)
	}
	return false, nil
}

// plan records what a check-only pass found: a file to create (old nil,
// mode 0) or to update, with the mode it would set and a unified diff of
// its content (old is what it holds now; nil when the content is right or
// not managed).
func (r *File) plan(action engine.ChangeAction, what string, old []byte, mode fs.FileMode) {
	c := engine.Change{Action: action, Summary: what + " " + r.Path}
	if mode != r.mode() {
		oldMode := ""
		if action != engine.ActionCreate {
			oldMode = fmt.Sprintf("%04o", mode)
		}
		c.Attrs = append(c.Attrs, engine.Attr{Name: "mode", Old: oldMode, New: fmt.Sprintf("%04o", r.mode())})
	}
	if r.Content != nil && (old != nil || action == engine.ActionCreate) {
		c.Diff = udiff.Unified(r.Path, r.Path+" (planned)", string(old), *r.Content)
	}
	r.planned = []engine.Change{c}
}

// PlannedChanges is what the last check-only CheckApply found it would do.
func (r *File) PlannedChanges() []engine.Change { return r.planned }

// write replaces the file atomically with the content and mode.
func (r *File) write() (err error) {
	dir := filepath.Dir(r.Path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create directory %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(r.Path)+".kiln-*")
	if err != nil {
		return fmt.Errorf("write file %s: %w", r.Path, err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}()
	var content []byte
	if r.Content != nil {
		content = []byte(*r.Content)
	} else if old, rerr := os.ReadFile(r.Path); rerr == nil {
		content = old // content unmanaged: keep what is there
	}
	if _, err := tmp.Write(content); err != nil {
		tmp.Close()
		return fmt.Errorf("write file %s: %w", r.Path, err)
	}
	if err := tmp.Chmod(r.mode()); err != nil {
		tmp.Close()
		return fmt.Errorf("chmod file %s: %w", r.Path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync file %s: %w", r.Path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write file %s: %w", r.Path, err)
	}
	if err := os.Rename(tmp.Name(), r.Path); err != nil {
		return fmt.Errorf("rename file %s: %w", r.Path, err)
	}
	return nil
}

var (
	_ engine.Resource      = (*File)(nil)
	_ engine.ChangePlanner = (*File)(nil)
)
