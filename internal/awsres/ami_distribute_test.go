package awsres

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awsapi"
	"kiln/internal/awssim"
)

// regionImages are the images of aws:ami/name in region, by state.
func (w *world) regionImages(t *testing.T, region, name string) []types.Image {
	t.Helper()
	h, err := w.hubs.Hub(t.Context(), region)
	if err != nil {
		t.Fatal(err)
	}
	out, err := h.EC2().DescribeImages(t.Context(), &ec2.DescribeImagesInput{
		Owners: []string{"self"}, Filters: []types.Filter{{Name: aws.String("tag:" + awsapi.TagResource), Values: []string{"aws:ami/" + name}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Images
}

func (w *world) launchPermissions(t *testing.T, region, image string) []string {
	t.Helper()
	h, _ := w.hubs.Hub(t.Context(), region)
	out, err := h.EC2().DescribeImageAttribute(t.Context(), &ec2.DescribeImageAttributeInput{ImageId: aws.String(image), Attribute: types.ImageAttributeNameLaunchPermission})
	if err != nil {
		t.Fatalf("DescribeImageAttribute(%s in %s) = %v", image, region, err)
	}
	var ids []string
	for _, p := range out.LaunchPermissions {
		ids = append(ids, aws.ToString(p.UserId)+aws.ToString(p.OrganizationArn))
	}
	return ids
}

func TestAMICopiesSharesAndRetainsPerRegion(t *testing.T) {
	w := newWorld(t, worldOpts{sim: awssim.Options{TimeScale: 0.001, Durations: awssim.Durations{TerminatedVisible: 1000 * time.Hour}}})
	ctx := t.Context()
	const org = "arn:aws:organizations::123456789012:organization/o-abcdefghij"
	dist := func(a *AMI) {
		a.CopyTo = []string{"us-west-2", "eu-west-1"}
		a.ShareWith = []string{"210987654321"}
		a.ShareWithOrgs = []string{org}
		a.Keep = 1
	}
	r := w.ami("web", "#!/bin/sh\ntrue\n", dist)
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	if ok, err := r.CheckApply(ctx, true); ok || err != nil {
		t.Fatalf("CheckApply() = %v, %v; want false (baked), nil", ok, err)
	}
	out := r.Outputs()
	home := out["image_id"]
	if out["image_id_us-east-1"] != home || out["image_id_us-west-2"] == "" || out["image_id_eu-west-1"] == "" {
		t.Fatalf("outputs = %v; want image_id and image_id_<region> for us-east-1, us-west-2, eu-west-1", out)
	}
	for _, region := range []string{"us-east-1", "us-west-2", "eu-west-1"} {
		imgs := w.regionImages(t, region, "web")
		if len(imgs) != 1 || imgs[0].State != types.ImageStateAvailable || aws.ToString(imgs[0].ImageId) != out["image_id_"+region] {
			t.Fatalf("%s: images %+v; want the one available %s", region, imgs, out["image_id_"+region])
		}
		if got := strings.Join(w.launchPermissions(t, region, out["image_id_"+region]), ","); got != "210987654321,"+org {
			t.Errorf("%s: launch permissions %q", region, got)
		}
		if tags := tagMap(imgs[0].Tags); tags["team"] != "shop" || tags[awsapi.TagResource] != "aws:ami/web" {
			t.Errorf("%s: tags %v; want the bake's", region, tags)
		}
		h, _ := w.hubs.Hub(ctx, region)
		snap := imgs[0].BlockDeviceMappings[0].Ebs.SnapshotId
		sa, err := h.EC2().DescribeSnapshotAttribute(ctx, &ec2.DescribeSnapshotAttributeInput{SnapshotId: snap, Attribute: types.SnapshotAttributeNameCreateVolumePermission})
		if err != nil || len(sa.CreateVolumePermissions) != 1 || aws.ToString(sa.CreateVolumePermissions[0].UserId) != "210987654321" {
			t.Errorf("%s: snapshot permissions %+v, %v", region, sa, err)
		}
	}
	if n := w.sim.Calls("CopyImage"); n != 2 {
		t.Errorf("CopyImage calls = %d; want 2", n)
	}

	// Converged: nothing more is copied; a fresh resource finds it all.
	r2 := w.ami("web", "#!/bin/sh\ntrue\n", dist)
	if ok, err := r2.CheckApply(ctx, true); !ok || err != nil || r2.Outputs()["image_id_eu-west-1"] != out["image_id_eu-west-1"] {
		t.Fatalf("second CheckApply() = %v, %v, %v; want converged with the same copies", ok, err, r2.Outputs())
	}
	// A region added later copies the image, bakes nothing.
	r3 := w.ami("web", "#!/bin/sh\ntrue\n", func(a *AMI) { dist(a); a.CopyTo = append(a.CopyTo, "ap-south-1") })
	if ok, err := r3.CheckApply(ctx, false); ok || err != nil || !strings.Contains(strings.Join(r3.Changes(), ";"), "copy image "+home+" to ap-south-1") {
		t.Fatalf("plan with a new region = %v, %v, %v", ok, err, r3.Changes())
	}
	if ok, err := r3.CheckApply(ctx, true); ok || err != nil || r3.Outputs()["image_id_ap-south-1"] == "" || r3.Outputs()["image_id"] != home {
		t.Fatalf("CheckApply(new region) = %v, %v, %v", ok, err, r3.Outputs())
	}
	if n, m := w.sim.Calls("RunInstances"), w.sim.Calls("CopyImage"); n != 1 || m != 3 {
		t.Errorf("RunInstances, CopyImage = %d, %d; want 1, 3", n, m)
	}

	// An instance in us-west-2 runs the copy there.
	in := w.instance("west-1", func(in *Instance) { in.Region, in.Image = "us-west-2", out["image_id_us-west-2"] })
	if _, err := in.CheckApply(ctx, true); err != nil {
		t.Fatalf("aws:ec2 in us-west-2: %v", err)
	}

	// A new script: keep 1 in every region; the old copy in us-west-2 is in use.
	r4 := w.ami("web", "#!/bin/sh\necho v2\n", dist)
	if _, err := r4.CheckApply(ctx, true); err != nil {
		t.Fatal(err)
	}
	for region, want := range map[string]int{"us-east-1": 1, "us-west-2": 2, "eu-west-1": 1} {
		if n := len(w.regionImages(t, region, "web")); n != want {
			t.Errorf("%s after retention: %d images; want %d", region, n, want)
		}
	}
	if r4.Outputs()["image_id_eu-west-1"] == out["image_id_eu-west-1"] {
		t.Errorf("eu-west-1 output did not move to the new copy")
	}
}

func TestAMIFailedCopyCleansUp(t *testing.T) {
	w := newWorld(t, worldOpts{sim: awssim.Options{TimeScale: 0.001, Durations: awssim.Durations{TerminatedVisible: 1000 * time.Hour}}})
	eu, err := w.sim.Region("eu-west-1")
	if err != nil {
		t.Fatal(err)
	}
	eu.FailNextImages(1)
	r := w.ami("web", "#!/bin/sh\ntrue\n", func(a *AMI) { a.CopyTo = []string{"us-west-2", "eu-west-1"} })
	_, err = r.CheckApply(t.Context(), true)
	if err == nil || !strings.Contains(err.Error(), "copy to eu-west-1") {
		t.Fatalf("CheckApply() = %v; want the failed copy to eu-west-1", err)
	}
	for _, region := range []string{"us-east-1", "us-west-2", "eu-west-1"} {
		if imgs := w.regionImages(t, region, "web"); len(imgs) != 0 {
			t.Errorf("%s: %d images left; want the bake's all removed", region, len(imgs))
		}
	}
	if all, live := w.liveBuilders("web"); all != 1 || live != 0 {
		t.Errorf("builders = %d, live %d", all, live)
	}
}

func TestAMIValidateDistribution(t *testing.T) {
	w := newWorld(t, worldOpts{})
	for _, tt := range []struct {
		mod  func(*AMI)
		want string
	}{
		{func(a *AMI) { a.Region, a.CopyTo = "us-east-1", []string{"us-east-1"} }, "copy_to[0]: us-east-1 is the region the image is baked in"},
		{func(a *AMI) { a.CopyTo = []string{"west"} }, `copy_to[0]: want a region like "us-west-2"`},
		{func(a *AMI) { a.CopyTo = []string{"us-west-2", "us-west-2"} }, "copy_to[1]: us-west-2 is listed twice"},
		{func(a *AMI) { a.Encrypt = true }, "encrypt: encrypts the copies; set copy_to"},
		{func(a *AMI) { a.CopyTo, a.KMSKeyID = []string{"us-west-2"}, "alias/x" }, "kms_key_id: needs encrypt: true"},
		{func(a *AMI) { a.CopyTo, a.Encrypt, a.ShareWith = []string{"us-west-2"}, true, []string{"210987654321"} }, "kms_key_id: required with encrypt and share_with"},
		{func(a *AMI) { a.ShareWith = []string{"12"} }, `share_with[0]: want a 12-digit account id, got "12"`},
		{func(a *AMI) { a.ShareWithOUs = []string{"ou-1"} }, "share_with_ous[0]: want an OU ARN"},
	} {
		err := w.ami("web", "#!/bin/sh\ntrue\n", tt.mod).Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate() = %v; want %q", err, tt.want)
		}
	}
	r := w.ami("web", "#!/bin/sh\ntrue\n", func(a *AMI) {
		a.CopyTo, a.Encrypt, a.KMSKeyID, a.ShareWith = []string{"us-west-2"}, true, "alias/shared", []string{"210987654321"}
	})
	if err := r.Validate(); err != nil {
		t.Errorf("Validate(good) = %v", err)
	}
	if acts := strings.Join(r.IAMActions(), " "); !strings.Contains(acts, "ec2:CopyImage") || !strings.Contains(acts, "ec2:ModifyImageAttribute") || !strings.Contains(acts, "ec2:ModifySnapshotAttribute") {
		t.Errorf("IAMActions() = %s; want the copy and share actions", acts)
	}
}

func tagMap(tags []types.Tag) map[string]string {
	m := map[string]string{}
	for _, tg := range tags {
		m[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	return m
}

// TestAMIWatchesCopies: a copy deregistered by hand is seen at the next
// poll, and the check copies again.
func TestAMIWatchesCopies(t *testing.T) {
	w := newWorld(t, worldOpts{sim: awssim.Options{TimeScale: 0.001}})
	r := w.ami("web", "#!/bin/sh\ntrue\n", func(a *AMI) { a.CopyTo = []string{"us-west-2"}; a.SetPoll(10 * time.Millisecond) })
	ctx, cancel := context.WithCancel(t.Context())
	ev := newChanges()
	var wg sync.WaitGroup
	wg.Go(func() { _ = r.Watch(ctx, ev) })
	defer func() { cancel(); wg.Wait() }()
	<-ev.running
	if _, err := r.CheckApply(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	old := r.Outputs()["image_id_us-west-2"]
	h, _ := w.hubs.Hub(t.Context(), "us-west-2")
	if _, err := h.EC2().DeregisterImage(t.Context(), &ec2.DeregisterImageInput{ImageId: aws.String(old)}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ev.changed:
	case <-time.After(20 * time.Second):
		t.Fatal("Watch did not report the deregistered copy")
	}
	if ok, err := r.CheckApply(t.Context(), true); ok || err != nil {
		t.Fatalf("CheckApply() = %v, %v; want false (copied again), nil", ok, err)
	}
	if got := r.Outputs()["image_id_us-west-2"]; got == old || got == "" {
		t.Errorf("copy = %q; want a new one", got)
	}
	if n := w.sim.Calls("RunInstances"); n != 1 {
		t.Errorf("RunInstances = %d; want 1 (nothing baked again)", n)
	}
}
