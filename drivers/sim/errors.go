package sim

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// ErrorCode names an error the simulated cloud API returns, in the manner of EC2's
// error codes.
type ErrorCode string

// Error codes of the simulated cloud API.
const (
	// CodeThrottling: the call was rate limited.
	CodeThrottling ErrorCode = "Throttling"
	// CodeInternalError: the cloud failed; the call may be repeated.
	CodeInternalError ErrorCode = "InternalError"
	// CodeQuotaExceeded: the instance would exceed the cloud's quota.
	CodeQuotaExceeded ErrorCode = "QuotaExceeded"
	// CodeInsufficientCapacity: the cloud has no room for the instance right now.
	CodeInsufficientCapacity ErrorCode = "InsufficientCapacity"
	// CodeInvalidParameter: the request is malformed or names something unknown.
	CodeInvalidParameter ErrorCode = "InvalidParameter"
	// CodeIdempotentParameterMismatch: a create repeated an idempotency token with
	// different parameters.
	CodeIdempotentParameterMismatch ErrorCode = "IdempotentParameterMismatch"
	// CodeNotFound: the instance does not exist (any more).
	CodeNotFound ErrorCode = "NotFound"
)

// errorCodes lists every code, for validation of injected errors.
var errorCodes = map[ErrorCode]int{
	CodeThrottling:                  http.StatusTooManyRequests,
	CodeInternalError:               http.StatusInternalServerError,
	CodeQuotaExceeded:               http.StatusForbidden,
	CodeInsufficientCapacity:        http.StatusServiceUnavailable,
	CodeInvalidParameter:            http.StatusBadRequest,
	CodeIdempotentParameterMismatch: http.StatusConflict,
	CodeNotFound:                    http.StatusNotFound,
}

// HTTPStatus returns the HTTP status the server answers the code with.
func (c ErrorCode) HTTPStatus() int {
	if s, ok := errorCodes[c]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// APIError is an error answered by the simulated cloud API.
type APIError struct {
	Code    ErrorCode `json:"code"`
	Message string    `json:"message"`
}

func (e *APIError) Error() string { return string(e.Code) + ": " + e.Message }

// apiErrorf builds an *APIError with a formatted message.
func apiErrorf(code ErrorCode, format string, args ...any) *APIError {
	return &APIError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// isCode reports whether err is an *APIError with the code.
func isCode(err error, code ErrorCode) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Code == code
}

// classify wraps an error of the cloud API in the drivers error kind it belongs to. It
// is the one place where cloud errors become driver errors. Errors that are not API
// errors (the server unreachable, a broken response) are transient.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var ae *APIError
	if !errors.As(err, &ae) {
		if errors.Is(err, drivers.ErrNotFound) || drivers.KindOf(err) != drivers.KindUnknown {
			return err
		}
		return &drivers.TransientError{Err: err}
	}
	switch ae.Code {
	case CodeThrottling, CodeInternalError:
		return &drivers.TransientError{Err: err}
	case CodeQuotaExceeded:
		return &drivers.QuotaError{Err: err}
	case CodeInsufficientCapacity:
		return &drivers.CapacityError{Err: err}
	case CodeInvalidParameter, CodeIdempotentParameterMismatch:
		return &drivers.PermanentError{Err: err}
	case CodeNotFound:
		return fmt.Errorf("%w: %w", drivers.ErrNotFound, err)
	}
	return &drivers.TransientError{Err: err}
}
