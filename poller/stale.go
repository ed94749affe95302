package poller

import (
	"context"
	"errors"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"

	"github.com/nodepool-temporal/nodepool-temporal/names"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// Our workflows own ZooKeeper locks by run chain (names.LockOwner, docs/design.md §6).
// A lock whose owning run has ended without releasing it (an operator terminated the
// workflow, say) stays held as long as the worker process that created the contender
// lives. The poller finds such locks:
//
//   - A request left "pending" by an ended run of its own workflow gets a new run, which
//     takes the request and its nodes over (and hands the request back to
//     "requested"). If the lock is still the ended run's long after, the poller
//     releases it, and the request is then handled as lost (below).
//   - Any other lock of an ended workflow of ours (a node's) is released.
//
// A request that is "pending" but unlocked belongs to a launcher that died (ours or
// another): as Nodepool's lost-request cleanup does, its nodes are released and it is
// handed back to "requested", unless one of our workflows still runs for it.

const (
	// staleCheckAfter is how long a lock must have been held by the same workflow of ours
	// before the poller asks Temporal whether that workflow still runs.
	staleCheckAfter = 30 * time.Second
	// staleReleaseAfter is how long a request lock of an ended run may stay before the
	// poller releases it itself, in case no new run took it over.
	staleReleaseAfter = 2 * time.Minute
	// lostRequestGrace is how long a request must have been seen pending and unlocked
	// before it counts as lost.
	lostRequestGrace = 30 * time.Second
	// staleRecheckMax caps the wait between checks of a lock held by a running
	// workflow of ours; the wait grows with how long the lock has been held.
	staleRecheckMax = time.Minute
	// runningTTL is how long a workflow found running is not asked about again: the
	// nodes of one request share their owner, so a 300-node launch costs one question,
	// not 300.
	runningTTL = 10 * time.Second
	// describeTimeout bounds one question to Temporal.
	describeTimeout = 5 * time.Second
)

// describe returns the status and first run id (the run chain) of a workflow's latest
// run. known is false when Temporal could not tell (any error but "not found"); a
// workflow that never ran has status UNSPECIFIED.
func (p *Poller) describe(ctx context.Context, workflowID string) (status enumspb.WorkflowExecutionStatus, chain string, known bool) {
	dctx, cancel := context.WithTimeout(ctx, describeTimeout)
	defer cancel()
	desc, err := p.opts.Temporal.DescribeWorkflowExecution(dctx, workflowID, "")
	if err != nil {
		var nf *serviceerror.NotFound
		return enumspb.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED, "", errors.As(err, &nf)
	}
	info := desc.GetWorkflowExecutionInfo()
	return info.GetStatus(), info.GetFirstRunId(), true
}

// mayBeRunning reports whether the workflow runs, or might: when Temporal cannot tell,
// the answer is yes, so that nothing of a live workflow is taken away.
func (p *Poller) mayBeRunning(ctx context.Context, workflowID string) bool {
	if p.recentlyRunning(workflowID) {
		return true
	}
	status, _, known := p.describe(ctx, workflowID)
	running := !known || status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	if running {
		p.noteRunning(workflowID)
	}
	return running
}

// ownerMayBeRunning is mayBeRunning for a lock owner: the owner's run chain must be the
// one running (a new chain of the same workflow id is another owner).
func (p *Poller) ownerMayBeRunning(ctx context.Context, owner string) bool {
	if p.recentlyRunning(owner) {
		return true
	}
	wid, chain := names.ParseLockOwner(owner)
	status, first, known := p.describe(ctx, wid)
	running := !known || (status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING && (chain == "" || first == "" || first == chain))
	if running {
		p.noteRunning(owner)
	}
	return running
}

// recentlyRunning reports whether key (a workflow id or lock owner) was found running
// within runningTTL. Only positive answers are remembered: they delay an action at
// most, while a stale negative one could take something from a live workflow.
func (p *Poller) recentlyRunning(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	at, ok := p.running[key]
	return ok && p.now().Sub(at) < runningTTL
}

func (p *Poller) noteRunning(key string) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running[key] = now
}

// pruneRunning forgets the answers older than runningTTL; p.mu must be held. Run on
// every scan, it bounds the map by the workflows asked about within one scan and TTL.
func (p *Poller) pruneRunning(now time.Time) {
	for k, at := range p.running {
		if now.Sub(at) >= runningTTL {
			delete(p.running, k)
		}
	}
}

// ours reports whether a lock owner is a workflow of this launcher.
func (p *Poller) ours(owner string) bool {
	return strings.HasPrefix(owner, p.opts.TaskQueue+"/")
}

