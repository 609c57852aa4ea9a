package awsres

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kiln/internal/config"
	"kiln/internal/engine"
	"kiln/internal/resources"
)

// TestEngineRunsExample converges examples/ec2.yaml through the engine and
// the config parser against the simulator.
func TestEngineRunsExample(t *testing.T) {
	w := newWorld(t, worldOpts{})
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "ec2.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(w.image)) {
		t.Fatalf("examples/ec2.yaml does not use the simulator's Amazon Linux image %s", w.image)
	}
	kinds := config.Kinds{
		"aws:ec2": func() engine.Resource { return NewInstance(w.hubs) },
		"file":    func() engine.Resource { return &resources.File{} },
	}
	g, err := config.Parse("ec2.yaml", data, kinds)
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	if err := engine.New(g, engine.Options{Once: true}).Run(t.Context()); err != nil {
		t.Fatalf("Run() = %v", err)
	}
	web1, web2 := w.liveIn("ec2-demo", "web-1"), w.liveIn("ec2-demo", "web-2")
	if len(web1) != 1 || web1[0].State != "running" || len(web2) != 1 || web2[0].State != "stopped" {
		t.Fatalf("web-1 %+v, web-2 %+v; want one running, one stopped", web1, web2)
	}
	ip, err := os.ReadFile(filepath.Join("ec2-demo", "web-1.ip"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(ip)); got != web1[0].PrivateIP {
		t.Errorf("web-1.ip = %q; want %q", got, web1[0].PrivateIP)
	}
	if n := w.sim.Calls("RunInstances"); n != 2 {
		t.Errorf("RunInstances calls = %d; want 2", n)
	}

	// A second run finds everything converged and launches nothing.
	if err := engine.New(g, engine.Options{Once: true}).Run(t.Context()); err != nil {
		t.Fatalf("second Run() = %v", err)
	}
	if n := w.sim.Calls("RunInstances"); n != 2 {
		t.Errorf("RunInstances calls after a second run = %d; want 2", n)
	}
}
