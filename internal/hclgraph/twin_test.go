package hclgraph_test

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"kiln/internal/cli"
	"kiln/internal/config"
	"kiln/internal/engine"
	"kiln/internal/hclgraph"
)

func kinds() config.Kinds { return cli.Kinds(cli.Deps{}) }

// resolved answers every reference with a value naming it, so both front
// ends' resources can be built and compared.
func resolved(id, key string) (string, bool) {
	switch key {
	case "image_id":
		return "ami-0123456789abcdef0", true
	case "private_ip":
		return "10.0.0.7", true
	case "group_id":
		return "sg-0123456789abcdef0", true
	case "zone_id":
		return "Z0123456789ABCDEFGHIJ", true
	}
	return "v-" + key, true
}

// sameSpecs fails unless the two graphs have the same name and the same
// specs (identity, meta, edges) whose resources build the same.
func sameSpecs(t *testing.T, yg, hg *engine.Graph) {
	t.Helper()
	if yg.Name != hg.Name {
		t.Errorf("graph name = %q; want %q", hg.Name, yg.Name)
	}
	ids := func(g *engine.Graph) []string {
		var out []string
		for _, s := range g.Specs {
			out = append(out, s.ID())
		}
		return out
	}
	if !slices.Equal(ids(yg), ids(hg)) {
		t.Fatalf("ids = %v; want %v", ids(hg), ids(yg))
	}
	for i, ys := range yg.Specs {
		hs := hg.Specs[i]
		if !reflect.DeepEqual(ys.Meta, hs.Meta) {
			t.Errorf("%s: meta = %+v; want %+v", ys.ID(), hs.Meta, ys.Meta)
		}
		for _, c := range []struct {
			what   string
			hc, yc []string
		}{{"depends_on", hs.DependsOn, ys.DependsOn}, {"refs", hs.Refs, ys.Refs}, {"notified_by", hs.NotifiedBy, ys.NotifiedBy}} {
			if !slices.Equal(slices.Sorted(slices.Values(c.hc)), slices.Sorted(slices.Values(c.yc))) {
				t.Errorf("%s: %s = %v; want %v", ys.ID(), c.what, c.hc, c.yc)
			}
		}
		yr, _, err := ys.Build(resolved)
		if err != nil {
			t.Fatalf("%s: build YAML: %v", ys.ID(), err)
		}
		hr, _, err := hs.Build(resolved)
		if err != nil {
			t.Fatalf("%s: build HCL: %v", ys.ID(), err)
		}
		if !reflect.DeepEqual(yr, hr) {
			t.Errorf("%s: HCL resource = %+v; want %+v", ys.ID(), hr, yr)
		}
	}
}

// TestExampleTwins: every YAML example has an HCL twin that yields the
// same specs.
func TestExampleTwins(t *testing.T) {
	ymls, _ := filepath.Glob("../../examples/*.yaml")
	if len(ymls) == 0 {
		t.Fatal("no examples")
	}
	for _, y := range ymls {
		h := strings.TrimSuffix(y, ".yaml") + ".hcl"
		t.Run(filepath.Base(h), func(t *testing.T) {
			yg, err := config.Load(y, kinds())
			if err != nil {
				t.Fatal(err)
			}
			hg, err := hclgraph.Load(h, hclgraph.Options{Kinds: kinds()})
			if err != nil {
				t.Fatal(err)
			}
			sameSpecs(t, yg, hg.Graph)
		})
	}
}

// TestConvertRoundTrip: every YAML example converted to HCL yields the
// same specs as the YAML, and converting is stable under fmt.
func TestConvertRoundTrip(t *testing.T) {
	ymls, _ := filepath.Glob("../../examples/*.yaml")
	ymls = append(ymls, "testdata/escapes.yaml")
	for _, y := range ymls {
		t.Run(filepath.Base(y), func(t *testing.T) {
			data, err := os.ReadFile(y)
			if err != nil {
				t.Fatal(err)
			}
			out, err := hclgraph.Convert(y, data)
			if err != nil {
				t.Fatalf("Convert() = %v", err)
			}
			h := filepath.Join(t.TempDir(), "graph.hcl")
			if err := os.WriteFile(h, out, 0o644); err != nil {
				t.Fatal(err)
			}
			yg, err := config.Load(y, kinds())
			if err != nil {
				t.Fatal(err)
			}
			hg, err := hclgraph.Load(h, hclgraph.Options{Kinds: kinds()})
			if err != nil {
				t.Fatalf("Load(converted) = %v\n%s", err, out)
			}
			sameSpecs(t, yg, hg.Graph)
		})
	}
}
