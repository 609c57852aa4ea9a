package project

import (
	"slices"
	"strings"
	"testing"

	"kiln/internal/notify"
	"kiln/internal/store"
	"kiln/internal/store/storetest"
)

const notifyBase = "name: web\nregion: us-east-1\nbase: {id: ami-0123abcd}\ntype: t3.small\nscript: echo\n"

func TestParseNotify(t *testing.T) {
	src := notifyBase + `notify:
  - url: http://10.0.0.5:9000/kiln
    secret: ${HOOK_SECRET}
    events: [bake.failed, promotion.rolled_back]
  - url: https://hooks.slack.com/services/T0/B0/x
commit_status:
  provider: gitlab
  api: https://git.example.com/api/v4
  token: ${GL_TOKEN}
`
	p, err := Parse("web.yaml", []byte(src), env(map[string]string{"HOOK_SECRET": "hs", "GL_TOKEN": "glpat-1"}))
	if err != nil {
		t.Fatalf("Parse() = %v", err)
	}
	if len(p.Notify) != 2 || p.Notify[0].Secret != "hs" ||
		!slices.Equal(p.Notify[0].Events, []string{notify.BakeFailed, notify.PromotionRolledBack}) ||
		!slices.Equal(p.Notify[1].Events, notify.Events) {
		t.Errorf("Notify = %+v", p.Notify)
	}
	if c := p.CommitStatus; c == nil || *c != (store.CommitStatus{Provider: "gitlab", APIURL: "https://git.example.com/api/v4", Token: "glpat-1"}) {
		t.Errorf("CommitStatus = %+v", c)
	}

	// Applied, they are stored (secrets sealed when a key is set) and read back.
	st := storetest.Open(t)
	if _, err := Apply(t.Context(), st, p); err != nil {
		t.Fatal(err)
	}
	ts, err := st.NotifyTargets(t.Context(), "web")
	if err != nil || len(ts) != 2 || ts[0].Secret != "hs" || ts[1].URL != p.Notify[1].URL {
		t.Errorf("NotifyTargets() = %+v, %v", ts, err)
	}
	if c, err := st.CommitStatusOf(t.Context(), "web"); err != nil || c == nil || c.Token != "glpat-1" {
		t.Errorf("CommitStatusOf() = %+v, %v", c, err)
	}
	// Applying without them removes them.
	p.Notify, p.CommitStatus = nil, nil
	if _, err := Apply(t.Context(), st, p); err != nil {
		t.Fatal(err)
	}
	if ts, _ := st.NotifyTargets(t.Context(), "web"); len(ts) != 0 {
		t.Errorf("NotifyTargets() after removal = %+v", ts)
	}
	if c, _ := st.CommitStatusOf(t.Context(), "web"); c != nil {
		t.Errorf("CommitStatusOf() after removal = %+v", c)
	}
}

func TestParseNotifyErrors(t *testing.T) {
	for _, tt := range []struct {
		name, src string
		want      []string
	}{
		{"link-local", "notify:\n  - url: http://169.254.169.254/latest\n", []string{
			"web.yaml:7: notify[0].url: a link-local address (169.254.0.0/16, fe80::/10) is refused: instance metadata answers there"}},
		{"unknown event", "notify:\n  - url: http://127.0.0.1/x\n    events: [bake.exploded]\n", []string{
			`web.yaml:8: notify[0].events: unknown event "bake.exploded"`}},
		{"no url", "notify:\n  - secret: x\n", []string{"web.yaml:7: notify[0].url: must be set"}},
		{"twice", "notify:\n  - url: http://127.0.0.1/x\n  - url: http://127.0.0.1/x\n", []string{
			"web.yaml:8: notify[1].url: listed twice"}},
		{"not a list", "notify: http://127.0.0.1/x\n", []string{"web.yaml:6: notify: want a list"}},
		{"bad provider", "commit_status: {provider: bitbucket, token: t}\n", []string{
			`web.yaml:6: commit_status.provider: want github or gitlab, not "bitbucket"`}},
		{"no token", "commit_status: {provider: github}\n", []string{"web.yaml:6: commit_status.token: must be set"}},
		{"link-local api", "commit_status: {provider: github, api: 'http://169.254.1.1/', token: t}\n", []string{
			"web.yaml:6: commit_status.api: a link-local address"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("web.yaml", []byte(notifyBase+tt.src), nil)
			if err == nil {
				t.Fatalf("Parse() = nil; want %q", tt.want)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("Parse() = %v; want %d problems", err, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("problem %d = %q; want it to start %q", i, lines[i], w)
				}
			}
		})
	}
}
