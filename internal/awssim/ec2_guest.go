package awssim

import (
	"strconv"
	"strings"
	"time"
)

// The guest model: see the package comment. A script is interpreted once,
// up front, into a timeline of steps (console output at simulated offsets,
// then the end: power-off, or the script's exit status); the steps are then
// scheduled on the simulator's clock and dropped if the instance stops or
// reboots before they fall due.

type guestStep struct {
	at       time.Duration // since the script started (simulated, unscaled)
	output   string        // console text to append
	end      bool          // the script is over
	status   int           // its exit status, when end
	powerOff bool          // the OS powers off, when end
	reboot   bool          // the OS reboots, when end
}

// shell is one run of the interpreter over a guest's files.
type shell struct {
	files   map[string]string
	cmdTime time.Duration
	t       time.Duration
	steps   []guestStep
}

// shellState is one script's state: its last status and set -e.
type shellState struct {
	last    int
	errexit bool
	depth   int
}

// flow says how a block ended.
type flow int

const (
	flowNext     flow = iota // carry on
	flowExit                 // exit N, or set -e with a failure
	flowPowerOff             // the OS is going down
	flowReboot
	flowHalt
)

// interpret runs script and returns its timeline. The last step has end
// set.
func interpret(script string, files map[string]string, cmdTime time.Duration) []guestStep {
	sh := &shell{files: files, cmdTime: cmdTime}
	st := &shellState{}
	f := sh.exec(splitLines(script), st)
	end := guestStep{at: sh.t, end: true, status: st.last, powerOff: f == flowPowerOff, reboot: f == flowReboot}
	return append(sh.steps, end)
}

func splitLines(s string) []string {
	return strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
}

func (sh *shell) print(s string) {
	sh.steps = append(sh.steps, guestStep{at: sh.t, output: s})
}

// exec runs lines; st.last is the status of the last command.
func (sh *shell) exec(lines []string, st *shellState) flow {
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "if "); ok {
			end, f := sh.execIf(rest, lines, i, st)
			if f != flowNext {
				return f
			}
			i = end
			continue
		}
		if strings.Contains(line, "<<") {
			i = sh.hereDoc(line, lines, i, st)
			continue
		}
		f := sh.simple(line, st)
		if f != flowNext {
			return f
		}
		if st.last != 0 && st.errexit {
			return flowExit
		}
	}
	return flowNext
}

// execIf runs "if CMD; then ... [else ...] fi" starting at lines[i]; it
// returns the index of the "fi" line.
func (sh *shell) execIf(rest string, lines []string, i int, st *shellState) (int, flow) {
	cond, hasThen := strings.CutSuffix(strings.TrimSpace(rest), "then")
	cond = strings.TrimSuffix(strings.TrimSpace(cond), ";")
	j := i + 1
	if !hasThen {
		for j < len(lines) && strings.TrimSpace(lines[j]) == "" {
			j++
		}
		if j < len(lines) && strings.TrimSpace(lines[j]) == "then" {
			j++
		}
	}
	var thenB, elseB []string
	inElse, depth := false, 0
	for ; j < len(lines); j++ {
		l := strings.TrimSpace(lines[j])
		switch {
		case strings.HasPrefix(l, "if "):
			depth++
		case l == "fi" || strings.HasPrefix(l, "fi ") || l == "fi;":
			if depth == 0 {
				goto done
			}
			depth--
		case l == "else" && depth == 0:
			inElse = true
			continue
		}
		if inElse {
			elseB = append(elseB, lines[j])
		} else {
			thenB = append(thenB, lines[j])
		}
	}
done:
	saved := st.errexit
	st.errexit = false // the condition never trips set -e
	f := sh.simple(cond, st)
	st.errexit = saved
	if f != flowNext { // "if exit 3" or "if poweroff" ends the script
		return j, f
	}
	block := thenB
	if st.last != 0 {
		block = elseB
	}
	if len(block) == 0 {
		st.last = 0
		return j, flowNext
	}
	return j, sh.exec(block, st)
}