type holding struct {
	owner string
	since time.Time
	// next is when to ask Temporal again whether owner runs.
	next time.Time
}

// staleDue records that owner holds the lock at path and reports whether it is time to
// ask whether owner still runs, and since when the poller has seen owner hold it. The
// first question comes staleCheckAfter after the lock was first seen; later ones come
// less often the longer it is held, up to staleRecheckMax apart (see stillHeld).
func (p *Poller) staleDue(path, owner string, now time.Time) (bool, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	h, ok := p.holders[path]
	if !ok || h.owner != owner {
		h = holding{owner: owner, since: now, next: now.Add(staleCheckAfter)}
		p.holders[path] = h
	}
	return !now.Before(h.next), h.since
}

// stillHeld records that the owner of the lock at path was found running.
func (p *Poller) stillHeld(path string, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if h, ok := p.holders[path]; ok {
		h.next = now.Add(min(max(now.Sub(h.since), staleCheckAfter), staleRecheckMax))
		p.holders[path] = h
	}
}

func (p *Poller) forgetHolder(path string) {
	p.mu.Lock()
	delete(p.holders, path)
	p.mu.Unlock()
}

// releaseIfStale releases the lock at path if its holder, owner ("" when unlocked), is a
// workflow run of ours that ended. It reports whether it did.
func (p *Poller) releaseIfStale(ctx context.Context, path, owner string) bool {
	if !p.ours(owner) {
		p.forgetHolder(path)
		return false
	}
	now := p.now()
	if due, _ := p.staleDue(path, owner, now); !due {
		return false
	}
	if p.ownerMayBeRunning(ctx, owner) {
		p.stillHeld(path, now)
		return false
	}
	return p.release(ctx, path, owner)
}

func (p *Poller) release(ctx context.Context, path, owner string) bool {
	p.forgetHolder(path)
	if err := p.opts.ZK.ReleaseOwned(ctx, path, owner); err != nil {
		p.log.Warn("releasing stale lock", "path", path, "owner", owner, "error", err)
		return false
	}
	p.log.Info("released lock of an ended workflow", "path", path, "owner", owner)
	return true
}

// considerPending looks after a pending request: its lock must be held by someone alive.
func (p *Poller) considerPending(ctx context.Context, req *zookeeper.NodeRequest) {
	now := p.now()
	p.mu.Lock()
	st := p.request(req.ID)
	if superseded(st, req) {
		p.mu.Unlock()
		return
	}
	due := st.state != zookeeper.StatePending || st.version != req.Version || now.Sub(st.lockCheckedAt) >= pendingCheckEvery
	// A request handed back to "requested" later needs a start again.
	st.state, st.version, st.started, st.bad = zookeeper.StatePending, req.Version, false, false
	if due {
		st.lockCheckedAt = now
	}
	p.mu.Unlock()
	if !due {
		return
	}
	path := zookeeper.RequestLockPath(req.ID)
	locked, owner, err := p.opts.ZK.LockHolder(ctx, path)
	if err != nil {
		return
	}
	if !locked {
		p.forgetHolder(path)
		p.considerLost(ctx, req)
		return
	}
	p.mu.Lock()
	st.lostSince = time.Time{}
	p.mu.Unlock()
	wid := names.RequestWorkflowID(p.opts.TaskQueue, req.ID)
	if owid, _ := names.ParseLockOwner(owner); owid == wid {
		p.considerOwnRun(ctx, req, owner)
		return
	}
	p.releaseIfStale(ctx, path, owner)
}

// considerOwnRun looks after a pending request locked by a run of its own workflow. When
// that run has ended, a new run is started (at a bounded rate), which takes the request
// over; if the lock still belongs to the ended run long after, it is released.
func (p *Poller) considerOwnRun(ctx context.Context, req *zookeeper.NodeRequest, owner string) {
	path := zookeeper.RequestLockPath(req.ID)
	now := p.now()
	due, since := p.staleDue(path, owner, now)
	if !due {
		return
	}
	if p.ownerMayBeRunning(ctx, owner) {
		p.stillHeld(path, now)
		return
	}
	if now.Sub(since) >= staleReleaseAfter {
		p.release(ctx, path, owner)
		return
	}
	if p.mayBeRunning(ctx, names.RequestWorkflowID(p.opts.TaskQueue, req.ID)) {
		p.stillHeld(path, now) // a new run is on its way to take it over
		return
	}
	p.mu.Lock()
	st := p.reqs[req.ID]
	if st == nil || now.Before(st.nextCheck) {
		p.mu.Unlock()
		return
	}
	st.restarts++
	st.nextCheck = now.Add(restartBackoff(st.restarts))
	p.mu.Unlock()
	p.start(ctx, req, "the run that accepted the request ended while it was pending")
}

