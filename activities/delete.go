package activities

import (
	"context"
	"fmt"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/lifecycle"
	"github.com/nodepool-temporal/nodepool-temporal/names"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
	"go.temporal.io/sdk/activity"
)

// Policy returns the deletion policy of these settings.
func (s *Settings) Policy(orphanGrace time.Duration) lifecycle.Policy {
	p := lifecycle.Policy{
		Providers:   map[string]bool{},
		PoolIDs:     map[string]bool{},
		MaxHoldAge:  s.MaxHoldAge,
		OrphanGrace: orphanGrace,
		MaxReadyAge: func(label string) time.Duration { return s.Labels[label].MaxReadyAge },
	}
	for _, prov := range s.Providers {
		p.Providers[prov.Name] = true
		for _, pool := range prov.Pools {
			p.PoolIDs[pool.ID] = true
		}
	}
	return p
}

// lockWaitInActivity is how long StartDelete waits for a lock that someone else holds
// before it gives the workflow a retryable Locked error. Zuul unlocks a node right
// after writing "used", and the poller starts the deletion as soon as it sees "used":
// waiting on a ZooKeeper watch takes the lock the moment Zuul lets go, where retries
// with backoff would add up to seconds per node.
const lockWaitInActivity = 5 * time.Second

// StartDelete locks a node, re-checks under the lock that it must be deleted, and marks
// it "deleting". A node that someone else holds locked is waited for briefly on the
// first attempt (lockWaitInActivity), then yields a retryable Locked error; a node that
// must be kept yields Proceed=false.
func (a *Activities) StartDelete(ctx context.Context, in StartDeleteInput) (StartDeleteResult, error) {
	lock := zookeeper.NodeLockPath(in.NodeID)
	// Only the first attempt waits: later ones are the workflow's retries, whose
	// backoff bounds how long a node that stays locked is tried, as before.
	wait := time.Duration(0)
	if activity.IsActivity(ctx) && activity.GetInfo(ctx).Attempt <= 1 {
		wait = lockWaitInActivity
	}
	contender, held, err := a.awaitLock(ctx, lock, in.Owner, wait)
	if isNotFound(err) {
		return StartDeleteResult{Reason: "node no longer exists"}, nil
	}
	if err != nil {
		return StartDeleteResult{}, fmt.Errorf("locking node %s: %w", in.NodeID, err)
	}
	if !held {
		return StartDeleteResult{}, lockedRetry("node " + in.NodeID)
	}
	for {
		n, err := a.zk.GetNode(ctx, in.NodeID)
		if isNotFound(err) {
			return StartDeleteResult{Reason: "node no longer exists"}, nil
		}
		if err != nil {
			var de *zookeeper.DecodeError
			if asDecodeError(err, &de) {
				// A node znode without usable data: remove it, as Nodepool's cleanup does.
				a.logger.Warn("removing malformed node znode", "node_id", in.NodeID, "error", err)
				if err := a.zk.DeleteNode(ctx, in.NodeID); err != nil && !isNotFound(err) {
					return StartDeleteResult{}, fmt.Errorf("deleting node %s: %w", in.NodeID, err)
				}
				return StartDeleteResult{Reason: "malformed node removed"}, nil
			}
			return StartDeleteResult{}, fmt.Errorf("reading node %s: %w", in.NodeID, err)
		}
		prov, ok := a.settings.Provider(n.Provider)
		if !ok {
			a.releaseQuietly(ctx, lock, in.Owner)
			return StartDeleteResult{Reason: "provider " + n.Provider + " is not managed here"}, nil
		}
		if n.State != zookeeper.NodeDeleting {
			obs := lifecycle.Observation{UnlockedFor: time.Duration(in.UnlockedForSec * float64(time.Second))}
			if n.AllocatedTo != nil && *n.AllocatedTo != "" && lifecycle.NeedsRequest(n) {
				exists, err := a.requestExists(ctx, *n.AllocatedTo)
				if err != nil {
					return StartDeleteResult{}, err
				}
				obs.RequestExists = exists
			}
			reason := lifecycle.DeleteReason(n, obs, a.now(), a.settings.Policy(time.Duration(in.OrphanGraceSec*float64(time.Second))))
			if reason == "" {
				a.releaseQuietly(ctx, lock, in.Owner)
				return StartDeleteResult{Reason: "node is " + string(n.State) + " and must be kept"}, nil
			}
			n.State = zookeeper.NodeDeleting
			n.StateTime = a.unixNow()
			err = a.zk.UpdateNode(ctx, n)
			if isBadVersion(err) {
				continue
			}
			if err != nil && !isNotFound(err) {
				return StartDeleteResult{}, fmt.Errorf("writing node %s: %w", in.NodeID, err)
			}
			a.logger.Info("deleting node", "node_id", in.NodeID, "reason", reason, "external_id", n.ExternalIDString())
		}
		res := StartDeleteResult{
			Proceed:    true,
			ExternalID: n.ExternalIDString(),
			Provider:   n.Provider,
			Pool:       n.Pool,
			TaskQueue:  prov.TaskQueue,
			State:      string(n.State),
			Contender:  contender,
		}
		if in.Finish != nil && prov.InlineSteps {
			return a.finishInline(ctx, in, res)
		}
		return res, nil
	}
}

