package activities

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// Ready-node reuse: a request that allows reuse (Zuul's default) is served first from
// nodes that are ready and allocated to nobody (left by min-ready, or deallocated when
// their request vanished), all from the one pool the plan chose, and only the rest are
// launched. Taking a node over is atomic: the node is locked, re-read, and its
// allocated_to written with a version check, so two requests never get the same node.

// readyCacheTTL is how long a listing of ready nodes serves plans: planning only
// estimates, acceptance checks every node under its lock.
const readyCacheTTL = time.Second

type readyListing struct {
	at time.Time
	// byPool maps provider\x00pool to label to ready, unallocated node ids.
	byPool map[string]map[string][]string
}

func poolKey(provider, pool string) string { return provider + "\x00" + pool }

// readyNodes returns the ready, unallocated nodes of a pool by label, from a listing
// at most readyCacheTTL old.
func (a *Activities) readyNodes(ctx context.Context, provider, pool string) (map[string][]string, error) {
	a.mu.Lock()
	cached := a.ready
	a.mu.Unlock()
	if cached == nil || a.now().Sub(cached.at) > readyCacheTTL {
		fresh := &readyListing{at: a.now(), byPool: map[string]map[string][]string{}}
		err := a.forEachNode(ctx, func(n *zookeeper.Node) {
			if n.State != zookeeper.NodeReady || allocated(n) || len(n.Type) == 0 {
				return
			}
			key := poolKey(n.Provider, n.Pool)
			if fresh.byPool[key] == nil {
				fresh.byPool[key] = map[string][]string{}
			}
			for _, label := range n.Type {
				fresh.byPool[key][label] = append(fresh.byPool[key][label], n.ID)
			}
		})
		if err != nil {
			return nil, err
		}
		a.mu.Lock()
		a.ready = fresh
		a.mu.Unlock()
		cached = fresh
	}
	return cached.byPool[poolKey(provider, pool)], nil
}

func allocated(n *zookeeper.Node) bool { return n.AllocatedTo != nil && *n.AllocatedTo != "" }

// markReuse marks the plan's nodes that ready nodes of its pool can serve.
func (a *Activities) markReuse(ctx context.Context, plan *Plan) error {
	ready, err := a.readyNodes(ctx, plan.Provider, plan.Pool)
	if err != nil {
		return err
	}
	left := map[string]int{}
	for label, ids := range ready {
		left[label] = len(ids)
	}
	for i := range plan.Nodes {
		if left[plan.Nodes[i].Label] > 0 {
			left[plan.Nodes[i].Label]--
			plan.Nodes[i].Reuse = true
		}
	}
	return nil
}

// readyCandidates lists, by label, the ready nodes of the plan's pool a request may take
// over: nodes already allocated to it (by an earlier try) first, then unallocated ones.
func (a *Activities) readyCandidates(ctx context.Context, in AcceptInput) (map[string][]string, error) {
	mine, free := map[string][]string{}, map[string][]string{}
	err := a.forEachNode(ctx, func(n *zookeeper.Node) {
		if n.Provider != in.Plan.Provider || n.Pool != in.Plan.Pool || n.State != zookeeper.NodeReady {
			return
		}
		for _, label := range n.Type {
			switch {
			case n.AllocatedTo != nil && *n.AllocatedTo == in.RequestID:
				mine[label] = append(mine[label], n.ID)
			case !allocated(n):
				free[label] = append(free[label], n.ID)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	for label, ids := range free {
		mine[label] = append(mine[label], ids...)
	}
	return mine, nil
}

// claimReady takes over one of the candidates of the label for the request, skipping
// nodes in taken. It returns "" when none is left.
func (a *Activities) claimReady(ctx context.Context, in AcceptInput, cands map[string][]string, label string, taken []string) (string, error) {
	for len(cands[label]) > 0 {
		id := cands[label][0]
		cands[label] = cands[label][1:]
		if slices.Contains(taken, id) {
			continue
		}
		ok, err := a.claim(ctx, id, in.RequestID, in.Owner)
		if err != nil {
			return "", err
		}
		if ok {
			return id, nil
		}
	}
	return "", nil
}

// claim locks a ready node and allocates it to the request. It reports false when the
// node was locked, taken or changed meanwhile.
func (a *Activities) claim(ctx context.Context, id, requestID, owner string) (bool, error) {
	path := zookeeper.NodeLockPath(id)
	held, err := a.zk.EnsureLock(ctx, path, owner)
	if isNotFound(err) || (err == nil && !held) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("locking node %s: %w", id, err)
	}
	claimed := false
	err = a.updateNode(ctx, id, func(n *zookeeper.Node) bool {
		claimed = false
		if n.State != zookeeper.NodeReady {
			return false
		}
		if n.AllocatedTo != nil && *n.AllocatedTo == requestID {
			claimed = true
			return false
		}
		if allocated(n) {
			return false
		}
		n.AllocatedTo = strPtr(requestID)
		claimed = true
		return true
	})
	if err != nil && !isNodeGone(err) {
		return false, err
	}
	if !claimed {
		a.releaseQuietly(ctx, path, owner)
		return false, nil
	}
	a.logger.Info("reusing ready node", "request_id", requestID, "node_id", id)
	return true, nil
}

// ReturnNode gives a ready node that was taken over for a request back to the pool: it
// is deallocated and unlocked, ready for the next request.
func (a *Activities) ReturnNode(ctx context.Context, in ReturnNodeInput) error {
	path := zookeeper.NodeLockPath(in.NodeID)
	held, err := a.ensureLock(ctx, path, in.Owner)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("locking node %s: %w", in.NodeID, err)
	}
	if !held {
		return nil
	}
	err = a.updateNode(ctx, in.NodeID, func(n *zookeeper.Node) bool {
		if n.AllocatedTo == nil || *n.AllocatedTo != in.RequestID {
			return false
		}
		n.AllocatedTo = nil
		return true
	})
	if err != nil && !isNodeGone(err) {
		return err
	}
	a.releaseQuietly(ctx, path, in.Owner)
	return nil
}
