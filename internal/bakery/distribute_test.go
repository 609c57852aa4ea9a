package bakery

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awssim"
	"kiln/internal/pipeline"
	"kiln/internal/project"
	"kiln/internal/store"
)

// projectImages are the images of project name in region.
func (w *world) projectImages(t *testing.T, region, name string) []types.Image {
	t.Helper()
	h, err := w.hubs.Hub(t.Context(), region)
	if err != nil {
		t.Fatal(err)
	}
	out, err := h.EC2().DescribeImages(t.Context(), &ec2.DescribeImagesInput{Owners: []string{"self"},
		Filters: []types.Filter{{Name: aws.String("tag:" + pipeline.TagProject), Values: []string{name}}}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Images
}

// TestBakeDistributes bakes a project that copies to two regions and
// shares with an account, twice with keep 1: each bake records its image
// in every region, each region keeps one.
func TestBakeDistributes(t *testing.T) {
	w := newWorld(t, awssim.Options{})
	st := w.open(t)
	putProject(t, st, "web", "#!/bin/sh\ntrue\n", func(p *store.Project) { p.Keep = 1 })
	if err := st.PutDistribution(t.Context(), "web", store.Distribution{CopyTo: []string{"us-west-2", "eu-west-1"}, ShareWith: []string{"210987654321"}}); err != nil {
		t.Fatal(err)
	}
	s := w.serve(t, st, nil)
	var last []store.BakeImage
	for range 2 {
		id := trigger(t, s, "web")
		b := waitFinal(t, st, id)
		if b.State != store.Succeeded {
			t.Fatalf("bake %d = %s (%s); want succeeded", id, b.State, b.Reason)
		}
		imgs, err := st.BakeImages(t.Context(), id)
		if err != nil || len(imgs) != 3 {
			t.Fatalf("BakeImages() = %+v, %v; want 3 regions", imgs, err)
		}
		for _, im := range imgs {
			if im.State != "available" || im.ImageID == "" {
				t.Errorf("bake %d in %s: %+v; want available", id, im.Region, im)
			}
			if im.Region == "us-east-1" && im.ImageID != b.ImageID {
				t.Errorf("home region image %s; bake says %s", im.ImageID, b.ImageID)
			}
		}
		last = imgs
	}
	for _, im := range last {
		got := w.projectImages(t, im.Region, "web")
		if len(got) != 1 || aws.ToString(got[0].ImageId) != im.ImageID {
			t.Errorf("%s: %d images after retention; want only %s", im.Region, len(got), im.ImageID)
		}
		h, _ := w.hubs.Hub(t.Context(), im.Region)
		attr, err := h.EC2().DescribeImageAttribute(t.Context(), &ec2.DescribeImageAttributeInput{ImageId: aws.String(im.ImageID), Attribute: types.ImageAttributeNameLaunchPermission})
		if err != nil || len(attr.LaunchPermissions) != 1 || aws.ToString(attr.LaunchPermissions[0].UserId) != "210987654321" {
			t.Errorf("%s: launch permissions %+v, %v", im.Region, attr, err)
		}
	}
}

// TestBakeFailedCopy: a copy that fails fails the bake naming its region,
// and the bake's images are removed in every region.
func TestBakeFailedCopy(t *testing.T) {
	w := newWorld(t, awssim.Options{})
	st := w.open(t)
	putProject(t, st, "web", "#!/bin/sh\ntrue\n", nil)
	if err := st.PutDistribution(t.Context(), "web", store.Distribution{CopyTo: []string{"us-west-2", "eu-west-1"}}); err != nil {
		t.Fatal(err)
	}
	eu, _ := w.sim.Region("us-west-2")
	eu.FailNextImages(1)
	s := w.serve(t, st, nil)
	b := waitFinal(t, st, trigger(t, s, "web"))
	if b.State != store.Failed || b.Reason == "" || !strings.Contains(b.Reason, "copy to us-west-2") {
		t.Fatalf("bake = %s (%s); want failed naming us-west-2", b.State, b.Reason)
	}
	for _, region := range []string{"us-east-1", "us-west-2", "eu-west-1"} {
		if imgs := w.projectImages(t, region, "web"); len(imgs) != 0 {
			t.Errorf("%s: %d images left", region, len(imgs))
		}
	}
}

func TestParseProjectDistribution(t *testing.T) {
	base := "name: web\nregion: us-east-1\nbase: {id: ami-0123456789abcdef0}\ntype: t3.small\nscript: |\n  true\n"
	p, err := project.Parse("web.yaml", []byte(base+"copy_to: [us-west-2, eu-west-1]\nencrypt: true\nkms_key_id: alias/img\nshare_with: ['210987654321']\nshare_with_orgs: [arn:aws:organizations::123456789012:organization/o-abcdefghij]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := p.Distribution; len(d.CopyTo) != 2 || !d.Encrypt || d.KMSKeyID != "alias/img" || len(d.ShareWith) != 1 || len(d.ShareWithOrgs) != 1 {
		t.Errorf("Distribution = %+v", d)
	}
	_, err = project.Parse("web.yaml", []byte(base+"copy_to: [us-east-1, nowhere]\nshare_with: ['1']\n"), nil)
	want := "web.yaml:7: copy_to[0]: us-east-1 is the region the image is baked in; list only the regions to copy it to\n" +
		"web.yaml:7: copy_to[1]: want a region like \"us-west-2\", got \"nowhere\"\n" +
		"web.yaml:8: share_with[0]: want a 12-digit account id, got \"1\""
	if err == nil || err.Error() != want {
		t.Errorf("project.Parse(bad) = %v\nwant %s", err, want)
	}
}
