package zookeeper

import (
	"errors"
	"fmt"

	"github.com/go-zookeeper/zk"
)

var (
	// ErrNotFound reports that a znode (request, node, lock parent) does not
	// exist.
	ErrNotFound = errors.New("not found")
	// ErrBadVersion reports a failed compare-and-set: the znode changed since
	// it was read.
	ErrBadVersion = errors.New("version conflict")
	// ErrLockTimeout reports that a blocking lock acquisition gave up.
	ErrLockTimeout = errors.New("lock timeout")
	// ErrEmptyRecord reports a znode without data where a JSON record was
	// expected (upstream cleanup removes such node znodes). It is wrapped in a
	// *DecodeError.
	ErrEmptyRecord = errors.New("empty record")
)

// DecodeError reports a record whose JSON could not be decoded.
type DecodeError struct {
	// Path is the znode path of the record, relative to the chroot.
	Path string
	// Err describes what was wrong.
	Err error
}

// Error implements error.
func (e *DecodeError) Error() string {
	return fmt.Sprintf("decoding %s: %v", e.Path, e.Err)
}

// Unwrap returns the underlying cause.
func (e *DecodeError) Unwrap() error { return e.Err }

// mapErr translates go-zookeeper errors into this package's sentinels where
// one exists; other errors pass through unchanged.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, zk.ErrNoNode):
		return ErrNotFound
	case errors.Is(err, zk.ErrBadVersion):
		return ErrBadVersion
	default:
		return err
	}
}
