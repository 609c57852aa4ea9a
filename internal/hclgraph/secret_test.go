package hclgraph_test

import (
	"context"
	"strings"
	"testing"

	"kiln/internal/hclgraph"
)

// params is a DataReader whose aws:ssm_parameter is a SecureString.
type params struct{}

func (params) ReadData(_ context.Context, kind string, args map[string]string) (map[string]string, []string, error) {
	return map[string]string{"value": "hunter2-db-password", "version": "3"}, []string{"value"}, nil
}

// TestSecureStringNeverShown: a SecureString value cannot become a field
// (the error names the place, not the value), its version can, and a
// sensitive output keeps it marked.
func TestSecureStringNeverShown(t *testing.T) {
	const secret = "hunter2-db-password"
	dir := write(t, map[string]string{"main.hcl": `
graph = "g"
data "aws:ssm_parameter" "db" {
  name = "/shop/db/password"
}
resource "print" "leak" { msg = "pw=${data.aws_ssm_parameter.db.value}" }
`})
	_, err := hclgraph.Load(dir, hclgraph.Options{Kinds: kinds(), Data: params{}})
	if err == nil || !strings.Contains(err.Error(), "main.hcl:6:") || !strings.Contains(err.Error(), "SecureString") {
		t.Fatalf("Load() = %v; want main.hcl:6: ... SecureString", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("Load() error shows the secret: %v", err)
	}

	dir = write(t, map[string]string{"main.hcl": `
graph = "g"
data "aws:ssm_parameter" "db" {
  name = "/shop/db/password"
}
resource "print" "v" { msg = "version ${data.aws_ssm_parameter.db.version}" }
output "pw" {
  value     = data.aws_ssm_parameter.db.value
  sensitive = true
}
`})
	g, err := hclgraph.Load(dir, hclgraph.Options{Kinds: kinds(), Data: params{}})
	if err != nil {
		t.Fatalf("Load() = %v", err)
	}
	for _, s := range g.Specs {
		if strings.Contains(s.Hash, secret) {
			t.Errorf("%s: spec hash holds the secret", s.ID())
		}
	}
	if len(g.Outputs) != 1 || !g.Outputs[0].Sensitive || !g.Outputs[0].Value.IsMarked() {
		t.Fatalf("outputs = %#v; want pw sensitive and marked", g.Outputs)
	}
}
