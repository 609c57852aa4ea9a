package project

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"kiln/internal/pipeline"
	"kiln/internal/store/storetest"
)

const fullProject = `name: web
region: us-east-1
base: {owner: amazon, name: "al2023-ami-*", most_recent: true}
type: t3.small
script: |
  #!/bin/sh
  dnf install -y nginx
security_groups: [sg-0123abcd]
subnet: subnet-0123abcd
iam_profile: builder
tags: {team: web}
keep: 3
branch: main
webhook_secret: ${WEB_HOOK_SECRET}
timeouts: {script: 20m, image: 90m}
`

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseProjectFull(t *testing.T) {
	p, err := Parse("web.yaml", []byte(fullProject), env(map[string]string{"WEB_HOOK_SECRET": "0123456789abcdef-secret"}))
	if err != nil {
		t.Fatalf("Parse() = %v", err)
	}
	want := &Project{
		Name: "web",
		Builder: pipeline.Builder{
			Region:         "us-east-1",
			Base:           pipeline.Base{Owner: "amazon", Name: "al2023-ami-*", MostRecent: true},
			Type:           "t3.small",
			Script:         "#!/bin/sh\ndnf install -y nginx\n",
			SecurityGroups: []string{"sg-0123abcd"}, Subnet: "subnet-0123abcd", IAMProfile: "builder",
			Tags:     map[string]string{"team": "web"},
			Timeouts: pipeline.Timeouts{Script: 20 * time.Minute, Image: 90 * time.Minute},
		},
		Keep: 3, Branch: "main",
		Secret: "0123456789abcdef-secret",
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("Parse() = %+v\nwant %+v", p, want)
	}
	if got := FromRecord(p.Record()); !reflect.DeepEqual(got, &Project{
		Name: want.Name, Builder: want.Builder,
		Keep: want.Keep, Branch: want.Branch,
	}) {
		t.Errorf("FromRecord(Record()) = %+v", got)
	}
}

func TestParseProjectDefaults(t *testing.T) {
	src := "name: api\nregion: eu-west-2\nbase: {id: ami-0123456789abcdef0}\ntype: m7i-flex.large\nscript: echo hi\n"
	p, err := Parse("api.yaml", []byte(src), nil)
	if err != nil {
		t.Fatalf("Parse() = %v", err)
	}
	if p.Keep != DefaultKeep || p.Timeouts != (pipeline.Timeouts{Script: pipeline.DefaultScriptTimeout, Image: pipeline.DefaultImageTimeout}) ||
		p.Branch != "" || p.Secret != "" || p.Base.ID != "ami-0123456789abcdef0" {
		t.Errorf("defaults = %+v", p)
	}
}

// The example project file in the repository must parse.
func TestParseProjectExample(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "web.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse("web.yaml", data, env(map[string]string{"WEB_HOOK_SECRET": strings.Repeat("x", 20)})); err != nil {
		t.Errorf("Parse(testdata/web.yaml) = %v", err)
	}
}

// manyTags is n tags as a YAML flow mapping's entries.
func manyTags(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "k%d: v, ", i)
	}
	return strings.TrimSuffix(b.String(), ", ")
}

