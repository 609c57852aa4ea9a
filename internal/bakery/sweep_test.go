package bakery

import (
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"kiln/internal/awsapi"
	"kiln/internal/awssim"
	"kiln/internal/pipeline"
	"kiln/internal/project"
	"kiln/internal/store"
	"kiln/internal/testsupport"
)

// TestSweep: the sweeper terminates builders whose bake is over or unknown
// and leaves a running bake's builder, and anything not a bakery builder,
// alone.
func TestSweep(t *testing.T) {
	w := newWorld(t, awssim.Options{})
	st := w.open(t)
	putProject(t, st, "web", "#!/bin/sh\nsleep 3600\n", nil)
	s := w.serve(t, st, nil)

	running := trigger(t, s, "web")
	testsupport.Eventually(t, "the running bake's builder", func() bool {
		b, err := st.Bake(t.Context(), running)
		return err == nil && b.BuilderID != ""
	})
	// A bake that is over but whose builder survived (say the process died
	// between finishing the bake and terminating it).
	putProject(t, st, "api", "#!/bin/sh\ntrue\n", nil)
	over, err := st.CreateBake(t.Context(), "api", "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.FinishBake(t.Context(), over.BakeID, store.Outcome{State: store.Failed, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	launch := func(tags map[string]string) string {
		var ts []types.Tag
		for k, v := range tags {
			ts = append(ts, types.Tag{Key: aws.String(k), Value: aws.String(v)})
		}
		out, err := w.client.RunInstances(t.Context(), &ec2.RunInstancesInput{
			ImageId: imgID(t, w), InstanceType: types.InstanceTypeT3Micro, MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
			TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: ts}},
		})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.Instances[0].InstanceId)
	}
	mine := st.BakeryID()
	b, _ := st.Bake(t.Context(), running)
	if in, _ := w.sim.Instance(b.BuilderID); in.Tags[pipeline.TagBakery] != mine {
		t.Fatalf("builder tags %v; want %s=%s", in.Tags, pipeline.TagBakery, mine)
	}
	finished := launch(map[string]string{pipeline.TagRole: "builder", pipeline.TagProject: "api", awsapi.TagBake: fmtID(over.BakeID), pipeline.TagBakery: mine})
	unknown := launch(map[string]string{pipeline.TagRole: "builder", pipeline.TagProject: "web", awsapi.TagBake: "999", pipeline.TagBakery: mine})
	// Another bakery's builders, for a bake unknown here and for one whose
	// id is finished here: theirs to sweep, not ours.
	otherBakery := launch(map[string]string{pipeline.TagRole: "builder", pipeline.TagProject: "web", awsapi.TagBake: "999", pipeline.TagBakery: "0123456789abcdef"})
	otherFinished := launch(map[string]string{pipeline.TagRole: "builder", pipeline.TagProject: "api", awsapi.TagBake: fmtID(over.BakeID), pipeline.TagBakery: "0123456789abcdef"})
	amiBuilder := launch(map[string]string{pipeline.TagRole: "builder", awsapi.TagOwner: "shop", awsapi.TagBake: "abc-1"})
	other := launch(map[string]string{"Name": "web-1"})

	swept, err := s.Sweep(t.Context())
	if err != nil {
		t.Fatalf("Sweep() error = %v", err)
	}
	slices.Sort(swept)
	want := []string{finished, unknown}
	slices.Sort(want)
	if !slices.Equal(swept, want) {
		t.Errorf("Sweep() = %v; want %v", swept, want)
	}
	for _, id := range []string{amiBuilder, other, otherBakery, otherFinished} {
		if in, _ := w.sim.Instance(id); gone(in) {
			t.Errorf("instance %s was terminated; not the bakery's", id)
		}
	}
	b, _ = st.Bake(t.Context(), running)
	if in, _ := w.sim.Instance(b.BuilderID); gone(in) {
		t.Errorf("the running bake's builder %s was terminated", b.BuilderID)
	}
	if _, err := s.Cancel(t.Context(), running, ""); err != nil {
		t.Fatal(err)
	}
	waitFinal(t, st, running)
}

func fmtID(id int64) string { return SpecFor(&project.Project{Name: "x"}, &store.Bake{ID: id}, "").ID }

func imgID(t *testing.T, w *world) *string {
	t.Helper()
	out, err := w.client.DescribeImages(t.Context(), &ec2.DescribeImagesInput{
		Owners: []string{"amazon"}, Filters: []types.Filter{{Name: aws.String("name"), Values: []string{alName}}},
	})
	if err != nil || len(out.Images) == 0 {
		t.Fatalf("DescribeImages = %v, %v", out, err)
	}
	return out.Images[0].ImageId
}
