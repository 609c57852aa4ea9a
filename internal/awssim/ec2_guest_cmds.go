package awssim

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"mvdan.cc/sh/v3/interp"
	"mvdan.cc/sh/v3/syntax"
)

// The guest's commands. The shell's builtins (echo, printf, test, set,
// exit, cd, read, ...) are the interpreter's own. Every other command
// comes here:
//
//   - a command line matched by SetGuestCommand does what it says;
//   - sleep waits in simulated time; poweroff, shutdown, halt, reboot (and
//     systemctl poweroff|reboot|halt, init 0|6) take the OS down;
//   - sh, bash and dash run a script from the guest's files (or -c, or
//     stdin) with the same interpreter, as does running a guest file that
//     starts with "#!" and has an execute bit;
//   - the file utilities (cat, tee, mkdir, rmdir, touch, rm, cp, mv,
//     chmod, chown, ls, grep, head, tail, wc, basename, dirname, mktemp)
//     work on the guest's files and take no simulated time, as they take
//     milliseconds on a machine; so do date, uname, hostname, id, whoami,
//     which and env;
//   - anything else (dnf, yum, apt-get, curl, systemctl enable, ...) is
//     simulated: it takes Durations.Command and succeeds, printing nothing;
//     a package manager's install also makes the package's usual
//     directories (installDirs).

// GuestCommand is what a command run by a guest's script does instead of
// the guest's default (ec2_guest_cmds.go): it takes Time of simulated time
// (before TimeScale; 0 is Durations.Command), then prints Stdout and
// Stderr and exits with Status (0-255).
type GuestCommand struct {
	Status int
	Stdout string
	Stderr string
	Time   time.Duration
}

// guestCommands are SetGuestCommand's rules, kept by the home world for
// every region; mu is its own (scripts read the rules while another
// world's lock is held).
type guestCommands struct {
	mu    sync.Mutex
	rules []guestRule
}

type guestRule struct {
	prefix []string
	cmd    GuestCommand
}

// SetGuestCommand makes every command line that a guest's script runs and
// that starts with the words of prefix ("dnf install", "curl -fsS
// https://example.com/health") do what c says, in every region, from now
// on: a way to make a command fail (Status 1, a message on Stderr) or
// answer something. The first word also matches a command run by path
// (/usr/bin/dnf). The longest matching prefix wins; setting a prefix again
// replaces its rule. It applies to commands that reach the guest, not to
// the shell's builtins (echo, test, exit, ...).
func (s *Sim) SetGuestCommand(prefix string, c GuestCommand) {
	words := strings.Fields(prefix)
	if len(words) == 0 {
		return
	}
	gc := &s.root().guestCmds
	gc.mu.Lock()
	defer gc.mu.Unlock()
	gc.rules = slices.DeleteFunc(gc.rules, func(r guestRule) bool { return slices.Equal(r.prefix, words) })
	gc.rules = append(gc.rules, guestRule{prefix: words, cmd: c})
}

// match returns the rule of the longest prefix of args.
func (gc *guestCommands) match(args []string) (GuestCommand, bool) {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	best := -1
	var found GuestCommand
	for _, r := range gc.rules {
		if len(r.prefix) > len(args) || len(r.prefix) <= best {
			continue
		}
		ok := r.prefix[0] == args[0] || r.prefix[0] == path.Base(args[0])
		for i := 1; ok && i < len(r.prefix); i++ {
			ok = r.prefix[i] == args[i]
		}
		if ok {
			best, found = len(r.prefix), r.cmd
		}
	}
	return found, best >= 0
}

// maxGoFrames bounds the interpreter's recursion (a shell function level
// is about a dozen Go frames, so some 680 levels): a script whose
// functions recurse without end must stop with an error, not overflow the
// simulator's stack.
const maxGoFrames = 8 << 10

var framePool = sync.Pool{New: func() any { b := make([]uintptr, maxGoFrames); return &b }}

// deepStack reports whether the calling goroutine's stack is maxGoFrames
// deep.
func deepStack() bool {
	b := framePool.Get().(*[]uintptr)
	defer framePool.Put(b)
	return runtime.Callers(0, *b) >= maxGoFrames
}

