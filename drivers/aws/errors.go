package aws

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// This file is the one place where AWS errors become the driver error kinds.
//
// The line between transient and permanent: an error is permanent only when the
// request or the launcher's configuration is wrong, so that the same request fails the
// same way whatever happens around it (an unknown instance type or AMI, a bad
// parameter, a missing subnet, an IAM policy without the permission). Everything the
// environment causes and can repair while the launcher runs is transient: throttling,
// 5xx answers, unreachable or slow endpoints, connections refused or reset, and
// credentials that cannot be retrieved or that the service does not accept
// (credentials come from the environment, never from the configuration). A transient
// error must never make the launcher decline a request.

// op says which kind of call failed, because the same code means different things for
// different calls: a missing subnet is a configuration error for RunInstances, while a
// missing instance is the expected answer when deleting.
type op int

const (
	opRead   op = iota // describe and list calls
	opCreate           // RunInstances and the lookups that prepare it
	opDelete           // TerminateInstances, DeleteVolume
)

// Error codes by kind. Codes ending in ".NotFound" are not-found (or permanent for
// opCreate) unless listed here.
var (
	capacityCodes = map[string]bool{
		"InsufficientInstanceCapacity":         true,
		"InsufficientHostCapacity":             true,
		"InsufficientReservedInstanceCapacity": true,
		"InsufficientCapacity":                 true,
		"InsufficientFreeAddressesInSubnet":    true,
		"SpotMaxPriceTooLow":                   true,
	}
	quotaCodes = map[string]bool{
		"VcpuLimitExceeded":             true,
		"InstanceLimitExceeded":         true,
		"MaxSpotInstanceCountExceeded":  true,
		"VolumeLimitExceeded":           true,
		"HostLimitExceeded":             true,
		"AddressLimitExceeded":          true,
		"ResourceLimitExceeded":         true,
		"ServiceQuotaExceededException": true,
	}
	transientCodes = map[string]bool{
		// Throttling (the SDK's retry package knows more codes; see kindOf).
		"RequestLimitExceeded":      true,
		"Throttling":                true,
		"ThrottlingException":       true,
		"TooManyRequestsException":  true,
		"RequestThrottled":          true,
		"RequestThrottledException": true,
		"EC2ThrottledException":     true,
		// The service failed or is unavailable.
		"InternalError":               true,
		"InternalFailure":             true,
		"InternalServerError":         true,
		"InternalServerException":     true,
		"ServiceException":            true,
		"ServiceUnavailable":          true,
		"ServiceUnavailableException": true,
		"Unavailable":                 true,
		"RequestTimeout":              true,
		"RequestTimeoutException":     true,
		// Credentials the service does not accept (expired, rotated, not yet
		// propagated) or a signature gone stale (a skewed clock): credentials come
		// from the environment, and the next request is signed with what it holds
		// then.
		"RequestExpired":              true,
		"ExpiredToken":                true,
		"ExpiredTokenException":       true,
		"InvalidClientTokenId":        true,
		"UnrecognizedClientException": true,
		"SignatureDoesNotMatch":       true,
		// A resource is between states.
		"IncorrectState":         true,
		"IncorrectInstanceState": true,
		"VolumeInUse":            true,
	}
	permanentCodes = map[string]bool{
		"InvalidParameterValue":       true,
		"InvalidParameter":            true,
		"InvalidParameterCombination": true,
		"MissingParameter":            true,
		"UnknownParameter":            true,
		"Unsupported":                 true,
		"UnsupportedOperation":        true,
		"InvalidInstanceType":         true,
		"InvalidBlockDeviceMapping":   true,
		"InvalidUserData.Malformed":   true,
		"IdempotentParameterMismatch": true,
		"UnauthorizedOperation":       true,
		"AccessDenied":                true,
		"AccessDeniedException":       true,
		"OptInRequired":               true,
		"Blocked":                     true,
		"PendingVerification":         true,
		"ValidationException":         true,
		"MalformedQueryString":        true,
		"InvalidAction":               true,
		"UnknownOperationException":   true,
		"DryRunOperation":             true,
	}
	// permanentPrefixes are code families that are configuration errors wherever
	// they appear.
	permanentPrefixes = []string{"InvalidAMIID.", "InvalidKeyPair.", "InvalidSubnetID.", "InvalidGroup.", "InvalidGroupId."}
	// notFoundMalformed are malformed-id codes that mean "cannot exist" when reading or
	// deleting: no instance or volume has such an id.
	notFoundMalformed = map[string]bool{"InvalidInstanceID.Malformed": true, "InvalidVolumeID.Malformed": true}
)