// considerLost hands a request back that is pending but unlocked (its launcher died),
// after lostRequestGrace and unless one of our workflows still runs for it (its worker
// lost its ZooKeeper session and the workflow locks it again on its next step).
func (p *Poller) considerLost(ctx context.Context, req *zookeeper.NodeRequest) {
	now := p.now()
	p.mu.Lock()
	st := p.request(req.ID)
	if st.lostSince.IsZero() {
		st.lostSince = now
	}
	since := st.lostSince
	p.mu.Unlock()
	if now.Sub(since) < lostRequestGrace || p.mayBeRunning(ctx, names.RequestWorkflowID(p.opts.TaskQueue, req.ID)) {
		return
	}
	p.resetLost(ctx, req.ID)
}

// resetLost does what Nodepool's lost-request cleanup does: under the request's lock, each
// node allocated to it is deallocated (an "init" node is marked for deletion) and the
// request goes back to "requested" with no nodes; declined_by is kept.
func (p *Poller) resetLost(ctx context.Context, id string) {
	lock := p.opts.ZK.NewLock(zookeeper.RequestLockPath(id), p.lockID)
	ok, err := lock.TryAcquire(ctx)
	if err != nil || !ok {
		return
	}
	defer func() {
		if err := lock.Release(context.WithoutCancel(ctx)); err != nil {
			p.log.Warn("unlocking request", "request_id", id, "error", err)
		}
	}()
	req, err := p.opts.ZK.GetRequest(ctx, id)
	if err != nil || req.State != zookeeper.StatePending {
		return
	}
	nodes := p.allocatedTo(id, req.Nodes)
	released := 0
	for _, nid := range nodes {
		if p.deallocate(ctx, nid, id) {
			released++
		}
	}
	_, wrote, err := p.opts.ZK.ModifyRequest(ctx, id, req, func(r *zookeeper.NodeRequest) (bool, error) {
		if r.State != zookeeper.StatePending {
			return false, nil
		}
		r.State = zookeeper.StateRequested
		r.StateTime = zookeeper.Timestamp(p.now())
		r.Nodes = []string{}
		return true, nil
	})
	if err != nil {
		p.log.Warn("resetting lost request", "request_id", id, "error", err)
		return
	}
	p.mu.Lock()
	if st := p.reqs[id]; st != nil {
		st.lostSince = time.Time{}
	}
	p.mu.Unlock()
	if wrote {
		p.log.Info("reset lost request", "request_id", id, "nodes_released", released, "nodes_allocated", len(nodes))
	}
}

// allocatedTo returns the nodes allocated to request id: listed, or seen with
// allocated_to naming it.
func (p *Poller) allocatedTo(id string, listed []string) []string {
	out := append([]string{}, listed...)
	seen := map[string]bool{}
	for _, n := range listed {
		seen[n] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for nid, ns := range p.nodes {
		if ns.allocatedTo == id && !seen[nid] {
			out = append(out, nid)
		}
	}
	return out
}

// deallocate clears a node's allocation to request reqID under the node's lock, and
// marks an "init" node (its launch never began) for deletion. A node that someone else
// holds locked is left alone. It reports whether it changed the node.
func (p *Poller) deallocate(ctx context.Context, nodeID, reqID string) bool {
	lock := p.opts.ZK.NewLock(zookeeper.NodeLockPath(nodeID), p.lockID)
	ok, err := lock.TryAcquire(ctx)
	if err != nil || !ok {
		return false
	}
	defer func() {
		if err := lock.Release(context.WithoutCancel(ctx)); err != nil {
			p.log.Warn("unlocking node", "node_id", nodeID, "error", err)
		}
	}()
	_, wrote, err := p.opts.ZK.ModifyNode(ctx, nodeID, nil, func(n *zookeeper.Node) (bool, error) {
		if n.AllocatedTo == nil || *n.AllocatedTo != reqID {
			return false, nil
		}
		if n.State == zookeeper.NodeInit {
			n.State = zookeeper.NodeDeleting
			n.StateTime = zookeeper.Timestamp(p.now())
		}
		n.AllocatedTo = nil
		return true, nil
	})
	if err != nil && !errors.Is(err, zookeeper.ErrNotFound) {
		p.log.Warn("deallocating node of a lost request", "node_id", nodeID, "request_id", reqID, "error", err)
	}
	return wrote
}