// call is the interpreter's CallHandler, run before every simple command:
// it stops runaway recursion; and "command -v NAME" and "type NAME", which
// would look NAME up in the host's PATH, it answers in the guest for a
// name that is not a builtin (every command is installed, unless a rule
// says it exits 127).
func (g *guest) call(_ context.Context, args []string) ([]string, error) {
	if g.calls.Add(1)%64 == 0 && deepStack() { // a check walks the stack: not at every call
		return nil, errors.New("maximum function nesting level exceeded")
	}
	var names []string
	switch {
	case len(args) > 2 && args[0] == "command" && args[1] == "-v":
		names = args[2:]
	case len(args) > 1 && args[0] == "type" && !strings.HasPrefix(args[1], "-"):
		names = args[1:]
	default:
		return args, nil
	}
	for _, n := range names {
		if interp.IsBuiltin(n) || syntax.IsKeyword(n) {
			return args, nil
		}
	}
	return append([]string{"which"}, names...), nil
}

// exec is the interpreter's exec handler: every command that is not a
// builtin or a function.
func (g *guest) exec(ctx context.Context, args []string) error {
	hc := interp.HandlerCtx(ctx)
	args = stripSudo(args)
	if len(args) == 0 {
		return nil
	}
	if c, ok := g.s.root().guestCmds.match(args); ok {
		d := c.Time
		if d <= 0 {
			d = g.cmdTime
		}
		if err := g.wait(ctx, d); err != nil {
			return err
		}
		io.WriteString(hc.Stdout, c.Stdout)
		io.WriteString(hc.Stderr, c.Stderr)
		return exitStatus(c.Status & 0xff)
	}
	name := args[0]
	if strings.Contains(name, "/") {
		if i, ok := g.fs.lookup(abs(hc.Dir, name)); ok && !i.IsDir() {
			return g.runFile(ctx, hc, args)
		}
		name = path.Base(name)
	}
	if f, ok := guestUtilFor(name); ok {
		return exitStatus(f(ctx, g, hc, args))
	}
	switch name {
	case "sleep":
		d, err := parseSleep(args[1:])
		if err != nil {
			fmt.Fprintf(hc.Stderr, "sleep: %v\n", err)
			return exitStatus(1)
		}
		return g.wait(ctx, d)
	case "sh", "bash", "dash":
		return exitStatus(g.runShell(ctx, hc, args))
	case "poweroff":
		return g.powerDown(ctx, endPowerOff)
	case "reboot":
		return g.powerDown(ctx, endReboot)
	case "halt":
		if slices.Contains(args, "-p") || slices.Contains(args, "--poweroff") {
			return g.powerDown(ctx, endPowerOff)
		}
		return g.powerDown(ctx, endHalt)
	case "shutdown":
		switch {
		case slices.Contains(args, "-c"):
			return nil
		case slices.Contains(args, "-r") || slices.Contains(args, "--reboot"):
			return g.powerDown(ctx, endReboot)
		case slices.Contains(args, "-H") || slices.Contains(args, "--halt"):
			return g.powerDown(ctx, endHalt)
		}
		return g.powerDown(ctx, endPowerOff)
	case "systemctl":
		if len(args) > 1 {
			switch args[1] {
			case "poweroff":
				return g.powerDown(ctx, endPowerOff)
			case "reboot":
				return g.powerDown(ctx, endReboot)
			case "halt":
				return g.powerDown(ctx, endHalt)
			}
		}
	case "dnf", "yum", "apt-get", "apt", "zypper":
		if err := g.wait(ctx, g.cmdTime); err != nil {
			return err
		}
		g.installDirs(args)
		return nil
	case "init", "telinit":
		if len(args) > 1 && args[1] == "0" {
			return g.powerDown(ctx, endPowerOff)
		}
		if len(args) > 1 && args[1] == "6" {
			return g.powerDown(ctx, endReboot)
		}
	}
	return g.wait(ctx, g.cmdTime)
}

// installDirs makes the directories a package usually brings
// (/etc/PKG/conf.d, /usr/share/PKG, /var/lib/PKG, /var/log/PKG) for each
// package a package manager's install command names, so that a script can
// write a package's configuration after installing it, as on a real
// instance.
func (g *guest) installDirs(args []string) {
	i := slices.Index(args, "install")
	if i < 0 {
		return
	}
	for _, pkg := range args[i+1:] {
		if strings.HasPrefix(pkg, "-") || strings.ContainsAny(pkg, "/=*") {
			continue
		}
		for _, d := range []string{"/etc/" + pkg + "/conf.d", "/usr/share/" + pkg, "/var/lib/" + pkg, "/var/log/" + pkg} {
			_ = g.fs.mkdir(d, true, 0o755) // a file in the way: the package brings none
		}
	}
}

// stripSudo drops "sudo [options]": the script already runs as root.
func stripSudo(args []string) []string {
	for len(args) > 0 && path.Base(args[0]) == "sudo" {
		args = args[1:]
		for len(args) > 0 && strings.HasPrefix(args[0], "-") {
			if args[0] == "-u" || args[0] == "-g" {
				args = args[1:]
			}
			args = args[1:]
		}
	}
	return args
}

