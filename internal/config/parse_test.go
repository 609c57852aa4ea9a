package config

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"kiln/internal/engine"
)

// thing is a test kind with one field of each shape.
type thing struct {
	Path  string            `yaml:"path"`
	Count int               `yaml:"count"`
	Wait  time.Duration     `yaml:"wait"`
	Tags  map[string]string `yaml:"tags"`
	Base  *struct {
		Owner string `yaml:"owner"`
	} `yaml:"base"`
	Hidden string `yaml:"-"`
}

func (t *thing) Watch(ctx context.Context, ev engine.Events) error {
	ev.Running()
	<-ctx.Done()
	return nil
}
func (t *thing) CheckApply(context.Context, bool) (bool, error) { return true, nil }
func (t *thing) Validate() error {
	var errs []error
	if t.Path == "" {
		errs = append(errs, Fieldf("path", "required"))
	} else if !HasRef(t.Path) && !strings.HasPrefix(t.Path, "/") {
		errs = append(errs, Fieldf("path", "must be absolute, got %q", t.Path))
	}
	if t.Base != nil && t.Base.Owner == "nobody" {
		errs = append(errs, Fieldf("base.owner", "unknown owner %q", t.Base.Owner))
	}
	return errors.Join(errs...)
}

type plain struct{}

func (p *plain) Watch(ctx context.Context, ev engine.Events) error {
	ev.Running()
	<-ctx.Done()
	return nil
}
func (p *plain) CheckApply(context.Context, bool) (bool, error) { return true, nil }

