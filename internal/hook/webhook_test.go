package hook

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kiln/internal/project"
)

const hookSecret = "it's-a-secret-to-everybody"

func readHook(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "hooks", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func githubHeaders(event, delivery string, body []byte, secret string) http.Header {
	return hdr("X-GitHub-Event", event, "X-GitHub-Delivery", delivery, "X-Hub-Signature-256", Sign(body, secret))
}

func gitlabHeaders(event, uuid, token string) http.Header {
	return hdr("X-Gitlab-Event", event, "X-Gitlab-Event-UUID", uuid, "X-Gitlab-Token", token)
}

func genericHeaders(event, delivery string, body []byte, secret string) http.Header {
	return hdr(HeaderEvent, event, HeaderDelivery, delivery, HeaderSignature, Sign(body, secret))
}

// Known answer: GitHub's documented example of X-Hub-Signature-256.
func TestSignKnownAnswer(t *testing.T) {
	got := Sign([]byte("Hello, World!"), "It's a Secret to Everybody")
	want := "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	if got != want {
		t.Errorf("Sign() = %s; want %s", got, want)
	}
}

func TestParseDelivery(t *testing.T) {
	ghPush := readHook(t, "github-push.json")
	ghPing := readHook(t, "github-ping.json")
	ghDelete := readHook(t, "github-delete.json")
	glPush := readHook(t, "gitlab-push.json")
	gnPush := readHook(t, "generic-push.json")
	tag := bytes.Replace(ghPush, []byte("refs/heads/main"), []byte("refs/tags/v1.0"), 1)
	gnShort := []byte(`{"ref":"release/2","commit":"ABCDEF1"}`)

	tests := []struct {
		name string
		h    http.Header
		body []byte
		want Delivery
	}{
		{"github push", githubHeaders("push", "d-1", ghPush, hookSecret), ghPush, Delivery{
			Provider: GitHub, Kind: KindPush, Event: "push", DeliveryID: "d-1", Ref: "refs/heads/main", Branch: "main",
			Commit: "59b20b8d5c6ff8d09518454d4dd8b7a30f095ab5", Message: "nginx: enable gzip\n\nSmaller pages.",
			Repo: "acme/web", DefaultBranch: "main"}},
		{"github ping", githubHeaders("ping", "d-2", ghPing, hookSecret), ghPing, Delivery{
			Provider: GitHub, Kind: KindPing, Event: "ping", DeliveryID: "d-2"}},
		{"github other event", githubHeaders("issues", "d-3", ghPing, hookSecret), ghPing, Delivery{
			Provider: GitHub, Kind: KindIgnored, Event: "issues", DeliveryID: "d-3", Reason: `event "issues" is not baked`}},
		{"github tag", githubHeaders("push", "d-4", tag, hookSecret), tag, Delivery{
			Provider: GitHub, Kind: KindIgnored, Event: "push", DeliveryID: "d-4", Ref: "refs/tags/v1.0",
			Message: "nginx: enable gzip\n\nSmaller pages.", Repo: "acme/web", DefaultBranch: "main",
			Reason: "refs/tags/v1.0 is not a branch"}},
		{"github branch deleted", githubHeaders("push", "d-5", ghDelete, hookSecret), ghDelete, Delivery{
			Provider: GitHub, Kind: KindIgnored, Event: "push", DeliveryID: "d-5", Ref: "refs/heads/feature",
			Branch: "feature", Repo: "acme/web", DefaultBranch: "main", Reason: "branch deleted"}},
		{"gitlab push", gitlabHeaders("Push Hook", "u-1", hookSecret), glPush, Delivery{
			Provider: GitLab, Kind: KindPush, Event: "Push Hook", DeliveryID: "u-1", Ref: "refs/heads/main", Branch: "main",
			Commit: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", Message: "Enable gzip\n", Repo: "acme/web", DefaultBranch: "main"}},
		{"gitlab idempotency key", hdr("X-Gitlab-Event", "Push Hook", "Idempotency-Key", "k-1", "X-Gitlab-Token", hookSecret), glPush, Delivery{
			Provider: GitLab, Kind: KindPush, Event: "Push Hook", DeliveryID: "k-1", Ref: "refs/heads/main", Branch: "main",
			Commit: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", Message: "Enable gzip\n", Repo: "acme/web", DefaultBranch: "main"}},
		{"gitlab other event", gitlabHeaders("Merge Request Hook", "u-2", hookSecret), []byte(`{"object_kind":"merge_request"}`), Delivery{
			Provider: GitLab, Kind: KindIgnored, Event: "Merge Request Hook", DeliveryID: "u-2", Reason: `event "Merge Request Hook" is not baked`}},
		{"gitlab branch deleted", gitlabHeaders("Push Hook", "u-3", hookSecret),
			[]byte(`{"object_kind":"push","ref":"refs/heads/x","after":"0000000000000000000000000000000000000000","checkout_sha":null}`), Delivery{
				Provider: GitLab, Kind: KindIgnored, Event: "Push Hook", DeliveryID: "u-3", Ref: "refs/heads/x", Branch: "x", Reason: "branch deleted"}},
		{"generic push", genericHeaders("", "g-1", gnPush, hookSecret), gnPush, Delivery{
			Provider: Generic, Kind: KindPush, Event: "push", DeliveryID: "g-1", Ref: "refs/heads/main", Branch: "main",
			Commit: "59b20b8d5c6ff8d09518454d4dd8b7a30f095ab5", Message: "build 42", Repo: "acme/web"}},
		{"generic short ref, no delivery id", hdr(HeaderSignature, Sign(gnShort, hookSecret)), gnShort, Delivery{
			Provider: Generic, Kind: KindPush, Event: "push",
			DeliveryID: "sha256:" + sha256Hex(gnShort), Ref: "refs/heads/release/2", Branch: "release/2", Commit: "abcdef1"}},
		{"generic ping", genericHeaders("ping", "g-2", []byte(`{}`), hookSecret), []byte(`{}`), Delivery{
			Provider: Generic, Kind: KindPing, Event: "ping", DeliveryID: "g-2"}},
		{"generic other event", genericHeaders("deploy", "g-3", []byte(`{}`), hookSecret), []byte(`{}`), Delivery{
			Provider: Generic, Kind: KindIgnored, Event: "deploy", DeliveryID: "g-3", Reason: `event "deploy" is not baked`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ParseDelivery(tt.h, tt.body, hookSecret)
			if err != nil {
				t.Fatalf("ParseDelivery() = %v", err)
			}
			if *d != tt.want {
				t.Errorf("ParseDelivery() = %+v\nwant %+v", *d, tt.want)
			}
		})
	}
}

func TestParseDeliveryErrors(t *testing.T) {
	ghPush := readHook(t, "github-push.json")
	glPush := readHook(t, "gitlab-push.json")
	gnPush := readHook(t, "generic-push.json")
	bad := []byte(`{"ref": `)
	tests := []struct {
		name string
		h    http.Header
		body []byte
		want error
	}{
		{"no headers", http.Header{}, ghPush, ErrUnauthorized},
		{"github unsigned", hdr("X-GitHub-Event", "push"), ghPush, ErrUnauthorized},
		{"github wrong secret", githubHeaders("push", "d", ghPush, "other secret"), ghPush, ErrUnauthorized},
		{"github body changed", githubHeaders("push", "d", ghPush, hookSecret), append(ghPush, ' '), ErrUnauthorized},
		{"github sha1 only", hdr("X-GitHub-Event", "push", "X-Hub-Signature", "sha1=00"), ghPush, ErrUnauthorized},
		{"github bad prefix", hdr("X-GitHub-Event", "push", "X-Hub-Signature-256", "sha1="+strings.Repeat("0", 64)), ghPush, ErrUnauthorized},
		{"github bad hex", hdr("X-GitHub-Event", "push", "X-Hub-Signature-256", "sha256=zz"), ghPush, ErrUnauthorized},
		{"github unsigned ping", hdr("X-GitHub-Event", "ping"), readHook(t, "github-ping.json"), ErrUnauthorized},
		{"github malformed", githubHeaders("push", "d", bad, hookSecret), bad, ErrMalformed},
		{"github form encoded", githubHeaders("push", "d", []byte("payload=%7B%7D"), hookSecret), []byte("payload=%7B%7D"), ErrMalformed},
		{"github no event", hdr("X-Hub-Signature-256", Sign(ghPush, hookSecret)), ghPush, ErrMalformed},
		{"github no ref", githubHeaders("push", "d", []byte(`{"after":"abcdef1"}`), hookSecret), []byte(`{"after":"abcdef1"}`), ErrMalformed},
		{"github bad commit", githubHeaders("push", "d", []byte(`{"ref":"refs/heads/main","after":"xyz"}`), hookSecret),
			[]byte(`{"ref":"refs/heads/main","after":"xyz"}`), ErrMalformed},
		{"github wrong type", githubHeaders("push", "d", []byte(`{"ref":5}`), hookSecret), []byte(`{"ref":5}`), ErrMalformed},
		{"github bad delivery id", githubHeaders("push", "a b", ghPush, hookSecret), ghPush, ErrMalformed},
		{"gitlab no token", hdr("X-Gitlab-Event", "Push Hook"), glPush, ErrUnauthorized},
		{"gitlab wrong token", gitlabHeaders("Push Hook", "u", "guess"), glPush, ErrUnauthorized},
		{"gitlab secret prefix", gitlabHeaders("Push Hook", "u", hookSecret[:10]), glPush, ErrUnauthorized},
		{"gitlab malformed", gitlabHeaders("Push Hook", "u", hookSecret), bad, ErrMalformed},
		{"gitlab wrong kind", gitlabHeaders("Push Hook", "u", hookSecret), []byte(`{"object_kind":"tag_push","ref":"refs/tags/x"}`), ErrMalformed},
		{"gitlab no event", hdr("X-Gitlab-Token", hookSecret), glPush, ErrMalformed},
		{"generic unsigned", hdr(HeaderEvent, "push"), gnPush, ErrUnauthorized},
		{"generic wrong secret", genericHeaders("push", "g", gnPush, "nope"), gnPush, ErrUnauthorized},
		{"generic unknown field", genericHeaders("push", "g", []byte(`{"ref":"main","sha":"abcdef1"}`), hookSecret),
			[]byte(`{"ref":"main","sha":"abcdef1"}`), ErrMalformed},
		{"generic no commit", genericHeaders("push", "g", []byte(`{"ref":"main"}`), hookSecret), []byte(`{"ref":"main"}`), ErrMalformed},
		{"generic no ref", genericHeaders("push", "g", []byte(`{"commit":"abcdef1"}`), hookSecret), []byte(`{"commit":"abcdef1"}`), ErrMalformed},
		{"generic bad branch", genericHeaders("push", "g", []byte(`{"ref":"a..b","commit":"abcdef1"}`), hookSecret),
			[]byte(`{"ref":"a..b","commit":"abcdef1"}`), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ParseDelivery(tt.h, tt.body, hookSecret)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseDelivery() = %+v, %v; want %v", d, err, tt.want)
			}
		})
	}
	// An empty project secret never verifies, whatever was signed with it.
	if _, err := ParseDelivery(githubHeaders("push", "d", ghPush, ""), ghPush, ""); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("ParseDelivery(empty secret) = %v; want ErrUnauthorized", err)
	}
	if _, err := ParseDelivery(gitlabHeaders("Push Hook", "u", ""), glPush, ""); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("ParseDelivery(gitlab, empty secret) = %v; want ErrUnauthorized", err)
	}
}