// parseSleep reads sleep's operands: numbers with an optional s, m, h or d
// suffix, added up.
func parseSleep(args []string) (time.Duration, error) {
	if len(args) == 0 {
		return 0, errors.New("missing operand")
	}
	var total time.Duration
	for _, a := range args {
		num, unit := a, time.Second
		switch {
		case strings.HasSuffix(a, "s"):
			num = strings.TrimSuffix(a, "s")
		case strings.HasSuffix(a, "m"):
			num, unit = strings.TrimSuffix(a, "m"), time.Minute
		case strings.HasSuffix(a, "h"):
			num, unit = strings.TrimSuffix(a, "h"), time.Hour
		case strings.HasSuffix(a, "d"):
			num, unit = strings.TrimSuffix(a, "d"), 24*time.Hour
		}
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || f < 0 || f > 1e7 || num != strings.TrimSpace(num) {
			return 0, fmt.Errorf("invalid time interval '%s'", a)
		}
		total += time.Duration(f * float64(unit))
	}
	return total, nil
}

// runShell runs "sh [options] FILE [args]", "sh [options] -c CMD [name
// [args]]" or "sh [options]" (the script on stdin). Its status is the
// script's.
func (g *guest) runShell(ctx context.Context, hc interp.HandlerContext, args []string) int {
	shell := path.Base(args[0])
	var opts []string
	command, isCommand := "", false
	i := 1
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		if a == "-" || (!strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "+")) {
			break
		}
		if a == "-o" || a == "+o" {
			if i+1 < len(args) {
				opts = append(opts, a, args[i+1])
				i++
			}
			continue
		}
		if strings.HasPrefix(a, "--") { // --login, --norc, ...
			continue
		}
		if strings.Contains(a, "c") && a[0] == '-' {
			isCommand = true
			a = strings.ReplaceAll(a, "c", "")
		}
		a = strings.NewReplacer("s", "", "i", "", "l", "").Replace(a)
		if len(a) > 1 {
			opts = append(opts, a)
		}
	}
	rest := args[i:]
	var src []byte
	name := shell
	switch {
	case isCommand:
		if len(rest) == 0 {
			fmt.Fprintf(hc.Stderr, "%s: -c: option requires an argument\n", shell)
			return 2
		}
		command, rest = rest[0], rest[1:]
		src = []byte(command)
		if len(rest) > 0 {
			name, rest = rest[0], rest[1:]
		}
	case len(rest) == 0 || rest[0] == "-":
		b, err := io.ReadAll(stdinOf(hc))
		if err != nil {
			fmt.Fprintf(hc.Stderr, "%s: %v\n", shell, err)
			return 2
		}
		src = b
		if len(rest) > 0 {
			rest = rest[1:]
		}
	default:
		b, err := g.fs.read(abs(hc.Dir, rest[0]))
		if err != nil {
			fmt.Fprintf(hc.Stderr, "%s: %s: %s\n", shell, rest[0], errText(err))
			return 127
		}
		src, name, rest = b, rest[0], rest[1:]
	}
	return g.shell(ctx, name, src, exported(hc.Env), hc.Dir, append(append(opts, "--"), rest...), hc.Stdin, hc.Stdout, hc.Stderr)
}

// runFile runs a guest file by path: a script with an execute bit and a
// "#!" line naming a shell runs in the guest's shell; another program is
// simulated like any command.
func (g *guest) runFile(ctx context.Context, hc interp.HandlerContext, args []string) error {
	p := abs(hc.Dir, args[0])
	i, _ := g.fs.lookup(p)
	if i.mode&0o111 == 0 {
		fmt.Fprintf(hc.Stderr, "%s: Permission denied\n", args[0])
		return exitStatus(126)
	}
	data, err := g.fs.read(p)
	if err != nil {
		fmt.Fprintf(hc.Stderr, "%s: %s\n", args[0], errText(err))
		return exitStatus(126)
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	if interp, ok := bytes.CutPrefix(line, []byte("#!")); ok {
		words := strings.Fields(string(interp))
		if len(words) > 1 && path.Base(words[0]) == "env" {
			words = words[1:]
		}
		if len(words) > 0 && slices.Contains([]string{"sh", "bash", "dash"}, path.Base(words[0])) {
			return exitStatus(g.shell(ctx, args[0], data, exported(hc.Env), hc.Dir, append([]string{"--"}, args[1:]...), hc.Stdin, hc.Stdout, hc.Stderr))
		}
	}
	return g.wait(ctx, g.cmdTime)
}

// errText is an error's reason the way coreutils print it ("No such file
// or directory").
func errText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		s := errno.Error()
		return strings.ToUpper(s[:1]) + s[1:]
	}
	return err.Error()
}