func TestParseProjectErrors(t *testing.T) {
	base := "name: web\nregion: us-east-1\nbase: {id: ami-0123abcd}\ntype: t3.small\nscript: echo\n"
	tests := []struct {
		name string
		src  string
		want []string // every line of the error, in order
	}{
		{"empty", "", []string{"p.yaml:1: empty project file"}},
		{"not a mapping", "- a\n", []string{"p.yaml:1: a project file is a mapping of fields (name, region, base, ...)"}},
		{"syntax", "name: [\n", []string{"p.yaml:1:7: sequence end token ']' not found"}},
		{"two documents", base + "---\nname: x\n", []string{"p.yaml:6: only one YAML document is allowed"}},
		{"missing required", "keep: 2\n", []string{
			"p.yaml:1: name: required", "p.yaml:1: region: required", "p.yaml:1: base: required",
			"p.yaml:1: type: required", "p.yaml:1: script: required"}},
		{"unknown and repeated", base + "colour: red\nkeep: 1\nkeep: 2\n", []string{
			`p.yaml:6: unknown field "colour"`, "p.yaml:8: keep: given twice"}},
		{"unknown nested", strings.Replace(base, "{id: ami-0123abcd}", "{id: ami-0123abcd, arch: arm}", 1), []string{
			`p.yaml:3: unknown field "base.arch"`}},
		{"bad values", `name: "web app"
region: mars-1
base: {id: ami-0123abcd, owner: amazon}
type: t3
script: ""
security_groups: [sg-1, sg-0123abcd, sg-0123abcd]
subnet: net-1
iam_profile: "a b"
tags: {"aws:x": y, k: 5}
keep: 0
branch: "a..b"
timeouts: {script: 0s, image: forever}
`, []string{
			`p.yaml:1: name: "web app": use letters, digits, '.', '_' and '-', starting with a letter or digit (it names images and URLs)`,
			`p.yaml:2: region: "mars-1" is not a region name such as us-east-1`,
			`p.yaml:3: base: give either id, or owner and name (with most_recent), not both`,
			`p.yaml:4: type: "t3" is not an instance type such as t3.small`,
			`p.yaml:5: script: must not be empty`,
			`p.yaml:6: security_groups[0]: "sg-1" is not a security group id (sg-...)`,
			`p.yaml:6: security_groups[2]: "sg-0123abcd" given twice`,
			`p.yaml:7: subnet: "net-1" is not a subnet id (subnet-...)`,
			`p.yaml:8: iam_profile: "a b" is not an instance profile name or ARN`,
			`p.yaml:9: tags.aws:x: the aws: and kiln: prefixes are reserved`,
			`p.yaml:10: keep: must be at least 1`,
			`p.yaml:11: branch: "a..b": not a branch name`,
			`p.yaml:12: timeouts.script: must be more than 0 and at most 24h0m0s`,
			`p.yaml:12: timeouts.image: want a duration such as 30m or 1h30m, not "forever"`,
		}},
		{"wrong types", base + "keep: lots\ntags: [a]\nsecurity_groups: sg-0123abcd\ntimeouts: 5m\n", []string{
			"p.yaml:6: keep: want a whole number",
			"p.yaml:7: tags: want a mapping of strings",
			"p.yaml:8: security_groups: want a list of strings",
			"p.yaml:9: timeouts: want {script: 30m, image: 60m}",
		}},
		{"base owner without name", strings.Replace(base, "{id: ami-0123abcd}", "{owner: bob, most_recent: yes}", 1), []string{
			`p.yaml:3: base.most_recent: want true or false`,
			`p.yaml:3: base.owner: "bob": want a 12-digit account id, self, amazon or aws-marketplace`,
			`p.yaml:3: base.name: required with base.owner`,
		}},
		{"empty base", strings.Replace(base, "{id: ami-0123abcd}", "{}", 1), []string{
			`p.yaml:3: base: give either id, or owner and name (with most_recent)`}},
		{"secret env unset", base + "webhook_secret: ${NOPE}\n", []string{
			"p.yaml:6: webhook_secret: environment variable NOPE is not set"}},
		{"secret short", base + "webhook_secret: short\n", []string{
			"p.yaml:6: webhook_secret: must be at least 16 characters"}},
		{"secret bad name", base + "webhook_secret: ${1X}abcdefabcdefabcdef\n", []string{
			`p.yaml:6: webhook_secret: "1X" is not a variable name`}},
		// The builder's rules are aws:ami's too (pipeline.Builder.Validate).
		{"tags over the cap", base + "tags: {" + manyTags(41) + "}\n", []string{
			"p.yaml:6: tags: at most 40 tags"}},
		{"blank script", strings.Replace(base, "script: echo", `script: "  "`, 1), []string{
			"p.yaml:5: script: must not be empty"}},
		{"group names", base + "security_groups: [web, \"web\", sg-0123abcd]\n", []string{
			`p.yaml:6: security_groups[1]: "web" given twice`}},
		{"name too long", strings.Replace(base, "name: web", "name: "+strings.Repeat("a", 101), 1), []string{
			"p.yaml:1: name: at most 100 characters"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("p.yaml", []byte(tt.src), nil)
			var pes Errors
			if !errors.As(err, &pes) {
				t.Fatalf("Parse() = %v; want Errors", err)
			}
			got := strings.Split(err.Error(), "\n")
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse() errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestParseProjectSecretExpansion(t *testing.T) {
	src := "name: web\nregion: us-east-1\nbase: {id: ami-0123abcd}\ntype: t3.small\nscript: echo\nwebhook_secret: pre-${A}-${B}\n"
	p, err := Parse("p.yaml", []byte(src), env(map[string]string{"A": "alpha-alpha", "B": "beta"}))
	if err != nil {
		t.Fatal(err)
	}
	if p.Secret != "pre-alpha-alpha-beta" {
		t.Errorf("Secret = %q", p.Secret)
	}
	// A branch given as a full ref is reduced to the branch name.
	p, err = Parse("p.yaml", []byte(strings.Replace(src, "webhook_secret: pre-${A}-${B}", "branch: refs/heads/release/1.x", 1)), nil)
	if err != nil || p.Branch != "release/1.x" {
		t.Errorf("Branch = %q, %v; want release/1.x", p.Branch, err)
	}
}

func TestGenerateSecret(t *testing.T) {
	a, b := GenerateSecret(), GenerateSecret()
	if a == b || len(a) != 43 {
		t.Errorf("GenerateSecret() = %q, %q; want two different 43-character secrets", a, b)
	}
}

func TestApply(t *testing.T) {
	st := storetest.Open(t)
	ctx := t.Context()
	p, err := Parse("web.yaml", []byte("name: web\nregion: us-east-1\nbase: {id: ami-0123abcd}\ntype: t3.small\nscript: echo\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := Apply(ctx, st, p)
	if err != nil || !a.Created || a.GeneratedSecret == "" {
		t.Fatalf("Apply(new, no secret) = %+v, %v; want created with a generated secret", a, err)
	}
	if sec, _ := st.ProjectSecret(ctx, "web"); sec != a.GeneratedSecret {
		t.Errorf("stored secret differs from the generated one")
	}
	// Re-applying without a secret keeps the generated one.
	a2, err := Apply(ctx, st, p)
	if err != nil || a2.Created || a2.GeneratedSecret != "" {
		t.Errorf("Apply(again) = %+v, %v", a2, err)
	}
	if sec, _ := st.ProjectSecret(ctx, "web"); sec != a.GeneratedSecret {
		t.Errorf("re-apply changed the secret")
	}
	p.Secret = "a-secret-from-the-file"
	if _, err := Apply(ctx, st, p); err != nil {
		t.Fatal(err)
	}
	if sec, _ := st.ProjectSecret(ctx, "web"); sec != p.Secret {
		t.Errorf("secret from the file not stored")
	}
}

func FuzzParseProject(f *testing.F) {
	f.Add([]byte(fullProject))
	f.Add([]byte("name: api\nregion: eu-west-2\nbase: {id: ami-0123456789abcdef0}\ntype: m5.large\nscript: echo hi\n"))
	f.Add([]byte("name: [\n"))
	f.Add([]byte("- a\n"))
	f.Add([]byte("base: {owner: amazon}\ntags: {aws:x: 1}\nkeep: -1\n"))
	getenv := env(map[string]string{"WEB_HOOK_SECRET": "0123456789abcdef0123"})
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("f.yaml", data, getenv)
		if err != nil {
			var pes Errors
			if !errors.As(err, &pes) || len(pes) == 0 {
				t.Fatalf("Parse() error %T %v; want non-empty Errors", err, err)
			}
			for _, e := range pes {
				if e.Line < 1 {
					t.Errorf("error without a line: %v", e)
				}
			}
			return
		}
		// A valid project satisfies the invariants the bake relies on.
		if !nameRe.MatchString(p.Name) || len(p.Name) > MaxNameLen || p.Keep < 1 ||
			p.Timeouts.Script <= 0 || p.Timeouts.Image <= 0 || p.Script == "" ||
			(p.Base.ID == "") == (p.Base.Owner == "") {
			t.Errorf("Parse() accepted an invalid project: %+v", p)
		}
	})
}

// The project file example of docs/bakery/projects.md must parse.
func TestParseProjectREADME(t *testing.T) {
	page, err := os.ReadFile(filepath.Join("..", "..", "docs", "bakery", "projects.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(page), "# The project file")
	if !ok {
		t.Fatal("docs/bakery/projects.md has no project file section")
	}
	_, block, ok := strings.Cut(section, "```yaml\n")
	if !ok {
		t.Fatal("docs/bakery/projects.md's project file section has no yaml block")
	}
	block, _, _ = strings.Cut(block, "```")
	if _, err := Parse("projects.md", []byte(block), env(map[string]string{"WEB_HOOK_SECRET": strings.Repeat("s", 20)})); err != nil {
		t.Errorf("docs/bakery/projects.md project file: %v", err)
	}
}
