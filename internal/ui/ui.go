// Package ui serves kiln's HTML pages: the engine page of `kiln run
// --listen` and the bakery pages of `kiln serve`. Pages are rendered on
// the server with html/template and read fine without JavaScript; a small
// embedded script swaps in live fragments sent as server-sent events.
package ui

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"kiln/internal/auth"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/style.css
var styleCSS string

//go:embed static/live.js
var liveJS string

var funcs = template.FuncMap{
	"style": func() template.CSS { return template.CSS(styleCSS) },
	"live":  func() template.JS { return template.JS(liveJS) },
	"ago":   ago,
	// can says whether role (a page's Role) allows what needs the role
	// named need: the pages offer only what the role may do.
	"can":  func(role auth.Role, need string) bool { return role.Allows(auth.Role(need)) },
	"when": when,
	"dur":  dur,
	// roles lists the roles, least first, for a form's choice.
	"roles": func() []string {
		out := make([]string, len(auth.Roles))
		for i, r := range auth.Roles {
			out[i] = string(r)
		}
		return out
	},
	"join": strings.Join,
	// stateLabel is an engine state as the graph page says it.
	"stateLabel": stateLabel,
	// deleteForm is the data of template delete-form, which the project
	// page and the delete confirmation share.
	"deleteForm": func(name, csrf string) struct{ Name, CSRF string } {
		return struct{ Name, CSRF string }{name, csrf}
	},
}

// parse reads the shared layout and the named page templates.
func parse(files ...string) *template.Template {
	paths := []string{"templates/layout.html"}
	for _, f := range files {
		paths = append(paths, "templates/"+f)
	}
	return template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, paths...))
}

// when formats t for a table cell; "—" when zero.
func when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// ago is how long before now t was, rounded for reading.
func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// dur rounds d for reading.
func dur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// render executes name into a buffer first, so a template error never
// leaves half a page.
func render(w http.ResponseWriter, t *template.Template, name string, status int, data any) error {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, data); err != nil {
		http.Error(w, "page could not be rendered", http.StatusInternalServerError)
		return fmt.Errorf("render %s: %w", name, err)
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	w.WriteHeader(status)
	_, err := w.Write(buf.Bytes())
	return err
}

// sse is one server-sent events stream.
type sse struct {
	w http.ResponseWriter
	f *http.ResponseController
}

func startSSE(w http.ResponseWriter) *sse {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s := &sse{w: w, f: http.NewResponseController(w)}
	s.flush()
	return s
}

// send writes one event whose data is html, line by line.
func (s *sse) send(event, html string) error {
	var b strings.Builder
	if event != "" {
		b.WriteString("event: " + event + "\n")
	}
	for line := range strings.SplitSeq(html, "\n") {
		b.WriteString("data: " + strings.TrimRight(line, "\r") + "\n")
	}
	b.WriteString("\n")
	if _, err := s.w.Write([]byte(b.String())); err != nil {
		return err
	}
	return s.flush()
}

// comment keeps an idle stream open through proxies.
func (s *sse) comment() error {
	if _, err := s.w.Write([]byte(": keep-alive\n\n")); err != nil {
		return err
	}
	return s.flush()
}

func (s *sse) flush() error { return s.f.Flush() }

// heartbeat is how often an idle stream sends a comment.
const heartbeat = 15 * time.Second
