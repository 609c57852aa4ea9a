package awssim

import (
	"encoding/base64"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// bakeWrapper is the script kiln's bakery sends as user data
// (pipeline.WrapScript).
func bakeWrapper(id, script string) string {
	return "#!/bin/sh\n" +
		"mkdir -p /var/lib/kiln-bake\n" +
		"cat > /var/lib/kiln-bake/script <<'KILN_BAKE_SCRIPT'\n" + script + "KILN_BAKE_SCRIPT\n" +
		"if sh /var/lib/kiln-bake/script; then\n" +
		"echo \"kiln-bake " + id + " ok\" > /dev/console\n" +
		"else\n" +
		"echo \"kiln-bake " + id + " failed: exit $?\" > /dev/console\n" +
		"fi\n" +
		"poweroff\n"
}

func TestBakeWrapper(t *testing.T) {
	tests := []struct {
		name     string
		script   string
		behavior types.ShutdownBehavior
		want     string
		final    types.InstanceStateName
	}{
		{"success", "#!/bin/sh\necho installing\ndnf install -y nginx\n", "", "kiln-bake b1 ok", types.InstanceStateNameStopped},
		{"exit 3", "#!/bin/sh\nexit 3\n", "", "kiln-bake b1 failed: exit 3", types.InstanceStateNameStopped},
		{"set -e false", "#!/bin/sh\nset -e\nfalse\necho unreachable\n", "", "kiln-bake b1 failed: exit 1", types.InstanceStateNameStopped},
		{"terminate behavior", "#!/bin/sh\ntrue\n", types.ShutdownBehaviorTerminate, "kiln-bake b1 ok", types.InstanceStateNameTerminated},
		{"parse error", "#!/bin/sh\necho start\nif true; then\n  echo \"unclosed\nfi\n", "", "kiln-bake b1 failed: exit 2", types.InstanceStateNameStopped},
		{"failing command", "#!/bin/sh\nset -e\ndnf install -y no-such-package\necho unreachable\n", "", "kiln-bake b1 failed: exit 1", types.InstanceStateNameStopped},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c := newTestSim(t, Options{})
			s.SetGuestCommand("dnf install -y no-such-package", GuestCommand{Status: 1, Stderr: "Error: Unable to find a match: no-such-package\n"})
			ctx := t.Context()
			ami := baseImage(t, c)
			id := *run(t, c, &ec2.RunInstancesInput{
				ImageId: aws.String(ami), InstanceInitiatedShutdownBehavior: tt.behavior,
				UserData: aws.String(base64.StdEncoding.EncodeToString([]byte(bakeWrapper("b1", tt.script)))),
			})[0].InstanceId
			s.Advance(2 * time.Minute)
			if got := state(t, c, id); got != tt.final {
				t.Fatalf("state after the script = %s; want %s", got, tt.final)
			}
			out, err := c.GetConsoleOutput(ctx, &ec2.GetConsoleOutputInput{InstanceId: aws.String(id)})
			if err != nil {
				t.Fatalf("GetConsoleOutput() = %v", err)
			}
			text, _ := base64.StdEncoding.DecodeString(aws.ToString(out.Output))
			if !strings.Contains(string(text), tt.want+"\n") {
				t.Fatalf("console = %q; want a line %q", text, tt.want)
			}
			if tt.name == "parse error" && !strings.Contains(string(text), "/var/lib/kiln-bake/script:4:8: reached EOF without closing quote `\"`\n") {
				t.Errorf("console = %q; want the parser's error with the script's line and column", text)
			}
			d, _ := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
			if r := d.Reservations[0].Instances[0].StateReason; r == nil || aws.ToString(r.Code) != "Client.InstanceInitiatedShutdown" {
				t.Errorf("state reason = %+v; want Client.InstanceInitiatedShutdown", r)
			}
		})
	}
}

