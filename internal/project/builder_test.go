package project

import (
	"strings"
	"testing"

	"kiln/internal/awsres"
	"kiln/internal/pipeline"
)

// TestBuilderRulesSharedWithAMI: a project file and an aws:ami resource
// accept and refuse the same builder settings, with the same message.
func TestBuilderRulesSharedWithAMI(t *testing.T) {
	tags := func(n int) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[strings.Repeat("k", i+1)] = "v"
		}
		return m
	}
	for _, tt := range []struct {
		name string
		mod  func(*pipeline.Builder)
		want string // "" accepted; else the problem, as both say it
	}{
		{"ok", func(*pipeline.Builder) {}, ""},
		{"group names", func(b *pipeline.Builder) { b.SecurityGroups = []string{"web", "sg-0123abcd"} }, ""},
		{"group twice", func(b *pipeline.Builder) { b.SecurityGroups = []string{"web", "web"} }, `security_groups[1]: "web" given twice`},
		{"40 tags", func(b *pipeline.Builder) { b.Tags = tags(40) }, ""},
		{"41 tags", func(b *pipeline.Builder) { b.Tags = tags(41) }, "tags: at most 40 tags"},
		{"reserved tag", func(b *pipeline.Builder) { b.Tags = map[string]string{"Kiln:x": "y"} }, "tags.Kiln:x: the aws: and kiln: prefixes are reserved"},
		{"bad subnet", func(b *pipeline.Builder) { b.Subnet = "subnet-1" }, `subnet: "subnet-1" is not a subnet id (subnet-...)`},
		{"bad type", func(b *pipeline.Builder) { b.Type = "t3" }, `type: "t3" is not an instance type such as t3.small`},
		{"bad owner", func(b *pipeline.Builder) { b.Base.Owner = "bob" }, `base.owner: "bob": want a 12-digit account id`},
		{"blank script", func(b *pipeline.Builder) { b.Script = "  \n" }, "script: must not be empty"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := pipeline.Builder{Region: "us-east-1", Type: "t3.small", Script: "echo\n",
				Base: pipeline.Base{Owner: "amazon", Name: "al2023-ami-*", MostRecent: true}}
			tt.mod(&b)

			var src strings.Builder
			src.WriteString("name: web\nregion: " + b.Region + "\ntype: " + b.Type + "\n")
			src.WriteString("base: {owner: " + b.Base.Owner + ", name: \"" + b.Base.Name + "\", most_recent: true}\n")
			src.WriteString("script: " + quote(b.Script) + "\n")
			if len(b.SecurityGroups) > 0 {
				src.WriteString("security_groups: [" + strings.Join(b.SecurityGroups, ", ") + "]\n")
			}
			if b.Subnet != "" {
				src.WriteString("subnet: " + b.Subnet + "\n")
			}
			if len(b.Tags) > 0 {
				src.WriteString("tags:\n")
				for k, v := range b.Tags {
					src.WriteString("  " + k + ": " + v + "\n")
				}
			}
			_, perr := Parse("p.yaml", []byte(src.String()), nil)

			ami := &awsres.AMI{Region: b.Region, Type: b.Type, Script: b.Script, SecurityGroups: b.SecurityGroups,
				Subnet: b.Subnet, Tags: b.Tags,
				Base: awsres.AMIBase{Owner: b.Base.Owner, Name: b.Base.Name, MostRecent: b.Base.MostRecent}}
			aerr := ami.Validate()

			for who, err := range map[string]error{"project.Parse": perr, "aws:ami Validate": aerr} {
				switch {
				case tt.want == "" && err != nil:
					t.Errorf("%s = %v; want accepted\n%s", who, err, src.String())
				case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
					t.Errorf("%s = %v; want %q", who, err, tt.want)
				}
			}
		})
	}
}

// quote is s as a YAML double-quoted scalar.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}