// A body that is not JSON says so, whether the event is a push or not.
func TestParseDeliveryNotJSON(t *testing.T) {
	bad := []byte("payload=%7B%7D")
	for _, tc := range []struct {
		name string
		h    http.Header
	}{
		{"github push", githubHeaders("push", "d", bad, hookSecret)},
		{"github ping", githubHeaders("ping", "d", bad, hookSecret)},
		{"gitlab push", gitlabHeaders("Push Hook", "u", hookSecret)},
		{"gitlab tag", gitlabHeaders("Tag Push Hook", "u", hookSecret)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseDelivery(tc.h, bad, hookSecret)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "body is not JSON") {
				t.Errorf("ParseDelivery() = %v; want malformed: body is not JSON", err)
			}
		})
	}
}

// A field of the wrong type is a 400 that names it.
func TestParseDeliveryFieldTypes(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    func(body []byte) http.Header
		body string
		want string
	}{
		{"github ref", func(b []byte) http.Header { return githubHeaders("push", "d", b, hookSecret) },
			`{"ref":5}`, "ref is a number, not a string"},
		{"github deleted", func(b []byte) http.Header { return githubHeaders("push", "d", b, hookSecret) },
			`{"ref":"refs/heads/main","deleted":"yes"}`, "deleted is a string, not a boolean"},
		{"github repository", func(b []byte) http.Header { return githubHeaders("push", "d", b, hookSecret) },
			`{"ref":"refs/heads/main","repository":[]}`, "repository is an array, not an object"},
		{"github top level", func(b []byte) http.Header { return githubHeaders("push", "d", b, hookSecret) },
			`["ref"]`, "not a JSON object"},
		{"gitlab commits", func([]byte) http.Header { return gitlabHeaders("Push Hook", "u", hookSecret) },
			`{"object_kind":"push","ref":"refs/heads/main","commits":{}}`, "commits is an object, not an array"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseDelivery(tc.h([]byte(tc.body)), []byte(tc.body), hookSecret)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseDelivery(%s) = %v; want malformed: %s", tc.body, err, tc.want)
			}
		})
	}
}

