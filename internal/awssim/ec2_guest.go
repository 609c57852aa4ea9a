package awssim

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/interp"
	"mvdan.cc/sh/v3/syntax"
)

// The guest model: see the package comment. A user-data script is run by a
// real shell interpreter (mvdan.cc/sh/v3: its parser and its runner), on a
// goroutine of its own, against a file system kept in memory per instance
// (ec2_guest_fs.go); the commands the shell does not have built in are the
// guest's (ec2_guest_cmds.go). Time is the simulator's: a command or sleep
// that takes simulated time parks the script and hands a wait to the
// simulator, which resumes it from a timer when the time is due. The
// script therefore runs as a coroutine of the simulator's timers: between
// two waits it runs while the timer callback (holding s.mu) waits for it,
// and it never takes s.mu itself. So what a script prints appears on the
// console at the simulated time it is printed, files change when the
// commands that change them run, and Advance on a manual clock runs a
// script exactly as far as the clock goes.

// scriptPath is where cloud-init keeps the user-data script it runs; the
// guest names the script so in its messages, as a real instance does.
const scriptPath = "/var/lib/cloud/instance/scripts/part-001"

// guestBudget is how long (wall clock) a script may run without taking
// simulated time (a command or a sleep) before the guest kills it: the
// simulator's lock is held meanwhile, so a busy loop must not hang it.
const guestBudget = 5 * time.Second

// maxShellDepth bounds scripts that run scripts (sh FILE, sh -c, ./FILE).
const maxShellDepth = 32

// guestEnd says how a script ended.
type guestEnd int

const (
	endExit     guestEnd = iota // the shell returned (or exit N)
	endPowerOff                 // poweroff, shutdown -h, halt -p, ...
	endReboot                   // reboot, shutdown -r
	endHalt                     // halt: the OS stops, the instance stays running
)

// guestWait is a script parked for d of simulated time.
type guestWait struct {
	d      time.Duration
	resume chan struct{} // closed by the timer that resumes it
}

// guest is one run of an instance's user-data script.
type guest struct {
	s       *Sim
	in      *instance // read and changed only under s.mu (by the timers)
	boot    uint64    // the boot the script belongs to
	fs      *guestFS
	cmdTime time.Duration
	host    guestHost

	ctx    context.Context // cancelled to kill the script
	cancel context.CancelFunc
	wg     sync.WaitGroup  // the script's goroutine
	yields chan *guestWait // a parked command hands its wait to the timers
	done   chan struct{}   // closed when the script's shell has returned
	src    string          // the script
	calls  atomic.Int64    // simple commands run, for call's recursion check
	seq    int             // mktemp names; guarded by mu
	mu     sync.Mutex      // guards out, now, end, status, seq
	out    []byte          // console text not yet flushed to in.console
	now    time.Time       // the simulated time of the current step
	end    guestEnd        // set by the power commands
	status int             // the script's exit status, when done
}

// guestHost is what the guest's commands report about the machine.
type guestHost struct {
	id, hostname, arch string
}

