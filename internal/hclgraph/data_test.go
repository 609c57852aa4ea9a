package hclgraph_test

import (
	"context"
	"testing"
	"time"

	"kiln/internal/hclgraph"
)

// images is a DataReader whose aws:ami answer the test changes, standing
// in for a newer image being published.
type images struct{ id string }

func (r *images) ReadData(_ context.Context, kind string, args map[string]string) (map[string]string, []string, error) {
	return map[string]string{"image_id": r.id, "name": args["name"], "creation_date": "2026-01-01T00:00:00.000Z"}, nil, nil
}

const watched = `
graph = "g"
data "aws:ami" "base" {
  owner       = "amazon"
  name        = "al2023-ami-*"
  most_recent = true
  meta {
    poll = "1m"
  }
}
resource "aws:asg" "web" {
  region = "us-east-1"
  image  = data.aws_ami.base.image_id
  type   = "t3.micro"
  min    = 1
  max    = 2
}
resource "aws:ec2" "other" {
  region = "us-east-1"
  image  = "ami-0aaaaaaaaaaaaaaaa"
  type   = "t3.micro"
}
resource "file" "note" {
  path    = "note"
  content = "hello"
}
`

// TestDataSourceChange: a data source that reads something new is seen by
// Changed, and the graph evaluated again differs only in the resources
// that read it (their Hash), so a swap restarts them alone.
func TestDataSourceChange(t *testing.T) {
	dir := write(t, map[string]string{"main.hcl": watched})
	r := &images{id: "ami-01111111111111111"}
	o := hclgraph.Options{Data: r}
	before := load(t, dir, o)
	if got := before.PollEvery(); got != time.Minute {
		t.Errorf("PollEvery() = %v; want 1m", got)
	}
	if len(before.Data) != 1 {
		t.Fatalf("data = %+v; want one", before.Data)
	}
	if changed, err := before.Data[0].Changed(t.Context(), o); err != nil || changed {
		t.Fatalf("Changed() = %v, %v before a new image; want false", changed, err)
	}
	r.id = "ami-02222222222222222"
	if changed, err := before.Data[0].Changed(t.Context(), o); err != nil || !changed {
		t.Fatalf("Changed() = %v, %v after a new image; want true", changed, err)
	}
	after := load(t, dir, o)
	hashes := func(g *hclgraph.Graph) map[string]string {
		m := map[string]string{}
		for _, s := range g.Specs {
			m[s.ID()] = s.Hash
		}
		return m
	}
	hb, ha := hashes(before), hashes(after)
	if hb["aws:asg/web"] == ha["aws:asg/web"] {
		t.Errorf("aws:asg/web kept its hash after the image changed")
	}
	for _, id := range []string{"aws:ec2/other", "file/note"} {
		if hb[id] != ha[id] {
			t.Errorf("%s changed hash; want it untouched", id)
		}
	}
}
