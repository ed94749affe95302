package poller

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/names"

	"github.com/go-zookeeper/zk"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/nodepool-temporal/nodepool-temporal/lifecycle"
	"github.com/nodepool-temporal/nodepool-temporal/workflows"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// restartDeleteAfter is how long the poller waits before starting a deletion again for
// a node it already started one for (a finished deletion that kept the node, say).
const restartDeleteAfter = 15 * time.Second

// watchNodes reacts to the node tree. Every node has a data watch, so a node that Zuul
// marks "used" is seen at once; a periodic scan catches what watches cannot show (a
// lock released, a hold that expired).
func (p *Poller) watchNodes(ctx context.Context) {
	events := p.opts.ZK.WatchChildren(ctx, zookeeper.NodesPath)
	ticker := time.NewTicker(p.opts.ScanInterval)
	defer ticker.Stop()
	changed := make(chan string, 256)
	watches := map[string]context.CancelFunc{}
	defer func() {
		for _, cancel := range watches {
			cancel()
		}
	}()
	var children []string
	// Nodes are checked a few at a time. A node is never checked twice at once: a
	// change seen during a check marks it dirty and the check runs again.
	sem := make(chan struct{}, startConcurrency)
	var mu sync.Mutex
	inflight := map[string]bool{} // id -> dirty
	var wg sync.WaitGroup
	defer wg.Wait()
	check := func(id string) {
		mu.Lock()
		if _, busy := inflight[id]; busy {
			inflight[id] = true
			mu.Unlock()
			return
		}
		inflight[id] = false
		mu.Unlock()
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			for {
				p.considerNode(ctx, id)
				mu.Lock()
				if !inflight[id] || ctx.Err() != nil {
					delete(inflight, id)
					mu.Unlock()
					return
				}
				inflight[id] = false
				mu.Unlock()
			}
		}()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			children = ev.Children
			current := map[string]bool{}
			for _, id := range children {
				current[id] = true
				if _, ok := watches[id]; !ok {
					wctx, cancel := context.WithCancel(ctx)
					watches[id] = cancel
					go p.watchNodeData(wctx, id, changed)
					check(id)
				}
			}
			for id, cancel := range watches {
				if !current[id] {
					cancel()
					delete(watches, id)
					p.forgetNode(id)
				}
			}
		case id := <-changed:
			check(id)
		case <-ticker.C:
			for _, id := range children {
				if ctx.Err() != nil {
					return
				}
				check(id)
			}
		}
	}
}

// watchNodeData reports every data change of a node until it is deleted.
func (p *Poller) watchNodeData(ctx context.Context, id string, changed chan<- string) {
	for ctx.Err() == nil {
		_, ch, err := p.opts.ZK.GetW(ctx, zookeeper.NodePath(id))
		if errors.Is(err, zookeeper.ErrNotFound) {
			return
		}
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
				continue
			}
		}
		select {
		case <-ctx.Done():
			return
		case ev := <-ch:
			if ev.Type == zk.EventNodeDeleted {
				return
			}
			if ev.Type == zk.EventNodeDataChanged {
				select {
				case changed <- id:
				case <-ctx.Done():
					return
				}
			}
		}
	}
}

func (p *Poller) forgetNode(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.unlockedSince, id)
	delete(p.deleting, id)
	delete(p.holders, zookeeper.NodeLockPath(id))
}

func (p *Poller) considerNode(ctx context.Context, id string) {
	n, err := p.opts.ZK.GetNode(ctx, id)
	if errors.Is(err, zookeeper.ErrNotFound) {
		p.forgetNode(id)
		return
	}
	if err != nil {
		p.log.Debug("skipping unreadable node", "node_id", id, "error", err)
		return
	}
	if !p.opts.Policy.Providers[n.Provider] {
		return
	}
	// One read tells whether the node is locked and by whom.
	locked, owner, err := p.opts.ZK.LockHolder(ctx, zookeeper.NodeLockPath(id))
	if err != nil {
		return
	}
	if p.releaseIfStale(ctx, zookeeper.NodeLockPath(id), owner) {
		locked = false
	}
	now := p.now()
	p.mu.Lock()
	var unlockedFor time.Duration
	if locked {
		delete(p.unlockedSince, id)
	} else {
		since, ok := p.unlockedSince[id]
		if !ok {
			since = now
			p.unlockedSince[id] = now
		}
		unlockedFor = now.Sub(since)
	}
	requestExists := true
	if n.AllocatedTo != nil && *n.AllocatedTo != "" {
		requestExists = p.known[*n.AllocatedTo]
	}
	p.mu.Unlock()
	obs := lifecycle.Observation{Locked: locked, UnlockedFor: unlockedFor, RequestExists: requestExists}
	// "used" is acted on even while Zuul still holds the lock: it unlocks right after
	// writing it, and the deletion waits for the lock.
	if locked && n.State == zookeeper.NodeUsed {
		obs.Locked = false
	}
	reason := lifecycle.DeleteReason(n, obs, now, p.opts.Policy)
	if reason == "" {
		return
	}
	if p.ownedByRunningLaunch(ctx, n) {
		// An unlocked node of a launch whose workflow still runs is not orphaned: its
		// worker died and the workflow re-takes the lock on its next step.
		return
	}
	p.mu.Lock()
	if t, ok := p.deleting[id]; ok && now.Sub(t) < restartDeleteAfter {
		p.mu.Unlock()
		return
	}
	p.deleting[id] = now
	p.mu.Unlock()
	if err := p.startDelete(ctx, id, unlockedFor); err != nil {
		p.mu.Lock()
		delete(p.deleting, id)
		p.mu.Unlock()
		p.log.Warn("starting node deletion", "node_id", id, "error", err)
		return
	}
	p.log.Info("started node deletion", "node_id", id, "reason", reason)
}

// ownedByRunningLaunch reports whether a node that looks orphaned (init or building,
// unlocked) belongs to one of our request workflows that is still running.
func (p *Poller) ownedByRunningLaunch(ctx context.Context, n *zookeeper.Node) bool {
	if n.State != zookeeper.NodeBuilding && n.State != zookeeper.NodeInit && n.State != zookeeper.NodeReady {
		return false
	}
	if !p.opts.Policy.PoolIDs[n.Launcher] || n.AllocatedTo == nil || *n.AllocatedTo == "" {
		return false
	}
	return p.mayBeRunning(ctx, names.RequestWorkflowID(p.opts.TaskQueue, *n.AllocatedTo))
}

func (p *Poller) startDelete(ctx context.Context, id string, unlockedFor time.Duration) error {
	opts := client.StartWorkflowOptions{
		ID:                       names.DeleteWorkflowID(p.opts.TaskQueue, id),
		TaskQueue:                p.opts.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		EnableEagerStart:         true,
	}
	_, err := p.opts.Temporal.ExecuteWorkflow(ctx, opts, workflows.DeleteWorkflowType, workflows.DeleteInput{
		NodeID:           id,
		TaskQueue:        p.opts.TaskQueue,
		PollIntervalSec:  p.opts.PollInterval.Seconds(),
		UnlockedForSec:   unlockedFor.Seconds(),
		OrphanGraceSec:   p.opts.Policy.OrphanGrace.Seconds(),
		SearchAttributes: p.opts.SearchAttributes,
	})
	return err
}
