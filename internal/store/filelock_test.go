package store

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// lockHolderEnv makes the test binary a process that takes the lock on the
// file it names, says "locked" and waits to be killed (TestLockSQLiteKilled).
const lockHolderEnv = "KILN_TEST_LOCK_HOLDER"

func TestMain(m *testing.M) {
	if path := os.Getenv(lockHolderEnv); path != "" {
		if _, err := LockSQLite(path); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("locked")
		select {} // until SIGKILL
	}
	os.Exit(m.Run())
}

// TestLockSQLite: a second lock on one file fails with ErrFileHeld, naming
// the holder and PostgreSQL; once released, the file can be locked again.
func TestLockSQLite(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no flock: the lock is not enforced")
	}
	path := filepath.Join(t.TempDir(), "kiln.db")
	first, err := LockSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = LockSQLite(path)
	if !errors.Is(err, ErrFileHeld) {
		t.Fatalf("second LockSQLite() = %v; want ErrFileHeld", err)
	}
	for _, want := range []string{path, fmt.Sprintf("pid %d", os.Getpid()), "several servers need PostgreSQL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("second LockSQLite() = %q; want it to say %q", err, want)
		}
	}
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	if err := first.Release(); err != nil {
		t.Errorf("second Release() = %v; want nil", err)
	}
	again, err := LockSQLite(path)
	if err != nil {
		t.Fatalf("LockSQLite() after Release = %v; want the lock", err)
	}
	again.Release()
}

// TestLockSQLiteKilled: a process that holds the lock blocks others while
// it lives; SIGKILLed, it leaves its lock file behind, which does not block
// the next lock.
func TestLockSQLiteKilled(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no flock: the lock is not enforced")
	}
	path := filepath.Join(t.TempDir(), "kiln.db")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), lockHolderEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("holder said %q, %v; want \"locked\"", line, err)
	}

	_, err = LockSQLite(path)
	if !errors.Is(err, ErrFileHeld) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", cmd.Process.Pid)) {
		t.Fatalf("LockSQLite() while another process holds it = %v; want ErrFileHeld naming pid %d", err, cmd.Process.Pid)
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if _, err := os.Stat(path + ".lock"); err != nil {
		t.Fatalf("lock file after the kill: %v; want it left behind", err)
	}
	l, err := LockSQLite(path)
	if err != nil {
		t.Fatalf("LockSQLite() after the holder was killed = %v; want the lock", err)
	}
	l.Release()
}

// TestLockSQLiteWaitsForRelease: a lock released while LockSQLiteWait
// waits is taken; one that stays held is refused once the wait is over.
func TestLockSQLiteWaitsForRelease(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no flock: the lock is not enforced")
	}
	path := filepath.Join(t.TempDir(), "kiln.db")
	first, err := LockSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LockSQLiteWait(path, 100*time.Millisecond); !errors.Is(err, ErrFileHeld) {
		t.Fatalf("LockSQLiteWait() while held = %v; want ErrFileHeld after the wait", err)
	}
	release := time.AfterFunc(100*time.Millisecond, func() { _ = first.Release() })
	defer release.Stop()
	second, err := LockSQLiteWait(path, time.Minute)
	if err != nil {
		t.Fatalf("LockSQLiteWait() with the holder releasing = %v; want the lock", err)
	}
	_ = second.Release()
}
