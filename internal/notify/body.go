package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
)

// SignatureHeader carries the HMAC-SHA256 of the body under the target's
// secret, as GitHub signs its webhooks: "sha256=" and the hex digest.
const SignatureHeader = "X-Kiln-Signature-256"

// Sign returns the SignatureHeader value of body under secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Body is what a target at url is sent for e: the event as JSON, or for a
// Slack incoming webhook, Slack's message shape.
func Body(url string, e Event) ([]byte, error) {
	if isSlack(url) {
		return json.Marshal(slackMessage(e))
	}
	return json.Marshal(e)
}

// slack is an incoming webhook's message: text is the fallback (and
// what notifications show), blocks the formatted message.
type slack struct {
	Text   string       `json:"text"`
	Blocks []slackBlock `json:"blocks"`
}

type slackBlock struct {
	Type string    `json:"type"`
	Text slackText `json:"text"`
}

type slackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

func slackMessage(e Event) slack {
	what := e.Project
	switch {
	case e.Bake != 0:
		what = fmt.Sprintf("%s bake %d", e.Project, e.Bake)
	case e.Promotion != 0:
		what = fmt.Sprintf("%s promotion %d", e.Project, e.Promotion)
	}
	text := fmt.Sprintf("kiln: %s: %s", what, e.Event)
	var b strings.Builder
	link := e.Links.Bake
	if link == "" {
		link = e.Links.Project
	}
	if link != "" {
		fmt.Fprintf(&b, "*<%s|%s>*: `%s`", slackEscape(link), slackEscape(what), e.Event)
	} else {
		fmt.Fprintf(&b, "*%s*: `%s`", slackEscape(what), e.Event)
	}
	if e.Image != "" {
		fmt.Fprintf(&b, "\nimage `%s`", slackEscape(e.Image))
	}
	if e.Environment != "" {
		fmt.Fprintf(&b, " in *%s*", slackEscape(e.Environment))
	}
	if e.Reason != "" {
		fmt.Fprintf(&b, "\n%s", slackEscape(e.Reason))
	}
	return slack{Text: text, Blocks: []slackBlock{{Type: "section", Text: slackText{Type: "mrkdwn", Text: b.String()}}}}
}

// slackEscape escapes the three characters Slack's mrkdwn reserves.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
