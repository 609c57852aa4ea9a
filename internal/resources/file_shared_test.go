package resources

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"kiln/internal/engine"
	"kiln/internal/fswatch"
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

// fileGraph is n file resources, half in one directory and half spread
// over ten, all watching through w.
func fileGraph(t *testing.T, root string, n int, w *fswatch.Watcher) (*engine.Graph, []string) {
	t.Helper()
	specs := make([]*engine.Spec, n)
	paths := make([]string, n)
	for i := range n {
		dir := filepath.Join(root, "one")
		if i%2 == 1 {
			dir = filepath.Join(root, "many", fmt.Sprint(i%20))
		}
		path := filepath.Join(dir, fmt.Sprintf("f%d", i))
		content := fmt.Sprintf("file %d\n", i)
		paths[i] = path
		name := fmt.Sprintf("f%d", i)
		specs[i] = &engine.Spec{Kind: "file", Name: name, Hash: name, Build: func(engine.Lookup) (engine.Resource, string, error) {
			return &File{Path: path, Content: &content, watcher: w}, "", nil
		}}
	}
	g, err := engine.NewGraph("files", specs)
	if err != nil {
		t.Fatal(err)
	}
	return g, paths
}

// waitStatus waits until ok holds for the engine's status.
func waitStatus(t *testing.T, eng *engine.Engine, what string, ok func([]engine.VertexStatus) bool) []engine.VertexStatus {
	t.Helper()
	ch, cancel := eng.Subscribe()
	defer cancel()
	timeout := time.After(30 * time.Second)
	for {
		if st := eng.Status(); ok(st) {
			return st
		}
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func allConverged(st []engine.VertexStatus) bool {
	for _, s := range st {
		if s.State != engine.StateConverged {
			return false
		}
	}
	return true
}

// TestFilesShareOneWatcher: 300 file resources (more than Linux's default
// 128 inotify instances) run on one inotify instance; drift on one file
// re-checks that resource only; a resource removed from the graph stops
// watching, and the last one closes the instance.
func TestFilesShareOneWatcher(t *testing.T) {
	before := inotifyFDs(t)
	var w fswatch.Watcher
	root := t.TempDir()
	const n = 300
	g, paths := fileGraph(t, root, n, &w)
	// The files exist already: the first checks write nothing, so no
	// event of kiln's own writes arrives later.
	for i, p := range paths {
		write(t, p, fmt.Sprintf("file %d\n", i), 0o644)
	}
	eng := engine.New(g, engine.Options{})
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { _ = eng.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()

	waitStatus(t, eng, "the first checks", func(st []engine.VertexStatus) bool {
		for _, s := range st {
			if s.State != engine.StateConverged || s.Checks != 1 {
				return false
			}
		}
		return true
	})
	if got := inotifyFDs(t) - before; got != 1 {
		t.Errorf("inotify instances = %d; want 1 for %d file resources", got, n)
	}
	if p, dirs, _ := w.Stats(); p != n || dirs != 11 {
		t.Errorf("Stats() = %d paths, %d dirs; want %d, 11", p, dirs, n)
	}

	// Drift on f7: it is re-checked and repaired.
	write(t, paths[7], "drift\n", 0o644)
	waitStatus(t, eng, "f7 repaired", func(st []engine.VertexStatus) bool {
		return st[7].Applies == 1 && st[7].State == engine.StateConverged
	})
	// One goroutine dispatches every event in order: once the event of a
	// file written after the repair is through, any event for another
	// resource has been delivered too.
	fn, sentinel := func() (func(), chan struct{}) {
		c := make(chan struct{}, 1)
		return func() {
			select {
			case c <- struct{}{}:
			default:
			}
		}, c
	}()
	sub, err := w.Watch(filepath.Join(root, "many", "7", "sentinel"), fn)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(root, "many", "7", "sentinel"), "x", 0o644)
	select {
	case <-sentinel:
	case <-time.After(30 * time.Second):
		t.Fatal("no event for the sentinel file")
	}
	sub.Close()
	st := waitStatus(t, eng, "a converged graph", allConverged)
	for i, s := range st {
		if i != 7 && s.Checks != 1 {
			t.Errorf("%s checked %d times; want 1 (only file/f7 drifted)", s.ID, s.Checks)
		}
	}
	if got, _ := os.ReadFile(paths[7]); string(got) != "file 7\n" {
		t.Errorf("f7 holds %q after the repair; want %q", got, "file 7\n")
	}

	// Removing the resources of "one" unwatches its directory.
	var keep []*engine.Spec
	for i, s := range g.Specs {
		if i%2 == 1 {
			keep = append(keep, s)
		}
	}
	small, err := engine.NewGraph("files", keep)
	if err != nil {
		t.Fatal(err)
	}
	eng.Swap(small)
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, dirs, _ := w.Stats()
		if p == n/2 && dirs == 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after removing %d resources: Stats() = %d paths, %d dirs; want %d, 10", n/2, p, dirs, n/2)
		}
		<-time.After(5 * time.Millisecond) // the removed resources' Watch goroutines return
	}

	cancel()
	wg.Wait()
	if p, dirs, open := w.Stats(); p != 0 || dirs != 0 || open {
		t.Errorf("after Run: Stats() = %d paths, %d dirs, open %v; want 0, 0, false", p, dirs, open)
	}
	if got := inotifyFDs(t) - before; got != 0 {
		t.Errorf("inotify instances left = %d; want 0", got)
	}
}
