package project

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// An environment's alarms and rollback become its group's rollout
// preferences (the instance refresh's AlarmSpecification and
// AutoRollback), and the bakery's policy reads the alarms.
func TestParseEnvironmentAlarms(t *testing.T) {
	src := envBase + `environments:
  - name: staging
    alarms: [web-5xx, web-latency]
    rollback: auto
    group: {type: t3.micro, min: 1, max: 2}
  - name: production
    alarms: [prod-5xx]
    rollback: kiln
    group: {type: t3.micro, min: 1, max: 2}
`
	p, err := Parse("web.yaml", []byte(src), func(string) string { return "" })
	if err != nil {
		t.Fatalf("Parse() = %v", err)
	}
	st, pr := p.Environments[0].Group.Rollout, p.Environments[1].Group.Rollout
	if !slices.Equal(st.Alarms, []string{"web-5xx", "web-latency"}) || st.AutoRollback == nil || !*st.AutoRollback {
		t.Errorf("staging rollout = %+v; want the two alarms and auto rollback", st)
	}
	if !slices.Equal(pr.Alarms, []string{"prod-5xx"}) || pr.AutoRollback == nil || *pr.AutoRollback {
		t.Errorf("production rollout = %+v; want prod-5xx and no auto rollback", pr)
	}
	asg := GroupResource(nil, "web", p.Environments[0], "ami-00000000")
	if !slices.Equal(asg.Rollout.Alarms, st.Alarms) || !*asg.Rollout.AutoRollback {
		t.Errorf("aws:asg rollout = %+v; want the environment's alarms", asg.Rollout)
	}
	if iam := p.IAM(); !slices.Contains(iam.Read, "cloudwatch:DescribeAlarms") {
		t.Errorf("IAM().Read = %v; want cloudwatch:DescribeAlarms", iam.Read)
	}
	noAlarms, err := Parse("web.yaml", []byte(envFile), func(string) string { return "x" })
	if err != nil {
		t.Fatal(err)
	}
	if iam := noAlarms.IAM(); slices.Contains(iam.Read, "cloudwatch:DescribeAlarms") {
		t.Errorf("IAM().Read without alarms = %v; want no cloudwatch", iam.Read)
	}
}

func TestParseEnvironmentAlarmErrors(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string
	}{
		{"bad rollback, repeated alarm", `environments:
  - name: staging
    alarms: [a, a, ""]
    rollback: sometimes
    group: {type: t3.micro, min: 1, max: 1}
`, []string{
			`web.yaml:8: environments[0].alarms[1]: "a" given twice`,
			`web.yaml:8: environments[0].alarms[2]: alarm names are 1 to 255 characters`,
			`web.yaml:9: environments[0].rollback: want auto (Auto Scaling rolls back) or kiln (kiln does), not "sometimes"`,
		}},
		{"both places", `environments:
  - name: staging
    alarms: [a]
    rollback: kiln
    group: {type: t3.micro, min: 1, max: 1, rollout: {alarms: [b], auto_rollback: true}}
`, []string{
			`web.yaml:8: environments[0].alarms: give alarms here or in group.rollout.alarms, not both`,
			`web.yaml:9: environments[0].rollback: give rollback here or group.rollout.auto_rollback, not both`,
		}},
		{"too many", `environments:
  - name: staging
    alarms: [a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11]
    group: {type: t3.micro, min: 1, max: 1}
`, []string{`web.yaml:8: environments[0].alarms: at most 10 alarms, got 11`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("web.yaml", []byte(envBase+tc.src), func(string) string { return "" })
			if err == nil {
				t.Fatal("Parse() = nil; want errors")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Parse() = %v\nwant it to hold %q", err, w)
				}
			}
		})
	}
}

// The alarm gate example of docs/bakery/safe-delivery.md must parse.
func TestSafeDeliveryAlarmExample(t *testing.T) {
	page, err := os.ReadFile(filepath.Join("..", "..", "docs", "bakery", "safe-delivery.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(page), "## Alarm gate")
	if !ok {
		t.Fatal("docs/bakery/safe-delivery.md has no alarm gate section")
	}
	_, block, ok := strings.Cut(section, "```yaml\n")
	if !ok {
		t.Fatal("the alarm gate section has no yaml block")
	}
	block, _, _ = strings.Cut(block, "```")
	p, err := Parse("safe-delivery.md", []byte(envBase+block), func(string) string { return "" })
	if err != nil {
		t.Fatalf("the alarm gate example: %v", err)
	}
	if got := p.Environments[0].Group.Rollout.Alarms; len(got) != 2 {
		t.Errorf("the example's staging alarms = %v; want 2", got)
	}
}