// startGuestLocked runs the user-data script of an instance that has just
// booted for the first time; s.mu is held. The script starts from a timer
// due now, so that it never changes the instance's state inside the
// transition to running.
func (s *Sim) startGuestLocked(in *instance, now time.Time) {
	ud := string(in.spec.UserData)
	if !strings.HasPrefix(ud, "#!") {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &guest{
		s: s, in: in, boot: in.boot, cmdTime: s.opts.Durations.Command,
		host:   guestHost{id: in.id, hostname: hostnameOf(in.privateIP), arch: in.arch},
		ctx:    ctx,
		cancel: cancel,
		yields: make(chan *guestWait),
		done:   make(chan struct{}),
		src:    ud,
		now:    now,
	}
	g.fs = newGuestFS(g)
	g.fs.put(scriptPath, []byte(ud), 0o700)
	s.after(now, 0, func(at time.Time) {
		if !g.alive() {
			cancel()
			return
		}
		g.wg.Go(g.run)
		g.step(at, nil)
	})
}

// hostnameOf is EC2's IP-based host name.
func hostnameOf(ip string) string {
	if ip == "" {
		return "localhost"
	}
	return "ip-" + strings.ReplaceAll(ip, ".", "-") + ".ec2.internal"
}

// alive reports whether the instance still runs the boot the script
// belongs to; s.mu is held.
func (g *guest) alive() bool {
	return g.in.boot == g.boot && g.in.state == StateRunning && !g.in.removed
}

// run is the script's goroutine: the shell over the whole script.
func (g *guest) run() {
	defer close(g.done)
	w := g.console()
	status := g.shell(g.ctx, scriptPath, []byte(g.src), guestEnv(nil), "/", nil, nil, w, w)
	g.mu.Lock()
	g.status = status
	g.mu.Unlock()
}

// step lets the script run until it parks on a wait or ends, at simulated
// time at, first resuming the wait it is parked on, if any; s.mu is held,
// and the script runs while step waits for it. A stop, reboot or
// termination since the last step kills the script instead.
func (g *guest) step(at time.Time, resume chan struct{}) {
	if !g.alive() {
		g.kill()
		return
	}
	g.mu.Lock()
	g.now = at
	g.mu.Unlock()
	if resume != nil {
		close(resume)
	}
	budget := time.NewTimer(guestBudget)
	defer budget.Stop()
	select {
	case w := <-g.yields:
		g.flush()
		g.s.after(at, w.d, func(at time.Time) { g.step(at, w.resume) })
	case <-g.done:
		g.flush()
		g.finish(at)
	case <-budget.C:
		g.s.log.Warn("guest script killed: it ran without a command or sleep for too long",
			"instance", g.in.id, "budget", guestBudget)
		g.kill()
	}
}

// kill stops the script: every command it waits in returns, and the shell
// stops at its next statement. Its output since the last step is lost, as
// it would be on a machine that went down. s.mu is held.
func (g *guest) kill() {
	g.cancel()
	t := time.NewTimer(guestBudget)
	defer t.Stop()
	select {
	case <-g.done:
		g.wg.Wait()
	case <-t.C: // a goroutine of the shell is stuck; let it go
	}
}

// flush appends what the script printed to the console; s.mu is held.
func (g *guest) flush() {
	g.mu.Lock()
	out := g.out
	g.out = nil
	g.mu.Unlock()
	if len(out) > 0 {
		g.in.appendConsole(string(out))
	}
}

// finish applies the end of the script at simulated time at: the OS
// powers off, reboots or halts, or cloud-init reports the script's status.
// s.mu is held.
func (g *guest) finish(at time.Time) {
	g.cancel() // background jobs die with the script
	g.wg.Wait()
	g.mu.Lock()
	status, end := g.status, g.end
	g.mu.Unlock()
	s, in := g.s, g.in
	in.exitCode = status
	switch end {
	case endPowerOff:
		in.appendConsole("[  OK  ] Stopped target Multi-User System.\n")
		reason := "Client.InstanceInitiatedShutdown: Instance initiated shutdown"
		if in.spec.ShutdownBehavior == "terminate" {
			s.setStateLocked(in, StateShuttingDown, at, "")
		} else {
			s.setStateLocked(in, StateStopping, at, "")
		}
		in.stateReason = &xStateReason{Code: "Client.InstanceInitiatedShutdown", Message: reason}
	case endReboot:
		s.rebootLocked(in, at)
	case endHalt:
		in.appendConsole("[  OK  ] Reached target System Halt.\n[ 1312.227015] reboot: System halted\n")
	default:
		if status != 0 {
			in.appendConsole("cloud-init[1867]: " + at.UTC().Format("2006-01-02 15:04:05,000") + " - cc_scripts_user.py[WARNING]: Failed to run module scripts_user (scripts in /var/lib/cloud/instance/scripts)\n")
		}
		in.appendConsole("cloud-init[1867]: Cloud-init v. 22.2.2 finished at " + at.UTC().Format(time.RFC1123Z) + ". Datasource DataSourceEc2.\n")
	}
}

// wait parks the calling command for d of simulated time. It returns
// ctx's error when the script is killed meanwhile.
func (g *guest) wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	w := &guestWait{d: d, resume: make(chan struct{})}
	select {
	case g.yields <- w:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-w.resume:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// powerDown ends the script the way the OS going down does: at once, for
// every process.
func (g *guest) powerDown(ctx context.Context, end guestEnd) error {
	g.mu.Lock()
	g.end = end
	g.mu.Unlock()
	g.cancel()
	return ctx.Err()
}

// clock is the simulated time of the current step.
func (g *guest) clock() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.now
}

// consoleWriter appends to the guest's console buffer.
type consoleWriter struct{ g *guest }

func (w consoleWriter) Write(p []byte) (int, error) {
	w.g.mu.Lock()
	w.g.out = append(w.g.out, p...)
	if len(w.g.out) > 2*consoleMax { // the console keeps the last consoleMax bytes
		w.g.out = append(w.g.out[:0], w.g.out[len(w.g.out)-consoleMax:]...)
	}
	w.g.mu.Unlock()
	return len(p), nil
}

func (g *guest) console() io.Writer { return consoleWriter{g} }

// depthKey carries how deep a script runs inside others.
type depthKey struct{}

// shell parses src (named name in messages) and runs it with params
// (options and positional parameters, as after "set"), in directory dir,
// with env and the given standard streams. It returns the exit status: 2
// for a script the shell cannot parse (the parser's message, with line and
// column, goes to stderr), -1 when the script was killed.
func (g *guest) shell(ctx context.Context, name string, src []byte, env expand.Environ, dir string, params []string, stdin io.Reader, stdout, stderr io.Writer) int {
	depth, _ := ctx.Value(depthKey{}).(int)
	if depth >= maxShellDepth {
		fmt.Fprintf(stderr, "%s: maximum nesting level exceeded\n", name)
		return 2
	}
	ctx = context.WithValue(ctx, depthKey{}, depth+1)
	f, err := syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(bytes.NewReader(src), name)
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return 2
	}
	if pos, ok := procSubst(f); ok {
		fmt.Fprintf(stderr, "%s:%s: process substitution is not supported by the simulator's guest\n", name, pos)
		return 2
	}
	r, err := interp.New(
		interp.Env(env),
		interp.Dir("/"), // the runner checks it on the host; the guest's is set below
		interp.StdIO(stdin, stdout, stderr),
		interp.OpenHandler(g.fs.open),
		interp.StatHandler(g.fs.stat),
		interp.ReadDirHandler2(g.fs.readDir),
		interp.AccessHandler(g.fs.access),
		interp.CallHandler(g.call),
		interp.ExecHandlers(func(interp.ExecHandlerFunc) interp.ExecHandlerFunc { return g.exec }),
	)
	if err == nil && len(params) > 0 {
		err = interp.Params(params...)(r)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 2
	}
	r.Dir = dir
	err = r.Run(ctx, f)
	if n, ok := interp.IsExitStatus(err); ok {
		return int(n)
	}
	if err == nil {
		return 0
	}
	if ctx.Err() != nil {
		return -1
	}
	fmt.Fprintf(stderr, "%s: %v\n", name, err)
	return 2
}

