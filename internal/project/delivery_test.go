package project

import (
	"strings"
	"testing"
	"time"
)

func TestParseTests(t *testing.T) {
	p, err := Parse("web.yaml", []byte(envBase+`tests:
  type: t3.micro
  subnet: subnet-0123abcd
  security_groups: [sg-0123abcd]
  timeout: 5m
  script: |
    #!/bin/sh
    curl -fsS localhost/health
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	tt := p.Tests
	if tt == nil || tt.Type != "t3.micro" || tt.Subnet != "subnet-0123abcd" || len(tt.SecurityGroups) != 1 ||
		tt.Timeout != 5*time.Minute || !strings.Contains(tt.Script, "curl") {
		t.Fatalf("tests = %+v", tt)
	}
	if back := TestsFromRecord(TestsRecord(tt)); back.Script != tt.Script || back.Timeout != tt.Timeout {
		t.Errorf("record round trip = %+v; want %+v", back, tt)
	}
}

func TestParseTestsErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"tests: {type: t3.micro}\n", "web.yaml:6: tests.script: must not be empty"},
		{"tests: {script: echo, type: huge}\n", `web.yaml:6: tests.type: "huge" is not an instance type`},
		{"tests: {script: echo, timeout: 3}\n", "web.yaml:6: tests.timeout: want a duration"},
		{"tests: {script: echo, colour: red}\n", `web.yaml:6: unknown field "tests.colour"`},
		{"tests: [echo]\n", "web.yaml:6: tests: want {script:"},
	} {
		_, err := Parse("web.yaml", []byte(envBase+tc.body), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v; want %q", tc.body, err, tc.want)
		}
	}
}

func TestParseApproval(t *testing.T) {
	p, err := Parse("web.yaml", []byte(envBase+`environments:
  - name: staging
    group: {type: t3.micro, min: 1, max: 2}
  - name: production
    promotion: auto
    soak: 10m
    approval: manual
    group: {type: t3.micro, min: 1, max: 2}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Environments[1].Approval != ApprovalManual || p.Environments[0].Approval != ApprovalNone {
		t.Errorf("approvals = %q, %q", p.Environments[0].Approval, p.Environments[1].Approval)
	}
	bad := envBase + `environments:
  - name: staging
    approval: manual
    group: {type: t3.micro, min: 1, max: 2}
  - name: production
    approval: sometimes
    group: {type: t3.micro, min: 1, max: 2}
`
	_, err = Parse("web.yaml", []byte(bad), nil)
	for _, want := range []string{
		"web.yaml:8: environments[0].approval: the first environment has no previous one",
		`web.yaml:11: environments[1].approval: want manual, not "sometimes"`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse() = %v; want %q", err, want)
		}
	}
}
