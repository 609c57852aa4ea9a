package resources

import (
	"strings"
	"testing"

	"kiln/internal/testsupport"
)

func TestPrint(t *testing.T) {
	var out, logs testsupport.Buffer
	r := &Print{Msg: "hello", Out: &out}
	if err := r.Init(testEnv("print/p", &logs)); err != nil {
		t.Fatal(err)
	}
	watch(t, r)
	steps := []struct {
		apply  bool
		wantOK bool
		out    string
	}{
		{false, true, ""},
		{true, true, "hello\n"},
		{true, true, "hello\n"},
		{false, true, "hello\n"},
	}
	for i, s := range steps {
		ok, err := r.CheckApply(t.Context(), s.apply)
		if err != nil || ok != s.wantOK {
			t.Fatalf("step %d: CheckApply(%v) = %v, %v; want %v, nil", i, s.apply, ok, err, s.wantOK)
		}
		if out.String() != s.out {
			t.Fatalf("step %d: output %q; want %q", i, out.String(), s.out)
		}
	}
	if err := r.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if out.String() != "hello\nhello\n" {
		t.Errorf("output after Refresh %q; want the message twice", out.String())
	}
	if !strings.Contains(logs.String(), "message=hello") {
		t.Errorf("log lacks the message: %s", logs.String())
	}
	if err := (&Print{}).Validate(); errString(err) != "msg: required" {
		t.Errorf("Validate() = %v; want msg: required", err)
	}
}
