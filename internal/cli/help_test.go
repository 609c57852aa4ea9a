package cli

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestHelpTexts: every command a user runs has a one-line summary and
// examples, and a help text's exit codes are the ones that command
// returns: only plan (and the root, which lists all) speaks of exit 2.
func TestHelpTexts(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		path := c.CommandPath()
		if c.Short == "" {
			t.Errorf("%s: no Short", path)
		}
		if !c.HasSubCommands() && c.Name() != "help" && strings.TrimSpace(c.Example) == "" {
			t.Errorf("%s: no Example", path)
		}
		if c.HasParent() && c.Name() != "plan" && strings.Contains(c.Long, "\n  2 ") {
			t.Errorf("%s: its help lists exit code 2, which only plan returns:\n%s", path, c.Long)
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(newRoot(&app{}))
}
