package bakery_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awssim"
	"kiln/internal/bakery"
	"kiln/internal/project"
	"kiln/internal/store"
	"kiln/internal/testsupport"
)

const secretValue = "pa55-w0rd-never-shown"

// envProject is project web with staging (auto after a bake, 2
// instances) and production (auto after a 300 ms soak, or manual).
func envProject(prodPromotion, logLevel string) string {
	soak := ""
	if prodPromotion == "auto" {
		soak = "    soak: 1s\n"
	}
	return `name: web
region: us-east-1
base: {owner: amazon, name: "al2023-ami-2023.*-x86_64", most_recent: true}
type: t3.small
script: |
  #!/bin/sh
  true
keep: 1
timeouts: {script: 20s, image: 20s}
environments:
  - name: staging
    group: {type: t3.micro, min: 2, max: 2, iam_profile: web-app, rollout: {min_healthy_percent: 50, warmup: 10s}}
    config:
      LOG_LEVEL: ` + logLevel + `
      DB_PASSWORD: {value: "${DB_PASSWORD}", secret: true}
  - name: production
    promotion: ` + prodPromotion + `
` + soak + `    group:
      type: t3.micro
      min: 2
      max: 2
      iam_profile: web-app
      rollout: {min_healthy_percent: 50, warmup: 10s}
      user_data: |
        #!/bin/sh
        echo "serving with $LOG_LEVEL"
    config:
      LOG_LEVEL: warn
      DB_PASSWORD: {value: "${DB_PASSWORD}", secret: true}
`
}

type envWorld struct {
	*rolloutWorld
	logs *testsupport.Buffer
	dir  string // the database's directory
}

func newEnvWorld(t *testing.T) *envWorld {
	t.Helper()
	return newEnvWorldFaults(t, nil)
}

