package awsapi

import (
	"context"
	"fmt"
	"strings"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"

	"kiln/internal/engine"
)

// A Fence says whether this process may write to AWS now: nil yes, an
// error no (kiln run --lock: the graph's lock is not held). Hubs asks it
// right before every attempt of every call that may change something.
type Fence func() error

// FencedError is a write the fence refused: the request was never sent.
type FencedError struct {
	Action string
	Err    error
}

func (e *FencedError) Error() string {
	return fmt.Sprintf("%s not sent: %v", e.Action, e.Err)
}

func (e *FencedError) Unwrap() error { return e.Err }

// readOnly reports whether an action only reads (Describe*, Get*, List*).
func readOnly(action string) bool {
	for _, p := range []string{"Describe", "Get", "List"} {
		if strings.HasPrefix(action, p) {
			return true
		}
	}
	return false
}

// addTo puts the fence on a client's middleware stack in the finalize
// step after the retryer and the rate limiter, so every attempt (a retry
// too, and one that waited for tokens) is checked just before it is
// signed and sent. A refused call is permanent: it is not retried.
func (f Fence) addTo(stack *middleware.Stack) error {
	return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("kiln.Fence",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			op := awsmiddleware.GetOperationName(ctx)
			if !readOnly(op) {
				if err := f(); err != nil {
					return middleware.FinalizeOutput{}, middleware.Metadata{}, engine.Permanent(&FencedError{Action: op, Err: err})
				}
			}
			return next.HandleFinalize(ctx, in)
		}), middleware.After)
}
