package fswatch

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// inotifyFDs counts the process's inotify instances (Linux only).
func inotifyFDs(t *testing.T) int {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("counts inotify instances in /proc")
	}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if l, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && strings.Contains(l, "inotify") {
			n++
		}
	}
	return n
}

// signal is a coalescing callback, as the engine's Changed is.
func signal() (func(), chan struct{}) {
	c := make(chan struct{}, 1)
	return func() {
		select {
		case c <- struct{}{}:
		default:
		}
	}, c
}

// wait waits for a callback. The bound only turns a lost event into a
// failure that names the step instead of the package's timeout.
func wait(t *testing.T, c chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(10 * time.Second):
		t.Fatalf("no event after %s", what)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestManyPathsOneInstance: more paths than Linux's default 128 inotify
// instances, in one directory and in many, share one instance and one
// watch per directory; closing them unwatches each directory and, with the
// last, closes the instance.
func TestManyPathsOneInstance(t *testing.T) {
	before := inotifyFDs(t)
	var w Watcher
	root := t.TempDir()
	const n = 300
	var subs []*Sub
	for i := range n {
		dir := "one"
		if i%2 == 1 {
			dir = fmt.Sprintf("many/%d", i%10) // 5 directories
		}
		write(t, filepath.Join(root, dir, "x"), "")
		fn, _ := signal()
		s, err := w.Watch(filepath.Join(root, dir, fmt.Sprint(i)), fn)
		if err != nil {
			t.Fatalf("Watch(%d) = %v", i, err)
		}
		subs = append(subs, s)
	}
	if paths, dirs, open := w.Stats(); paths != n || dirs != 6 || !open {
		t.Errorf("Stats() = %d paths, %d dirs, open %v; want %d, 6, true", paths, dirs, open, n)
	}
	if got := inotifyFDs(t) - before; got != 1 {
		t.Errorf("inotify instances opened = %d; want 1", got)
	}
	for i, s := range subs {
		if i%2 == 0 {
			s.Close()
		}
	}
	if paths, dirs, _ := w.Stats(); paths != n/2 || dirs != 5 {
		t.Errorf("after closing the paths of one directory: Stats() = %d paths, %d dirs; want %d, 5", paths, dirs, n/2)
	}
	for _, s := range subs {
		s.Close() // twice for half of them: a no-op
	}
	if paths, dirs, open := w.Stats(); paths != 0 || dirs != 0 || open {
		t.Errorf("after closing all: Stats() = %d paths, %d dirs, open %v; want 0, 0, false", paths, dirs, open)
	}
	if got := inotifyFDs(t) - before; got != 0 {
		t.Errorf("inotify instances left open = %d; want 0", got)
	}
}

// TestDispatchByPath: an event reaches the watch of its path only, though
// the directory holds many watched paths.
func TestDispatchByPath(t *testing.T) {
	var w Watcher
	dir := t.TempDir()
	fns := map[string]chan struct{}{}
	for _, name := range []string{"a", "b", "c"} {
		fn, c := signal()
		s, err := w.Watch(filepath.Join(dir, name), fn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		fns[name] = c
	}
	write(t, filepath.Join(dir, "a"), "drift")
	wait(t, fns["a"], "writing a")
	write(t, filepath.Join(dir, "other"), "x") // watched by no one
	// One goroutine dispatches in order: once c's event is through, an
	// event of a's write meant for b would have been delivered already.
	write(t, filepath.Join(dir, "c"), "x")
	wait(t, fns["c"], "writing c")
	select {
	case <-fns["b"]:
		t.Errorf("b was told of a change; only a and c changed")
	default:
	}
}

// TestFollowsDirectories: a path whose directories do not exist yet is
// watched through its nearest ancestor, then through its own directory
// once made, and again after that directory is removed and made anew.
func TestFollowsDirectories(t *testing.T) {
	var w Watcher
	root := t.TempDir()
	path := filepath.Join(root, "a", "b", "f")
	fn, c := signal()
	s, err := w.Watch(path, fn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	wait(t, c, "making a/b")
	// Each event re-arms before the callback: once a/b is the watched
	// directory, the file's write is seen.
	for {
		w.mu.Lock()
		armed := s.watched == filepath.Dir(path)
		w.mu.Unlock()
		if armed {
			break
		}
		wait(t, c, "the watch moving down to a/b")
	}
	write(t, path, "x")
	wait(t, c, "writing the file")
	if _, dirs, _ := w.Stats(); dirs != 1 {
		t.Errorf("Stats() dirs = %d; want 1 (the ancestors unwatched)", dirs)
	}
}

// TestWatchGlob: a glob sees entries of its directory that match being
// created, written, renamed and removed, and not others; it follows its
// directory when the directory is made after the watch and when it goes.
func TestWatchGlob(t *testing.T) {
	var w Watcher
	base := t.TempDir()
	dir := filepath.Join(base, "graph")
	globbed, gc := signal()
	g, err := w.WatchGlob(filepath.Join(dir, "*.hcl"), globbed)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	// The directory does not exist yet: its creation is seen, and the
	// watch moves into it.
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	wait(t, gc, "mkdir of the directory")
	// sync writes a new sentinel file watched by path: events are
	// dispatched in order, so once its event came every event before it
	// did. It reports whether the glob was signalled meanwhile.
	n := 0
	sync := func(what string) bool {
		t.Helper()
		n++
		sentinel := filepath.Join(dir, fmt.Sprintf("sentinel-%d", n))
		sent, sc := signal()
		s, err := w.Watch(sentinel, sent)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		write(t, sentinel, what)
		wait(t, sc, "the sentinel after "+what)
		select {
		case <-gc:
			return true
		default:
			return false
		}
	}
	sync("start")
	step := func(what string, want bool, do func() error) {
		t.Helper()
		if err := do(); err != nil {
			t.Fatal(err)
		}
		if got := sync(what); got != want {
			t.Errorf("glob signalled after %s: %v; want %v", what, got, want)
		}
	}
	step("a new a.hcl", true, func() error { return os.WriteFile(filepath.Join(dir, "a.hcl"), []byte("x"), 0o644) })
	step("notes.txt written", false, func() error { return os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o644) })
	step("a.hcl renamed to b.hcl", true, func() error { return os.Rename(filepath.Join(dir, "a.hcl"), filepath.Join(dir, "b.hcl")) })
	step("b.hcl renamed away", true, func() error { return os.Rename(filepath.Join(dir, "b.hcl"), filepath.Join(dir, "b.hcl.bak")) })
	step("b.hcl.bak removed", false, func() error { return os.Remove(filepath.Join(dir, "b.hcl.bak")) })
	step("c.hcl written", true, func() error { return os.WriteFile(filepath.Join(dir, "c.hcl"), []byte("x"), 0o644) })
	step("c.hcl removed", true, func() error { return os.Remove(filepath.Join(dir, "c.hcl")) })
	// The directory goes and comes back: the glob follows it.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	wait(t, gc, "the directory removed")
	write(t, filepath.Join(dir, "d.hcl"), "x")
	wait(t, gc, "d.hcl in the new directory")
	if _, err := w.WatchGlob(filepath.Join(dir, "[.hcl"), func() {}); err == nil {
		t.Error("WatchGlob of a bad pattern: no error")
	}
}
