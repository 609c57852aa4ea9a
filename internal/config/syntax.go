package config

import (
	"errors"
	"regexp"
	"strconv"
	"strings"

	goyaml "github.com/goccy/go-yaml"
	goyamlparser "github.com/goccy/go-yaml/parser"
)

// A YAML syntax error, located. The decoder kiln uses (go.yaml.in/yaml/v3)
// reports a syntax error at the line where the enclosing construct began
// (a bad indentation on line 6 is "line 2: did not find expected '-'
// indicator") and never gives a column. So the position, and the message
// that goes with it, come from a second parser (goccy/go-yaml) that tracks
// the offending token; where that one accepts the input, the decoder's
// own line and message stand.
type Syntax struct {
	Line, Column int // 1-based; Column 0 when unknown
	Msg          string
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// SyntaxOf locates err, the decoder's error for data.
func SyntaxOf(data []byte, err error) Syntax {
	s := Syntax{Line: 1, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		s.Line, _ = strconv.Atoi(m[1])
		s.Msg = m[2]
	}
	if s.Msg == "EOF" {
		s.Msg = "empty file"
	}
	_, perr := goyamlparser.ParseBytes(data, 0)
	var se *goyaml.SyntaxError
	if errors.As(perr, &se) && se.Token != nil && se.Token.Position != nil && se.Token.Position.Line > 0 {
		s.Line, s.Column = se.Token.Position.Line, se.Token.Position.Column
		s.Msg = strings.ReplaceAll(se.Message, "\t", `\t`) // a tab, visible
	}
	return s
}
