package openstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/gophercloud/gophercloud/v2"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// op tells classify what kind of call failed: a failed create may be a quota error,
// a failed read or delete is never one.
type op int

const (
	opRead op = iota
	opCreate
	opDelete
)

// classify types an error of an OpenStack call once, as the drivers package's
// kinds:
//
//   - 404 → drivers.ErrNotFound;
//   - Nova's and Neutron's quota answers (403 or 413 "Quota exceeded ...", 409
//     OverQuota) on a create → quota;
//   - 429, 413 without quota, 401 (the token expired between reauthentication and
//     the call), 409, 5xx, network errors and timeouts → transient;
//   - other 4xx (a bad request, a forbidden call, an unknown flavor) → permanent.
//
// The message names what was being done.
func classify(o op, what string, err error) error {
	if err == nil {
		return nil
	}
	wrapped := fmt.Errorf("%s: %w", what, err)
	var code gophercloud.ErrUnexpectedResponseCode
	if errors.As(err, &code) {
		body := strings.ToLower(string(code.Body))
		quota := strings.Contains(body, "quota exceeded") || strings.Contains(body, "overquota") ||
			strings.Contains(body, "exceeded quota") || strings.Contains(body, "quota_exceeded")
		switch {
		case code.Actual == http.StatusNotFound:
			return fmt.Errorf("%s: %w: %w", what, drivers.ErrNotFound, err)
		case quota && o == opCreate && (code.Actual == http.StatusForbidden || code.Actual == http.StatusRequestEntityTooLarge ||
			code.Actual == http.StatusConflict):
			return &drivers.QuotaError{Err: wrapped}
		case code.Actual == http.StatusTooManyRequests, code.Actual == http.StatusRequestEntityTooLarge,
			code.Actual == http.StatusUnauthorized, code.Actual == http.StatusConflict,
			code.Actual == http.StatusRequestTimeout, code.Actual >= 500:
			return &drivers.TransientError{Err: wrapped}
		case code.Actual >= 400:
			return &drivers.PermanentError{Err: wrapped}
		}
		return &drivers.TransientError{Err: wrapped}
	}
	var (
		netErr     net.Error
		missing    gophercloud.ErrEndpointNotFound
		missingPtr *gophercloud.ErrEndpointNotFound
	)
	switch {
	case errors.Is(err, drivers.ErrNotFound):
		return wrapped
	case errors.As(err, &missing), errors.As(err, &missingPtr):
		return &drivers.PermanentError{Err: wrapped}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled), errors.As(err, &netErr):
		return &drivers.TransientError{Err: wrapped}
	case drivers.KindOf(err) != drivers.KindUnknown:
		return wrapped
	}
	return &drivers.TransientError{Err: wrapped}
}

// isNotFound reports whether a classified error says the resource does not exist.
func isNotFound(err error) bool { return errors.Is(err, drivers.ErrNotFound) }

// noValidHost reports whether a server fault is a scheduling failure for lack of
// capacity, as Nova words it.
func noValidHost(fault string) bool {
	f := strings.ToLower(fault)
	return strings.Contains(f, "no valid host") || strings.Contains(f, "insufficient") && strings.Contains(f, "capacity")
}