func TestHTTPStatus(t *testing.T) {
	for err, want := range map[error]int{
		ErrUnauthorized:      401,
		ErrMalformed:         400,
		ErrTooLarge:          413,
		errors.New("x"):      500,
		malformed("x %d", 1): 400,
	} {
		if got := HTTPStatus(err); got != want {
			t.Errorf("HTTPStatus(%v) = %d; want %d", err, got, want)
		}
	}
}

func TestReadBody(t *testing.T) {
	if b, err := ReadBody(bytes.NewReader(make([]byte, MaxBodySize))); err != nil || len(b) != MaxBodySize {
		t.Errorf("ReadBody(1 MiB) = %d bytes, %v", len(b), err)
	}
	if _, err := ReadBody(bytes.NewReader(make([]byte, MaxBodySize+1))); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ReadBody(1 MiB + 1) = %v; want ErrTooLarge", err)
	}
}

func TestMatch(t *testing.T) {
	push := func(branch, def string) *Delivery {
		return &Delivery{Kind: KindPush, Branch: branch, DefaultBranch: def}
	}
	tests := []struct {
		name   string
		d      *Delivery
		filter string
		want   bool
	}{
		{"same branch", push("main", "main"), "main", true},
		{"other branch", push("dev", "main"), "main", false},
		{"filter overrides default", push("release", "main"), "release", true},
		{"default branch", push("main", "main"), "", true},
		{"not default branch", push("dev", "main"), "", false},
		{"no default known", push("dev", ""), "", true},
		{"ping", &Delivery{Kind: KindPing}, "", false},
		{"ignored", &Delivery{Kind: KindIgnored, Reason: "tag"}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, reason := tt.d.Match(tt.filter)
			if ok != tt.want || (!ok && reason == "") {
				t.Errorf("Match(%q) = %v, %q; want %v with a reason when false", tt.filter, ok, reason, tt.want)
			}
		})
	}
}

