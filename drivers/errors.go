package drivers

import (
	"errors"
	"fmt"
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
// (instance type, zone, market) right now.
type CapacityError struct{ Err error }

func (e *CapacityError) Error() string { return "insufficient capacity: " + errString(e.Err) }
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

// Transient wraps a formatted error as a *TransientError.
func Transient(format string, args ...any) error {
	return &TransientError{Err: fmt.Errorf(format, args...)}
}

// Permanent wraps a formatted error as a *PermanentError.
func Permanent(format string, args ...any) error {
	return &PermanentError{Err: fmt.Errorf(format, args...)}
}

// KindOf classifies err. Wrapping is seen through; the outermost classified error wins.
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
