package awssim

import "testing"

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"web", "web", true},
		{"web", "web-1", false},
		{"web*", "web-1", true},
		{"*-1", "web-1", true},
		{"w?b-*", "wab-22", true},
		{"w?b", "wb", false},
		{"*", "", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{`a\*`, "a*", true},
		{`a\*`, "ab", false},
		{"al2023-ami-2023.*-x86_64", "al2023-ami-2023.6.20241010.0-kernel-6.1-x86_64", true},
		{"al2023-ami-2023.*-x86_64", "al2023-ami-2023.6.20241010.0-kernel-6.1-arm64", false},
	}
	for _, tt := range tests {
		if got := match(tt.pattern, tt.s); got != tt.want {
			t.Errorf("match(%q, %q) = %v; want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}

func TestTagIndex(t *testing.T) {
	ts := newTagStore()
	ts.set("i-1", "Name", "a*b")
	ts.set("i-2", "Name", "axb")
	ts.set("i-2", "Name", "ayb") // re-set: old value unindexed
	tests := []struct {
		patterns []string
		want     int
	}{
		{[]string{`a\*b`}, 1},
		{[]string{"a*b"}, 2},
		{[]string{"axb"}, 0},
		{[]string{"ayb", "a*b"}, 2},
		{nil, 2},
	}
	for _, tt := range tests {
		if got := len(ts.matching("Name", tt.patterns)); got != tt.want {
			t.Errorf("matching(Name, %q) = %d ids; want %d", tt.patterns, got, tt.want)
		}
	}
	ts.drop("i-1")
	if got := len(ts.matching("Name", nil)); got != 1 {
		t.Errorf("after drop: %d ids; want 1", got)
	}
}