// guestUtil is a command the guest implements; it returns the status.
type guestUtil func(ctx context.Context, g *guest, hc interp.HandlerContext, args []string) int

// guestUtilFor returns the command the guest implements under name.
func guestUtilFor(name string) (guestUtil, bool) {
	u, ok := map[string]guestUtil{
		"cat": utilCat, "tee": utilTee, "mkdir": utilMkdir, "rmdir": utilRmdir, "touch": utilTouch,
		"rm": utilRm, "cp": utilCp, "mv": utilMv, "chmod": utilChmod, "chown": utilChown, "chgrp": utilChown,
		"ls": utilLs, "grep": utilGrep, "head": utilHead, "tail": utilTail, "wc": utilWc,
		"basename": utilBasename, "dirname": utilDirname, "mktemp": utilMktemp, "date": utilDate,
		"uname": utilUname, "hostname": utilHostname, "id": utilID, "whoami": utilWhoami,
		"which": utilWhich, "env": utilEnv,
	}[name]
	return u, ok
}

// flags splits args[1:] into single-letter flags (and -n N style values
// for the letters in withValue) and operands.
func flags(args []string, withValue string) (map[byte]string, []string) {
	set := map[byte]string{}
	var ops []string
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			ops = append(ops, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' || strings.HasPrefix(a, "--") {
			if strings.HasPrefix(a, "--") {
				set['-'] += a + " "
				continue
			}
			ops = append(ops, a)
			continue
		}
		for j := 1; j < len(a); j++ {
			c := a[j]
			if strings.IndexByte(withValue, c) >= 0 {
				v := a[j+1:]
				if v == "" && i+1 < len(args) {
					i++
					v = args[i]
				}
				set[c] = v
				break
			}
			set[c] = ""
		}
	}
	return set, ops
}

func has(set map[byte]string, c byte) bool { _, ok := set[c]; return ok }

func fail(hc interp.HandlerContext, format string, a ...any) {
	fmt.Fprintf(hc.Stderr, format+"\n", a...)
}

// inputs calls fn with each operand's contents, or with stdin when there
// are none ("-" is stdin too); it returns 1 when an operand cannot be read.
func inputs(g *guest, hc interp.HandlerContext, cmd string, ops []string, fn func(name string, r io.Reader)) int {
	if len(ops) == 0 {
		ops = []string{"-"}
	}
	status := 0
	for _, op := range ops {
		if op == "-" {
			fn(op, stdinOf(hc))
			continue
		}
		p := abs(hc.Dir, op)
		if d := device(hc, g, p); d != nil {
			fn(op, d)
			continue
		}
		data, err := g.fs.read(p)
		if err != nil {
			fail(hc, "%s: %s: %s", cmd, op, errText(err))
			status = 1
			continue
		}
		fn(op, bytes.NewReader(data))
	}
	return status
}

func utilCat(_ context.Context, g *guest, hc interp.HandlerContext, args []string) int {
	_, ops := flags(args, "")
	return inputs(g, hc, "cat", ops, func(_ string, r io.Reader) { io.Copy(hc.Stdout, r) })
}

func utilTee(_ context.Context, g *guest, hc interp.HandlerContext, args []string) int {
	set, ops := flags(args, "")
	flag := syscallFlags(has(set, 'a'))
	ws := []io.Writer{hc.Stdout}
	status := 0
	for _, op := range ops {
		p := abs(hc.Dir, op)
		if d := device(hc, g, p); d != nil {
			ws = append(ws, d)
			continue
		}
		h, err := g.fs.openFile(p, flag, 0o644)
		if err != nil {
			fail(hc, "tee: %s: %s", op, errText(err))
			status = 1
			continue
		}
		ws = append(ws, h)
	}
	io.Copy(io.MultiWriter(ws...), stdinOf(hc))
	return status
}

func utilMkdir(_ context.Context, g *guest, hc interp.HandlerContext, args []string) int {
	set, ops := flags(args, "m")
	mode := fs.FileMode(0o755)
	if m, ok := set['m']; ok {
		mode = chmodFunc(m)(0o755)
	}
	if len(ops) == 0 {
		fail(hc, "mkdir: missing operand")
		return 1
	}
	status := 0
	for _, op := range ops {
		if err := g.fs.mkdir(abs(hc.Dir, op), has(set, 'p'), mode); err != nil {
			fail(hc, "mkdir: cannot create directory '%s': %s", op, errText(err))
			status = 1
		}
	}
	return status
}

