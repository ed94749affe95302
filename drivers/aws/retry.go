package aws

import (
	"errors"
	"net"
	"strings"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
)

// newRetryer returns the SDK retryer of the driver's clients. The SDK does not retry
// throttling, 5xx or network failures: the activities calling the driver retry those
// with their own backoff, and two layers of retries would multiply. The one exception
// is a response whose connection net/http closed while it was being read because the
// SDK closed the request body early (aws-sdk-go-v2 issue 2737); the request reached the
// service, every call the driver makes is idempotent (RunInstances by its client
// token), so it is sent once more at once. The client-side retry quota is off, since
// it would only ever be spent on that case.
func newRetryer() awssdk.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = 2
		o.Retryables = []retry.IsErrorRetryable{retry.NoRetryCanceledError{}, closedConnection{}}
		o.Throttles = nil
		o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
		o.RateLimiter = ratelimit.None
	})
}

// closedConnection marks errors of reading from a connection net/http closed.
type closedConnection struct{}

func (closedConnection) IsErrorRetryable(err error) awssdk.Ternary {
	if err != nil && (errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "use of closed network connection")) {
		return awssdk.TrueTernary
	}
	return awssdk.UnknownTernary
}
