package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

//go:generate go run kiln/cmd/kiln docs ../../docs/cli

// newDocsCmd writes the CLI reference: one Markdown page per command,
// generated from the commands themselves, so it cannot drift from them
// (TestCLIReference fails when the checked-in pages are not current).
// Hidden: it is for kiln's own docs, and hidden commands get no page.
func newDocsCmd(*app) *cobra.Command {
	return &cobra.Command{
		Use:     "docs DIR",
		Short:   "Write the CLI reference as Markdown pages into DIR",
		Example: `  kiln docs docs/cli    # what go generate ./internal/cli runs`,
		Hidden:  true,
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return writeCLIReference(args[0])
		},
	}
}

// writeCLIReference writes kiln.md and kiln_CMD[_SUB].md for every
// command into dir, after removing the kiln*.md pages already there, so a
// removed command loses its page.
func writeCLIReference(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write CLI reference: %w", err)
	}
	old, err := filepath.Glob(filepath.Join(dir, "kiln*.md"))
	if err != nil {
		return fmt.Errorf("write CLI reference: %w", err)
	}
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			return fmt.Errorf("write CLI reference: %w", err)
		}
	}
	root := newRoot(&app{})
	root.DisableAutoGenTag = true // no date: the pages change only with the commands
	if err := doc.GenMarkdownTree(root, dir); err != nil {
		return fmt.Errorf("write CLI reference in %s: %w", dir, err)
	}
	return nil
}