func utilRmdir(_ context.Context, g *guest, hc interp.HandlerContext, args []string) int {
	_, ops := flags(args, "")
	status := 0
	for _, op := range ops {
		if err := g.fs.rmdir(abs(hc.Dir, op)); err != nil {
			fail(hc, "rmdir: failed to remove '%s': %s", op, errText(err))
			status = 1
		}
	}
	return status
}

func utilTouch(_ context.Context, g *guest, hc interp.HandlerContext, args []string) int {
	_, ops := flags(args, "dtr")
	status := 0
	for _, op := range ops {
		p := abs(hc.Dir, op)
		if i, ok := g.fs.lookup(p); ok && i.IsDir() {
			continue
		}
		if err := g.fs.touch(p); err != nil {
			fail(hc, "touch: cannot touch '%s': %s", op, errText(err))
			status = 1
		}
	}
	return status
}

func utilRm(_ context.Context, g *guest, hc interp.HandlerContext, args []string) int {
	set, ops := flags(args, "")
	force, rec := has(set, 'f'), has(set, 'r') || has(set, 'R')
	status := 0
	for _, op := range ops {
		err := g.fs.remove(abs(hc.Dir, op), rec)
		switch {
		case err == nil:
		case errors.Is(err, syscall.ENOENT) && force:
		default:
			fail(hc, "rm: cannot remove '%s': %s", op, errText(err))
			status = 1
		}
	}
	return status
}

// copyOrMove is cp and mv: SRC DST, or SRC... DIR.
func copyOrMove(g *guest, hc interp.HandlerContext, cmd string, ops []string, recursive, move bool) int {
	if len(ops) < 2 {
		fail(hc, "%s: missing file operand", cmd)
		return 1
	}
	dst := abs(hc.Dir, ops[len(ops)-1])
	srcs := ops[:len(ops)-1]
	di, dstOK := g.fs.lookup(dst)
	intoDir := dstOK && di.IsDir()
	if len(srcs) > 1 && !intoDir {
		fail(hc, "%s: target '%s' is not a directory", cmd, ops[len(ops)-1])
		return 1
	}
	status := 0
	for _, src := range srcs {
		to := dst
		if intoDir {
			to = path.Join(dst, path.Base(abs(hc.Dir, src)))
		}
		if err := g.fs.copyTree(abs(hc.Dir, src), to, recursive, move); err != nil {
			if errors.Is(err, syscall.EISDIR) && !recursive {
				fail(hc, "%s: -r not specified; omitting directory '%s'", cmd, src)
			} else {
				fail(hc, "%s: cannot %s '%s': %s", cmd, map[bool]string{false: "copy", true: "move"}[move], src, errText(err))
			}
			status = 1
		}
	}
	return status
}

func utilCp(_ context.Context, g *guest, hc interp.HandlerContext, args []string) int {
	set, ops := flags(args, "")
	return copyOrMove(g, hc, "cp", ops, has(set, 'r') || has(set, 'R') || has(set, 'a'), false)
}

func utilMv(_ context.Context, g *guest, hc interp.HandlerContext, args []string) int {
	_, ops := flags(args, "")
	return copyOrMove(g, hc, "mv", ops, true, true)
}

// chmodFunc parses an octal or symbolic mode ("755", "+x", "u+rwx,go-w").
func chmodFunc(spec string) func(fs.FileMode) fs.FileMode {
	if n, err := strconv.ParseUint(spec, 8, 32); err == nil {
		return func(m fs.FileMode) fs.FileMode { return m&^0o7777 | fs.FileMode(n)&0o777 }
	}
	return func(m fs.FileMode) fs.FileMode {
		for _, clause := range strings.Split(spec, ",") {
			i := strings.IndexAny(clause, "+-=")
			if i < 0 {
				continue
			}
			who, op, perms := clause[:i], clause[i], clause[i+1:]
			var mask fs.FileMode
			if who == "" || strings.Contains(who, "a") {
				mask = 0o777
			}
			for c, bits := range map[byte]fs.FileMode{'u': 0o700, 'g': 0o070, 'o': 0o007} {
				if strings.IndexByte(who, c) >= 0 {
					mask |= bits
				}
			}
			var bits fs.FileMode
			for c, b := range map[byte]fs.FileMode{'r': 0o444, 'w': 0o222, 'x': 0o111} {
				if strings.IndexByte(perms, c) >= 0 {
					bits |= b
				}
			}
			bits &= mask
			switch op {
			case '+':
				m |= bits
			case '-':
				m &^= bits
			case '=':
				m = m&^mask | bits
			}
		}
		return m
	}
}