// finishInline deletes a node's instance within StartDelete: the delete state machine
// is advanced here (short waits included, as in DeleteStep) for at most stepBudget;
// once the cloud confirms, the znode is removed and the capacity released. A step
// that fails or a deletion that needs longer is handed back to the workflow in
// res.Delete, to go on with DeleteStep activities; nothing here fails the activity
// after the node is marked deleting, so a retry never repeats the lock wait for a
// cloud error. Every step is idempotent: a retried activity finds the node deleting
// under its own lock and the instance already going or gone.
func (a *Activities) finishInline(ctx context.Context, in StartDeleteInput, res StartDeleteResult) (StartDeleteResult, error) {
	st := drivers.DeleteState{ExternalID: res.ExternalID, NodeID: in.NodeID, Complete: res.ExternalID == ""}
	if !st.Complete {
		next, err := a.advanceDelete(ctx, res.Provider, st)
		if err != nil {
			a.logger.Info("inline deletion handed to the workflow", "node_id", in.NodeID, "error", err)
			res.Delete = &st
			return res, nil
		}
		st = next
	}
	if !st.Complete {
		res.Delete = &st
		return res, nil
	}
	err := a.FinishDelete(ctx, FinishDeleteInput{
		NodeID: in.NodeID, Owner: in.Owner, Contender: res.Contender, Signal: in.Finish.Signal,
		Ledger: names.LedgerWorkflowID(in.Finish.TaskQueue, res.Provider, res.Pool),
	})
	if err != nil {
		// The instance is gone; the workflow removes the znode.
		res.Delete = &st
		return res, nil
	}
	res.Deleted = true
	return res, nil
}

func (a *Activities) requestExists(ctx context.Context, id string) (bool, error) {
	_, err := a.zk.GetRequest(ctx, id)
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		var de *zookeeper.DecodeError
		if asDecodeError(err, &de) {
			return true, nil
		}
		return false, fmt.Errorf("reading request %s: %w", id, err)
	}
	return true, nil
}

// awaitLock takes owner's lock at path, waiting up to wait for a holder that is not
// owner to let go. It watches the lock's contenders and only tries to take the lock
// when nobody else holds it, so it never queues behind (or disturbs) the holder. It
// reports whether owner holds the lock; a lock still held by someone else when the
// wait ends is not an error.
func (a *Activities) awaitLock(ctx context.Context, path, owner string, wait time.Duration) (string, bool, error) {
	contender, held, err := a.zk.EnsureLockContender(ctx, path, owner)
	if err != nil || held || wait <= 0 {
		return contender, held, err
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	// The first list arrives at once; later ones after each change of the contenders.
	events := a.zk.WatchChildren(wctx, path)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return "", false, ctx.Err()
			}
			if len(ev.Children) > 0 {
				locked, holder, err := a.zk.LockHolder(ctx, path)
				if err != nil {
					return "", false, err
				}
				if locked && holder != owner {
					continue
				}
			}
			contender, held, err := a.zk.EnsureLockContender(ctx, path, owner)
			if err != nil || held {
				return contender, held, err
			}
		case <-wctx.Done():
			return "", false, ctx.Err()
		}
	}
}