func TestGuestSleepAndConsoleDelay(t *testing.T) {
	s, c := newTestSim(t, Options{})
	ctx := t.Context()
	ami := baseImage(t, c)
	script := bakeWrapper("b2", "#!/bin/sh\necho start\nsleep 600\necho done\n")
	id := *run(t, c, &ec2.RunInstancesInput{ImageId: aws.String(ami), UserData: aws.String(base64.StdEncoding.EncodeToString([]byte(script)))})[0].InstanceId
	s.Advance(15 * time.Second) // running
	s.Advance(599 * time.Second)
	if got := state(t, c, id); got != types.InstanceStateNameRunning {
		t.Fatalf("state during sleep 600 = %s; want running", got)
	}
	in, _ := s.Instance(id)
	if !strings.Contains(in.Console, "start\n") || strings.Contains(in.Console, "done") {
		t.Fatalf("console during sleep = %q", in.Console)
	}
	s.Advance(2 * time.Second) // the script ends, the OS powers off: stopping
	if got := state(t, c, id); got != types.InstanceStateNameStopping {
		t.Fatalf("state after sleep = %s; want stopping", got)
	}
	s.Advance(30 * time.Second) // stopped; console not posted yet
	if got := state(t, c, id); got != types.InstanceStateNameStopped {
		t.Fatalf("state = %s; want stopped", got)
	}
	out, _ := c.GetConsoleOutput(ctx, &ec2.GetConsoleOutputInput{InstanceId: aws.String(id)})
	text, _ := base64.StdEncoding.DecodeString(aws.ToString(out.Output))
	if strings.Contains(string(text), "kiln-bake b2 ok") {
		t.Fatalf("marker visible right at stop; want it posted after the console delay")
	}
	s.Advance(5 * time.Second)
	out, _ = c.GetConsoleOutput(ctx, &ec2.GetConsoleOutputInput{InstanceId: aws.String(id)})
	text, _ = base64.StdEncoding.DecodeString(aws.ToString(out.Output))
	if !strings.Contains(string(text), "done\nkiln-bake b2 ok\n") {
		t.Fatalf("console after delay = %q; want the marker", text)
	}
}

func TestGuestStoppedMidScript(t *testing.T) {
	s, c := newTestSim(t, Options{})
	ami := baseImage(t, c)
	script := "#!/bin/sh\nsleep 100\necho late\npoweroff\n"
	id := *run(t, c, &ec2.RunInstancesInput{ImageId: aws.String(ami), UserData: aws.String(base64.StdEncoding.EncodeToString([]byte(script)))})[0].InstanceId
	s.Advance(30 * time.Second)
	if err := s.StopInstance(id); err != nil {
		t.Fatal(err)
	}
	s.Advance(time.Minute)
	if err := s.StartInstance(id); err != nil {
		t.Fatal(err)
	}
	s.Advance(10 * time.Minute)
	in, _ := s.Instance(id)
	if in.State != StateRunning || strings.Contains(in.Console, "late") {
		t.Fatalf("after a stop mid-script: state %s, console %q; want running, script not resumed", in.State, in.Console)
	}
}

// runGuest launches an instance with script as user data, advances the
// clock by d and returns the instance's id and its console output as
// GetConsoleOutput shows it (Latest while it runs).
func runGuest(t *testing.T, s *Sim, c *ec2.Client, script string, d time.Duration) (string, string) {
	t.Helper()
	ami := baseImage(t, c)
	id := *run(t, c, &ec2.RunInstancesInput{ImageId: aws.String(ami), UserData: aws.String(base64.StdEncoding.EncodeToString([]byte(script)))})[0].InstanceId
	s.Advance(d)
	return id, consoleOf(t, c, id)
}

func consoleOf(t *testing.T, c *ec2.Client, id string) string {
	t.Helper()
	out, err := c.GetConsoleOutput(t.Context(), &ec2.GetConsoleOutputInput{InstanceId: aws.String(id), Latest: aws.Bool(true)})
	if err != nil {
		t.Fatalf("GetConsoleOutput() = %v", err)
	}
	text, err := base64.StdEncoding.DecodeString(aws.ToString(out.Output))
	if err != nil {
		t.Fatalf("console output: %v", err)
	}
	return string(text)
}

// scriptOutput is what the script printed: the console between
// cloud-init's start line and the lines the system prints when the script
// is over.
func scriptOutput(console string) string {
	_, after, _ := strings.Cut(console, "running 'modules:final'")
	_, after, _ = strings.Cut(after, "\n")
	var out strings.Builder
	for _, l := range strings.SplitAfter(after, "\n") {
		if strings.HasPrefix(l, "cloud-init[1867]: ") || strings.HasPrefix(l, "[  OK  ]") {
			break
		}
		out.WriteString(l)
	}
	return out.String()
}

