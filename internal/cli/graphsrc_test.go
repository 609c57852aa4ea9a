package cli

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"kiln/internal/hclgraph"
)

// countingAMIs is a DataReader that counts its reads per image name.
type countingAMIs struct {
	mu    sync.Mutex
	reads map[string]int
}

func (r *countingAMIs) ReadData(_ context.Context, kind string, args map[string]string) (map[string]string, []string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reads[args["name"]]++
	return map[string]string{"image_id": "ami-0aaaaaaaaaaaaaaaa", "name": args["name"], "creation_date": "2026-01-01T00:00:00.000Z"}, nil, nil
}

// TestDataSourcesPollEach: each data source is read again at its own
// meta { poll } (30s and 45s tick every 15s), not at the shortest.
func TestDataSourcesPollEach(t *testing.T) {
	dir := t.TempDir()
	graph := `
graph = "g"
data "aws:ami" "fast" {
  owner = "amazon"
  name  = "fast-*"
  meta {
    poll = "30s"
  }
}
data "aws:ami" "slow" {
  owner = "amazon"
  name  = "slow-*"
  meta {
    poll = "45s"
  }
}
resource "print" "p" { msg = "${data.aws_ami.fast.image_id} ${data.aws_ami.slow.image_id}" }
`
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(graph), 0o644); err != nil {
		t.Fatal(err)
	}
	reader := &countingAMIs{reads: map[string]int{}}
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &graphSrc{path: dir, hcl: true, kinds: Kinds(Deps{}), data: reader, now: func() time.Time { return clock }}
	if _, err := s.load(t.Context()); err != nil {
		t.Fatalf("load() = %v", err)
	}
	if got := s.pollEvery(); got != 15*time.Second {
		t.Fatalf("pollEvery() = %v; want 15s", got)
	}
	base := map[string]int{"fast-*": reader.reads["fast-*"], "slow-*": reader.reads["slow-*"]}
	for range 6 { // 90 seconds of ticks
		clock = clock.Add(15 * time.Second)
		if changed, err := s.dataChanged(t.Context()); changed || err != nil {
			t.Fatalf("dataChanged() = %v, %v; want false, nil", changed, err)
		}
	}
	if got := reader.reads["fast-*"] - base["fast-*"]; got != 3 {
		t.Errorf("fast (poll 30s) read %d times in 90s; want 3", got)
	}
	if got := reader.reads["slow-*"] - base["slow-*"]; got != 2 {
		t.Errorf("slow (poll 45s) read %d times in 90s; want 2", got)
	}
	var _ hclgraph.DataReader = reader
}