// hereDoc handles "cat > PATH <<'TAG'" (or "cat <<TAG > PATH", ">>" to
// append, "<<-" to strip tabs) and returns the index of the TAG line.
func (sh *shell) hereDoc(line string, lines []string, i int, st *shellState) int {
	before, after, _ := strings.Cut(line, "<<")
	strip := strings.HasPrefix(after, "-")
	after = strings.TrimPrefix(after, "-")
	words := strings.Fields(after)
	if len(words) == 0 {
		st.last = 2
		return i
	}
	tag := strings.Trim(words[0], `'"`)
	redir := strings.TrimSpace(before + " " + strings.Join(words[1:], " "))
	var body []string
	j := i + 1
	for ; j < len(lines); j++ {
		l := lines[j]
		if strip {
			l = strings.TrimLeft(l, "\t")
		}
		if strings.TrimRight(l, " \r") == tag {
			break
		}
		body = append(body, l)
	}
	text := strings.Join(body, "\n")
	if len(body) > 0 {
		text += "\n"
	}
	path, appendTo := "", false
	if k := strings.Index(redir, ">"); k >= 0 {
		appendTo = strings.HasPrefix(redir[k:], ">>")
		path = strings.Trim(strings.TrimSpace(strings.TrimLeft(redir[k:], ">")), `'"`)
	}
	switch {
	case path == "" || path == "/dev/console" || path == "/dev/stdout" || path == "/dev/stderr" || path == "&2":
		sh.print(text)
	case appendTo:
		sh.files[path] += text
	default:
		sh.files[path] = text
	}
	st.last = 0
	return j
}

// simple runs one simple command line.
func (sh *shell) simple(line string, st *shellState) flow {
	words, redir := splitCommand(line, st.last)
	if len(words) == 0 {
		st.last = 0
		return flowNext
	}
	if words[0] == "sudo" && len(words) > 1 {
		words = words[1:]
	}
	switch cmd, args := words[0], words[1:]; cmd {
	case "echo":
		nl := "\n"
		if len(args) > 0 && args[0] == "-n" {
			args, nl = args[1:], ""
		}
		out := strings.Join(args, " ") + nl
		switch redir.path {
		case "", "/dev/console", "/dev/stdout", "/dev/stderr", "/dev/tty", "&1", "&2":
			sh.print(out)
		case "/dev/null":
		default:
			if redir.append {
				sh.files[redir.path] += out
			} else {
				sh.files[redir.path] = out
			}
		}
		st.last = 0
	case "true", ":":
		st.last = 0
	case "false":
		st.last = 1
	case "sleep":
		d, ok := parseSleep(args)
		if !ok {
			sh.print("sleep: invalid time interval\n")
			st.last = 1
			break
		}
		sh.t += d
		st.last = 0
	case "exit":
		if len(args) > 0 {
			n, err := strconv.Atoi(args[0])
			if err != nil {
				n = 2
			}
			st.last = n & 0xff
		}
		return flowExit
	case "set":
		for _, a := range args {
			switch {
			case strings.HasPrefix(a, "-") && strings.Contains(a, "e"):
				st.errexit = true
			case strings.HasPrefix(a, "+") && strings.Contains(a, "e"):
				st.errexit = false
			}
		}
		st.last = 0
	case "sh", "bash", "/bin/sh", "/bin/bash", "/usr/bin/sh", "/usr/bin/bash", "dash":
		return sh.runFile(args, st)
	case "poweroff", "/sbin/poweroff", "/usr/sbin/poweroff":
		return flowPowerOff
	case "shutdown", "/sbin/shutdown", "/usr/sbin/shutdown":
		for _, a := range args {
			if a == "-r" || a == "--reboot" {
				return flowReboot
			}
		}
		return flowPowerOff
	case "halt", "/sbin/halt":
		for _, a := range args {
			if a == "-p" || a == "--poweroff" {
				return flowPowerOff
			}
		}
		return flowHalt
	case "reboot", "/sbin/reboot":
		return flowReboot
	case "systemctl":
		if len(args) > 0 && args[0] == "poweroff" {
			return flowPowerOff
		}
		if len(args) > 0 && args[0] == "reboot" {
			return flowReboot
		}
		sh.t += sh.cmdTime
		st.last = 0
	case "init":
		if len(args) > 0 && args[0] == "0" {
			return flowPowerOff
		}
		sh.t += sh.cmdTime
		st.last = 0
	default:
		sh.t += sh.cmdTime
		st.last = 0
	}
	return flowNext
}

// runFile runs "sh [-e] [-x] PATH": a script from the guest's files; its
// status is the script's exit status.
func (sh *shell) runFile(args []string, st *shellState) flow {
	sub := &shellState{depth: st.depth + 1}
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		if strings.Contains(args[0], "e") {
			sub.errexit = true
		}
		if args[0] == "-c" {
			sh.t += sh.cmdTime
			st.last = 0
			return flowNext
		}
		args = args[1:]
	}
	if len(args) == 0 {
		st.last = 0
		return flowNext
	}
	body, ok := sh.files[args[0]]
	if !ok {
		sh.print("sh: 0: cannot open " + args[0] + ": No such file\n")
		st.last = 2
		return flowNext
	}
	if sub.depth > 8 {
		st.last = 2
		return flowNext
	}
	f := sh.exec(splitLines(body), sub)
	st.last = sub.last
	switch f {
	case flowPowerOff, flowReboot, flowHalt:
		return f
	}
	return flowNext
}