func utilChmod(_ context.Context, g *guest, hc interp.HandlerContext, args []string) int {
	// a symbolic mode such as -x reads as a flag: take the first
	// operand-looking word after the flags as the mode
	var ops []string
	for _, a := range args[1:] {
		if a != "-R" && a != "-f" && a != "-v" && a != "--" {
			ops = append(ops, a)
		}
	}
	if len(ops) < 2 {
		fail(hc, "chmod: missing operand")
		return 1
	}
	fn := chmodFunc(ops[0])
	status := 0
	for _, op := range ops[1:] {
		if err := g.fs.chmod(abs(hc.Dir, op), fn); err != nil {
			fail(hc, "chmod: cannot access '%s': %s", op, errText(err))
			status = 1
		}
	}
	return status
}

func utilChown(_ context.Context, g *guest, hc interp.HandlerContext, args []string) int {
	_, ops := flags(args, "")
	if len(ops) < 2 {
		fail(hc, "%s: missing operand", args[0])
		return 1
	}
	status := 0
	for _, op := range ops[1:] {
		if _, ok := g.fs.lookup(abs(hc.Dir, op)); !ok {
			fail(hc, "%s: cannot access '%s': No such file or directory", path.Base(args[0]), op)
			status = 1
		}
	}
	return status
}

func utilLs(_ context.Context, g *guest, hc interp.HandlerContext, args []string) int {
	set, ops := flags(args, "")
	if len(ops) == 0 {
		ops = []string{"."}
	}
	long := has(set, 'l')
	line := func(i ginfo) {
		if !long {
			fmt.Fprintln(hc.Stdout, i.name)
			return
		}
		fmt.Fprintf(hc.Stdout, "%s 1 root root %d %s %s\n", i.mode.String(), i.size, i.mod.UTC().Format("Jan _2 15:04"), i.name)
	}
	status := 0
	for _, op := range ops {
		p := abs(hc.Dir, op)
		i, ok := g.fs.lookup(p)
		if !ok {
			fail(hc, "ls: cannot access '%s': No such file or directory", op)
			status = 2
			continue
		}
		if !i.IsDir() || has(set, 'd') {
			i.name = op
			line(i)
			continue
		}
		if len(ops) > 1 {
			fmt.Fprintf(hc.Stdout, "%s:\n", op)
		}
		list, _ := g.fs.list(p)
		for _, c := range list {
			if strings.HasPrefix(c.name, ".") && !has(set, 'a') && !has(set, 'A') {
				continue
			}
			line(c)
		}
	}
	return status
}

func utilGrep(_ context.Context, g *guest, hc interp.HandlerContext, args []string) int {
	set, ops := flags(args, "em")
	pattern, ok := set['e']
	if !ok {
		if len(ops) == 0 {
			fail(hc, "Usage: grep [OPTION]... PATTERNS [FILE]...")
			return 2
		}
		pattern, ops = ops[0], ops[1:]
	}
	if has(set, 'F') {
		pattern = regexp.QuoteMeta(pattern)
	} else if !has(set, 'E') {
		// basic regular expressions: \( \) \{ \} \| are the operators
		pattern = strings.NewReplacer(`\(`, `(`, `\)`, `)`, `\{`, `{`, `\}`, `}`, `\|`, `|`, `(`, `\(`, `)`, `\)`, `{`, `\{`, `}`, `\}`, `|`, `\|`, `+`, `\+`, `?`, `\?`).Replace(pattern)
	}
	if has(set, 'w') {
		pattern = `\b(?:` + pattern + `)\b`
	}
	if has(set, 'x') {
		pattern = `^(?:` + pattern + `)$`
	}
	if has(set, 'i') {
		pattern = `(?i)` + pattern
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		fail(hc, "grep: %v", err)
		return 2
	}
	quiet, invert, count, names := has(set, 'q') || has(set, 's') && has(set, 'q'), has(set, 'v'), has(set, 'c'), len(ops) > 1 && !has(set, 'h')
	matched := 0
	status := inputs(g, hc, "grep", ops, func(name string, r io.Reader) {
		n := 0
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if re.MatchString(sc.Text()) == invert {
				continue
			}
			n++
			if quiet || count {
				continue
			}
			if names {
				fmt.Fprintf(hc.Stdout, "%s:", name)
			}
			fmt.Fprintln(hc.Stdout, sc.Text())
		}
		if count && !quiet {
			if names {
				fmt.Fprintf(hc.Stdout, "%s:", name)
			}
			fmt.Fprintln(hc.Stdout, n)
		}
		matched += n
	})
	switch {
	case status != 0 && !(quiet && matched > 0):
		return 2
	case matched > 0:
		return 0
	}
	return 1
}

