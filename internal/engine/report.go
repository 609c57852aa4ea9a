package engine

import "context"

// reporterKey carries, in a CheckApply's context, the function that shows
// why the check is not done yet.
type reporterKey struct{}

// Report tells the engine why the CheckApply running under ctx is not done
// yet (an AWS call being retried through an outage, say): until the check
// ends, the vertex's LastError says so, on the engine page and in plan.
// Outside a CheckApply it does nothing. It never blocks for long.
func Report(ctx context.Context, reason string) {
	if f, ok := ctx.Value(reporterKey{}).(func(string)); ok {
		f(reason)
	}
}

// withReporter returns ctx with f as its Report.
func withReporter(ctx context.Context, f func(string)) context.Context {
	return context.WithValue(ctx, reporterKey{}, f)
}