var testKinds = Kinds{
	"thing":   func() engine.Resource { return &thing{Hidden: "kept"} },
	"aws:ami": func() engine.Resource { return &thing{} },
	"noop":    func() engine.Resource { return &plain{} },
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"syntax", "name: x\nresources:\n  - kind: [\n", []string{
			"g.yaml:3:11: sequence end token ']' not found"}},
		// The decoder alone would say line 2 for both: where the list began.
		{"indentation", "name: g\nresources:\n  - kind: file\n    name: a\n    path: /tmp/x\n   content: hi\n", []string{
			"g.yaml:6:4: value is not allowed in this context"}},
		{"tab", "name: g\nresources:\n  - kind: file\n    name: a\n\tpath: x\n", []string{
			`g.yaml:5:1: found character '\t' that cannot start any token`}},
		{"empty", "", []string{"g.yaml:1: empty graph file (want name: and resources:)"}},
		{"not a mapping", "- a\n", []string{`g.yaml:1: want a mapping with name: and resources:, got a list`}},
		{"top-level", "nam: x\nresources: []\n", []string{
			`g.yaml:1: unknown field "nam" (want name, resources, prune, prune_limit, accounts)`,
			`g.yaml:1: name: required`}},
		{"alias", "name: &a x\nresources: [*a]\n", []string{"g.yaml:2: YAML aliases (*name) are not supported"}},
		{"resources not list", "name: x\nresources: 3\n", []string{`g.yaml:2: resources: want a list, got "3"`}},
		{"missing kind and name", "name: x\nresources:\n  - path: /a\n", []string{
			"g.yaml:3: resource #1: kind: required",
			"g.yaml:3: resource #1: name: required"}},
		{"bad name", "name: x\nresources:\n  - {kind: noop, name: a/b}\n", []string{
			`g.yaml:3: resource #1: name: "a/b": names cannot hold '/', '$', braces or spaces`}},
		{"unknown kind", "name: x\nresources:\n  - kind: fiel\n    name: a\n", []string{
			`g.yaml:3: fiel "a": kind: unknown kind "fiel" (known: aws:ami, noop, thing)`}},
		{"unknown field", "name: x\nresources:\n  - kind: thing\n    name: a\n    path: /a\n    pth: /b\n", []string{
			`g.yaml:6: thing "a": unknown field "pth"`}},
		{"yaml-less field is unknown", "name: x\nresources:\n  - {kind: thing, name: a, path: /a, hidden: x}\n", []string{
			`g.yaml:3: thing "a": unknown field "hidden"`}},
		{"nested unknown field", "name: x\nresources:\n  - kind: thing\n    name: a\n    path: /a\n    base: {owner: me, nme: x}\n", []string{
			`g.yaml:6: thing "a": unknown field "base.nme"`}},
		{"wrong type", "name: x\nresources:\n  - kind: thing\n    name: a\n    path: /a\n    count: many\n", []string{
			`g.yaml:6: thing "a": count: want an integer, got "many"`}},
		{"wrong shape", "name: x\nresources:\n  - kind: thing\n    name: a\n    path: [a]\n", []string{
			`g.yaml:5: thing "a": path: want a string, got a list`}},
		{"bad duration", "name: x\nresources:\n  - kind: thing\n    name: a\n    path: /a\n    wait: 10x\n", []string{
			`g.yaml:6: thing "a": wait: invalid duration "10x" (want e.g. "10s", "5m")`}},
		{"validate", "name: x\nresources:\n  - kind: thing\n    name: a\n    path: rel\n    base:\n      owner: nobody\n", []string{
			`g.yaml:5: thing "a": path: must be absolute, got "rel"`,
			`g.yaml:7: thing "a": base.owner: unknown owner "nobody"`}},
		{"missing field", "name: x\nresources:\n  - kind: thing\n    name: a\n", []string{
			`g.yaml:3: thing "a": path: required`}},
		{"field twice", "name: x\nresources:\n  - kind: thing\n    name: a\n    path: /a\n    path: /b\n", nil}, // yaml itself rejects
		{"meta", "name: x\nresources:\n  - kind: noop\n    name: a\n    meta:\n      poll: 5\n      retry: -2\n      burst: x\n      noop: maybe\n      speed: 1\n", []string{
			`g.yaml:6: noop "a": meta.poll: invalid duration "5" (want e.g. "10s", "5m")`,
			`g.yaml:7: noop "a": meta.retry: want -1 (forever) or more, got -2`,
			`g.yaml:8: noop "a": meta.burst: want an integer, got "x"`,
			`g.yaml:9: noop "a": meta.noop: want true or false, got "maybe"`,
			`g.yaml:10: noop "a": unknown field "meta.speed"`}},
		{"duplicate", "name: x\nresources:\n  - {kind: noop, name: a}\n  - {kind: noop, name: a}\n", []string{
			`g.yaml:4: noop "a": duplicate resource noop/a (first at line 3)`}},
		{"dangling", "name: x\nresources:\n  - kind: noop\n    name: a\n    depends_on: [noop/b, nope]\n    notified_by: [thing/c]\n", []string{
			`g.yaml:5: noop "a": depends_on: want kind/name, got "nope"`,
			`g.yaml:5: noop "a": depends_on: unknown resource noop/b`,
			`g.yaml:6: noop "a": notified_by: unknown resource thing/c`}},
		{"dangling reference", "name: x\nresources:\n  - kind: thing\n    name: a\n    path: /${aws:ami/web.image_id}\n", []string{
			`g.yaml:5: thing "a": path: reference ${aws:ami/web.image_id}: unknown resource aws:ami/web`}},
		{"bad reference", "name: x\nresources:\n  - kind: thing\n    name: a\n    path: /${noop/b}\n", []string{
			`g.yaml:5: thing "a": path: bad reference "${noop/b}": want ${kind/name.output}`}},
		{"cycle", "name: x\nresources:\n" +
			"  - {kind: noop, name: a, depends_on: [noop/b]}\n" +
			"  - {kind: noop, name: b, depends_on: [thing/c]}\n" +
			"  - {kind: thing, name: c, path: \"/${noop/a.x}\"}\n" +
			"  - {kind: noop, name: d, depends_on: [noop/d]}\n" +
			"  - {kind: noop, name: e, depends_on: [noop/a]}\n", []string{
			`g.yaml:3: dependency cycle: noop/a -> noop/b -> thing/c -> noop/a`,
			`g.yaml:6: dependency cycle: noop/d -> noop/d`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := Parse("g.yaml", []byte(tt.yaml), testKinds)
			if err == nil {
				t.Fatalf("Parse() = %v, nil; want errors", g)
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Parse() error %T %v; want Errors", err, err)
			}
			if tt.want == nil {
				return
			}
			got := strings.Split(err.Error(), "\n")
			if !slices.Equal(got, tt.want) {
				t.Errorf("Parse() errors:\n%s\nwant:\n%s", err, strings.Join(tt.want, "\n"))
			}
		})
	}
}

const good = `name: shop
resources:
  - kind: aws:ami
    name: web
    path: /ami
  - kind: thing
    name: web-1.ip
    path: "/${aws:ami/web.image_id}/${aws:ami/web.arn}"
    count: ${aws:ami/web.count}
    tags: {a: "$${HOME} ${HOME}"}
    meta: {poll: 60s, retry: 5, delay: 10s, limit: 2.5, burst: 3, noop: true, timeout: 1m}
  - kind: noop
    name: reload
    depends_on: [aws:ami/web]
    notified_by: [thing/web-1.ip]
`

