package awssim

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func TestInterpret(t *testing.T) {
	tests := []struct {
		name     string
		script   string
		output   string
		status   int
		powerOff bool
		took     time.Duration
	}{
		{"echo forms", "#!/bin/sh\necho hello world\necho \"a  b\" > /dev/console\necho 'it''s' >&2\n", "hello world\na  b\nits\n", 0, false, 0},
		{"status", "false\necho $?\ntrue\necho \"$?\"\necho '$?'\n", "1\n0\n$?\n", 0, false, 0},
		{"exit", "echo a\nexit 3\necho b\n", "a\n", 3, false, 0},
		{"set -e", "set -e\ntrue\nfalse\necho never\n", "", 1, false, 0},
		{"no set -e", "false\necho still\n", "still\n", 0, false, 0},
		{"sleep and commands", "sleep 10\ndnf install -y nginx\nsleep 1.5\n", "", 0, false, 13500 * time.Millisecond},
		{"poweroff", "echo bye\npoweroff\necho never\n", "bye\n", 0, true, 0},
		{"shutdown", "shutdown -h now\n", "", 0, true, 0},
		{"halt -p", "halt -p\n", "", 0, true, 0},
		{"comments", "# a comment\n\n   # indented\necho x # not a comment in sh, but kept\n", "x # not a comment in sh, but kept\n", 0, false, 0},
		{"if then", "if true; then\necho yes\nelse\necho no\nfi\n", "yes\n", 0, false, 0},
		{"if else status", "if false; then\necho yes\nelse\necho \"no: $?\"\nfi\n", "no: 1\n", 0, false, 0},
		{"if on next line", "if false\nthen\necho yes\nfi\necho after $?\n", "after 0\n", 0, false, 0},
		{"if exit status", "if sh /nope; then\necho yes\nelse\necho \"failed: exit $?\"\nfi\n", "sh: 0: cannot open /nope: No such file\nfailed: exit 2\n", 0, false, 0},
		{"heredoc and sh", "cat > /tmp/s <<'EOF'\necho inner\nexit 4\nEOF\nsh /tmp/s\necho \"got $?\"\n", "inner\ngot 4\n", 0, false, 0},
		{"heredoc unquoted", "cat <<EOF > /tmp/x\nline\nEOF\nbash /tmp/x\n", "", 0, false, 2 * time.Second},
		{"set -e inside sh", "cat > /s <<'T'\nset -e\nfalse\necho never\nT\nsh /s\necho \"$?\"\n", "1\n", 0, false, 0},
		{"errexit ignores if", "set -e\nif false; then\necho a\nfi\necho b\n", "b\n", 0, false, 0},
		{"poweroff inside sh", "cat > /s <<'T'\npoweroff\nT\nsh /s\necho never\n", "", 0, true, 0},
		{"echo to file", "echo data > /etc/x\necho more >> /etc/x\ncat /etc/x\n", "", 0, false, 2 * time.Second},
		{"bad sleep", "sleep forever\necho $?\n", "sleep: invalid time interval\n1\n", 0, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{}
			steps := interpret(tt.script, files, 2*time.Second)
			var out strings.Builder
			for _, st := range steps {
				out.WriteString(st.output)
			}
			end := steps[len(steps)-1]
			if out.String() != tt.output || end.status != tt.status || end.powerOff != tt.powerOff || end.at != tt.took {
				t.Fatalf("interpret() = %q status %d poweroff %v took %v; want %q %d %v %v",
					out.String(), end.status, end.powerOff, end.at, tt.output, tt.status, tt.powerOff, tt.took)
			}
		})
	}
}

// bakeWrapper is the script kiln's bakery sends as user data.
func bakeWrapper(id, script string) string {
	return "#!/bin/sh\n" +
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c := newTestSim(t, Options{})
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

func FuzzInterpret(f *testing.F) {
	f.Add("#!/bin/sh\necho hi\nif sh /x; then\necho ok\nelse\necho \"no $?\"\nfi\npoweroff\n")
	f.Add("cat > /a <<'E'\nsh /a\nE\nsh /a\n")
	f.Add("if\nthen\nfi\nelse\n<<\n>&\necho >\n")
	f.Fuzz(func(t *testing.T, script string) {
		steps := interpret(script, map[string]string{}, time.Second)
		if len(steps) == 0 || !steps[len(steps)-1].end {
			t.Fatalf("interpret(%q) has no end step", script)
		}
	})
}
