package bakery

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestQuietInfo(t *testing.T) {
	for _, tt := range []struct {
		level slog.Level
		want  []string // messages that reach the log
	}{
		{slog.LevelInfo, []string{"warn", "error"}},
		{slog.LevelDebug, []string{"info", "warn", "error"}},
	} {
		var buf bytes.Buffer
		log := slog.New(quietInfo{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: tt.level})}).With("component", "river")
		log.Info("info")
		log.Warn("warn")
		log.Error("error")
		var got []string
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			_, msg, _ := strings.Cut(line, "msg=")
			msg, _, _ = strings.Cut(msg, " ")
			got = append(got, msg)
			if !strings.Contains(line, "component=river") {
				t.Errorf("line %q lost the logger's attributes", line)
			}
		}
		if strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("at level %v: logged %v; want %v", tt.level, got, tt.want)
		}
	}
}
