package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"kiln/internal/store"
	"kiln/internal/web"
)

// TestImagesCommand: kiln images lists a served project's kept images
// with their copies, state and the environment running each, as text and
// as JSON, against a bakery on the simulator.
func TestImagesCommand(t *testing.T) {
	t.Setenv("KILN_TOKEN", "images-test-token")
	url, stop := startServe(t)
	defer stop()
	t.Setenv("KILN_SERVER", url)
	ctx := t.Context()
	c := web.NewClient(url, "images-test-token")
	if _, err := c.Apply(ctx, "web.yaml", []byte(`name: web
region: us-east-1
base: {owner: amazon, name: "al2023-ami-*", most_recent: true}
type: t3.small
script: |
  #!/bin/sh
  true
copy_to: [us-west-2]
environments:
  - name: staging
    group: {type: t3.micro, min: 1, max: 1}
`), nil); err != nil {
		t.Fatal(err)
	}
	bake := func() string {
		t.Helper()
		tr, err := c.Trigger(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		final, err := c.Follow(ctx, tr.Bake.ID, func(*web.Bake) {})
		if err != nil || final.State != store.Succeeded {
			t.Fatalf("bake = %+v, %v; want succeeded", final, err)
		}
		return final.ImageID
	}
	first := bake()
	// staging takes the first image on its own (promotion: auto).
	for {
		envs, err := c.Environments(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		if len(envs) == 1 && envs[0].Image == first && envs[0].State == "live" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("staging never ran %s: %+v", first, envs)
		case <-time.After(20 * time.Millisecond):
		}
	}

	var out, errOut bytes.Buffer
	if code := run(ctx, []string{"images", "web", "--json"}, &out, &errOut); code != 0 {
		t.Fatalf("kiln images --json = %d: %s", code, errOut.String())
	}
	var got struct{ Images []web.Image }
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("kiln images --json: %v\n%s", err, out.String())
	}
	if len(got.Images) != 1 {
		t.Fatalf("kiln images --json = %+v; want one image", got.Images)
	}
	im := got.Images[0]
	if im.ID != first || im.Region != "us-east-1" || im.State != "available" || !im.InUse ||
		len(im.Environments) != 1 || im.Environments[0] != "staging" {
		t.Errorf("image = %+v; want %s in us-east-1, available, in use by staging", im, first)
	}
	if len(im.Copies) != 1 || im.Copies[0].Region != "us-west-2" || !strings.HasPrefix(im.Copies[0].ID, "ami-") ||
		im.Copies[0].ID == first || im.Copies[0].State != "available" {
		t.Errorf("copies = %+v; want one available copy in us-west-2", im.Copies)
	}

	out.Reset()
	if code := run(ctx, []string{"images", "web"}, &out, &errOut); code != 0 {
		t.Fatalf("kiln images = %d: %s", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "IMAGE") {
		t.Fatalf("kiln images =\n%s\nwant a header and one image", out.String())
	}
	for _, want := range []string{first, "us-east-1", "available", "staging", "us-west-2:" + im.Copies[0].ID + "(available)"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("kiln images line %q lacks %q", lines[1], want)
		}
	}

	out.Reset()
	errOut.Reset()
	if code := run(ctx, []string{"images", "nope"}, &out, &errOut); code == 0 || !strings.Contains(errOut.String(), `no project "nope"`) {
		t.Errorf("kiln images nope = %d, %q; want an error naming the project", code, errOut.String())
	}
}