// withRetryAfter sets the retry hint of the capacity error in err (see
// drivers.CapacityError).
func withRetryAfter(err error, after time.Duration) error {
	var c *drivers.CapacityError
	if errors.As(err, &c) {
		c.RetryAfter = after
		return err
	}
	return &drivers.CapacityError{Err: err, RetryAfter: after}
}

// classify wraps err (from an AWS call described by what) in the driver error kind it
// belongs to. Errors already classified are wrapped with what and keep their kind.
func classify(o op, what string, err error) error {
	if err == nil {
		return nil
	}
	wrapped := fmt.Errorf("%s: %w", what, err)
	if drivers.KindOf(err) != drivers.KindUnknown {
		return wrapped
	}
	switch kindOf(o, err) {
	case drivers.KindCapacity:
		return &drivers.CapacityError{Err: wrapped}
	case drivers.KindQuota:
		return &drivers.QuotaError{Err: wrapped}
	case drivers.KindTransient:
		return &drivers.TransientError{Err: wrapped}
	case drivers.KindPermanent:
		return &drivers.PermanentError{Err: wrapped}
	case drivers.KindNotFound:
		return fmt.Errorf("%s: %w: %w", what, drivers.ErrNotFound, err)
	}
	return wrapped
}

// apiErrorCode returns the AWS error code of err, or "".
func apiErrorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// sdkRetryables is the SDK's own judgement of which errors a retry may cure
// (connection errors, 5xx statuses, throttling and timeout codes). The driver turns
// the SDK's retries off, because the activities calling it retry, but keeps the
// judgement.
var sdkRetryables = retry.IsErrorRetryables(retry.DefaultRetryables)

// kindOf decides the kind of an unclassified AWS error.
func kindOf(o op, err error) drivers.Kind {
	// Credentials are resolved before anything is sent; whatever fails there (an
	// unreachable instance metadata service or STS, an expired session, a role not
	// attached yet) is the environment's failure, even when the credential source
	// answered with an error code of its own.
	if isCredentialsError(err) {
		return drivers.KindTransient
	}
	if code := apiErrorCode(err); code != "" {
		if k := kindOfCode(o, code); k != drivers.KindUnknown {
			return k
		}
	}
	var (
		re  *awshttp.ResponseError
		se  *smithyhttp.RequestSendError
		de  *smithy.DeserializationError
		ne  net.Error
		cae *smithy.CanceledError
	)
	switch {
	case errors.As(err, &re) && (re.HTTPStatusCode() >= 500 || re.HTTPStatusCode() == 429):
		return drivers.KindTransient
	case errors.As(err, &se), errors.As(err, &ne), errors.As(err, &de), errors.As(err, &cae),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return drivers.KindTransient
	case sdkRetryables.IsErrorRetryable(err) == awssdk.TrueTernary:
		return drivers.KindTransient
	}
	return drivers.KindUnknown
}

func kindOfCode(o op, code string) drivers.Kind {
	switch {
	case code == "AuthFailure":
		// EC2 answers AuthFailure both for credentials it cannot validate and for an
		// AMI the account may not use. Only a launch names an AMI.
		if o == opCreate {
			return drivers.KindPermanent
		}
		return drivers.KindTransient
	case capacityCodes[code]:
		return drivers.KindCapacity
	case quotaCodes[code]:
		return drivers.KindQuota
	case transientCodes[code]:
		return drivers.KindTransient
	case o != opCreate && notFoundMalformed[code]:
		return drivers.KindNotFound
	case permanentCodes[code]:
		return drivers.KindPermanent
	}
	for _, p := range permanentPrefixes {
		if strings.HasPrefix(code, p) {
			return drivers.KindPermanent
		}
	}
	if strings.HasSuffix(code, ".NotFound") || code == "NoSuchResourceException" {
		if o == opCreate {
			// A resource the request refers to (subnet, security group, key pair,
			// profile) does not exist: the configuration is wrong.
			return drivers.KindPermanent
		}
		return drivers.KindNotFound
	}
	if strings.HasSuffix(code, ".Malformed") {
		return drivers.KindPermanent
	}
	return drivers.KindUnknown
}

// isCredentialsError reports whether err comes from resolving or refreshing
// credentials. The SDK reports those as plain wrapped errors of the operation's
// identity step ("get identity: get credentials: ..."), or as a signing error.
func isCredentialsError(err error) bool {
	var se *v4.SigningError
	if errors.As(err, &se) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "get identity:") ||
		strings.Contains(msg, "get credentials:") ||
		strings.Contains(msg, "failed to retrieve credentials") ||
		strings.Contains(msg, "failed to refresh cached credentials")
}
