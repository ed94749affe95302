package poller

import (
	"context"
	"errors"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"

	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// Our workflows own ZooKeeper locks by workflow id (see docs/design.md §6). A lock whose
// owning workflow has ended without releasing it (an operator terminated it, say) would
// stay held as long as the worker process that created the contender lives. The poller
// finds such locks and releases them, and hands a request left "pending" that way back
// to "requested", as Nodepool's lost-request cleanup does.

// mayBeRunning reports whether the workflow runs, or might: when Temporal cannot tell
// (any error but "not found"), the answer is yes, so that nothing of a live workflow
// is taken away.
func (p *Poller) mayBeRunning(ctx context.Context, workflowID string) bool {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	desc, err := p.opts.Temporal.DescribeWorkflowExecution(dctx, workflowID, "")
	if err != nil {
		var nf *serviceerror.NotFound
		return !errors.As(err, &nf)
	}
	return desc.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
}

// staleCheckAfter is how long a lock must have been held by the same workflow of ours
// before the poller asks Temporal whether that workflow still runs.
const staleCheckAfter = 30 * time.Second

type holding struct {
	owner string
	since time.Time
}

// releaseIfStale releases the lock at path if its holder, owner ("" when unlocked), is a
// workflow of ours that ended. It reports whether it did.
func (p *Poller) releaseIfStale(ctx context.Context, path, owner string) bool {
	if !strings.HasPrefix(owner, p.opts.TaskQueue+"/") {
		p.mu.Lock()
		delete(p.holders, path)
		p.mu.Unlock()
		return false
	}
	now := p.now()
	p.mu.Lock()
	h, ok := p.holders[path]
	if !ok || h.owner != owner {
		h = holding{owner: owner, since: now}
		p.holders[path] = h
	}
	p.mu.Unlock()
	if now.Sub(h.since) < staleCheckAfter || p.mayBeRunning(ctx, owner) {
		return false
	}
	p.mu.Lock()
	delete(p.holders, path)
	p.mu.Unlock()
	if err := p.opts.ZK.ReleaseOwned(ctx, path, owner); err != nil {
		p.log.Warn("releasing stale lock", "path", path, "owner", owner, "error", err)
		return false
	}
	p.log.Info("released lock of an ended workflow", "path", path, "owner", owner)
	return true
}

// recoverRequest resets a pending request whose owning workflow ended.
func (p *Poller) recoverRequest(ctx context.Context, req *zookeeper.NodeRequest) {
	if req.State != zookeeper.StatePending {
		return
	}
	path := zookeeper.RequestLockPath(req.ID)
	locked, owner, err := p.opts.ZK.LockHolder(ctx, path)
	if err != nil || !locked || !p.releaseIfStale(ctx, path, owner) {
		return
	}
	lock := p.opts.ZK.NewLock(zookeeper.RequestLockPath(req.ID), "")
	ok, err := lock.TryAcquire(ctx)
	if err != nil || !ok {
		return
	}
	defer func() { _ = lock.Release(ctx) }()
	fresh, err := p.opts.ZK.GetRequest(ctx, req.ID)
	if err != nil || fresh.State != zookeeper.StatePending {
		return
	}
	fresh.State = zookeeper.StateRequested
	fresh.StateTime = float64(p.now().UnixNano()) / 1e9
	fresh.Nodes = []string{}
	if err := p.opts.ZK.UpdateRequest(ctx, fresh); err != nil {
		p.log.Warn("resetting lost request", "request_id", req.ID, "error", err)
		return
	}
	p.log.Info("reset lost request", "request_id", req.ID)
}
