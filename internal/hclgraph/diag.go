package hclgraph

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"kiln/internal/config"
)

// Diagnostics is every problem of a graph, each located by file, line and
// column. Its Error reads one problem per entry:
//
//	fleet.hcl:12:15: aws:ec2 "web": type: unknown instance type "t9.huge"
//	   12 |   type  = "t9.huge"
//	      |           ^^^^^^^^^
type Diagnostics struct {
	Diags hcl.Diagnostics
	files map[string]*hcl.File
}

func (d *Diagnostics) Error() string {
	var b strings.Builder
	for i, diag := range d.Diags {
		if i > 0 {
			b.WriteByte('\n')
		}
		msg := diag.Summary
		if diag.Detail != "" {
			msg += ": " + diag.Detail
		}
		if diag.Subject == nil || diag.Subject.Filename == "" {
			b.WriteString(msg)
			continue
		}
		r := diag.Subject
		fmt.Fprintf(&b, "%s:%d:%d: %s", r.Filename, r.Start.Line, r.Start.Column, msg)
		if f := d.files[r.Filename]; f != nil {
			writeSource(&b, f.Bytes, *r)
		}
	}
	return b.String()
}

// Lines are the problems without their source lines, one each.
func (d *Diagnostics) Lines() []string {
	out := make([]string, len(d.Diags))
	for i, diag := range d.Diags {
		msg := diag.Summary
		if diag.Detail != "" {
			msg += ": " + diag.Detail
		}
		if r := diag.Subject; r != nil && r.Filename != "" {
			msg = fmt.Sprintf("%s:%d:%d: %s", r.Filename, r.Start.Line, r.Start.Column, msg)
		}
		out[i] = msg
	}
	return out
}

// writeSource writes the line r starts on, and under it a '^' for every
// column of r on that line.
func writeSource(b *strings.Builder, src []byte, r hcl.Range) {
	lines := bytes.Split(src, []byte("\n"))
	if r.Start.Line < 1 || r.Start.Line > len(lines) {
		return
	}
	line := strings.TrimRight(string(lines[r.Start.Line-1]), "\r")
	num := fmt.Sprint(r.Start.Line)
	fmt.Fprintf(b, "\n  %s | %s\n  %s | ", num, line, strings.Repeat(" ", len(num)))
	start := r.Start.Column - 1
	end := len([]rune(line))
	if r.End.Line == r.Start.Line && r.End.Column > r.Start.Column {
		end = r.End.Column - 1
	}
	end = max(end, start+1)
	for i, c := range []rune(line) {
		if i >= start {
			break
		}
		if c == '\t' {
			b.WriteByte('\t')
		} else {
			b.WriteByte(' ')
		}
	}
	b.WriteString(strings.Repeat("^", end-start))
}

// fail wraps diags as the error Load returns, sorted by position.
func (l *loader) fail(diags hcl.Diagnostics) error {
	var errs hcl.Diagnostics
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			errs = append(errs, d)
		}
	}
	slices.SortStableFunc(errs, func(a, b *hcl.Diagnostic) int {
		ra, rb := a.Subject, b.Subject
		if ra == nil || rb == nil {
			return cmp.Compare(boolInt(ra != nil), boolInt(rb != nil))
		}
		return cmp.Or(cmp.Compare(ra.Filename, rb.Filename), cmp.Compare(ra.Start.Byte, rb.Start.Byte))
	})
	errs = slices.CompactFunc(errs, func(a, b *hcl.Diagnostic) bool {
		return a.Summary == b.Summary && a.Detail == b.Detail && (a.Subject == nil) == (b.Subject == nil) &&
			(a.Subject == nil || *a.Subject == *b.Subject)
	})
	return &Diagnostics{Diags: errs, files: l.parser.Files()}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// toDiags turns config's errors (located through where) into
// diagnostics over the HCL ranges they came from.
func (l *loader) toDiags(err error) hcl.Diagnostics {
	if err == nil {
		return nil
	}
	var cerrs config.Errors
	if !errors.As(err, &cerrs) {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: err.Error()}}
	}
	ranges := map[config.Pos]hcl.Range{}
	for _, r := range l.pos {
		p := config.Pos{File: r.Filename, Line: r.Start.Line, Column: r.Start.Column}
		if _, ok := ranges[p]; !ok {
			ranges[p] = r
		}
	}
	var diags hcl.Diagnostics
	for _, e := range cerrs {
		msg := e.Msg
		if e.Field != "" {
			msg = e.Field + ": " + msg
		}
		if e.Resource != "" {
			msg = e.Resource + ": " + msg
		}
		d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: msg}
		if r, ok := ranges[config.Pos{File: e.File, Line: e.Line, Column: e.Column}]; ok {
			d.Subject = &r
		}
		diags = append(diags, d)
	}
	return diags
}