func parseSleep(args []string) (time.Duration, bool) {
	if len(args) == 0 {
		return 0, false
	}
	var total time.Duration
	for _, a := range args {
		unit := time.Second
		switch {
		case strings.HasSuffix(a, "s"):
			a = strings.TrimSuffix(a, "s")
		case strings.HasSuffix(a, "m"):
			a, unit = strings.TrimSuffix(a, "m"), time.Minute
		case strings.HasSuffix(a, "h"):
			a, unit = strings.TrimSuffix(a, "h"), time.Hour
		case strings.HasSuffix(a, "d"):
			a, unit = strings.TrimSuffix(a, "d"), 24*time.Hour
		}
		f, err := strconv.ParseFloat(a, 64)
		if err != nil || f < 0 || f > 1e7 {
			return 0, false
		}
		total += time.Duration(f * float64(unit))
	}
	return total, true
}

type redirect struct {
	path   string
	append bool
}

// splitCommand splits a command line into words: quotes removed, $?
// expanded outside single quotes, and the output redirection taken out.
func splitCommand(line string, last int) ([]string, redirect) {
	var words []string
	var red redirect
	var cur strings.Builder
	inWord, sq, dq := false, false, false
	expectPath := false
	flush := func() {
		if !inWord {
			return
		}
		w := cur.String()
		cur.Reset()
		inWord = false
		if expectPath {
			red.path = w
			expectPath = false
			return
		}
		words = append(words, w)
	}
	status := strconv.Itoa(last)
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case sq:
			if c == '\'' {
				sq = false
			} else {
				cur.WriteByte(c)
			}
		case c == '\'' && !dq:
			sq, inWord = true, true
		case c == '"':
			dq = !dq
			inWord = true
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
			inWord = true
		case c == '$' && i+1 < len(line) && line[i+1] == '?':
			cur.WriteString(status)
			inWord = true
			i++
		case c == '$' && strings.HasPrefix(line[i:], "${?}"):
			cur.WriteString(status)
			inWord = true
			i += 3
		case dq:
			cur.WriteByte(c)
		case c == ' ' || c == '\t':
			flush()
		case c == ';':
			flush()
			return words, red // one command per line: the rest is ignored
		case c == '>' || (c >= '0' && c <= '9' && !inWord && i+1 < len(line) && line[i+1] == '>'):
			flush()
			if c != '>' {
				i++ // the fd number
			}
			red = redirect{}
			if i+1 < len(line) && line[i+1] == '>' {
				red.append = true
				i++
			}
			if i+1 < len(line) && line[i+1] == '&' {
				j := i + 2
				for j < len(line) && line[j] != ' ' {
					j++
				}
				red.path = "&" + line[i+2:j]
				i = j
				continue
			}
			expectPath = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	flush()
	return words, red
}

// startGuestLocked runs the user-data script of an instance that has just
// booted for the first time; s.mu is held.
func (s *Sim) startGuestLocked(in *instance, now time.Time) {
	ud := string(in.spec.UserData)
	if !strings.HasPrefix(ud, "#!") {
		return
	}
	steps := interpret(ud, in.files, s.opts.Durations.Command)
	boot := in.boot
	for _, st := range steps {
		s.after(now, st.at, func(at time.Time) {
			if in.boot != boot || in.state != StateRunning || in.removed {
				return
			}
			if st.output != "" {
				in.appendConsole(st.output)
			}
			if !st.end {
				return
			}
			in.exitCode = st.status
			switch {
			case st.powerOff:
				in.appendConsole("[  OK  ] Stopped target Multi-User System.\n")
				reason := "Client.InstanceInitiatedShutdown: Instance initiated shutdown"
				if in.spec.ShutdownBehavior == "terminate" {
					s.setStateLocked(in, StateShuttingDown, at, "")
				} else {
					s.setStateLocked(in, StateStopping, at, "")
				}
				in.stateReason = &xStateReason{Code: "Client.InstanceInitiatedShutdown", Message: reason}
			case st.reboot:
				s.rebootLocked(in, at)
			default:
				if st.status != 0 {
					in.appendConsole("cloud-init[1867]: " + at.UTC().Format("2006-01-02 15:04:05,000") + " - cc_scripts_user.py[WARNING]: Failed to run module scripts_user (scripts in /var/lib/cloud/instance/scripts)\n")
				}
				in.appendConsole("cloud-init[1867]: Cloud-init v. 22.2.2 finished at " + at.UTC().Format(time.RFC1123Z) + ". Datasource DataSourceEc2.\n")
			}
		})
	}
}
