package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"kiln/internal/engine"
)

// Error is one problem in a graph file, located by file and line (and
// column, for YAML syntax errors).
type Error struct {
	File     string
	Line     int
	Column   int    // 0: not known
	Resource string // e.g. `aws:ec2 "web"`; empty for graph-level problems
	Field    string // e.g. "type" or "meta.poll"; empty when not about one field
	Msg      string
}

// Error reads `web.yaml:12: aws:ec2 "web": type: unknown instance type "t9.huge"`,
// or `web.yaml:6:4: ...` when the column is known.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Column > 0 {
		fmt.Fprintf(&b, "%s:%d:%d: ", e.File, e.Line, e.Column)
	} else {
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	}
	if e.Resource != "" {
		b.WriteString(e.Resource)
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one graph file, in line order.
type Errors []*Error

// Error returns one problem per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

func (es Errors) sort() {
	slices.SortStableFunc(es, func(a, b *Error) int { return cmp.Compare(a.Line, b.Line) })
}

// FieldError is what a kind's Validate returns for one bad field; several
// may be joined with errors.Join. The parser attaches the field's line.
// Field is the YAML key, dotted for nested fields ("base.owner").
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Fieldf returns a *FieldError for field with a formatted message.
func Fieldf(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Peer is another resource of the same kind in the graph file, as a
// PeerValidator sees it.
type Peer struct {
	Name string
	Res  engine.Resource
}

// PeerValidator is implemented by kinds whose resources must agree with
// each other (two DNS records at one name, say). ValidatePeers runs at
// parse time, after Validate, with the resources of the same kind that
// come earlier in the file (their fields as written, references not
// resolved); its field errors are reported at this resource's lines.
type PeerValidator interface {
	ValidatePeers(earlier []Peer) error
}

// Validator is implemented by kinds that check their fields. Validate runs
// at parse time (values holding a ${...} reference are not resolved yet:
// skip them with HasRef) and again when the resource is built with
// references resolved.
type Validator interface {
	Validate() error
}
