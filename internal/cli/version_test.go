package cli

import (
	"regexp"
	"testing"
)

func TestVersionString(t *testing.T) {
	if got := versionString(); !regexp.MustCompile(`^kiln \S+( [0-9a-f]{12})? go\S+ \w+/\w+$`).MatchString(got) {
		t.Errorf("versionString() = %q", got)
	}
}
