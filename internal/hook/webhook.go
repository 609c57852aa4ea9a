package hook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"unicode/utf8"

	"kiln/internal/project"
)

// MaxBodySize is the largest webhook body kiln reads; a larger one is
// refused with 413 before it is verified or parsed.
const MaxBodySize = 1 << 20

// maxMessageLen bounds the commit message kept with a bake.
const maxMessageLen = 4096

// Provider is who sent a delivery.
type Provider string

// The webhook formats kiln understands.
const (
	GitHub  Provider = "github"
	GitLab  Provider = "gitlab"
	Generic Provider = "generic" // kiln's own HMAC format for any CI
)

// Kind is what a delivery asks for.
type Kind string

// The kinds of delivery.
const (
	KindPing    Kind = "ping"    // answer 200, do nothing
	KindPush    Kind = "push"    // bake Commit if Branch passes the project's filter
	KindIgnored Kind = "ignored" // acknowledged with 200; Reason says why
)

// Delivery is one verified webhook delivery.
type Delivery struct {
	Provider Provider
	Kind     Kind
	Event    string // the event name as sent (X-GitHub-Event, X-Gitlab-Event, X-Kiln-Event)
	// DeliveryID is the sender's id for this delivery (redeliveries keep it);
	// when the sender gives none it is "sha256:" + the body's SHA-256, so an
	// identical body is the same delivery.
	DeliveryID    string
	Ref           string // e.g. refs/heads/main
	Branch        string // Ref without refs/heads/; empty for tags
	Commit        string // the commit to bake
	Message       string // the head commit's message, at most 4 KiB
	Repo          string // e.g. acme/web
	DefaultBranch string // the repository's default branch when the payload says
	Reason        string // why a KindIgnored delivery is ignored
}

// Sentinel errors of ParseDelivery; the HTTP layer maps them with
// HTTPStatus.
var (
	// ErrUnauthorized: the signature or token is missing or wrong (401).
	ErrUnauthorized = errors.New("missing or bad signature")
	// ErrMalformed: the verified body or headers do not parse (400).
	ErrMalformed = errors.New("malformed delivery")
	// ErrTooLarge: the body is over MaxBodySize (413).
	ErrTooLarge = errors.New("body over 1 MiB")
)

// HTTPStatus maps an error of ReadBody or ParseDelivery to its HTTP status:
// 401, 400, 413, or 500 for anything else.
func HTTPStatus(err error) int {
	switch {
	case errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, ErrMalformed):
		return http.StatusBadRequest
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusInternalServerError
}

// ReadBody reads a webhook body of at most MaxBodySize bytes; a longer one
// is ErrTooLarge.
func ReadBody(r io.Reader) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r, MaxBodySize+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, ErrTooLarge
		}
		return nil, fmt.Errorf("read body: %w", err)
	}
	if len(body) > MaxBodySize {
		return nil, ErrTooLarge
	}
	return body, nil
}

// Header names.
const (
	hdrGitHubEvent    = "X-GitHub-Event"
	hdrGitHubDelivery = "X-GitHub-Delivery"
	hdrGitHubSig      = "X-Hub-Signature-256"
	hdrGitLabEvent    = "X-Gitlab-Event"
	hdrGitLabToken    = "X-Gitlab-Token"
	hdrGitLabUUID     = "X-Gitlab-Event-UUID"
	hdrIdempotencyKey = "Idempotency-Key"
	// HeaderSignature, HeaderDelivery and HeaderEvent are kiln's generic
	// format (see docs/bakery/webhooks.md): HMAC-SHA256 of the raw body as sha256=<hex>,
	// an optional delivery id, and an optional event (push or ping).
	HeaderSignature = "X-Kiln-Signature"
	HeaderDelivery  = "X-Kiln-Delivery"
	HeaderEvent     = "X-Kiln-Event"
)