// lineCount reads head's and tail's -n N (or -N).
func lineCount(args []string) ([]string, int) {
	out := []string{args[0]}
	n := 10
	for i := 1; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-n" && i+1 < len(args):
			n, _ = strconv.Atoi(strings.TrimPrefix(args[i+1], "+"))
			i++
		case strings.HasPrefix(a, "-n"):
			n, _ = strconv.Atoi(a[2:])
		case len(a) > 1 && a[0] == '-' && a[1] >= '0' && a[1] <= '9':
			n, _ = strconv.Atoi(a[1:])
		default:
			out = append(out, a)
		}
	}
	return out, n
}

func readLines(r io.Reader) []string {
	data, _ := io.ReadAll(r)
	s := strings.TrimSuffix(string(data), "\n")
	if s == "" && len(data) == 0 {
		return nil
	}
	return strings.Split(s, "\n")
}

func utilHead(_ context.Context, g *guest, hc interp.HandlerContext, args []string) int {
	args, n := lineCount(args)
	_, ops := flags(args, "")
	return inputs(g, hc, "head", ops, func(_ string, r io.Reader) {
		lines := readLines(r)
		for _, l := range lines[:min(n, len(lines))] {
			fmt.Fprintln(hc.Stdout, l)
		}
	})
}

func utilTail(_ context.Context, g *guest, hc interp.HandlerContext, args []string) int {
	args, n := lineCount(args)
	_, ops := flags(args, "")
	return inputs(g, hc, "tail", ops, func(_ string, r io.Reader) {
		lines := readLines(r)
		for _, l := range lines[max(0, len(lines)-n):] {
			fmt.Fprintln(hc.Stdout, l)
		}
	})
}

func utilWc(_ context.Context, g *guest, hc interp.HandlerContext, args []string) int {
	set, ops := flags(args, "")
	return inputs(g, hc, "wc", ops, func(name string, r io.Reader) {
		data, _ := io.ReadAll(r)
		lines, words, bytes := strings.Count(string(data), "\n"), len(strings.Fields(string(data))), len(data)
		var out []string
		if has(set, 'l') {
			out = append(out, strconv.Itoa(lines))
		}
		if has(set, 'w') {
			out = append(out, strconv.Itoa(words))
		}
		if has(set, 'c') {
			out = append(out, strconv.Itoa(bytes))
		}
		if len(out) == 0 {
			out = []string{strconv.Itoa(lines), strconv.Itoa(words), strconv.Itoa(bytes)}
		}
		if name != "-" {
			out = append(out, name)
		}
		fmt.Fprintln(hc.Stdout, strings.Join(out, " "))
	})
}

func utilBasename(_ context.Context, _ *guest, hc interp.HandlerContext, args []string) int {
	if len(args) < 2 {
		fail(hc, "basename: missing operand")
		return 1
	}
	b := path.Base(args[1])
	if len(args) > 2 && b != args[2] {
		b = strings.TrimSuffix(b, args[2])
	}
	fmt.Fprintln(hc.Stdout, b)
	return 0
}

func utilDirname(_ context.Context, _ *guest, hc interp.HandlerContext, args []string) int {
	if len(args) < 2 {
		fail(hc, "dirname: missing operand")
		return 1
	}
	for _, a := range args[1:] {
		fmt.Fprintln(hc.Stdout, path.Dir(a))
	}
	return 0
}

func utilMktemp(_ context.Context, g *guest, hc interp.HandlerContext, args []string) int {
	set, ops := flags(args, "p")
	tmpl := "tmp.XXXXXXXXXX"
	if len(ops) > 0 {
		tmpl = ops[0]
	}
	dir := "/tmp"
	if p, ok := set['p']; ok {
		dir = p
	}
	if !strings.Contains(tmpl, "/") || has(set, 'p') {
		tmpl = path.Join(dir, tmpl)
	}
	x := len(tmpl) - len(strings.TrimRight(tmpl, "X"))
	if x < 3 {
		fail(hc, "mktemp: too few X's in template '%s'", tmpl)
		return 1
	}
	for {
		g.mu.Lock()
		g.seq++
		n := g.seq
		g.mu.Unlock()
		p := abs(hc.Dir, tmpl[:len(tmpl)-x]+fmt.Sprintf("%0*x", x, n)[:x])
		if _, ok := g.fs.lookup(p); ok {
			continue
		}
		var err error
		if has(set, 'd') {
			err = g.fs.mkdir(p, false, 0o700)
		} else {
			_, err = g.fs.openFile(p, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL, 0o600)
		}
		if err != nil {
			fail(hc, "mktemp: failed to create file via template '%s': %s", tmpl, errText(err))
			return 1
		}
		fmt.Fprintln(hc.Stdout, p)
		return 0
	}
}

