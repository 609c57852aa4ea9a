package bakery

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awssim"
	"kiln/internal/pipeline"
	"kiln/internal/store"
)

// TestImageLifecycle: deprecate_after gives each image a deprecation time
// after its creation; with keep 1 and disable_for 1h retention first
// disables an old image (tagged kiln:disabled-at) and deregisters it only
// once the hour has passed on the bakery's clock.
func TestImageLifecycle(t *testing.T) {
	w := newWorld(t, awssim.Options{})
	st := w.open(t)
	putProject(t, st, "web", "#!/bin/sh\ntrue\n", func(p *store.Project) {
		p.Keep, p.DeprecateAfter, p.DisableFor = 1, 30*24*time.Hour, time.Hour
	})
	var skew atomic.Int64 // the bakery's clock runs this far ahead
	o := testOptions()
	o.Pipeline.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	s, err := NewService(st, w.hubs, testLog, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	r := &running{Service: s, st: st, stop: cancel}

	image := func(id string) *types.Image {
		t.Helper()
		out, err := w.client.DescribeImages(t.Context(), &ec2.DescribeImagesInput{ImageIds: []string{id}, IncludeDisabled: aws.Bool(true)})
		if err != nil || len(out.Images) == 0 {
			return nil
		}
		return &out.Images[0]
	}
	bake := func() string {
		t.Helper()
		b := waitFinal(t, st, trigger(t, r, "web"))
		if b.State != store.Succeeded {
			t.Fatalf("bake %d = %s (%s); want succeeded", b.ID, b.State, b.Reason)
		}
		return b.ImageID
	}

	first := bake()
	img := image(first)
	created, _ := time.Parse(time.RFC3339, aws.ToString(img.CreationDate))
	want := created.Add(30 * 24 * time.Hour).UTC().Round(time.Minute).Format("2006-01-02T15:04:05.000Z")
	if got := aws.ToString(img.DeprecationTime); got != want {
		t.Errorf("DeprecationTime = %q; want %s (creation + 30d)", got, want)
	}

	second := bake()
	if img := image(first); img == nil || img.State != types.ImageStateDisabled || tagMap(img.Tags)[pipeline.TagDisabledAt] == "" {
		t.Fatalf("first image after the second bake = %+v; want disabled, tagged %s", img, pipeline.TagDisabledAt)
	}

	skew.Store(int64(2 * time.Hour))
	bake()
	if img := image(first); img != nil {
		t.Errorf("first image two hours after disabling = %s; want deregistered", img.State)
	}
	if img := image(second); img == nil || img.State != types.ImageStateDisabled {
		t.Errorf("second image = %+v; want disabled, waiting its hour", img)
	}
}
