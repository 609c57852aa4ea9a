package bakery_test

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"kiln/internal/awsapi"
	"kiln/internal/pipeline"
	"kiln/internal/store"
)

// withTests is envProject (production manual) with a tests: block running
// script.
func withTests(script string) string {
	return envProject("manual", "debug") + "tests:\n  timeout: 20s\n  script: |\n    #!/bin/sh\n" +
		"    " + strings.ReplaceAll(strings.TrimSpace(script), "\n", "\n    ") + "\n"
}

// TestImageTestsGatePromotion: a bake whose image fails its tests fails
// with the exit status and the console tail, keeps the image tagged
// kiln:tests=failed, leaves no test instance and promotes nothing; once
// the tests pass, the next bake's image goes to staging.
func TestImageTestsGatePromotion(t *testing.T) {
	w := newEnvWorld(t)
	w.apply(t, withTests("echo checking the image\nexit 3"))
	res, err := w.svc.Trigger(t.Context(), "web", "c0ffee", "refs/heads/main")
	if err != nil {
		t.Fatal(err)
	}
	b := w.waitFinal(t, res.BakeID)
	if b.State != store.Failed || b.Reason != "image failed its tests: exit 3" {
		t.Fatalf("bake = %s (%s); want failed with the tests' exit status", b.State, b.Reason)
	}
	if !strings.Contains(b.ConsoleTail, "checking the image") {
		t.Errorf("console tail = %q; want the test's output", b.ConsoleTail)
	}
	out, err := w.ec2.DescribeImages(t.Context(), &ec2.DescribeImagesInput{ImageIds: []string{b.ImageID}})
	if err != nil || len(out.Images) != 1 {
		t.Fatalf("the failed image %q: %v %v; want it kept", b.ImageID, out, err)
	}
	if got := awsapi.TagValue(out.Images[0].Tags, pipeline.TagTests); got != pipeline.TestsFailed {
		t.Errorf("image %s = %q; want failed", pipeline.TagTests, got)
	}
	for _, in := range w.sim.Instances() {
		if in.Tags[pipeline.TagRole] != "" && in.State != "terminated" && in.State != "shutting-down" {
			t.Errorf("%s %s is %s; want terminated", in.Tags[pipeline.TagRole], in.ID, in.State)
		}
	}
	if steps, _ := w.st.Steps(t.Context(), b.ID); !hasStep(steps, pipeline.StepTestImage, store.StepFailed) {
		t.Errorf("steps = %+v; want %q failed", steps, pipeline.StepTestImage)
	}
	if ps, _ := w.st.Promotions(t.Context(), store.PromotionQuery{Project: "web"}); len(ps) != 0 {
		t.Errorf("promotions = %+v; want none of an image that failed its tests", ps)
	}
	if _, err := w.svc.Promote(t.Context(), "web", "staging", b.ImageID); err == nil {
		t.Errorf("Promote(failed image) = nil; want it refused")
	}

	w.apply(t, withTests("echo all good"))
	img := w.bakeImage(t)
	if p := w.waitEnv(t, "staging", img); p.State != store.PromotionSucceeded {
		t.Fatalf("staging promotion = %+v", p)
	}
	out, _ = w.ec2.DescribeImages(t.Context(), &ec2.DescribeImagesInput{ImageIds: []string{img}})
	if got := awsapi.TagValue(out.Images[0].Tags, pipeline.TagTests); got != pipeline.TestsPassed {
		t.Errorf("image %s = %q; want passed", pipeline.TagTests, got)
	}
}

func hasStep(steps []store.Step, name string, state store.StepState) bool {
	for _, s := range steps {
		if s.Name == name && s.State == state {
			return true
		}
	}
	return false
}
