package activities

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// Min-ready: Nodepool keeps min-ready unallocated ready nodes of each label by
// submitting node requests of its own (priority 900, requestor "NodePool:min-ready",
// reuse false), which any launcher serves like Zuul's. One pass of the deployment's
// single coordinator workflow (workflows.MinReady) runs MinReadyPass, so several
// launcher processes never submit for the same shortage twice.

// Min-ready requests, as upstream writes them.
const (
	MinReadyRequestor = "NodePool:min-ready"
	MinReadyPriority  = "900"
)

// LabelCount is a label and a number of nodes.
type LabelCount struct {
	Label string `json:"label"`
	Count int    `json:"count"`
}

// MinReadyInput is one coordinator pass: the labels to keep ready, and the lock
// identity the pass uses on nodes.
type MinReadyInput struct {
	Labels []LabelCount `json:"labels"`
	Owner  string       `json:"owner"`
}

// MinReadyResult tells what a pass saw and did.
type MinReadyResult struct {
	// Ready and InFlight count, by label, the unallocated ready nodes and the nodes of
	// min-ready requests not yet served.
	Ready    map[string]int `json:"ready"`
	InFlight map[string]int `json:"in_flight"`
	// Submitted counts the requests submitted by this pass, by label.
	Submitted map[string]int `json:"submitted"`
	// Cleaned counts the finished min-ready requests removed.
	Cleaned int `json:"cleaned"`
}

// MinReadyPass removes finished min-ready requests (giving the nodes of fulfilled
// ones back to their pools, ready and unallocated), counts ready nodes and min-ready
// requests in flight per label, and submits one request per missing node.
func (a *Activities) MinReadyPass(ctx context.Context, in MinReadyInput) (MinReadyResult, error) {
	res := MinReadyResult{Ready: map[string]int{}, InFlight: map[string]int{}, Submitted: map[string]int{}}
	wanted := map[string]bool{}
	for _, lc := range in.Labels {
		wanted[lc.Label] = true
	}
	ids, err := a.zk.ListRequests(ctx)
	if err != nil {
		return res, err
	}
	for _, id := range ids {
		req, err := a.zk.GetRequest(ctx, id)
		if isNotFound(err) {
			continue
		}
		var de *zookeeper.DecodeError
		if errors.As(err, &de) {
			continue
		}
		if err != nil {
			return res, fmt.Errorf("reading request %s: %w", id, err)
		}
		if req.Requestor == nil || *req.Requestor != MinReadyRequestor {
			continue
		}
		switch req.State {
		case zookeeper.StateFulfilled:
			done := true
			for _, nid := range req.Nodes {
				if !a.deallocate(ctx, nid, id, in.Owner) {
					done = false
				}
			}
			if !done {
				continue
			}
			fallthrough
		case zookeeper.StateFailed:
			if err := a.zk.DeleteRequest(ctx, id); err != nil {
				return res, err
			}
			res.Cleaned++
		default:
			for _, label := range req.NodeTypes {
				res.InFlight[label]++
			}
		}
	}
	err = a.forEachNode(ctx, func(n *zookeeper.Node) {
		if n.State != zookeeper.NodeReady || allocated(n) {
			return
		}
		for _, label := range n.Type {
			if wanted[label] {
				res.Ready[label]++
			}
		}
	})
	if err != nil {
		return res, err
	}
	for _, lc := range in.Labels {
		for missing := lc.Count - res.Ready[lc.Label] - res.InFlight[lc.Label]; missing > 0; missing-- {
			req := &zookeeper.NodeRequest{
				State:     zookeeper.StateRequested,
				StateTime: a.unixNow(),
				NodeTypes: []string{lc.Label},
				Requestor: strPtr(MinReadyRequestor),
				Reuse:     false,
			}
			now := a.unixNow()
			req.CreatedTime = &now
			id, err := a.zk.SubmitRequest(ctx, req, MinReadyPriority, false)
			if err != nil {
				return res, err
			}
			res.Submitted[lc.Label]++
			a.logger.Info("submitted min-ready request", "request_id", id, "label", lc.Label,
				"ready", res.Ready[lc.Label], "in_flight", res.InFlight[lc.Label], "min_ready", lc.Count)
		}
	}
	return res, nil
}

// deallocate gives a node of a fulfilled min-ready request back to its pool. It
// reports whether the node no longer belongs to the request (deallocated now or
// before, or gone).
func (a *Activities) deallocate(ctx context.Context, nodeID, requestID, owner string) bool {
	lock := a.zk.NewLock(zookeeper.NodeLockPath(nodeID), owner)
	ok, err := lock.TryAcquire(ctx)
	if isNotFound(err) {
		return true
	}
	if err != nil || !ok {
		return false
	}
	defer func() {
		if err := lock.Release(context.WithoutCancel(ctx)); err != nil {
			a.logger.Warn("unlocking node", "node_id", nodeID, "error", err)
		}
	}()
	err = a.updateNode(ctx, nodeID, func(n *zookeeper.Node) bool {
		if n.AllocatedTo == nil || *n.AllocatedTo != requestID {
			return false
		}
		n.AllocatedTo = nil
		return true
	})
	return err == nil || isNodeGone(err)
}

// isMinReady reports whether a request is one of Nodepool's min-ready requests.
func isMinReady(req *zookeeper.NodeRequest) bool {
	return req.Requestor != nil && *req.Requestor == MinReadyRequestor && !slices.Contains(req.NodeTypes, "")
}
