package activities

import (
	"context"
	"fmt"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/lifecycle"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
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

// StartDelete locks a node, re-checks under the lock that it must be deleted, and marks
// it "deleting". A node that someone else holds locked yields a retryable Locked error
// (Zuul unlocks right after writing "used"); a node that must be kept yields
// Proceed=false.
func (a *Activities) StartDelete(ctx context.Context, in StartDeleteInput) (StartDeleteResult, error) {
	lock := zookeeper.NodeLockPath(in.NodeID)
	held, err := a.zk.EnsureLock(ctx, lock, in.Owner)
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
			if n.AllocatedTo != nil && *n.AllocatedTo != "" {
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
		return StartDeleteResult{
			Proceed:    true,
			ExternalID: n.ExternalIDString(),
			Provider:   n.Provider,
			Pool:       n.Pool,
			TaskQueue:  prov.TaskQueue,
			State:      string(n.State),
		}, nil
	}
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