// FuzzParseDelivery feeds arbitrary bodies, correctly signed, through every
// format: parsing must never panic, and what it accepts must be usable.
func FuzzParseDelivery(f *testing.F) {
	for _, name := range []string{"github-push.json", "github-ping.json", "github-delete.json", "gitlab-push.json", "generic-push.json"} {
		body := readHook(f, name)
		for provider := range uint8(3) {
			f.Add(provider, "push", body)
		}
	}
	f.Add(uint8(0), "ping", []byte(`{"zen":"x"}`))
	f.Add(uint8(1), "Push Hook", []byte(`{"object_kind":"push","ref":"refs/heads/x","checkout_sha":null}`))
	f.Add(uint8(2), "push", []byte(`{"ref":"main","commit":"ABCDEF1","message":"\xff"}`))
	f.Add(uint8(0), "push", []byte(`{"ref":"refs/heads/main","after":"0000000"}`))
	f.Fuzz(func(t *testing.T, provider uint8, event string, body []byte) {
		var h http.Header
		switch provider % 3 {
		case 0:
			h = githubHeaders(event, "fuzz", body, hookSecret)
		case 1:
			h = gitlabHeaders(event, "fuzz", hookSecret)
		default:
			h = genericHeaders(event, "fuzz", body, hookSecret)
		}
		d, err := ParseDelivery(h, body, hookSecret)
		if err == nil && provider%3 != 2 && !json.Valid(body) {
			t.Fatalf("accepted a body that is not JSON: %q", body)
		}
		if err != nil {
			if errors.Is(err, ErrUnauthorized) {
				t.Fatalf("correctly signed delivery refused: %v", err)
			}
			if HTTPStatus(err) != http.StatusBadRequest {
				t.Fatalf("ParseDelivery() = %v; want a 400 error", err)
			}
			return
		}
		switch d.Kind {
		case KindPush:
			if !commitRe.MatchString(d.Commit) || d.Branch == "" || d.Ref != "refs/heads/"+d.Branch || project.CheckBranch(d.Branch) != "" {
				t.Errorf("accepted push with bad fields: %+v", d)
			}
		case KindPing:
		case KindIgnored:
			if d.Reason == "" {
				t.Errorf("ignored without a reason: %+v", d)
			}
		default:
			t.Errorf("unknown kind %q", d.Kind)
		}
		if d.DeliveryID == "" || len(d.Message) > maxMessageLen {
			t.Errorf("bad delivery id or message: %+v", d)
		}
	})
}

