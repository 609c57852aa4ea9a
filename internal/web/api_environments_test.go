package web

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

const envYAML = `name: web
region: us-east-1
base: {id: ami-0123abcd}
type: t3.small
script: echo
environments:
  - name: staging
    group: {type: t3.micro, min: 1, max: 1, iam_profile: web-app}
    config:
      LOG_LEVEL: debug
      TOKEN: {value: "${WEB_TOKEN}", secret: true}
  - name: production
    group: {type: t3.micro, min: 1, max: 1}
`

func TestEnvironmentsAPI(t *testing.T) {
	f := newFixture(t, nil)
	ctx := t.Context()
	if _, err := f.c.Apply(ctx, "web.yaml", []byte(envYAML), map[string]string{"WEB_TOKEN": "tok-secret-value-123"}); err != nil {
		t.Fatal(err)
	}
	envs, err := f.c.Environments(ctx, "web")
	if err != nil || len(envs) != 2 {
		t.Fatalf("Environments() = %+v, %v", envs, err)
	}
	st := envs[0]
	if st.Name != "staging" || st.Group != "web-staging" || st.Promotion != "auto" || st.State != "never" || len(st.Config) != 2 {
		t.Errorf("staging = %+v", st)
	}
	if c := st.Config[1]; c.Key != "TOKEN" || !c.Secret || c.Value != "••••••••" || c.Parameter != "/kiln/web/staging/TOKEN" {
		t.Errorf("secret shown as %+v", c)
	}
	_, body := f.call(t, "GET", "/api/projects/web/environments", testToken, "", nil)
	if strings.Contains(body, "tok-secret-value-123") {
		t.Errorf("the secret is in the answer:\n%s", body)
	}
	if !strings.Contains(body, `"LOG_LEVEL"`) || !strings.Contains(body, `"debug"`) {
		t.Errorf("plain values missing:\n%s", body)
	}

	if pr, err := f.c.Project(ctx, "web"); err != nil || len(pr.Environments) != 2 || pr.Environments[0].Config[1].Value != "••••••••" {
		t.Errorf("Project() environments = %+v, %v", pr, err)
	}
	p, err := f.c.Promote(ctx, "web", "staging", "ami-0123abcd")
	if err != nil || p.State != "rolling" || p.Env != "staging" {
		t.Fatalf("Promote() = %+v, %v", p, err)
	}
	var ae *APIError
	if _, err := f.c.Promote(ctx, "web", "staging", "ami-0123abcd"); !errors.As(err, &ae) || ae.Status != http.StatusConflict {
		t.Errorf("second Promote() = %v; want 409", err)
	}
	if _, err := f.c.Promote(ctx, "web", "qa", ""); !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || !strings.Contains(ae.Message, "qa") {
		t.Errorf("Promote(qa) = %v; want 400 naming qa", err)
	}
	if _, err := f.c.Promote(ctx, "nope", "staging", ""); !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
		t.Errorf("Promote(project nope) = %v; want 404", err)
	}
	if status, _ := f.call(t, "POST", "/api/projects/web/environments/staging/promote", testToken, `{"imgae": "x"}`, nil); status != http.StatusBadRequest {
		t.Errorf("unknown body field: %d; want 400", status)
	}
	if status, _ := f.call(t, "POST", "/api/projects/web/environments/staging/promote", "", "", nil); status != http.StatusUnauthorized {
		t.Errorf("without a token: %d; want 401", status)
	}
	envs, _ = f.c.Environments(ctx, "web")
	if envs[0].State != "rolling" || len(envs[0].Promotions) != 1 || envs[0].Promotions[0].Image != "ami-0123abcd" {
		t.Errorf("staging after the promotion = %+v", envs[0])
	}
}
