package bakery_test

import (
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kiln/internal/awssim"
	"kiln/internal/bakery"
	"kiln/internal/store"
	"kiln/internal/testsupport"
)

const (
	prodAccount  = "210987654321"
	otherAccount = "333333333333"
)

// newAccountsEnvWorld is newEnvWorld on a simulator with two more
// accounts besides the bakery's (the starting, shared-services one).
func newAccountsEnvWorld(t *testing.T) *envWorld {
	t.Helper()
	sim, hubs, client := bakery.NewTestWorld(t, awssim.Options{TimeScale: 0.001, Durations: awssim.Durations{TerminatedVisible: 1000 * time.Hour},
		Accounts: []string{prodAccount, otherAccount}})
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

// accountProject is project web whose only environment, production, lives
// in account (assuming its kiln role), sharing its images with shareWith.
func accountProject(account, shareWith string) string {
	share := ""
	if shareWith != "" {
		share = "share_with: ['" + shareWith + "']\n"
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
` + share + `environments:
  - name: production
    account: {role_arn: "arn:aws:iam::` + account + `:role/kiln", session_name: kiln-web}
    group: {type: t3.micro, min: 2, max: 2, rollout: {min_healthy_percent: 50, warmup: 10s}}
    config: {LOG_LEVEL: warn}
`
}

// TestPromotionToAnotherAccount: a bake in the bakery's (shared services)
// account goes to production in the prod account, whose group, launch
// template and instances live in the prod account's world and run the
// shared image; a project that does not share with the environment's
// account is refused, naming the account.
func TestPromotionToAnotherAccount(t *testing.T) {
	w := newAccountsEnvWorld(t)
	w.apply(t, accountProject(prodAccount, prodAccount))
	img := w.bakeImage(t)
	p := w.waitEnv(t, "production", img)
	if p.State != store.PromotionSucceeded {
		t.Fatalf("production promotion: %+v\n%s", p, w.logs)
	}

	prod, err := w.sim.Account(prodAccount)
	if err != nil {
		t.Fatal(err)
	}
	gi, ok := prod.AutoScalingGroup("web-production")
	if !ok {
		t.Fatalf("no group web-production in the prod account")
	}
	if _, ok := w.sim.AutoScalingGroup("web-production"); ok {
		t.Errorf("group web-production is in the bakery's account too")
	}
	images := map[string]string{}
	for _, in := range prod.Instances() {
		images[in.ID] = in.ImageID
	}
	home := map[string]bool{}
	for _, in := range w.sim.Instances() {
		home[in.ID] = true
	}
	live := 0
	for _, in := range gi.Instances {
		if in.LifecycleState != "InService" {
			continue
		}
		live++
		if images[in.ID] != img {
			t.Errorf("prod instance %s runs %q, want the shared image %s", in.ID, images[in.ID], img)
		}
		if home[in.ID] {
			t.Errorf("instance %s of the prod group is in the bakery's account", in.ID)
		}
	}
	if live != 2 {
		t.Errorf("prod group has %d instances in service, want 2: %+v", live, gi)
	}

	// The environment moves to an account the project does not share with.
	w.apply(t, accountProject(otherAccount, prodAccount))
	_, err = w.svc.Promote(t.Context(), "web", "production", img)
	var pe *bakery.PromotionError
	if !errors.As(err, &pe) || !strings.Contains(pe.Msg, "account "+otherAccount) || !strings.Contains(pe.Msg, "share_with") {
		t.Fatalf("Promote() to an account not shared with = %v; want a PromotionError naming %s and share_with", err, otherAccount)
	}
	// Listed in share_with now, but the image was baked before: EC2 in
	// that account does not have it.
	w.apply(t, accountProject(otherAccount, otherAccount))
	_, err = w.svc.Promote(t.Context(), "web", "production", img)
	if !errors.As(err, &pe) || !strings.Contains(pe.Msg, "not shared with account "+otherAccount) {
		t.Fatalf("Promote() of an image never shared = %v; want a PromotionError naming %s", err, otherAccount)
	}
}

// TestPromotionToAnotherAccountsRegion: production in the prod account's
// us-west-2 runs the bake's copy there (copy_to), shared with the prod
// account, not the image of the project's region.
func TestPromotionToAnotherAccountsRegion(t *testing.T) {
	w := newAccountsEnvWorld(t)
	src := strings.Replace(accountProject(prodAccount, prodAccount), "share_with:", "copy_to: [us-west-2]\nshare_with:", 1)
	src = strings.Replace(src, "    account:", "    region: us-west-2\n    account:", 1)
	w.apply(t, src)
	res, err := w.svc.Trigger(t.Context(), "web", "c0ffee", "refs/heads/main")
	if err != nil {
		t.Fatal(err)
	}
	b := w.waitFinal(t, res.BakeID)
	if b.State != store.Succeeded {
		t.Fatalf("bake %s: %s", b.State, b.Reason)
	}
	copies, err := w.st.BakeImages(t.Context(), res.BakeID)
	if err != nil {
		t.Fatal(err)
	}
	west := ""
	for _, c := range copies {
		if c.Region == "us-west-2" {
			west = c.ImageID
		}
	}
	if west == "" || west == b.ImageID {
		t.Fatalf("bake's copies = %+v; want a copy in us-west-2", copies)
	}
	p := w.waitEnv(t, "production", b.ImageID)
	if p.State != store.PromotionSucceeded {
		t.Fatalf("production promotion: %+v\n%s", p, w.logs)
	}
	prod, err := w.sim.Account(prodAccount)
	if err != nil {
		t.Fatal(err)
	}
	prodWest, err := prod.Region("us-west-2")
	if err != nil {
		t.Fatal(err)
	}
	gi, ok := prodWest.AutoScalingGroup("web-production")
	if !ok {
		t.Fatalf("no group web-production in the prod account's us-west-2")
	}
	images := map[string]string{}
	for _, in := range prodWest.Instances() {
		images[in.ID] = in.ImageID
	}
	live := 0
	for _, in := range gi.Instances {
		if in.LifecycleState == "InService" {
			live++
			if images[in.ID] != west {
				t.Errorf("prod us-west-2 instance %s runs %q, want the copy %s", in.ID, images[in.ID], west)
			}
		}
	}
	if live != 2 {
		t.Errorf("prod us-west-2 group has %d instances in service, want 2", live)
	}
}
