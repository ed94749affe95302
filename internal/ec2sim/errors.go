package ec2sim

import (
	"fmt"
	"net/http"
	"strings"
)

// apiError is an error answered in EC2's error document.
type apiError struct {
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

// status returns the HTTP status EC2 uses for the error code.
func (e *apiError) status() int { return StatusFor(e.Code) }

// StatusFor returns the HTTP status the simulator (like EC2) answers an error code with:
// 503 for throttling and unavailability, 500 for internal and capacity errors, 401 and
// 403 for authentication and authorisation failures, 400 otherwise.
func StatusFor(code string) int {
	switch {
	case code == "RequestLimitExceeded", code == "ServiceUnavailable", code == "Unavailable",
		code == "ThrottlingException":
		return http.StatusServiceUnavailable
	case code == "InternalError", code == "InternalFailure", code == "ServiceException",
		strings.HasPrefix(code, "Insufficient") && strings.HasSuffix(code, "Capacity"):
		return http.StatusInternalServerError
	case code == "AuthFailure":
		return http.StatusUnauthorized
	case code == "UnauthorizedOperation", code == "AccessDeniedException":
		return http.StatusForbidden
	}
	return http.StatusBadRequest
}

func newError(code, format string, args ...any) *apiError {
	return &apiError{Code: code, Message: fmt.Sprintf(format, args...)}
}

func invalidParameter(format string, args ...any) *apiError {
	return newError("InvalidParameterValue", format, args...)
}

func missingParameter(name string) *apiError {
	return newError("MissingParameter", "The request must contain the parameter %s", name)
}

// defaultMessage returns a plausible message for an injected error code.
func defaultMessage(code string) string {
	switch code {
	case "RequestLimitExceeded":
		return "Request limit exceeded."
	case "InsufficientInstanceCapacity":
		return "We currently do not have sufficient capacity in the Availability Zone you requested."
	case "VcpuLimitExceeded":
		return "You have requested more vCPU capacity than your current vCPU limit allows."
	case "InternalError":
		return "An internal error has occurred."
	}
	return "Injected error " + code + "."
}