func TestGuestShell(t *testing.T) {
	tests := []struct {
		name   string
		script string
		output string
		status int
	}{
		{"echo and stderr", "#!/bin/sh\necho hello world\necho \"a  b\" > /dev/console\necho 'it''s' >&2\n", "hello world\na  b\nits\n", 0},
		{"if else", "#!/bin/sh\nif false; then\n  echo yes\nelse\n  echo \"no: $?\"\nfi\nif [ -d /etc ]; then echo etc; fi\n", "no: 1\netc\n", 0},
		{"for and while", "#!/bin/sh\nfor i in 1 2 3; do echo \"n=$i\"; done\ni=0\nwhile [ $i -lt 2 ]; do i=$((i+1)); done\necho \"i=$i\"\n", "n=1\nn=2\nn=3\ni=2\n", 0},
		{"functions", "#!/bin/bash\ngreet() {\n  local who=$1\n  echo \"hello $who\"\n  return 3\n}\ngreet kiln\necho \"status $?\"\n", "hello kiln\nstatus 3\n", 0},
		{"command substitution", "#!/bin/sh\nhost=$(hostname)\ncase $host in ip-*.ec2.internal) echo named;; *) echo \"bad $host\";; esac\necho \"$(basename /opt/app/run.sh .sh) $(uname -m)\"\n", "named\nrun x86_64\n", 0},
		{"and or", "#!/bin/sh\nfalse && echo no || echo yes\ntrue && echo both\n[ -f /nope ] || echo missing\n", "yes\nboth\nmissing\n", 0},
		{"here-documents", "#!/bin/sh\nname=web\ncat > /etc/app.conf <<EOF\nname=$name\nEOF\ncat >> /etc/app.conf <<'EOF'\nliteral=$name\nEOF\ncat /etc/app.conf\n", "name=web\nliteral=$name\n", 0},
		{"files persist", "#!/bin/sh\necho one > /etc/motd\necho two >> /etc/motd\n[ -f /etc/motd ] && echo exists\nwc -l < /etc/motd\ngrep -q two /etc/motd && echo found\nmkdir -p /opt/a/b && touch /opt/a/b/c && ls /opt/a/b\nrm /etc/motd\n[ -e /etc/motd ] || echo gone\n", "exists\n2\nfound\nc\ngone\n", 0},
		{"no such directory", "#!/bin/sh\necho x > /no/such/file\necho \"status $?\"\ncat /etc/nothing\necho \"cat $?\"\n", "open /no/such/file: no such file or directory\nstatus 1\ncat: /etc/nothing: No such file or directory\ncat 1\n", 0},
		{"packages bring their directories", "#!/bin/sh\nset -e\ndnf install -y nginx\necho 'server {}' > /etc/nginx/conf.d/app.conf\nls /etc/nginx/conf.d\n", "app.conf\n", 0},
		{"set -e", "#!/bin/sh\nset -e\necho a\nfalse\necho never\n", "a\n", 1},
		{"set -e spares conditions", "#!/bin/sh\nset -e\nif false; then echo a; fi\nfalse || true\necho b\n", "b\n", 0},
		{"exit code", "#!/bin/sh\necho a\nexit 7\necho b\n", "a\n", 7},
		{"pipes", "#!/bin/sh\nprintf 'a\\nb\\nc\\n' | grep -v b | tail -n 1\necho hello | tee /tmp/t > /dev/null\ncat /tmp/t\n", "c\nhello\n", 0},
		{"scripts run scripts", "#!/bin/sh\ncat > /opt/s.sh <<'EOF'\n#!/bin/bash\necho \"in $0 with $1\"\nexit 4\nEOF\nsh /opt/s.sh x; echo \"sh $?\"\n/opt/s.sh; echo \"direct $?\"\nchmod +x /opt/s.sh\n/opt/s.sh y; echo \"exec $?\"\nbash -c 'echo \"c $0\"; exit 5' zero; echo \"c $?\"\n", "in /opt/s.sh with x\nsh 4\n/opt/s.sh: Permission denied\ndirect 126\nin /opt/s.sh with y\nexec 4\nc zero\nc 5\n", 0},
		{"sudo and command -v", "#!/bin/sh\nsudo -u root mkdir /srv/www && echo made\ncommand -v dnf\ntype echo\n", "made\n/usr/bin/dnf\necho is a shell builtin\n", 0},
		{"sourcing", "#!/bin/sh\n. /etc/os-release\necho \"$ID $VERSION_ID\"\n", "amzn 2023\n", 0},
		{"simulated time", "#!/bin/sh\na=$(date +%s)\nsleep 10\ndnf install -y nginx\nsleep 1.5\nb=$(date +%s)\necho \"took $((b-a))\"\n", "took 13\n", 0},
		{"syntax check and stdin", "#!/bin/sh\nprintf 'if true\\n' > /opt/bad.sh\nsh -n /opt/bad.sh; echo \"bad $?\"\necho 'echo from stdin' > /opt/ok.sh\nsh -n /opt/ok.sh && sh < /opt/ok.sh\n", "/opt/bad.sh:1:1: `if <cond>` must be followed by `then`\nbad 2\nfrom stdin\n", 0},
		{"runaway recursion", "#!/bin/sh\nf() { f; }\nf\necho never\n", scriptPath + ": maximum function nesting level exceeded\n", 2},
		{"bad sleep", "#!/bin/sh\nsleep forever\necho $?\n", "sleep: invalid time interval 'forever'\n1\n", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c := newTestSim(t, Options{})
			id, console := runGuest(t, s, c, tt.script, 2*time.Minute)
			in, _ := s.Instance(id)
			if got := scriptOutput(console); got != tt.output || in.ExitCode != tt.status {
				t.Fatalf("script printed %q, exit %d; want %q, exit %d\nconsole:\n%s", got, in.ExitCode, tt.output, tt.status, console)
			}
			if failed := strings.Contains(console, "Failed to run module scripts_user"); failed != (tt.status != 0) {
				t.Errorf("cloud-init reports a failure: %v; want %v", failed, tt.status != 0)
			}
			if got := state(t, c, id); got != types.InstanceStateNameRunning {
				t.Errorf("state = %s; want running (the script did not power off)", got)
			}
		})
	}
}

