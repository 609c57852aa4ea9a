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

