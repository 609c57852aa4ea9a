// Package fswatch shares one fsnotify watcher (one inotify instance on
// Linux) among every path a process watches: all file resources and the
// graph file. Linux allows 128 inotify instances per user by default, so a
// watcher per path fails past about 120 paths; and with one per path, every
// event in a directory woke every watcher of that directory, so writing N
// files in one folder cost N² wake-ups.
//
// A path is watched through the directory that holds it, or through its
// nearest existing ancestor while that directory does not exist yet (the
// watch moves down as directories appear and up as they go). Directory
// watches are reference-counted, and events are dispatched by name: an event
// costs a map lookup, whatever the number of watched paths.
package fswatch

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/fsnotify/fsnotify"
)

// Watcher shares one fsnotify watcher among its subscriptions. The zero
// value is ready to use. The fsnotify watcher and the goroutine that reads
// it exist only while there is a subscription: the first Watch opens them,
// the last Close closes them.
type Watcher struct {
	mu     sync.Mutex
	fw     *fsnotify.Watcher // nil while nothing is watched
	done   chan struct{}     // closed when fw's reader returned
	dirs   map[string]int    // watched directory → subscriptions armed on it
	byDir  map[string]map[*Sub]struct{}
	byNext map[string]map[*Sub]struct{}
	// byGlob are the glob subscriptions (WatchGlob) by the directory they
	// match entries of, while that directory is the one watched.
	byGlob map[string]map[*Sub]struct{}
	subs   map[*Sub]struct{}
}

// shared is the process's watcher.
var shared Watcher

// Shared returns the process's watcher: every file resource and the graph
// file watch use it, so kiln holds one inotify instance whatever the graph.
func Shared() *Watcher { return &shared }

// Sub is one watched path.
type Sub struct {
	w       *Watcher
	path    string // absolute, clean
	changed func()
	errc    chan error
	// glob is WatchGlob's pattern for the names of path's directory
	// (path is then the directory joined with the pattern); "" for a
	// plain path.
	glob string

	// Guarded by w.mu.
	watched string // the directory armed on; "" none
	next    string // the entry of watched on the way to path (path itself once watched is its directory)
	closed  bool
}

// Watch starts watching path (relative to the working directory) and calls
// changed whenever an event touches path or a directory on the way to it.
// The watch is established when Watch returns: a change made after it is
// seen. changed is called from the watcher's goroutine, after the watch has
// followed any directory change, one call at a time; it must not block, and
// it may be called once more just after Close returns. An error is one the
// fsnotify watcher could not establish.
func (w *Watcher) Watch(path string, changed func()) (*Sub, error) {
	return w.watch(path, "", changed)
}

// WatchGlob is Watch for every entry of a directory whose name matches a
// pattern (filepath.Match's syntax): pattern is DIR/PATTERN, and changed is
// called when an entry of DIR that matches is created, written, removed or
// renamed, and when DIR itself appears or goes. A graph directory is
// watched so: a new *.hcl file is seen without any known file changing.
func (w *Watcher) WatchGlob(pattern string, changed func()) (*Sub, error) {
	if _, err := filepath.Match(filepath.Base(pattern), ""); err != nil {
		return nil, fmt.Errorf("watch %s: %w", pattern, err)
	}
	return w.watch(pattern, filepath.Base(pattern), changed)
}

func (w *Watcher) watch(path, glob string, changed func()) (*Sub, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", path, err)
	}
	s := &Sub{w: w, path: abs, changed: changed, errc: make(chan error, 1), glob: glob}
	w.mu.Lock()
	if w.fw == nil {
		fw, err := fsnotify.NewWatcher()
		if err != nil {
			w.mu.Unlock()
			return nil, fmt.Errorf("watch %s: %w", path, err)
		}
		w.fw, w.done = fw, make(chan struct{})
		w.dirs = map[string]int{}
		w.byDir = map[string]map[*Sub]struct{}{}
		w.byNext = map[string]map[*Sub]struct{}{}
		w.byGlob = map[string]map[*Sub]struct{}{}
		w.subs = map[*Sub]struct{}{}
		// Owned by the Watcher: the Close of the last subscription
		// closes fw and waits for done.
		go w.read(fw, w.done)
	}
	w.subs[s] = struct{}{}
	err = w.arm(s)
	var closeFW func()
	if err != nil {
		closeFW = w.drop(s)
	}
	w.mu.Unlock()
	if err != nil {
		if closeFW != nil {
			closeFW()
		}
		return nil, fmt.Errorf("watch %s: %w", path, err)
	}
	return s, nil
}

// Err receives an error when the watch broke (a directory could not be
// watched again, or the fsnotify watcher failed): the caller should Close
// and watch again.
func (s *Sub) Err() <-chan error { return s.errc }

// Close stops the watch; closing the last one closes the fsnotify watcher
// and waits for its goroutine. Close may be called more than once.
func (s *Sub) Close() {
	w := s.w
	w.mu.Lock()
	closeFW := w.drop(s)
	w.mu.Unlock()
	if closeFW != nil {
		closeFW()
	}
}

// Stats says how many paths and directories w watches, and whether its
// fsnotify watcher is open.
func (w *Watcher) Stats() (paths, dirs int, open bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.subs), len(w.dirs), w.fw != nil
}

