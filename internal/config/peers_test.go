package config

import (
	"context"
	"strings"
	"testing"

	"kiln/internal/engine"
)

// port is a test kind whose resources may not share a port.
type port struct {
	Port int `yaml:"port"`
}

func (p *port) Watch(ctx context.Context, ev engine.Events) error {
	ev.Running()
	<-ctx.Done()
	return nil
}
func (p *port) CheckApply(context.Context, bool) (bool, error) { return true, nil }

func (p *port) ValidatePeers(earlier []Peer) error {
	for _, o := range earlier {
		if o.Res.(*port).Port == p.Port {
			return Fieldf("port", "%d is taken by port/%s", p.Port, o.Name)
		}
	}
	return nil
}

// TestPeerValidator: each resource sees the earlier ones of its kind, and
// its errors land on its own field's line.
func TestPeerValidator(t *testing.T) {
	kinds := Kinds{"port": func() engine.Resource { return &port{} }, "noop": func() engine.Resource { return &plain{} }}
	src := `name: g
resources:
  - {kind: port, name: a, port: 80}
  - {kind: noop, name: b}
  - kind: port
    name: c
    port: 80
  - {kind: port, name: d, port: 443}
`
	_, err := Parse("g.yaml", []byte(src), kinds)
	want := `g.yaml:7: port "c": port: 80 is taken by port/a`
	if err == nil || err.Error() != want {
		t.Fatalf("Parse() = %v; want exactly %q", err, want)
	}
	if _, err := Parse("g.yaml", []byte(strings.ReplaceAll(src, "port: 80\n", "port: 8080\n")), kinds); err != nil {
		t.Errorf("Parse(distinct ports) = %v", err)
	}
}