func TestGuestParseError(t *testing.T) {
	s, c := newTestSim(t, Options{})
	id, console := runGuest(t, s, c, "#!/bin/sh\necho fine\nfor x in a b; do\n  echo $x\n", time.Minute)
	want := scriptPath + ":3:1: `for` statement must end with `done`"
	if !strings.Contains(console, want) || strings.Contains(console, "fine\n") {
		t.Fatalf("console = %q; want the parser's error %q and nothing run", console, want)
	}
	if in, _ := s.Instance(id); in.ExitCode != 2 {
		t.Errorf("exit code = %d; want 2", in.ExitCode)
	}
}

func TestGuestCommandFails(t *testing.T) {
	s, c := newTestSim(t, Options{})
	s.SetGuestCommand("curl", GuestCommand{Stdout: "ok\n"})
	s.SetGuestCommand("curl -f http://localhost/health", GuestCommand{Status: 22, Stderr: "curl: (22) The requested URL returned error: 503\n", Time: 30 * time.Second})
	s.SetGuestCommand("missing-tool", GuestCommand{Status: 127})
	script := "#!/bin/sh\n" +
		"curl -s http://example.com/\n" +
		"/usr/bin/curl -f http://localhost/health || echo \"health $?\"\n" +
		"command -v missing-tool || echo \"not installed\"\n" +
		"systemctl enable --now nginx; echo \"enable $?\"\n"
	id, console := runGuest(t, s, c, script, 20*time.Second) // boot 15 s, curl 2 s: in the 30 s health check
	if got := scriptOutput(console); got != "ok\n" {
		t.Fatalf("after 20 s the script printed %q; want only curl's answer", got)
	}
	s.Advance(time.Minute)
	console = consoleOf(t, c, id)
	want := "ok\ncurl: (22) The requested URL returned error: 503\nhealth 22\nnot installed\nenable 0\n"
	if got := scriptOutput(console); got != want {
		t.Fatalf("script printed %q; want %q", got, want)
	}
}

