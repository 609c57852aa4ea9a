package ui

import (
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"kiln/internal/project"
	"kiln/internal/store"
)

// projectForm is the project form as typed. It is turned into a project
// file and read by project.Parse, so the form is checked by the same
// rules, with the same messages, as a file sent to the API.
type projectForm struct {
	Name, Region                   string
	BaseID, BaseOwner, BaseName    string
	BaseMostRecent                 bool
	Type, Script                   string
	SecurityGroups, Subnet         string
	IAMProfile, Tags, Keep, Branch string
	ScriptTimeout, ImageTimeout    string
}

// formFile is the YAML written from a form, in the project file's field
// names.
type formFile struct {
	Name           string            `yaml:"name"`
	Region         string            `yaml:"region"`
	Base           formBase          `yaml:"base"`
	Type           string            `yaml:"type"`
	Script         string            `yaml:"script"`
	SecurityGroups []string          `yaml:"security_groups,omitempty"`
	Subnet         string            `yaml:"subnet,omitempty"`
	IAMProfile     string            `yaml:"iam_profile,omitempty"`
	Tags           map[string]string `yaml:"tags,omitempty"`
	Keep           any               `yaml:"keep,omitempty"`
	Branch         string            `yaml:"branch,omitempty"`
	Timeouts       map[string]string `yaml:"timeouts,omitempty"`
}

type formBase struct {
	ID         string `yaml:"id,omitempty"`
	Owner      string `yaml:"owner,omitempty"`
	Name       string `yaml:"name,omitempty"`
	MostRecent bool   `yaml:"most_recent,omitempty"`
}

func formFromRequest(r *http.Request) projectForm {
	v := r.PostForm
	f := func(k string) string { return strings.TrimSpace(v.Get(k)) }
	return projectForm{
		Name: f("name"), Region: f("region"),
		BaseID: f("base_id"), BaseOwner: f("base_owner"), BaseName: f("base_name"), BaseMostRecent: v.Get("base_most_recent") != "",
		Type: f("type"), Script: strings.ReplaceAll(v.Get("script"), "\r\n", "\n"),
		SecurityGroups: f("security_groups"), Subnet: f("subnet"), IAMProfile: f("iam_profile"),
		Tags: f("tags"), Keep: f("keep"), Branch: f("branch"),
		ScriptTimeout: f("timeout_script"), ImageTimeout: f("timeout_image"),
	}
}

func formFromRecord(p *store.Project) projectForm {
	var tags []string
	for _, k := range slices.Sorted(maps.Keys(p.Tags)) {
		tags = append(tags, k+"="+p.Tags[k])
	}
	return projectForm{
		Name: p.Name, Region: p.Region,
		BaseID: p.BaseID, BaseOwner: p.BaseOwner, BaseName: p.BaseName, BaseMostRecent: p.BaseMostRecent,
		Type: p.Type, Script: p.Script,
		SecurityGroups: strings.Join(p.SecurityGroups, " "), Subnet: p.Subnet, IAMProfile: p.IAMProfile,
		Tags: strings.Join(tags, "\n"), Keep: strconv.Itoa(p.Keep), Branch: p.Branch,
		ScriptTimeout: p.ScriptTimeout.String(), ImageTimeout: p.ImageTimeout.String(),
	}
}

// parse checks the form as a project file.
func (f projectForm) parse() (*project.Project, error) {
	ff := formFile{
		Name: f.Name, Region: f.Region,
		Base: formBase{ID: f.BaseID, Owner: f.BaseOwner, Name: f.BaseName, MostRecent: f.BaseMostRecent},
		Type: f.Type, Script: f.Script,
		SecurityGroups: strings.Fields(strings.ReplaceAll(f.SecurityGroups, ",", " ")),
		Subnet:         f.Subnet, IAMProfile: f.IAMProfile, Branch: f.Branch,
	}
	if f.Keep != "" {
		if n, err := strconv.Atoi(f.Keep); err == nil {
			ff.Keep = n
		} else {
			ff.Keep = f.Keep // the parser says what is wrong with it
		}
	}
	for line := range strings.Lines(f.Tags) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		if ff.Tags == nil {
			ff.Tags = map[string]string{}
		}
		ff.Tags[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	if f.ScriptTimeout != "" || f.ImageTimeout != "" {
		ff.Timeouts = map[string]string{}
		if f.ScriptTimeout != "" {
			ff.Timeouts["script"] = f.ScriptTimeout
		}
		if f.ImageTimeout != "" {
			ff.Timeouts["image"] = f.ImageTimeout
		}
	}
	data, err := yaml.Marshal(ff)
	if err != nil {
		return nil, err
	}
	return project.Parse("form", data, func(string) string { return "" })
}

// formData is what the form template reads.
type formData struct {
	Form        projectForm
	New         bool
	Errors      project.Errors
	FieldErrors map[string][]string
}
