package project

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const envBase = "name: web\nregion: us-east-1\nbase: {id: ami-0123abcd}\ntype: t3.small\nscript: echo\n"

const envFile = envBase + `environments:
  - name: staging
    group: {type: t3.micro, min: 1, max: 2, iam_profile: web-app, rollout: {min_healthy_percent: 50, warmup: 30s}}
    config:
      LOG_LEVEL: debug
      WORKERS: 4
      DB_PASSWORD: {value: "${DB_PASSWORD}", secret: true}
  - name: production
    promotion: auto
    soak: 10m
    group:
      name: web-prod
      type: t3.small
      min: 2
      max: 4
      desired: 3
      user_data: |
        #!/bin/sh
        echo "it's $LOG_LEVEL"
    config: {LOG_LEVEL: "warn 'quoted'"}
`

func TestParseEnvironments(t *testing.T) {
	p, err := Parse("web.yaml", []byte(envFile), func(k string) string {
		if k == "DB_PASSWORD" {
			return "s3cr3t-value"
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Environments) != 2 {
		t.Fatalf("environments: %+v", p.Environments)
	}
	st, pr := p.Environments[0], p.Environments[1]
	if st.Name != "staging" || st.Region != "us-east-1" || st.Group.Name != "web-staging" || st.Promotion != PromoteAuto || st.Soak != 0 {
		t.Errorf("staging: %+v", st)
	}
	if len(st.Config) != 3 || st.Config[0].Key != "DB_PASSWORD" || !st.Config[0].Secret || st.Config[0].Value != "s3cr3t-value" || st.Config[2].Value != "4" {
		t.Errorf("staging config: %+v", st.Config)
	}
	if *st.Group.Rollout.MinHealthyPercent != 50 || st.Group.Rollout.Warmup != 30*time.Second {
		t.Errorf("staging rollout: %+v", st.Group.Rollout)
	}
	if pr.Group.Name != "web-prod" || pr.Promotion != PromoteAuto || pr.Soak != 10*time.Minute || *pr.Group.Desired != 3 {
		t.Errorf("production: %+v", pr)
	}
	st.Config[0].Version = 2
	ud := UserData("web", st)
	for _, want := range []string{"LOG_LEVEL='debug'\n", "--name /kiln/web/staging/DB_PASSWORD:2 ", "cat > /etc/kiln/env <<'KILN_ENV'\n"} {
		if !strings.Contains(ud, want) {
			t.Errorf("staging user data lacks %q:\n%s", want, ud)
		}
	}
	if strings.Contains(ud, "s3cr3t") {
		t.Errorf("the secret is in the user data:\n%s", ud)
	}
	ud = UserData("web", pr)
	for _, want := range []string{`LOG_LEVEL='warn '\''quoted'\'''`, "echo \"it's $LOG_LEVEL\"\nKILN_USER_DATA\n", ". /etc/kiln/env\nset +a\nexec /etc/kiln/user-data\n"} {
		if !strings.Contains(ud, want) {
			t.Errorf("production user data lacks %q:\n%s", want, ud)
		}
	}
	if Digest(st) == Digest(pr) {
		t.Error("digests equal")
	}
	d := Digest(st)
	st.Config[1].Value = "info"
	if Digest(st) == d {
		t.Error("a changed value keeps the digest")
	}
}

func TestParseEnvironmentErrors(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string
	}{
		{"unknown group setting", `environments:
  - name: staging
    group: {type: t3.micro, min: 1, max: 2, colour: red}
`, []string{`web.yaml:8: unknown field "environments[0].group.colour"`}},
		{"bad group values", `environments:
  - name: staging
    group:
      type: t3micro
      min: 3
      max: 2
      subnets: [net-1]
`, []string{
			`web.yaml:9: environments[0].group.type: want an instance type like "t3.micro", got "t3micro"`,
			`web.yaml:11: environments[0].group.max: want at least 1 and at least min (3), got 2`,
			`web.yaml:12: environments[0].group.subnets[0]:`,
		}},
		{"no group, bad name, bad promotion", `environments:
  - name: "st aging"
    promotion: sometimes
`, []string{
			`web.yaml:7: environments[0].group: required`,
			`web.yaml:7: environments[0].name: "st aging"`,
			`web.yaml:8: environments[0].promotion: want auto or manual, not "sometimes"`,
		}},
		{"auto without soak, secret without profile, unset variable", `environments:
  - name: staging
    group: {type: t3.micro, min: 1, max: 1}
    config: {TOKEN: {value: "${NOPE}", secret: true}, "9X": 1}
  - name: production
    promotion: auto
    group: {type: t3.micro, min: 1, max: 1}
`, []string{
			`web.yaml:9: environments[0].config.9X: keys are variable names`,
			`web.yaml:9: environments[0].config.TOKEN.value: environment variable NOPE is not set`,
			`web.yaml:9: environments[0].group.iam_profile: required with secrets`,
			`web.yaml:11: environments[1].soak: required with promotion: auto`,
		}},
		{"other region, rollout too, duplicate", `rollout: {group: x}
environments:
  - name: staging
    region: eu-west-1
    group: {type: t3.micro, min: 1, max: 1, user_data: "echo no shebang"}
  - name: staging
    group: {type: t3.micro, min: 1, max: 1}
`, []string{
			`web.yaml:6: rollout: give environments or rollout, not both`,
			`web.yaml:9: environments[0].region: "eu-west-1": images are baked in us-east-1`,
			`web.yaml:10: environments[0].group.user_data: must be a script starting with #!`,
			`web.yaml:11: environments[1].name: "staging" given twice`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("web.yaml", []byte(envBase+tt.src), nil)
			var pes Errors
			if !errors.As(err, &pes) {
				t.Fatalf("err = %v", err)
			}
			got := pes.Error()
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("missing %q in\n%s", w, got)
				}
			}
			if len(pes) != len(tt.want) {
				t.Errorf("%d problems, want %d:\n%s", len(pes), len(tt.want), got)
			}
		})
	}
}
