package pipeline

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Image ages (deprecate_after, disable_for) are days or weeks more often
// than hours: ParseAge reads "30d", "2w", and Go durations ("36h", "90m").

// MaxDeprecateAfter is EC2's limit on a deprecation time: 10 years ahead.
const MaxDeprecateAfter = 10 * 365 * 24 * time.Hour

// ParseAge reads an age: a whole number of days ("30d") or weeks ("2w"),
// or a Go duration. It must be more than 0.
func ParseAge(s string) (time.Duration, error) {
	var d time.Duration
	switch unit := map[byte]time.Duration{'d': 24 * time.Hour, 'w': 7 * 24 * time.Hour}; {
	case len(s) > 1 && unit[s[len(s)-1]] != 0:
		n, err := strconv.Atoi(s[:len(s)-1])
		if err != nil || n <= 0 || strings.HasPrefix(s, "+") {
			return 0, fmt.Errorf("%q: want a duration such as 30d, 2w or 36h", s)
		}
		d = time.Duration(n) * unit[s[len(s)-1]]
	default:
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q: want a duration such as 30d, 2w or 36h", s)
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q: must be more than 0", s)
	}
	return d, nil
}

// FormatAge writes d as ParseAge reads it, in days when whole.
func FormatAge(d time.Duration) string {
	if day := 24 * time.Hour; d > 0 && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	return d.String()
}
