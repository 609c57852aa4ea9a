package store

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// ErrFileHeld is returned by LockSQLite when another process holds the
// SQLite file.
var ErrFileHeld = errors.New("held by another kiln serve")

// FileLock is one process's exclusive hold on a SQLite database file: one
// kiln serve per file. Several servers share work only through
// PostgreSQL, where leases and LISTEN/NOTIFY cross processes; two servers
// on one SQLite file would each start a bakery of their own on it.
type FileLock struct {
	f *os.File
}

// LockSQLite takes the lock on the SQLite file at path, through an
// advisory lock (flock) on PATH.lock beside it, which it creates when
// missing and into which it writes who holds it (pid, host, since). It
// does not block: when another process holds the file it returns an error
// wrapping ErrFileHeld that names the holder and says that several servers
// need PostgreSQL. The operating system releases the lock when the process
// ends, however it ends, so a SIGKILLed server's lock file (which stays)
// never blocks a restart. Within one process, a second lock on the same
// file fails too. Release gives the lock up.
func LockSQLite(path string) (*FileLock, error) { return LockSQLiteWait(path, 0) }

// LockSQLiteWait is LockSQLite that tries again, for up to wait, while
// another process holds the file: a server started again right after
// its predecessor was killed does not fail on a lock that is about to
// go (kiln serve waits 3 s).
func LockSQLiteWait(path string, wait time.Duration) (*FileLock, error) {
	name := path + ".lock"
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock database %q: %w", path, err)
	}
	deadline := time.Now().Add(wait)
	held, err := lockFile(f)
	for err == nil && held && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		held, err = lockFile(f)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock database %q: lock %s: %w", path, name, err)
	}
	if held {
		holder, _ := os.ReadFile(name)
		f.Close()
		who := strings.TrimSpace(string(holder))
		if who == "" {
			who = "a process that has not said who it is yet"
		}
		return nil, fmt.Errorf("database %q is %w (%s, lock file %s): one SQLite file serves one server; several servers need PostgreSQL (--db postgres://...)",
			path, ErrFileHeld, who, name)
	}
	host, _ := os.Hostname()
	who := fmt.Sprintf("pid %d on %s since %s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(who), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock database %q: write %s: %w", path, name, err)
	}
	return &FileLock{f: f}, nil
}

// Release gives the lock up (closing the lock file releases its lock);
// the file stays, for the next server to lock. Releasing twice is a no-op.
func (l *FileLock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	if err != nil {
		return fmt.Errorf("release database lock: %w", err)
	}
	return nil
}
