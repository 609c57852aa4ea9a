package bakery

import (
	"context"
	"log/slog"
)

// quietInfo passes records to the handler it wraps with Info lowered to
// Debug. River reports its routine work (job counts, leadership, queue
// starts) at Info, which would bury the bakery's own log lines; with it,
// River's news shows at --log-level debug and its warnings and errors
// always.
type quietInfo struct{ slog.Handler }

func (q quietInfo) Enabled(ctx context.Context, l slog.Level) bool {
	return q.Handler.Enabled(ctx, lower(l))
}

func (q quietInfo) Handle(ctx context.Context, r slog.Record) error {
	r.Level = lower(r.Level)
	return q.Handler.Handle(ctx, r)
}

func (q quietInfo) WithAttrs(as []slog.Attr) slog.Handler {
	return quietInfo{q.Handler.WithAttrs(as)}
}

func (q quietInfo) WithGroup(name string) slog.Handler {
	return quietInfo{q.Handler.WithGroup(name)}
}

func lower(l slog.Level) slog.Level {
	if l >= slog.LevelInfo && l < slog.LevelWarn {
		return slog.LevelDebug
	}
	return l
}
