package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"kiln/internal/awsres"
	"kiln/internal/config"
	"kiln/internal/engine"
	"kiln/internal/hclgraph"
)

// graphVars are the flags of the commands that read a graph: the values
// of an HCL graph's variables.
type graphVars struct {
	vars  []string
	files []string
}

func (v *graphVars) register(f *pflag.FlagSet) {
	f.StringArrayVar(&v.vars, "var", nil, "set an HCL graph's variable: NAME=VALUE (repeatable; overrides --var-file and KILN_VAR_NAME)")
	f.StringArrayVar(&v.files, "var-file", nil, "read HCL graph variables from a file, HCL or .json (repeatable)")
}

// graphSrc is where a command's graph comes from: a YAML file, or an HCL
// file or directory with its variables.
type graphSrc struct {
	path  string
	hcl   bool
	vars  graphVars
	kinds config.Kinds
	data  hclgraph.DataReader
	// last is the HCL evaluation last loaded (nil for YAML): its files
	// and data sources are what a change is looked for in.
	last *hclgraph.Graph
	// read is when each data source (by address) was last read, so that
	// each is read again at its own meta { poll }; now is the clock.
	read map[string]time.Time
	now  func() time.Time
}

func (a *app) graphSource(path string, v graphVars, kinds config.Kinds) (*graphSrc, error) {
	s := &graphSrc{path: path, hcl: hclgraph.IsHCL(path), vars: v, kinds: kinds, data: a.dataReader()}
	if !s.hcl && len(v.vars)+len(v.files) > 0 {
		return nil, &usageError{cmd: "kiln", err: errors.New("--var and --var-file are for HCL graphs (.hcl or a directory)")}
	}
	return s, nil
}

// load reads and checks the graph.
func (s *graphSrc) load(ctx context.Context) (*engine.Graph, error) {
	if !s.hcl {
		return config.Load(s.path, s.kinds)
	}
	hg, err := hclgraph.Load(s.path, s.options(ctx))
	if err != nil {
		return nil, err
	}
	s.last = hg
	if s.now == nil {
		s.now = time.Now
	}
	s.read = map[string]time.Time{}
	for _, d := range hg.Data {
		s.read[d.Addr] = s.now()
	}
	return hg.Graph, nil
}

// loadGraph is load for the commands that read a graph once.
func (a *app) loadGraph(ctx context.Context, path string, v graphVars) (*engine.Graph, error) {
	s, err := a.graphSource(path, v, a.kinds())
	if err != nil {
		return nil, err
	}
	return s.load(ctx)
}

// watched are the files whose change may change the graph, besides the
// *.hcl files of globs' directories: the YAML file; or the HCL graph when
// it is one file, the variable files and the files that file data sources
// read.
func (s *graphSrc) watched() []string {
	if !s.hcl {
		return []string{s.path}
	}
	if s.last == nil { // not read yet
		if isDir(s.path) {
			return nil
		}
		return []string{s.path}
	}
	in := map[string]bool{}
	for _, d := range s.last.Dirs {
		in[filepath.Clean(d)] = true
	}
	var out []string
	for _, f := range s.last.Files {
		if !in[filepath.Dir(filepath.Clean(f))] {
			out = append(out, f)
		}
	}
	out = append(out, s.vars.files...)
	for _, d := range s.last.Data {
		if d.Kind == "file" {
			out = append(out, d.Path())
		}
	}
	return out
}

// globs are the DIR/*.hcl patterns of the directories an HCL graph reads
// whole (its own and its modules'): a file added to one, removed or
// renamed changes the graph as an edit does.
func (s *graphSrc) globs() []string {
	if !s.hcl {
		return nil
	}
	var dirs []string
	switch {
	case s.last != nil:
		dirs = s.last.Dirs
	case isDir(s.path):
		dirs = []string{s.path}
	}
	out := make([]string, len(dirs))
	for i, d := range dirs {
		out[i] = filepath.Join(d, "*.hcl")
	}
	return out
}

func isDir(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}

// snapshot is the text of every watched file and of the *.hcl files the
// globs match now (their names too): when it is unchanged, so is the
// graph (data sources aside).
func (s *graphSrc) snapshot() ([]byte, error) {
	var b bytes.Buffer
	add := func(f string, data []byte) {
		b.WriteString(f)
		b.WriteByte(0)
		b.Write(data)
		b.WriteByte(0)
	}
	for _, f := range s.watched() {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		add(f, data)
	}
	for _, g := range s.globs() {
		names, _ := filepath.Glob(g)
		for _, f := range names {
			data, err := os.ReadFile(f)
			if errors.Is(err, fs.ErrNotExist) {
				continue // gone since the glob: its event is on the way
			}
			if err != nil {
				return nil, err
			}
			add(f, data)
		}
	}
	return b.Bytes(), nil
}

// dataReader reads the AWS data sources of HCL graphs through the
// command's hubs.
func (a *app) dataReader() hclgraph.DataReader { return &awsres.DataReader{Hubs: a.awsHubs()} }

// readable fails early, before anything starts, when the graph cannot be
// read at all.
func readable(path string) error {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return nil
	}
	if _, err := os.ReadFile(path); err != nil {
		return fmt.Errorf("read graph file: %w", err)
	}
	return nil
}

// options are the evaluation options of an HCL graph.
func (s *graphSrc) options(ctx context.Context) hclgraph.Options {
	return hclgraph.Options{
		Kinds: s.kinds, Vars: s.vars.vars, VarFiles: s.vars.files, Env: os.Environ(), Data: s.data, Ctx: ctx,
	}
}

// pollEvery is how often the AWS data sources of the graph last read are
// read again; 0: never (a YAML graph, or no such data source).
func (s *graphSrc) pollEvery() time.Duration {
	if s.last == nil {
		return 0
	}
	return s.last.PollEvery()
}

// dataChanged reads the graph's AWS data sources that are due (each at its
// own meta { poll }, on ticks of pollEvery) again and reports whether
// one gives another value than the graph was evaluated with. A source that
// cannot be read now counts as unchanged (logged by the caller).
func (s *graphSrc) dataChanged(ctx context.Context) (bool, error) {
	if s.last == nil {
		return false, nil
	}
	var errs []error
	tick := s.last.PollEvery()
	for _, d := range s.last.Data {
		if d.Kind == "file" {
			continue // watched as a file
		}
		// Due at its own period; half a tick of slack absorbs the time
		// the reads themselves take.
		if s.now().Sub(s.read[d.Addr]) < d.PollEvery()-tick/2 {
			continue
		}
		s.read[d.Addr] = s.now()
		changed, err := d.Changed(ctx, s.options(ctx))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if changed {
			return true, nil
		}
	}
	return false, errors.Join(errs...)
}
