package aws

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

// This file is the one place where AWS errors become the driver error kinds.

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
		"RequestLimitExceeded":      true,
		"Throttling":                true,
		"ThrottlingException":       true,
		"TooManyRequestsException":  true,
		"RequestThrottled":          true,
		"RequestThrottledException": true,
		"InternalError":             true,
		"InternalFailure":           true,
		"InternalServerError":       true,
		"ServiceException":          true,
		"ServiceUnavailable":        true,
		"Unavailable":               true,
		"RequestExpired":            true,
		"RequestTimeout":            true,
		"IncorrectState":            true,
		"IncorrectInstanceState":    true,
		"VolumeInUse":               true,
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
		"AuthFailure":                 true,
		"UnauthorizedOperation":       true,
		"AccessDenied":                true,
		"AccessDeniedException":       true,
		"InvalidClientTokenId":        true,
		"SignatureDoesNotMatch":       true,
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

// kindOf decides the kind of an unclassified AWS error.
func kindOf(o op, err error) drivers.Kind {
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
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return drivers.KindTransient
	case isCredentialsError(err):
		return drivers.KindPermanent
	}
	return drivers.KindUnknown
}

func kindOfCode(o op, code string) drivers.Kind {
	switch {
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
// credentials, which the SDK reports as plain wrapped errors.
func isCredentialsError(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "get identity:") ||
		strings.Contains(msg, "failed to retrieve credentials") ||
		strings.Contains(msg, "failed to refresh cached credentials")
}