func TestParseGraph(t *testing.T) {
	g, err := Parse("g.yaml", []byte(good), testKinds)
	if err != nil {
		t.Fatalf("Parse() error: %v", err)
	}
	if g.Name != "shop" || len(g.Specs) != 3 {
		t.Fatalf("Parse() = %q with %d specs; want shop with 3", g.Name, len(g.Specs))
	}
	ip, reload := g.Specs[1], g.Specs[2]
	if ip.ID() != "thing/web-1.ip" {
		t.Errorf("ID() = %q", ip.ID())
	}
	if !slices.Equal(ip.DependsOn, []string{"aws:ami/web"}) || !slices.Equal(ip.Refs, []string{"aws:ami/web"}) {
		t.Errorf("DependsOn, Refs = %v, %v; want [aws:ami/web] twice", ip.DependsOn, ip.Refs)
	}
	wantMeta := engine.Meta{Poll: time.Minute, Retry: 5, Delay: 10 * time.Second, Limit: 2.5, Burst: 3, Noop: true, Timeout: time.Minute}
	if ip.Meta != wantMeta {
		t.Errorf("Meta = %+v; want %+v", ip.Meta, wantMeta)
	}
	if !slices.Equal(reload.DependsOn, []string{"aws:ami/web", "thing/web-1.ip"}) || !slices.Equal(reload.NotifiedBy, []string{"thing/web-1.ip"}) {
		t.Errorf("reload DependsOn, NotifiedBy = %v, %v", reload.DependsOn, reload.NotifiedBy)
	}

	outputs := map[string]string{"aws:ami/web.image_id": "ami-1", "aws:ami/web.arn": "arn", "aws:ami/web.count": "7"}
	lookup := func(id, key string) (string, bool) { v, ok := outputs[id+"."+key]; return v, ok }
	r, fp, err := ip.Build(lookup)
	if err != nil {
		t.Fatalf("Build() error: %v", err)
	}
	th := r.(*thing)
	if th.Path != "/ami-1/arn" || th.Count != 7 || th.Tags["a"] != "${HOME} ${HOME}" || th.Hidden != "kept" {
		t.Errorf("Build() = %+v", th)
	}
	_, fp2, _ := ip.Build(lookup)
	outputs["aws:ami/web.image_id"] = "ami-2"
	_, fp3, _ := ip.Build(lookup)
	if fp != fp2 || fp == fp3 {
		t.Errorf("fingerprints %s %s %s: want same, same, different", fp, fp2, fp3)
	}

	delete(outputs, "aws:ami/web.arn")
	if _, _, err := ip.Build(lookup); err == nil || !strings.Contains(err.Error(), "has no output") {
		t.Errorf("Build() without output: error %v; want has no output", err)
	}
	outputs["aws:ami/web.arn"] = "x"
	outputs["aws:ami/web.count"] = "many"
	if _, _, err := ip.Build(lookup); err == nil || !engine.IsPermanent(err) ||
		!strings.Contains(err.Error(), `g.yaml:9: thing "web-1.ip": count: want an integer, got "many"`) {
		t.Errorf("Build() with bad value: error %v", err)
	}
}

func TestHash(t *testing.T) {
	parse := func(s string) *engine.Graph {
		t.Helper()
		g, err := Parse("g.yaml", []byte(s), testKinds)
		if err != nil {
			t.Fatalf("Parse() error: %v", err)
		}
		return g
	}
	a := parse(good)
	moved := parse("# a comment moves every line\n" + good)
	edited := parse(strings.Replace(good, "retry: 5", "retry: 6", 1))
	for i := range a.Specs {
		if a.Specs[i].Hash != moved.Specs[i].Hash {
			t.Errorf("Hash of %s changed when only lines moved", a.Specs[i].ID())
		}
	}
	if a.Specs[1].Hash == edited.Specs[1].Hash || a.Specs[0].Hash != edited.Specs[0].Hash {
		t.Errorf("Hash: an edited spec must change, the others must not")
	}
}

func TestHasRef(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"plain", false},
		{"${HOME}", false},
		{"$${file/a.path}", false},
		{"${file/a.path}", true},
		{"x ${aws:ec2/web-1.private_ip}\n", true},
		{"${file/a}", false},
	}
	for _, tt := range tests {
		if got := HasRef(tt.in); got != tt.want {
			t.Errorf("HasRef(%q) = %v; want %v", tt.in, got, tt.want)
		}
	}
}

// TestBuildKnownAfterApply: in a check-only pass a reference may resolve
// to engine.KnownAfterApply; Validate's errors about that field are
// ignored, as at parse time, so the kind can plan against it. A value that
// is known and wrong is still an error.
func TestBuildKnownAfterApply(t *testing.T) {
	g, err := Parse("g.yaml", []byte(`name: shop
resources:
  - {kind: aws:ami, name: web, path: /ami}
  - {kind: thing, name: t, path: "${aws:ami/web.image_id}"}
`), testKinds)
	if err != nil {
		t.Fatalf("Parse() error: %v", err)
	}
	build := func(v string) (engine.Resource, error) {
		r, _, err := g.Specs[1].Build(func(string, string) (string, bool) { return v, true })
		return r, err
	}
	r, err := build(engine.KnownAfterApply)
	if err != nil {
		t.Fatalf("Build() with %q = %v; want the resource", engine.KnownAfterApply, err)
	}
	if p := r.(*thing).Path; p != engine.KnownAfterApply {
		t.Errorf("Path = %q; want %q", p, engine.KnownAfterApply)
	}
	if _, err := build("relative"); err == nil || !strings.Contains(err.Error(), `g.yaml:4: thing "t": path: must be absolute, got "relative"`) {
		t.Errorf("Build() with a bad value = %v; want the path error", err)
	}
}
