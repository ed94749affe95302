package drivers

import (
	"errors"
	"fmt"
	"time"
)

// ErrNotFound reports that the cloud does not know the instance or resource.
var ErrNotFound = errors.New("not found")

// Kind classifies a driver error.
type Kind string

// Error kinds. The activity layer maps each to a Temporal error type exactly once.
const (
	KindUnknown   Kind = "unknown"
	KindNotFound  Kind = "not-found"
	KindQuota     Kind = "quota"
	KindCapacity  Kind = "capacity"
	KindTransient Kind = "transient"
	KindPermanent Kind = "permanent"
)

// QuotaError reports that the cloud refused the request because a quota is exhausted.
// Nodepool marks such a node "aborted" and relaunches when quota frees; it does not
// count as a failed attempt.
type QuotaError struct{ Err error }

func (e *QuotaError) Error() string { return "quota exceeded: " + errString(e.Err) }
func (e *QuotaError) Unwrap() error { return e.Err }

// CapacityError reports that the cloud has no capacity for the requested offering
// (instance type, zone, market) right now. A shortage of capacity is never permanent.
//
// RetryAfter tells the core what to do next:
//
//   - RetryAfter > 0: the failed step created no instance. The core waits at least
//     RetryAfter and then advances the create again, within the same launch attempt
//     and without counting the error as a failed attempt, from the state the driver
//     returned with the error (drivers return a state to go on from; repeating the
//     input state is safe too). The attempt's launch timeout still bounds the waiting.
//   - RetryAfter == 0: the attempt's instance was lost for lack of capacity (a spot
//     instance reclaimed while booting, say). The attempt failed: the core deletes its
//     instance and goes on with the next attempt, which the driver launches on another
//     offering while the failed one is out of capacity.
type CapacityError struct {
	Err error
	// RetryAfter is how long the cloud is expected to stay out of capacity for every
	// offering the launch may use; zero means no hint (see above).
	RetryAfter time.Duration
}

func (e *CapacityError) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("insufficient capacity (retry after %s): %s", e.RetryAfter, errString(e.Err))
	}
	return "insufficient capacity: " + errString(e.Err)
}
func (e *CapacityError) Unwrap() error { return e.Err }

// TransientError reports a failure that is expected to go away on retry: throttling,
// a network error, a 5xx.
type TransientError struct{ Err error }

func (e *TransientError) Error() string { return "transient: " + errString(e.Err) }
func (e *TransientError) Unwrap() error { return e.Err }

// PermanentError reports a failure that a retry cannot fix: a bad parameter, an unknown
// image or instance type, a configuration error.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return "permanent: " + errString(e.Err) }
func (e *PermanentError) Unwrap() error { return e.Err }

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// Quota wraps err as a *QuotaError.
func Quota(format string, args ...any) error { return &QuotaError{Err: fmt.Errorf(format, args...)} }

// Capacity wraps a formatted error as a *CapacityError.
func Capacity(format string, args ...any) error {
	return &CapacityError{Err: fmt.Errorf(format, args...)}
}

// CapacityRetryAfter wraps a formatted error as a *CapacityError with a retry hint.
func CapacityRetryAfter(after time.Duration, format string, args ...any) error {
	return &CapacityError{Err: fmt.Errorf(format, args...), RetryAfter: after}
}

// RetryAfter returns the retry hint of a capacity error (see CapacityError), or zero
// when err is not classified as KindCapacity or carries no hint.
func RetryAfter(err error) time.Duration {
	if KindOf(err) != KindCapacity {
		return 0
	}
	var c *CapacityError
	if errors.As(err, &c) {
		return max(c.RetryAfter, 0)
	}
	return 0
}

// Transient wraps a formatted error as a *TransientError.
func Transient(format string, args ...any) error {
	return &TransientError{Err: fmt.Errorf(format, args...)}
}

// Permanent wraps a formatted error as a *PermanentError.
func Permanent(format string, args ...any) error {
	return &PermanentError{Err: fmt.Errorf(format, args...)}
}

// KindOf classifies err. Wrapping is seen through. When the chain holds several kinds,
// quota wins over capacity, capacity over permanent, permanent over transient, and
// every one of them over not found: a launch refused for quota or capacity is never
// declined as permanent because of how it was wrapped.
func KindOf(err error) Kind {
	if err == nil {
		return ""
	}
	var (
		q *QuotaError
		c *CapacityError
		t *TransientError
		p *PermanentError
	)
	switch {
	case errors.As(err, &q):
		return KindQuota
	case errors.As(err, &c):
		return KindCapacity
	case errors.As(err, &p):
		return KindPermanent
	case errors.As(err, &t):
		return KindTransient
	case errors.Is(err, ErrNotFound):
		return KindNotFound
	}
	return KindUnknown
}