// procSubst finds a process substitution: the interpreter makes those
// with FIFOs on the host, which the guest must never touch.
func procSubst(f *syntax.File) (syntax.Pos, bool) {
	var pos syntax.Pos
	syntax.Walk(f, func(n syntax.Node) bool {
		if ps, ok := n.(*syntax.ProcSubst); ok && !pos.IsValid() {
			pos = ps.Pos()
		}
		return !pos.IsValid()
	})
	return pos, pos.IsValid()
}

// guestEnv is the environment cloud-init gives a user-data script, plus
// extra ("NAME=value").
func guestEnv(extra []string) expand.Environ {
	base := []string{
		"HOME=/root", "USER=root", "LOGNAME=root", "SHELL=/bin/bash", "LANG=C.UTF-8",
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"UID=0", "EUID=0", "GID=0",
	}
	return expand.ListEnviron(append(base, extra...)...)
}

// exported is the environment a child process gets: the exported
// variables of env.
func exported(env expand.Environ) expand.Environ {
	var list []string
	for name, vr := range env.Each {
		if vr.Exported && vr.IsSet() {
			list = append(list, name+"="+vr.String())
		}
	}
	return expand.ListEnviron(list...)
}

// exitStatus turns a status into what an exec handler returns.
func exitStatus(n int) error {
	if n == 0 {
		return nil
	}
	if n < 0 {
		return context.Canceled
	}
	return interp.NewExitStatus(uint8(n))
}

// stdinOf is a command's standard input; an empty reader when it has none.
func stdinOf(hc interp.HandlerContext) io.Reader {
	switch f := hc.Stdin.(type) {
	case nil:
		return strings.NewReader("")
	case *os.File:
		if f == nil {
			return strings.NewReader("")
		}
	}
	return hc.Stdin
}
