package activities

import (
	"context"
	"fmt"

	"github.com/nodepool-temporal/nodepool-temporal/names"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// Locks are owned by a workflow's run chain (names.LockOwner), not by a process (see
// docs/design.md §6). When an operator terminates a request workflow, the poller
// starts a new run chain under the same workflow id; the old chain's locks may still
// live in a worker's session. A lock held by another chain of our own workflow id is
// taken over once Temporal confirms that chain no longer runs; an activity of the ended
// chain that is still in flight finds the running chain's lock and gives up.

// ensureLock asserts owner's lock at path, taking it over from an ended run chain of
// the same workflow. It reports whether owner holds the lock.
func (a *Activities) ensureLock(ctx context.Context, path, owner string) (bool, error) {
	held, err := a.zk.EnsureLock(ctx, path, owner)
	if err != nil || held {
		return held, err
	}
	if !a.takeOver(ctx, path, owner) {
		return false, nil
	}
	return a.zk.EnsureLock(ctx, path, owner)
}

// takeOver releases the lock at path when its holder is another run chain of owner's
// workflow. It reports whether it did.
func (a *Activities) takeOver(ctx context.Context, path, owner string) bool {
	locked, holder, err := a.zk.LockHolder(ctx, path)
	if err != nil || !locked || !predecessor(holder, owner) {
		return false
	}
	// A holder without a chain id was written by this workflow under an earlier release
	// (before owners named their chain): whichever run holds it, it is this workflow's.
	if wf, chain := names.ParseLockOwner(holder); chain != "" {
		if running, err := a.chainRunning(ctx, wf, chain); err != nil || running {
			return false
		}
	}
	if err := a.zk.ReleaseOwned(ctx, path, holder); err != nil {
		a.logger.Warn("taking over a lock of an ended run", "path", path, "holder", holder, "error", err)
		return false
	}
	a.logger.Info("took over a lock of an ended run", "path", path, "holder", holder, "owner", owner)
	return true
}

// predecessor reports whether holder is another run chain of owner's workflow.
func predecessor(holder, owner string) bool {
	hw, hc := names.ParseLockOwner(holder)
	ow, oc := names.ParseLockOwner(owner)
	return hw == ow && hc != oc && oc != ""
}

// lockNode re-asserts owner's lock on a node: ErrTypeNodeGone when the node is gone,
// ErrTypeLockLost when someone else holds it.
func (a *Activities) lockNode(ctx context.Context, id, owner string) error {
	held, err := a.ensureLock(ctx, zookeeper.NodeLockPath(id), owner)
	if isNotFound(err) {
		return nodeGone(id)
	}
	if err != nil {
		return fmt.Errorf("locking node %s: %w", id, err)
	}
	if !held {
		return lockLost("node " + id)
	}
	return nil
}

func (a *Activities) releaseQuietly(ctx context.Context, path, owner string) {
	if err := a.zk.ReleaseOwned(ctx, path, owner); err != nil && !isNotFound(err) {
		a.logger.Warn("releasing lock", "path", path, "error", err)
	}
}
