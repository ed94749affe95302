package activities

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// Application error types returned by activities. Workflows branch on them.
const (
	// ErrTypeQuota: the cloud refused for quota; the attempt is not counted (Nodepool's
	// "aborted").
	ErrTypeQuota = "Quota"
	// ErrTypeCapacity: the cloud has no capacity for the offering right now.
	ErrTypeCapacity = "Capacity"
	// ErrTypePermanent: a retry cannot help (bad parameter, unknown image).
	ErrTypePermanent = "Permanent"
	// ErrTypeTransient: throttling or a passing failure; retried by Temporal.
	ErrTypeTransient = "Transient"
	// ErrTypeLockLost: someone else holds the lock we owned.
	ErrTypeLockLost = "LockLost"
	// ErrTypeLocked: the lock is held by someone else right now; retried.
	ErrTypeLocked = "Locked"
	// ErrTypeNodeGone: the node znode no longer exists.
	ErrTypeNodeGone = "NodeGone"
	// ErrTypeInvalidConfig: the configuration does not allow the operation.
	ErrTypeInvalidConfig = "InvalidConfig"
)

// NonRetryable lists the error types that activity retry policies must not retry.
var NonRetryable = []string{
	ErrTypeQuota, ErrTypeCapacity, ErrTypePermanent, ErrTypeLockLost,
	ErrTypeNodeGone, ErrTypeInvalidConfig, ErrTypeNodescan,
}

// driverError translates a driver error into a Temporal application error, once.
// Details given are attached to the error, so that a workflow can read the state a
// failed step reached (an external id learned before the failure, say).
func driverError(op string, err error, details ...any) error {
	msg := fmt.Sprintf("%s: %v", op, err)
	typ, nonRetryable := ErrTypeTransient, false
	switch drivers.KindOf(err) {
	case drivers.KindQuota:
		typ, nonRetryable = ErrTypeQuota, true
	case drivers.KindCapacity:
		typ, nonRetryable = ErrTypeCapacity, true
	case drivers.KindPermanent:
		typ, nonRetryable = ErrTypePermanent, true
	}
	return temporal.NewApplicationErrorWithOptions(msg, typ, temporal.ApplicationErrorOptions{
		NonRetryable: nonRetryable, Cause: err, Details: details,
	})
}

func lockLost(what string) error {
	return temporal.NewNonRetryableApplicationError(what+": lock held by someone else", ErrTypeLockLost, nil)
}

func nodeGone(id string) error {
	return temporal.NewNonRetryableApplicationError("node "+id+" no longer exists", ErrTypeNodeGone, nil)
}

func invalidConfig(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), ErrTypeInvalidConfig, nil)
}

func isNotFound(err error) bool { return errors.Is(err, zookeeper.ErrNotFound) }

func isBadVersion(err error) bool { return errors.Is(err, zookeeper.ErrBadVersion) }

// retryAfterOf returns how long the cloud asked to wait before trying again, when the
// driver's error says.
func retryAfterOf(err error) time.Duration { return drivers.RetryAfter(err) }

// isNodeGone reports whether err is the error of a node that no longer exists.
func isNodeGone(err error) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.Type() == ErrTypeNodeGone
}