// drop removes s. When it was the last subscription it returns the func
// that closes the fsnotify watcher and waits for its reader; call it
// without mu. Called with mu held.
func (w *Watcher) drop(s *Sub) func() {
	if s.closed {
		return nil
	}
	s.closed = true
	w.unindex(s)
	if s.watched != "" {
		w.release(s.watched)
		s.watched = ""
	}
	delete(w.subs, s)
	if len(w.subs) > 0 {
		return nil
	}
	fw, done := w.fw, w.done
	w.fw, w.done = nil, nil
	w.dirs, w.byDir, w.byNext, w.byGlob, w.subs = nil, nil, nil, nil, nil
	return func() {
		_ = fw.Close()
		<-done
	}
}

// arm watches the deepest existing directory above s.path. A directory made
// below the watched one between the Stat and the Add raised no event, so arm
// looks again after each Add until nothing deeper exists. Called with mu held.
func (w *Watcher) arm(s *Sub) error {
	w.unindex(s)
	for dir := deepest(s.path); dir != s.watched; dir = deepest(s.path) {
		if err := w.acquire(dir); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed again since the Stat
			}
			return fmt.Errorf("watch directory %s: %w", dir, err)
		}
		if s.watched != "" {
			w.release(s.watched)
		}
		s.watched = dir
	}
	s.next = s.path
	if rel, err := filepath.Rel(s.watched, s.path); err == nil {
		first, _, _ := strings.Cut(rel, string(filepath.Separator))
		s.next = filepath.Join(s.watched, first)
	}
	add(w.byDir, s.watched, s)
	add(w.byNext, s.next, s)
	if s.glob != "" && s.watched == filepath.Dir(s.path) {
		add(w.byGlob, s.watched, s)
	}
	return nil
}

func (w *Watcher) unindex(s *Sub) {
	remove(w.byDir, s.watched, s)
	remove(w.byNext, s.next, s)
	remove(w.byGlob, s.watched, s)
}

func add(m map[string]map[*Sub]struct{}, k string, s *Sub) {
	set := m[k]
	if set == nil {
		set = map[*Sub]struct{}{}
		m[k] = set
	}
	set[s] = struct{}{}
}

func remove(m map[string]map[*Sub]struct{}, k string, s *Sub) {
	if set := m[k]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(m, k)
		}
	}
}

// acquire counts one more subscription on dir, watching it on the first.
func (w *Watcher) acquire(dir string) error {
	if w.dirs[dir] == 0 {
		if err := w.fw.Add(dir); err != nil {
			return err
		}
	}
	w.dirs[dir]++
	return nil
}

// release counts one subscription less on dir, unwatching it on the last.
func (w *Watcher) release(dir string) {
	if n, ok := w.dirs[dir]; ok {
		if n <= 1 {
			delete(w.dirs, dir)
			_ = w.fw.Remove(dir) // may already be gone with the directory
			return
		}
		w.dirs[dir] = n - 1
	}
}

// deepest is the deepest existing directory above path.
func deepest(path string) string {
	dir := filepath.Dir(path)
	for {
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return dir
		}
		dir = parent
	}
}

// read dispatches fw's events until fw is closed.
func (w *Watcher) read(fw *fsnotify.Watcher, done chan struct{}) {
	defer close(done)
	for {
		select {
		case e, ok := <-fw.Events:
			if !ok {
				return
			}
			w.dispatch(fw, e)
		case err, ok := <-fw.Errors:
			if !ok {
				return
			}
			w.failed(fw, err)
		}
	}
}

// dispatch hands an event to the subscriptions it concerns: those watching
// through the directory it names (events on the directory itself), those
// whose next step toward their path is the entry it names, and the globs
// of the directory holding it that its name matches.
func (w *Watcher) dispatch(fw *fsnotify.Watcher, e fsnotify.Event) {
	name := filepath.Clean(e.Name)
	w.mu.Lock()
	if w.fw != fw {
		w.mu.Unlock()
		return // a closed generation's last events
	}
	var hit []*Sub
	for s := range w.byDir[name] {
		hit = append(hit, s)
	}
	for s := range w.byNext[name] {
		if s.glob == "" || s.watched != filepath.Dir(s.path) {
			hit = append(hit, s) // a glob's own entry is matched below
		}
	}
	for s := range w.byGlob[filepath.Dir(name)] {
		if ok, _ := filepath.Match(s.glob, filepath.Base(name)); ok {
			hit = append(hit, s)
		}
	}
	if _, watched := w.dirs[name]; watched && e.Has(fsnotify.Remove|fsnotify.Rename) {
		// The watch went with its directory: arm anew even if a
		// directory of that name is back already.
		delete(w.dirs, name)
		_ = fw.Remove(name)
		for s := range w.byDir[name] {
			w.unindex(s)
			s.watched = ""
		}
	}
	var call []func()
	for _, s := range hit {
		if err := w.arm(s); err != nil {
			select {
			case s.errc <- err:
			default:
			}
			continue
		}
		call = append(call, s.changed)
	}
	w.mu.Unlock()
	for _, f := range call {
		f()
	}
}

// failed handles an error of the fsnotify watcher. An overflow means events
// were lost: every subscription is told something may have changed. Any
// other error is handed to every subscription.
func (w *Watcher) failed(fw *fsnotify.Watcher, err error) {
	w.mu.Lock()
	if w.fw != fw {
		w.mu.Unlock()
		return
	}
	var call []func()
	for s := range w.subs {
		if errors.Is(err, fsnotify.ErrEventOverflow) {
			call = append(call, s.changed)
			continue
		}
		select {
		case s.errc <- err:
		default:
		}
	}
	w.mu.Unlock()
	for _, f := range call {
		f()
	}
}