// newEnvWorldFaults is newEnvWorld on a simulator injecting faults (nil:
// none).
func newEnvWorldFaults(t *testing.T, faults *awssim.Profile) *envWorld {
	t.Helper()
	sim, hubs, client := bakery.NewTestWorld(t, awssim.Options{TimeScale: 0.001, Durations: awssim.Durations{TerminatedVisible: 1000 * time.Hour}, Faults: faults})
	dir := t.TempDir()
	st, err := store.Open(t.Context(), filepath.Join(dir, "kiln.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w := &envWorld{rolloutWorld: &rolloutWorld{sim: sim, hubs: hubs, ec2: client, st: st}, logs: &testsupport.Buffer{}, dir: dir}
	w.svc, w.stop = w.serveLogging(t, slog.New(slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	return w
}

func (w *envWorld) apply(t *testing.T, src string) {
	t.Helper()
	p, err := project.Parse("web.yaml", []byte(src), func(k string) string {
		if k == "DB_PASSWORD" {
			return secretValue
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	p.Secret = "0123456789abcdef0123"
	if _, err := w.svc.ApplyProject(t.Context(), p); err != nil {
		t.Fatal(err)
	}
}

func (w *envWorld) bakeImage(t *testing.T) string {
	t.Helper()
	res, err := w.svc.Trigger(t.Context(), "web", "c0ffee", "refs/heads/main")
	if err != nil {
		t.Fatal(err)
	}
	b := w.waitFinal(t, res.BakeID)
	if b.State != store.Succeeded {
		t.Fatalf("bake %s: %s", b.State, b.Reason)
	}
	return b.ImageID
}

// waitEnv waits until env's newest promotion of image is over and returns it.
func (w *envWorld) waitEnv(t *testing.T, env, image string) store.Promotion {
	t.Helper()
	var p store.Promotion
	testsupport.Eventually(t, env+" to finish rolling out "+image, func() bool {
		ps, err := w.st.Promotions(t.Context(), store.PromotionQuery{Project: "web", Env: env, ImageID: image, Limit: 1})
		if err != nil || len(ps) == 0 || ps[0].State == store.PromotionRolling {
			return false
		}
		p = ps[0]
		return true
	})
	return p
}

// groupRuns checks that every instance of group runs image with user data
// holding each of wants.
func (w *envWorld) groupRuns(t *testing.T, group, image string, wants ...string) {
	t.Helper()
	gi, ok := w.sim.AutoScalingGroup(group)
	var live []awssim.GroupInstance
	for _, in := range gi.Instances {
		if in.LifecycleState == "InService" {
			live = append(live, in)
		}
	}
	if !ok || len(live) != 2 {
		t.Fatalf("group %s: %+v", group, gi)
	}
	images := map[string]string{}
	for _, in := range w.sim.Instances() {
		images[in.ID] = in.ImageID
	}
	for _, in := range live {
		if images[in.ID] != image {
			t.Errorf("%s: instance %s runs %s, want %s", group, in.ID, images[in.ID], image)
		}
		out, err := w.ec2.DescribeInstanceAttribute(t.Context(), &ec2.DescribeInstanceAttributeInput{
			InstanceId: aws.String(in.ID), Attribute: types.InstanceAttributeNameUserData})
		if err != nil {
			t.Fatal(err)
		}
		ud, _ := base64.StdEncoding.DecodeString(aws.ToString(out.UserData.Value))
		for _, want := range wants {
			if !strings.Contains(string(ud), want) {
				t.Errorf("%s: instance %s user data lacks %q:\n%s", group, in.ID, want, ud)
			}
		}
		if strings.Contains(string(ud), secretValue) {
			t.Errorf("%s: the secret is in instance %s's user data", group, in.ID)
		}
	}
}

// TestEnvironmentsBakeToProduction: a bake goes to staging, staging soaks,
// production follows on its own; the configuration is in the instances'
// user data and the secret in SSM (SecureString), and never in the logs,
// the database or the records.
func TestEnvironmentsBakeToProduction(t *testing.T) {
	w := newEnvWorld(t)
	w.apply(t, envProject("auto", "debug"))
	if v, typ, n, ok := w.sim.Parameter("/kiln/web/staging/DB_PASSWORD"); !ok || v != secretValue || typ != "SecureString" || n != 1 {
		t.Fatalf("SSM staging secret: %q %s v%d %v", v, typ, n, ok)
	}
	img := w.bakeImage(t)

	st := w.waitEnv(t, "staging", img)
	if st.State != store.PromotionSucceeded || !strings.HasPrefix(st.Cause, "bake") {
		t.Fatalf("staging promotion: %+v", st)
	}
	w.groupRuns(t, "web-staging", img, "LOG_LEVEL='debug'", "--name /kiln/web/staging/DB_PASSWORD:1 ")
	pr := w.waitEnv(t, "production", img)
	if pr.State != store.PromotionSucceeded || !strings.HasPrefix(pr.Cause, "auto: staging healthy for 1s") {
		t.Fatalf("production promotion: %+v", pr)
	}
	if !pr.Created.After(st.Finished.Add(time.Second - 50*time.Millisecond)) {
		t.Errorf("production started %s, staging finished %s: no soak", pr.Created, st.Finished)
	}
	w.groupRuns(t, "web-production", img, "LOG_LEVEL='warn'", "echo \"serving with $LOG_LEVEL\"\nKILN_USER_DATA\n",
		"--name /kiln/web/production/DB_PASSWORD:1 ")
	if sp, _ := w.st.Promotions(t.Context(), store.PromotionQuery{Project: "web", Env: "staging", Limit: 1}); sp[0].Soak != store.SoakPassed {
		t.Errorf("staging soak = %q", sp[0].Soak)
	}

	// A changed value: a new launch-template version, the same image.
	w.apply(t, envProject("auto", "info"))
	var rollout store.Promotion
	testsupport.Eventually(t, "the configuration rollout", func() bool {
		ps, _ := w.st.Promotions(t.Context(), store.PromotionQuery{Project: "web", Env: "staging", Limit: 1})
		if len(ps) == 1 {
			rollout = ps[0]
		}
		return len(ps) == 1 && ps[0].Cause == "configuration changed" && ps[0].State == store.PromotionSucceeded
	})
	w.groupRuns(t, "web-staging", img, "LOG_LEVEL='info'")
	// Its rollout done (no soak: production runs img already), nothing follows.
	testsupport.Eventually(t, "the configuration rollout's end", func() bool { return !bakery.Deploying(w.svc, rollout.ID) })
	if ps, _ := w.st.Promotions(t.Context(), store.PromotionQuery{Project: "web", Env: "production"}); len(ps) != 1 {
		t.Errorf("production has %d promotions; want 1 (a configuration rollout of staging promotes no image)", len(ps))
	}

	envs, _ := w.st.Environments(t.Context(), "web")
	for _, where := range []string{w.logs.String(), dump(t, envs)} {
		if strings.Contains(where, secretValue) {
			t.Errorf("the secret leaked:\n%s", where)
		}
	}
	files, _ := filepath.Glob(filepath.Join(w.dir, "kiln.db*")) // the database and its WAL
	plain := false                                              // the control: the plain values are there
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if bytes.Contains(b, []byte(secretValue)) {
			t.Errorf("the secret is in the clear in %s", filepath.Base(f))
		}
		plain = plain || bytes.Contains(b, []byte(`"key":"LOG_LEVEL","value":"info"`))
	}
	if !plain {
		t.Errorf("the plain configuration is not in %v: the search looks in the wrong place", files)
	}
	if !strings.Contains(w.logs.String(), "promotion succeeded") {
		t.Errorf("logs lack the promotions:\n%s", w.logs.String())
	}
}

func dump(t *testing.T, v any) string {
	t.Helper()
	var b strings.Builder
	for _, e := range v.([]store.Environment) {
		for _, c := range e.Config {
			b.WriteString(c.Key + "=" + c.Value + "\n")
		}
	}
	return b.String()
}

// TestEnvironmentsManualPromotionAndRollback: production waits for a
// manual promotion; promotions in the wrong order and of unknown images
// are refused without a change; a rollback promotes an earlier image, and
// retention keeps the images of recent promotions.
func TestEnvironmentsManualPromotionAndRollback(t *testing.T) {
	w := newEnvWorld(t)
	w.apply(t, envProject("manual", "debug"))
	first := w.bakeImage(t)
	staged := w.waitEnv(t, "staging", first)
	testsupport.Eventually(t, "the staging rollout's end", func() bool { return !bakery.Deploying(w.svc, staged.ID) })
	if ps, _ := w.st.Promotions(t.Context(), store.PromotionQuery{Project: "web", Env: "production"}); len(ps) != 0 {
		t.Fatalf("production promoted on its own: %+v", ps)
	}
	p, err := w.svc.Promote(t.Context(), "web", "production", "")
	if err != nil || p.ImageID != first {
		t.Fatalf("Promote(production) = %+v, %v", p, err)
	}
	if pr := w.waitEnv(t, "production", first); pr.State != store.PromotionSucceeded {
		t.Fatalf("production: %+v", pr)
	}

	second := w.bakeImage(t)
	w.waitEnv(t, "staging", second)
	var pe *bakery.PromotionError
	for _, bad := range []struct{ env, image, want string }{
		{"qa", "", "no environment \"qa\""},
		{"production", "ami-0123456789abcdef0", "not an image of project"},
		{"staging", "nope", "not an image id"},
	} {
		if _, err := w.svc.Promote(t.Context(), "web", bad.env, bad.image); !errors.As(err, &pe) || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("Promote(%s, %q) = %v, want a PromotionError with %q", bad.env, bad.image, err, bad.want)
		}
	}
	// Production may only take what staging ran: roll staging back first.
	third := w.bakeImage(t)
	w.waitEnv(t, "staging", third)
	if _, err := w.svc.Promote(t.Context(), "web", "staging", second); err != nil {
		t.Fatal(err)
	}
	w.waitEnv(t, "staging", second)
	if _, err := w.svc.Promote(t.Context(), "web", "production", third); !errors.As(err, &pe) {
		// third did run in staging: allowed.
		if err != nil {
			t.Fatalf("Promote(production, third) = %v", err)
		}
	}
	w.waitEnv(t, "production", third)
	before, _ := w.st.Promotions(t.Context(), store.PromotionQuery{Project: "web"})
	// Rollback of production to the first image.
	if _, err := w.svc.Promote(t.Context(), "web", "production", first); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	if rb := w.waitEnv(t, "production", first); rb.State != store.PromotionSucceeded {
		t.Fatalf("rollback: %+v", rb)
	}
	w.groupRuns(t, "web-production", first, "LOG_LEVEL='warn'")
	// keep: 1, yet every image recent promotions used is still there.
	imgs, _ := w.st.Images(t.Context(), "web")
	if len(imgs) != 3 {
		t.Errorf("images kept: %+v, want all 3 (used by recent promotions)", imgs)
	}
	after, _ := w.st.Promotions(t.Context(), store.PromotionQuery{Project: "web"})
	if len(after) != len(before)+1 {
		t.Errorf("%d promotions, want %d", len(after), len(before)+1)
	}
	// A promotion skipping staging is refused: a fourth image never ran there.
	w.apply(t, strings.Replace(envProject("manual", "debug"), "  - name: staging\n", "  - name: staging\n    promotion: manual\n", 1))
	fourth := w.bakeImage(t)
	if _, err := w.svc.Promote(t.Context(), "web", "production", fourth); !errors.As(err, &pe) || !strings.Contains(err.Error(), "has not run in staging") {
		t.Errorf("Promote(production, fourth) = %v, want a refusal naming staging", err)
	}
	if ps, _ := w.st.Promotions(t.Context(), store.PromotionQuery{Project: "web", ImageID: fourth}); len(ps) != 0 {
		t.Errorf("the refused promotion changed something: %+v", ps)
	}
}

// TestEnvironmentsSoakFails: staging becomes unhealthy during its soak (an
// instance stopped by hand), so production is not promoted; a changed
// secret is a new SSM version and a configuration rollout pinning it.
func TestEnvironmentsSoakFails(t *testing.T) {
	w := newEnvWorld(t)
	w.apply(t, strings.Replace(envProject("auto", "debug"), "soak: 1s", "soak: 3s", 1))
	img := w.bakeImage(t)
	if st := w.waitEnv(t, "staging", img); st.State != store.PromotionSucceeded {
		t.Fatalf("staging: %+v", st)
	}
	gi, _ := w.sim.AutoScalingGroup("web-staging")
	if err := w.sim.StopInstance(gi.Instances[0].ID); err != nil {
		t.Fatal(err)
	}
	var soaked store.Promotion
	testsupport.Eventually(t, "the soak to fail", func() bool {
		ps, _ := w.st.Promotions(t.Context(), store.PromotionQuery{Project: "web", Env: "staging", Limit: 1})
		soaked = ps[0]
		return ps[0].Soak == store.SoakFailed
	})
	if !strings.Contains(soaked.Reason, "unhealthy during the soak") {
		t.Errorf("soak reason = %q", soaked.Reason)
	}
	// The soak over (it was production's only way in), nothing in production.
	testsupport.Eventually(t, "the failed soak's end", func() bool { return !bakery.Deploying(w.svc, soaked.ID) })
	if ps, _ := w.st.Promotions(t.Context(), store.PromotionQuery{Project: "web", Env: "production"}); len(ps) != 0 {
		t.Fatalf("production promoted after a failed soak: %+v", ps)
	}

	// A new secret value: SSM version 2, pinned by a configuration rollout.
	p, err := project.Parse("web.yaml", []byte(envProject("auto", "debug")), func(string) string { return "a-new-secret-value" })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.ApplyProject(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	if v, _, n, _ := w.sim.Parameter("/kiln/web/staging/DB_PASSWORD"); v != "a-new-secret-value" || n != 2 {
		t.Fatalf("SSM after the change: %q version %d", v, n)
	}
	testsupport.Eventually(t, "the configuration rollout", func() bool {
		ps, _ := w.st.Promotions(t.Context(), store.PromotionQuery{Project: "web", Env: "staging", Limit: 1})
		return len(ps) == 1 && ps[0].Cause == "configuration changed" && ps[0].State == store.PromotionSucceeded
	})
	w.groupRuns(t, "web-staging", img, "--name /kiln/web/staging/DB_PASSWORD:2 ")
	// Applying the same file again changes nothing: same version, no rollout.
	before, _ := w.st.Promotions(t.Context(), store.PromotionQuery{Project: "web"})
	if _, err := w.svc.ApplyProject(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	// A sleep: the re-apply's follow-up runs in the background and, when it
	// finds nothing to do, leaves no trace to wait on.
	time.Sleep(200 * time.Millisecond)
	after, _ := w.st.Promotions(t.Context(), store.PromotionQuery{Project: "web"})
	if _, _, n, _ := w.sim.Parameter("/kiln/web/staging/DB_PASSWORD"); n != 2 || len(after) != len(before) {
		t.Errorf("re-apply: parameter version %d, %d promotions (was %d)", n, len(after), len(before))
	}
}

// TestEnvironmentsResume: a service stopped during a rollout leaves the
// promotion rolling; the next one resumes it to its end, without a second
// launch-template version.
func TestEnvironmentsResume(t *testing.T) {
	w := newEnvWorld(t)
	src := strings.Replace(envProject("manual", "debug"), "warmup: 10s}}\n    config:\n      LOG_LEVEL: debug", "warmup: 1500s}}\n    config:\n      LOG_LEVEL: debug", 1)
	w.apply(t, src)
	img := w.bakeImage(t)
	testsupport.Eventually(t, "the staging rollout to start", func() bool {
		ps, _ := w.st.Promotions(t.Context(), store.PromotionQuery{Project: "web", Env: "staging", Limit: 1})
		return len(ps) == 1 && ps[0].State == store.PromotionRolling
	})
	w.stop()
	ps, _ := w.st.Promotions(t.Context(), store.PromotionQuery{Project: "web", Env: "staging"})
	if len(ps) != 1 || ps[0].State != store.PromotionRolling {
		t.Fatalf("after the stop: %+v; want one promotion still rolling", ps)
	}
	w.svc, w.stop = w.serveLogging(t, slog.New(slog.NewTextHandler(w.logs, nil)))
	if p := w.waitEnv(t, "staging", img); p.State != store.PromotionSucceeded || p.ID != ps[0].ID {
		t.Fatalf("resumed: %+v", p)
	}
	if !strings.Contains(w.logs.String(), "promotion resumed after restart") {
		t.Error("the resume is not logged")
	}
	w.groupRuns(t, "web-staging", img, "LOG_LEVEL='debug'")
	out, err := w.ec2.DescribeLaunchTemplates(t.Context(), &ec2.DescribeLaunchTemplatesInput{LaunchTemplateNames: []string{"kiln-web-web-staging"}})
	if err != nil || len(out.LaunchTemplates) != 1 || aws.ToInt64(out.LaunchTemplates[0].LatestVersionNumber) != 1 {
		t.Errorf("launch template: %+v, %v; want version 1 only", out, err)
	}
}