// ParseDelivery verifies a delivery against the project's secret and then
// parses it. The format is chosen by its headers: GitHub
// (X-Hub-Signature-256 / X-GitHub-Event), GitLab (X-Gitlab-Token /
// X-Gitlab-Event), or generic (X-Kiln-Signature / X-Kiln-Event). The
// signature is checked in constant time over the raw body before any
// parsing. Errors wrap ErrUnauthorized or ErrMalformed.
func ParseDelivery(h http.Header, body []byte, secret string) (*Delivery, error) {
	switch {
	case h.Get(hdrGitHubSig) != "" || h.Get(hdrGitHubEvent) != "":
		return parseGitHub(h, body, secret)
	case h.Get(hdrGitLabToken) != "" || h.Get(hdrGitLabEvent) != "":
		return parseGitLab(h, body, secret)
	case h.Get(HeaderSignature) != "" || h.Get(HeaderEvent) != "":
		return parseGeneric(h, body, secret)
	}
	return nil, fmt.Errorf("%w: no %s, %s or %s header", ErrUnauthorized, hdrGitHubSig, hdrGitLabToken, HeaderSignature)
}

// Sign returns the signature header value for body under secret,
// "sha256=<hex HMAC-SHA256>", as GitHub's X-Hub-Signature-256 and kiln's
// X-Kiln-Signature carry it.
func Sign(body []byte, secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature checks a "sha256=<hex>" header against the HMAC-SHA256 of
// body under secret, in constant time. It returns nil or an error wrapping
// ErrUnauthorized.
func VerifySignature(body []byte, header, secret string) error {
	if secret == "" {
		return fmt.Errorf("%w: project has no secret", ErrUnauthorized)
	}
	if header == "" {
		return fmt.Errorf("%w: no signature", ErrUnauthorized)
	}
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return fmt.Errorf("%w: signature must be sha256=<hex>", ErrUnauthorized)
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || len(got) != sha256.Size {
		return fmt.Errorf("%w: signature must be sha256=<64 hex digits>", ErrUnauthorized)
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	if !hmac.Equal(got, m.Sum(nil)) {
		return fmt.Errorf("%w: signature does not match", ErrUnauthorized)
	}
	return nil
}

// VerifyToken compares a plain-text token (GitLab's X-Gitlab-Token) with the
// secret in constant time, length included: both are hashed first.
func VerifyToken(token, secret string) error {
	if secret == "" {
		return fmt.Errorf("%w: project has no secret", ErrUnauthorized)
	}
	if token == "" {
		return fmt.Errorf("%w: no token", ErrUnauthorized)
	}
	a, b := sha256.Sum256([]byte(token)), sha256.Sum256([]byte(secret))
	if !hmac.Equal(a[:], b[:]) {
		return fmt.Errorf("%w: token does not match", ErrUnauthorized)
	}
	return nil
}

var (
	commitRe  = regexp.MustCompile(`^[0-9a-f]{7,64}$`)
	zeroSHARe = regexp.MustCompile(`^0+$`)
)

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// deliveryID validates the sender's delivery id, or derives one from the
// body when there is none.
func deliveryID(id string, body []byte) (string, error) {
	if id == "" {
		sum := sha256.Sum256(body)
		return "sha256:" + hex.EncodeToString(sum[:]), nil
	}
	if len(id) > 200 || strings.ContainsFunc(id, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return "", malformed("delivery id must be at most 200 printable ASCII characters")
	}
	return id, nil
}

// setRef fills Ref and Branch, turning pushes that are not to a branch into
// ignored deliveries.
func (d *Delivery) setRef(ref string) error {
	if ref == "" {
		return malformed("push without ref")
	}
	if !strings.HasPrefix(ref, "refs/") {
		ref = "refs/heads/" + ref
	}
	if len(ref) > 300 || !utf8.ValidString(ref) {
		return malformed("ref too long or not UTF-8")
	}
	d.Ref = ref
	branch, ok := strings.CutPrefix(ref, "refs/heads/")
	if !ok {
		d.Kind, d.Reason = KindIgnored, fmt.Sprintf("%s is not a branch", ref)
		return nil
	}
	if msg := project.CheckBranch(branch); msg != "" || branch == "" {
		return malformed("ref %q is not a valid branch", ref)
	}
	d.Branch = branch
	return nil
}

// setCommit validates the commit; an all-zero one (a deleted branch) makes
// the delivery ignored.
func (d *Delivery) setCommit(sha string, deleted bool) error {
	if deleted || (sha != "" && zeroSHARe.MatchString(sha)) {
		d.Kind, d.Reason, d.Commit = KindIgnored, "branch deleted", ""
		return nil
	}
	sha = strings.ToLower(sha)
	if !commitRe.MatchString(sha) {
		return malformed("commit %q is not a hex commit id", truncate(sha, 80))
	}
	d.Commit = sha
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

func cleanText(s string, n int) string {
	return truncate(strings.ToValidUTF8(s, "\uFFFD"), n)
}

func parseGitHub(h http.Header, body []byte, secret string) (*Delivery, error) {
	if err := VerifySignature(body, h.Get(hdrGitHubSig), secret); err != nil {
		return nil, err
	}
	d := &Delivery{Provider: GitHub, Event: h.Get(hdrGitHubEvent)}
	var err error
	if d.DeliveryID, err = deliveryID(h.Get(hdrGitHubDelivery), body); err != nil {
		return nil, err
	}
	// A push's body is validated by readPayload below.
	const notJSON = "body is not JSON (set the webhook's content type to application/json)"
	if d.Event != "push" && !json.Valid(body) {
		return nil, malformed(notJSON)
	}
	switch d.Event {
	case "":
		return nil, malformed("no %s header", hdrGitHubEvent)
	case "ping":
		d.Kind = KindPing
		return d, nil
	case "push":
	default:
		d.Kind, d.Reason = KindIgnored, fmt.Sprintf("event %q is not baked", d.Event)
		return d, nil
	}
	p, err := readPayload(body, notJSON, "ref", "after", "deleted", "repository", "head_commit")
	if err != nil {
		return nil, err
	}
	p.object("repository")
	p.object("head_commit")
	hasRef := p.has("ref")
	ref, after, deleted := p.str("ref"), p.str("after"), p.boolean("deleted")
	repo, branch := p.str("repository.full_name"), p.str("repository.default_branch")
	message := p.str("head_commit.message")
	if p.err != nil {
		return nil, p.err
	}
	if !hasRef {
		return nil, malformed("push without ref")
	}
	d.Kind = KindPush
	d.Repo = cleanText(repo, 200)
	d.DefaultBranch = cleanText(branch, 255)
	d.Message = cleanText(message, maxMessageLen)
	if err := d.setRef(ref); err != nil {
		return nil, err
	}
	if d.Kind == KindIgnored {
		return d, nil
	}
	if err := d.setCommit(after, deleted); err != nil {
		return nil, err
	}
	return d, nil
}

func parseGitLab(h http.Header, body []byte, secret string) (*Delivery, error) {
	if err := VerifyToken(h.Get(hdrGitLabToken), secret); err != nil {
		return nil, err
	}
	d := &Delivery{Provider: GitLab, Event: h.Get(hdrGitLabEvent)}
	id := h.Get(hdrGitLabUUID)
	if id == "" {
		id = h.Get(hdrIdempotencyKey)
	}
	var err error
	if d.DeliveryID, err = deliveryID(id, body); err != nil {
		return nil, err
	}
	const notJSON = "body is not JSON"
	if d.Event != "Push Hook" && !json.Valid(body) {
		return nil, malformed(notJSON)
	}
	switch d.Event {
	case "":
		return nil, malformed("no %s header", hdrGitLabEvent)
	case "Push Hook":
	default:
		d.Kind, d.Reason = KindIgnored, fmt.Sprintf("event %q is not baked", d.Event)
		return d, nil
	}
	p, err := readPayload(body, notJSON, "object_kind", "ref", "checkout_sha", "project", "commits")
	if err != nil {
		return nil, err
	}
	p.object("project")
	kind, hasRef, ref := p.str("object_kind"), p.has("ref"), p.str("ref")
	repo, branch := p.str("project.path_with_namespace"), p.str("project.default_branch")
	hasCheckout, checkout := p.has("checkout_sha"), p.str("checkout_sha")
	commits := p.array("commits")
	if p.err != nil {
		return nil, p.err
	}
	if kind != "push" {
		return nil, malformed("Push Hook with object_kind %q", kind)
	}
	if !hasRef {
		return nil, malformed("push without ref")
	}
	d.Kind = KindPush
	d.Repo = cleanText(repo, 200)
	d.DefaultBranch = cleanText(branch, 255)
	if err := d.setRef(ref); err != nil {
		return nil, err
	}
	if d.Kind == KindIgnored {
		return d, nil
	}
	// checkout_sha is null when the branch was deleted.
	if !hasCheckout {
		return d, d.setCommit("", true)
	}
	if err := d.setCommit(checkout, false); err != nil {
		return nil, err
	}
	for i := len(commits) - 1; i >= 0; i-- {
		if c := commits[i]; c.IsObject() && strings.EqualFold(c.Get("id").String(), d.Commit) {
			d.Message = cleanText(c.Get("message").String(), maxMessageLen)
			break
		}
	}
	return d, nil
}

// GenericPayload is the body of kiln's generic webhook format.
type GenericPayload struct {
	Ref     string `json:"ref"`               // refs/heads/main, or just main
	Commit  string `json:"commit"`            // 7 to 64 hex digits
	Message string `json:"message,omitempty"` // optional
	Repo    string `json:"repo,omitempty"`    // optional, shown with the bake
}

func parseGeneric(h http.Header, body []byte, secret string) (*Delivery, error) {
	if err := VerifySignature(body, h.Get(HeaderSignature), secret); err != nil {
		return nil, err
	}
	d := &Delivery{Provider: Generic, Event: h.Get(HeaderEvent)}
	var err error
	if d.DeliveryID, err = deliveryID(h.Get(HeaderDelivery), body); err != nil {
		return nil, err
	}
	if !json.Valid(body) {
		return nil, malformed("body is not JSON")
	}
	switch d.Event {
	case "ping":
		d.Kind = KindPing
		return d, nil
	case "", "push":
		d.Event = "push"
	default:
		d.Kind, d.Reason = KindIgnored, fmt.Sprintf("event %q is not baked", d.Event)
		return d, nil
	}
	var p GenericPayload
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, malformed("payload: %v", err)
	}
	d.Kind = KindPush
	d.Repo = cleanText(p.Repo, 200)
	d.Message = cleanText(p.Message, maxMessageLen)
	if err := d.setRef(p.Ref); err != nil {
		return nil, err
	}
	if d.Kind == KindIgnored {
		return d, nil
	}
	if p.Commit == "" {
		return nil, malformed("push without commit")
	}
	if err := d.setCommit(p.Commit, false); err != nil {
		return nil, err
	}
	return d, nil
}

// Match applies a project's branch filter to a push: branch empty means the
// repository's default branch as the payload reports it, and any branch when
// the payload reports none (the generic format). It returns false with a
// reason for a delivery that must not be baked.
func (d *Delivery) Match(branch string) (ok bool, reason string) {
	if d.Kind != KindPush {
		if d.Reason != "" {
			return false, d.Reason
		}
		return false, fmt.Sprintf("%s is not a push", d.Kind)
	}
	want := branch
	if want == "" {
		want = d.DefaultBranch
	}
	if want == "" || d.Branch == want {
		return true, ""
	}
	return false, fmt.Sprintf("push to branch %q; the project bakes %q", d.Branch, want)
}
