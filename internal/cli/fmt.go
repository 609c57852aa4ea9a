package cli

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/spf13/cobra"
)

func newFmtCmd(a *app) *cobra.Command {
	var check bool
	cmd := &cobra.Command{
		Use:   "fmt [--check] PATH...",
		Short: "Rewrite HCL graph files in canonical form",
		Long: `Fmt rewrites the .hcl files at PATH (a file, or a directory and the
directories under it, modules included) in HCL's canonical layout (aligned
equals signs, two-space indents), and names each file it changed.

With --check it changes nothing: it names each file that is not in
canonical form and exits 1 if there is one.

Exit codes: 0 ok (or, with --check, every file canonical), 1 a file would
change (--check) or does not parse.`,
		Example: `  kiln fmt examples/fleet
  kiln fmt --check examples/fleet || echo "run kiln fmt"`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var files []string
			for _, p := range args {
				fs, err := hclFilesUnder(p)
				if err != nil {
					return err
				}
				files = append(files, fs...)
			}
			dirty := 0
			for _, f := range files {
				changed, err := formatFile(f, !check)
				if err != nil {
					return err
				}
				if changed {
					dirty++
					fmt.Fprintln(a.stdout, f)
				}
			}
			if check && dirty > 0 {
				return &exitError{code: ExitError}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&check, "check", false, "change nothing; exit 1 if a file is not in canonical form")
	return cmd
}

// hclFilesUnder is path itself, or the .hcl files in the tree under it.
func hclFilesUnder(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("fmt: %w", err)
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	var out []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".hcl") {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fmt: %w", err)
	}
	return out, nil
}

// formatFile reports whether file is not in canonical form, and rewrites
// it when write is set. A file that does not parse is an error with its
// problems located.
func formatFile(file string, write bool) (bool, error) {
	src, err := os.ReadFile(file)
	if err != nil {
		return false, fmt.Errorf("fmt: %w", err)
	}
	if _, diags := hclwrite.ParseConfig(src, file, hcl.InitialPos); diags.HasErrors() {
		var msgs []string
		for _, d := range diags {
			if d.Subject != nil {
				msgs = append(msgs, fmt.Sprintf("%s:%d:%d: %s: %s", file, d.Subject.Start.Line, d.Subject.Start.Column, d.Summary, d.Detail))
			}
		}
		return false, fmt.Errorf("%s", strings.Join(msgs, "\n"))
	}
	out := hclwrite.Format(src)
	if bytes.Equal(out, src) {
		return false, nil
	}
	if write {
		st, err := os.Stat(file)
		if err != nil {
			return false, fmt.Errorf("fmt: %w", err)
		}
		if err := os.WriteFile(file, out, st.Mode().Perm()); err != nil {
			return false, fmt.Errorf("fmt: %w", err)
		}
	}
	return true, nil
}