func TestGuestTerminatedMidScript(t *testing.T) {
	s, c := newTestSim(t, Options{})
	script := "#!/bin/sh\necho start\nwhile true; do\n  dnf makecache\n  echo tick\ndone\n"
	id, _ := runGuest(t, s, c, script, 20*time.Second)
	if _, err := c.TerminateInstances(t.Context(), &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	s.Advance(10 * time.Minute)
	in, _ := s.Instance(id)
	if in.State != StateTerminated || strings.Count(in.Console, "tick") > 3 || in.ExitCode != -1 {
		t.Fatalf("after termination: state %s, exit %d, console %q; want terminated, the loop stopped", in.State, in.ExitCode, in.Console)
	}
}

func TestGuestBusyLoopKilled(t *testing.T) {
	s, c := newTestSim(t, Options{})
	id, _ := runGuest(t, s, c, "#!/bin/sh\necho spin\nwhile :; do :; done\n", time.Minute)
	// the guest gave up on the loop after guestBudget; the simulator answers
	if got := state(t, c, id); got != types.InstanceStateNameRunning {
		t.Fatalf("state = %s; want running", got)
	}
	if in, _ := s.Instance(id); in.ExitCode != -1 {
		t.Errorf("exit code = %d; want -1 (the script never finished)", in.ExitCode)
	}
}

func FuzzGuestScript(f *testing.F) {
	f.Add("#!/bin/sh\necho hi\nif sh /x; then\necho ok\nelse\necho \"no $?\"\nfi\npoweroff\n")
	f.Add("#!/bin/sh\ncat > /a <<'E'\nsh /a\nE\nsh /a\n")
	f.Add("#!/bin/sh\nif\nthen\nfi\nelse\n<<\n>&\necho >\n")
	f.Add("#!/bin/sh\nmkdir -p /a/b; cp -r /a /c; mv /c /a/b; ls -l /a; x=$(cat /a/b/c 2>&1); echo \"$x\" | grep -c b\n")
	f.Fuzz(func(t *testing.T, script string) {
		if strings.Contains(script, "while") || strings.Contains(script, "until") {
			t.Skip("a loop may run until the guest's budget")
		}
		s, c := newTestSim(t, Options{})
		id, _ := runGuest(t, s, c, "#!/bin/sh\n"+script, time.Hour)
		if _, ok := s.Instance(id); !ok {
			t.Fatalf("instance %s is gone", id)
		}
	})
}

func TestGuestNeverTouchesHostFiles(t *testing.T) {
	s, c := newTestSim(t, Options{})
	dir := t.TempDir()
	script := "#!/bin/sh\n" +
		"echo x > " + dir + "/probe; echo \"write $?\"\n" +
		"mkdir -p " + dir + "/made && echo y > " + dir + "/made/probe\n" +
		"[ -e /etc/passwd ] || echo \"no passwd\"\n" +
		"cat " + dir + "/made/probe\n"
	_, console := runGuest(t, s, c, script, time.Minute)
	want := "open " + dir + "/probe: no such file or directory\nwrite 1\nno passwd\ny\n"
	if got := scriptOutput(console); got != want {
		t.Fatalf("script printed %q; want %q", got, want)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Fatalf("host directory after the script: %v, %v; want it untouched", entries, err)
	}
}

// BenchmarkGuestBake is the guest's cost for one bake: boot, the wrapper
// with a small script (here-document, a loop, packages, a config file),
// power-off, on the manual clock.
func BenchmarkGuestBake(b *testing.B) {
	s, c := newTestSim(b, Options{})
	ami := baseImage(b, c)
	script := "#!/bin/sh\nset -e\nfor p in nginx git jq; do dnf install -y $p; done\n" +
		"mkdir -p /etc/app\ncat > /etc/app/app.conf <<EOF\nhost=$(hostname)\nEOF\ngrep -q host= /etc/app/app.conf\n"
	ud := aws.String(base64.StdEncoding.EncodeToString([]byte(bakeWrapper("bench", script))))
	for b.Loop() {
		id := *run(b, c, &ec2.RunInstancesInput{ImageId: aws.String(ami), UserData: ud})[0].InstanceId
		s.Advance(2 * time.Minute)
		if in, _ := s.Instance(id); in.State != StateStopped || !strings.Contains(in.Console, "kiln-bake bench ok") {
			b.Fatalf("state %s, console %q", in.State, in.Console)
		}
	}
}
