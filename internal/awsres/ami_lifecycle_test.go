package awsres

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"kiln/internal/awssim"
)

// TestAMIDeprecateAfter: an aws:ami with deprecate_after bakes an image
// whose DeprecationTime is its creation plus that age, as EC2 answers it.
func TestAMIDeprecateAfter(t *testing.T) {
	w := newWorld(t, worldOpts{sim: awssim.Options{TimeScale: 0.001, Durations: awssim.Durations{TerminatedVisible: 1000 * time.Hour}}})
	r := w.ami("web", "#!/bin/sh\ntrue\n", func(a *AMI) { a.DeprecateAfter = "2w" })
	if err := r.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	if _, err := r.CheckApply(t.Context(), true); err != nil {
		t.Fatalf("CheckApply() = %v", err)
	}
	imgs := w.amiImages(t, "web")
	if len(imgs) != 1 {
		t.Fatalf("images = %d; want 1", len(imgs))
	}
	created, err := time.Parse(time.RFC3339, aws.ToString(imgs[0].CreationDate))
	if err != nil {
		t.Fatal(err)
	}
	want := created.Add(14 * 24 * time.Hour).UTC().Round(time.Minute).Format("2006-01-02T15:04:05.000Z")
	if got := aws.ToString(imgs[0].DeprecationTime); got != want {
		t.Errorf("DeprecationTime = %q; want %s (creation + 2w)", got, want)
	}
	if n := w.sim.Calls("EnableImageDeprecation"); n != 1 {
		t.Errorf("EnableImageDeprecation calls = %d; want 1", n)
	}
}