// syscallFlags are the open flags of a write that creates, appending or
// truncating.
func syscallFlags(appendTo bool) int {
	if appendTo {
		return syscall.O_WRONLY | syscall.O_CREAT | syscall.O_APPEND
	}
	return syscall.O_WRONLY | syscall.O_CREAT | syscall.O_TRUNC
}

// utilDate prints the simulated time: date's default format, or +FORMAT
// with the common conversions.
func utilDate(_ context.Context, g *guest, hc interp.HandlerContext, args []string) int {
	now := g.clock().UTC()
	format := "%a %b %e %H:%M:%S %Z %Y"
	for _, a := range args[1:] {
		if f, ok := strings.CutPrefix(a, "+"); ok {
			format = f
		}
	}
	r := strings.NewReplacer("%Y", now.Format("2006"), "%m", now.Format("01"), "%d", now.Format("02"),
		"%e", fmt.Sprintf("%2d", now.Day()), "%H", now.Format("15"), "%M", now.Format("04"),
		"%S", now.Format("05"), "%s", strconv.FormatInt(now.Unix(), 10), "%F", now.Format("2006-01-02"),
		"%T", now.Format("15:04:05"), "%Z", "UTC", "%z", "+0000", "%a", now.Format("Mon"),
		"%b", now.Format("Jan"), "%%", "%")
	fmt.Fprintln(hc.Stdout, r.Replace(format))
	return 0
}

func utilUname(_ context.Context, g *guest, hc interp.HandlerContext, args []string) int {
	set, _ := flags(args, "")
	kernel := "6.1.112-124.190.amzn2023." + g.host.arch
	fields := map[byte]string{'s': "Linux", 'n': g.host.hostname, 'r': kernel, 'm': g.host.arch, 'o': "GNU/Linux"}
	var out []string
	for _, c := range []byte("snrmo") {
		if has(set, c) || has(set, 'a') {
			out = append(out, fields[c])
		}
	}
	if len(out) == 0 {
		out = []string{"Linux"}
	}
	fmt.Fprintln(hc.Stdout, strings.Join(out, " "))
	return 0
}

func utilHostname(_ context.Context, g *guest, hc interp.HandlerContext, _ []string) int {
	fmt.Fprintln(hc.Stdout, g.host.hostname)
	return 0
}

func utilID(_ context.Context, _ *guest, hc interp.HandlerContext, args []string) int {
	set, _ := flags(args, "")
	switch {
	case has(set, 'u'), has(set, 'g'):
		if has(set, 'n') {
			fmt.Fprintln(hc.Stdout, "root")
		} else {
			fmt.Fprintln(hc.Stdout, "0")
		}
	default:
		fmt.Fprintln(hc.Stdout, "uid=0(root) gid=0(root) groups=0(root)")
	}
	return 0
}

func utilWhoami(_ context.Context, _ *guest, hc interp.HandlerContext, _ []string) int {
	fmt.Fprintln(hc.Stdout, "root")
	return 0
}

// utilWhich says where a command is: every command is installed in
// /usr/bin, unless a rule makes it exit 127 (command not found).
func utilWhich(_ context.Context, g *guest, hc interp.HandlerContext, args []string) int {
	status := 0
	for _, name := range args[1:] {
		if strings.HasPrefix(name, "-") {
			continue
		}
		if c, ok := g.s.root().guestCmds.match([]string{name}); ok && c.Status == 127 {
			status = 1
			continue
		}
		if strings.Contains(name, "/") {
			fmt.Fprintln(hc.Stdout, name)
		} else {
			fmt.Fprintln(hc.Stdout, "/usr/bin/"+name)
		}
	}
	return status
}

// utilEnv prints the environment, or runs a command with assignments
// (which only a shell it runs sees).
func utilEnv(ctx context.Context, g *guest, hc interp.HandlerContext, args []string) int {
	i := 1
	for i < len(args) && (strings.HasPrefix(args[i], "-") || strings.Contains(args[i], "=")) {
		i++
	}
	if i == len(args) {
		for name, vr := range hc.Env.Each {
			if vr.Exported && vr.IsSet() {
				fmt.Fprintf(hc.Stdout, "%s=%s\n", name, vr.String())
			}
		}
		return 0
	}
	err := g.exec(ctx, args[i:])
	if n, ok := interp.IsExitStatus(err); ok {
		return int(n)
	}
	if err != nil {
		return -1
	}
	return 0
}
