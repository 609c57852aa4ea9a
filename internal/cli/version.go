package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"
)

func newVersionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print kiln's version",
		Example: `  kiln version`,
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintln(a.stdout, versionString())
			return nil
		},
	}
}

// version is kiln's release, stamped at build time:
//
//	go build -ldflags "-X kiln/internal/cli.version=v1.2.0" ./cmd/kiln
//
// Unstamped, versionString falls back to the module version Go records
// (set by go install of a tagged release), else to "devel" with the
// commit Go stamps from the checkout.
var version = ""

// versionString is "kiln VERSION [REVISION[-dirty] (DATE)] GOVERSION OS/ARCH",
// from the stamped version and the build information the Go toolchain
// writes into the binary.
func versionString() string {
	v, vcs := version, ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		var rev, at, dirty string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			vcs = " " + rev + dirty
			if t, err := time.Parse(time.RFC3339, at); err == nil {
				vcs += " (" + t.UTC().Format("2006-01-02") + ")"
			}
		}
	}
	if v == "" {
		v = "devel"
	}
	return fmt.Sprintf("kiln %s%s %s %s/%s", v, vcs, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