// FuzzVerifySignature: only the exact HMAC of the body under the secret
// verifies.
func FuzzVerifySignature(f *testing.F) {
	body := []byte(`{"ref":"refs/heads/main"}`)
	f.Add(body, Sign(body, hookSecret), hookSecret)
	f.Add(body, "sha256=", hookSecret)
	f.Add(body, "sha256="+strings.Repeat("0", 64), hookSecret)
	f.Add([]byte{}, Sign(nil, "k"), "k")
	f.Add(body, strings.ToUpper(Sign(body, hookSecret)), hookSecret)
	f.Fuzz(func(t *testing.T, body []byte, header, secret string) {
		err := VerifySignature(body, header, secret)
		want := secret != "" && header == Sign(body, secret)
		if (err == nil) != want {
			// Upper-case hex is the same signature.
			if err == nil && strings.EqualFold(header, Sign(body, secret)) && strings.HasPrefix(header, "sha256=") {
				return
			}
			t.Fatalf("VerifySignature(%q, %q) = %v; want valid=%v", header, secret, err, want)
		}
		if err != nil && !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("VerifySignature() = %v; want ErrUnauthorized", err)
		}
		if tokErr := VerifyToken(header, secret); (tokErr == nil) != (secret != "" && header == secret) {
			t.Fatalf("VerifyToken(%q, %q) = %v", header, secret, tokErr)
		}
	})
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
