package cli

import (
	"regexp"
	"strings"
	"testing"
)

func TestVersionString(t *testing.T) {
	re := regexp.MustCompile(`^kiln \S+( [0-9a-f]{12}(-dirty)?( \(\d{4}-\d\d-\d\d\))?)? go\S+ \w+/\w+$`)
	got := versionString()
	if !re.MatchString(got) {
		t.Errorf("versionString() = %q", got)
	}
	if strings.Contains(got, "(devel)") {
		t.Errorf("versionString() = %q; want devel or a version, never Go's (devel) placeholder", got)
	}
	// A release build stamps its version with -ldflags -X.
	defer func(v string) { version = v }(version)
	version = "v1.4.0"
	if got := versionString(); !strings.HasPrefix(got, "kiln v1.4.0 ") || !re.MatchString(got) {
		t.Errorf("versionString() stamped v1.4.0 = %q", got)
	}
}
