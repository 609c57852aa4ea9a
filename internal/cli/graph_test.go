package cli

import (
	"bytes"
	"testing"

	"kiln/internal/engine"
)

func TestWriteDOT(t *testing.T) {
	specs := []*engine.Spec{
		{Kind: "aws:ami", Name: `we"b`},
		{Kind: "file", Name: "f", DependsOn: []string{`aws:ami/we"b`}, Refs: []string{`aws:ami/we"b`}},
		{Kind: "exec", Name: "e", DependsOn: []string{"file/f"}, NotifiedBy: []string{"file/f"}},
	}
	var buf bytes.Buffer
	if err := writeDOT(&buf, &engine.Graph{Name: "g", Specs: specs}); err != nil {
		t.Fatal(err)
	}
	want := `digraph "g" {
  rankdir=LR;
  node [shape=box];
  "aws:ami/we\"b";
  "file/f";
  "exec/e";
  "aws:ami/we\"b" -> "file/f" [label="ref"];
  "file/f" -> "exec/e" [style=dashed, label="notify"];
}
`
	if buf.String() != want {
		t.Errorf("writeDOT() =\n%s\nwant:\n%s", buf.String(), want)
	}
}
