package poller

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/names"

	"github.com/go-zookeeper/zk"

	"github.com/nodepool-temporal/nodepool-temporal/lifecycle"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// restartDeleteAfter is how long the poller waits before starting a deletion again for
// a node it already started one for (a finished deletion that kept the node, say).
const restartDeleteAfter = 15 * time.Second

// badNodeGrace is how long a node znode must stay without a record (empty, or not a
// JSON object) before it is removed, as Nodepool's cleanup removes empty node znodes.
// Such znodes appear when a lock recipe re-creates a deleted node's lock directory.
const badNodeGrace = time.Minute

// nodeState is what the poller remembers about one listed node.
type nodeState struct {
	// unlockedSince is when the node was first seen unlocked (zero while locked).
	unlockedSince time.Time
	// deleting is when a deletion was last started for it.
	deleting time.Time
	// allocatedTo is the request the node was last seen allocated to.
	allocatedTo string
	// badSince is when its record was first seen undecodable; badVersion is the
	// version last reported.
	badSince   time.Time
	badVersion int32
	// rec is the record last read by the node's data watch; decodeErr is set instead
	// when it could not be decoded.
	rec       *zookeeper.Node
	decodeErr error
	// lockKnown, locked and owner are the state of the node's lock as last watched.
	lockKnown bool
	locked    bool
	owner     string
}

// node returns the state of node id, creating it; p.mu must be held.
func (p *Poller) node(id string) *nodeState {
	ns := p.nodes[id]
	if ns == nil {
		ns = &nodeState{}
		p.nodes[id] = ns
	}
	return ns
}

// watchNodes reacts to the node tree. Every node has a data watch and a watch on its
// lock, which keep its record and lock state, so a node is read when it appears and when
// it or its lock changes: a node that Zuul marks "used" or unlocks is seen at once. A
// periodic scan acts on what changes with time (a hold that expired, how long a node has
// been unlocked) from the kept state, without reading.
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
					wg.Add(2)
					go func() { defer wg.Done(); p.watchNodeData(wctx, id, changed) }()
					go func() { defer wg.Done(); p.watchNodeLock(wctx, id, changed) }()
				}
			}
			for id, cancel := range watches {
				if !current[id] {
					cancel()
					delete(watches, id)
					p.forgetNode(id)
				}
			}
			p.mu.Lock()
			p.nodeListing = current
			p.mu.Unlock()
		case id := <-changed:
			check(id)
		case <-ticker.C:
			p.pruneNodes(watches)
			for _, id := range children {
				if ctx.Err() != nil {
					return
				}
				check(id)
			}
		}
	}
}

// watchNodeData keeps node id's record and reports every change of it until the node is
// deleted or ctx ends.
func (p *Poller) watchNodeData(ctx context.Context, id string, changed chan<- string) {
	retry := watchRetry
	for ctx.Err() == nil {
		n, _, watch, err := p.opts.ZK.GetNodeW(ctx, id)
		p.nodeReads.Add(1)
		if errors.Is(err, zookeeper.ErrNotFound) || ctx.Err() != nil {
			return
		}
		var de *zookeeper.DecodeError
		if err != nil && !errors.As(err, &de) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(retry):
			}
			retry = min(2*retry, watchRetryMax)
			continue
		}
		retry = watchRetry
		if !p.keepNode(ctx, id, func(ns *nodeState) {
			ns.rec, ns.decodeErr = n, err
			ns.allocatedTo = ""
			if n != nil {
				ns.badSince = time.Time{}
				if n.AllocatedTo != nil {
					ns.allocatedTo = *n.AllocatedTo
				}
			}
		}) {
			return
		}
		select {
		case changed <- id:
		case <-ctx.Done():
			return
		}
		select {
		case <-ctx.Done():
			return
		case ev := <-watch:
			if ev.Type == zk.EventNodeDeleted {
				return
			}
		}
	}
}

// watchNodeLock keeps the state of node id's lock and reports every change of it until
// ctx ends.
func (p *Poller) watchNodeLock(ctx context.Context, id string, changed chan<- string) {
	for ev := range p.opts.ZK.WatchLock(ctx, zookeeper.NodeLockPath(id)) {
		p.nodeReads.Add(int64(ev.Reads))
		if !p.keepNode(ctx, id, func(ns *nodeState) {
			ns.lockKnown, ns.locked, ns.owner = true, ev.Locked, ev.Owner
		}) {
			return
		}
		select {
		case changed <- id:
		case <-ctx.Done():
			return
		}
	}
}

// keepNode records what node id's watch (whose context is ctx) saw, through set. It
// reports false, recording nothing, once the watch has ended: the node left the listing
// and was forgotten, and a read that was under way must not bring back its last record
// (a "deleting" node with its lock gone looks like one whose deletion must start again).
// Watches end (their context cancelled) before their node is forgotten, and both
// happen under p.mu here, so a forgotten node stays forgotten.
func (p *Poller) keepNode(ctx context.Context, id string, set func(*nodeState)) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ctx.Err() != nil {
		return false
	}
	set(p.node(id))
	return true
}

func (p *Poller) forgetNode(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.nodes, id)
	delete(p.holders, zookeeper.NodeLockPath(id))
}

// pruneNodes forgets the nodes that are not listed any more (a check that was under way
// when its node vanished may have recorded it again).
func (p *Poller) pruneNodes(listed map[string]context.CancelFunc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id := range p.nodes {
		if _, ok := listed[id]; !ok {
			delete(p.nodes, id)
		}
	}
	for path := range p.holders {
		if id, ok := nodeIDOfLockPath(path); ok {
			if _, live := listed[id]; !live {
				delete(p.holders, path)
			}
		}
	}
}

// nodeIDOfLockPath returns the node id of a node lock directory.
func nodeIDOfLockPath(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, zookeeper.NodesPath+"/")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, "/lock")
}

// considerNode acts on node id as its watches last saw it and its lock.
func (p *Poller) considerNode(ctx context.Context, id string) {
	p.mu.Lock()
	ns := p.nodes[id]
	if ns == nil {
		p.mu.Unlock()
		return
	}
	n, decodeErr, lockKnown, locked, owner := ns.rec, ns.decodeErr, ns.lockKnown, ns.locked, ns.owner
	p.mu.Unlock()
	if decodeErr != nil {
		p.considerBadNode(ctx, id, decodeErr)
		return
	}
	// Acted on once both its record and its lock have been seen.
	if n == nil || !lockKnown || !p.opts.Policy.Providers[n.Provider] {
		return
	}
	if p.releaseIfStale(ctx, zookeeper.NodeLockPath(id), owner) {
		locked = false
	}
	now := p.now()
	p.mu.Lock()
	if ns = p.nodes[id]; ns == nil {
		// Forgotten while being looked at: it left the listing.
		p.mu.Unlock()
		return
	}
	var unlockedFor time.Duration
	if locked {
		ns.unlockedSince = time.Time{}
	} else {
		if ns.unlockedSince.IsZero() {
			ns.unlockedSince = now
		}
		unlockedFor = now.Sub(ns.unlockedSince)
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
	if lifecycle.Deallocate(n, obs, p.opts.Policy) {
		// Given back to its pool for reuse, as Nodepool does, once the request is
		// confirmed gone.
		req := *n.AllocatedTo
		_, err := p.opts.ZK.GetRequest(ctx, req)
		p.nodeReads.Add(1)
		if errors.Is(err, zookeeper.ErrNotFound) && p.deallocate(ctx, id, req) {
			p.log.Info("deallocated ready node of a vanished request", "node_id", id, "request_id", req)
		}
		return
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
	if ns = p.nodes[id]; ns == nil || (!ns.deleting.IsZero() && now.Sub(ns.deleting) < restartDeleteAfter) {
		p.mu.Unlock()
		return
	}
	ns.deleting = now
	p.mu.Unlock()
	p.log.Info("deleting node", "node_id", id, "reason", reason)
	p.startDelete(ctx, id, unlockedFor.Seconds())
}

// considerBadNode handles a node whose record cannot be decoded. A znode without a
// record (empty, or not a JSON object) that stays so for badNodeGrace and is unlocked is
// removed with its lock directory. A JSON object with a field of an unexpected type may
// be a record of a newer launcher and is left alone. Either is logged once per version.
func (p *Poller) considerBadNode(ctx context.Context, id string, decodeErr error) {
	data, stat, err := p.opts.ZK.Get(ctx, zookeeper.NodePath(id))
	p.nodeReads.Add(1)
	if errors.Is(err, zookeeper.ErrNotFound) {
		p.forgetNode(id)
		return
	}
	if err != nil {
		return
	}
	removable := !isJSONObject(data)
	now := p.now()
	p.mu.Lock()
	ns := p.nodes[id]
	if ns == nil {
		// Forgotten meanwhile: it left the listing.
		p.mu.Unlock()
		return
	}
	fresh := ns.badSince.IsZero() || ns.badVersion != stat.Version
	if ns.badSince.IsZero() {
		ns.badSince = now
	}
	ns.badVersion = stat.Version
	ns.allocatedTo = ""
	since := ns.badSince
	p.mu.Unlock()
	if fresh {
		if removable {
			p.log.Warn("node znode has no record; removing it unless it gets one", "node_id", id, "version", stat.Version,
				"grace", badNodeGrace, "error", decodeErr)
		} else {
			p.log.Warn("ignoring node with an unreadable record", "node_id", id, "version", stat.Version, "error", decodeErr)
		}
	}
	if !removable || now.Sub(since) < badNodeGrace {
		return
	}
	locked, err := p.opts.ZK.IsLocked(ctx, zookeeper.NodeLockPath(id))
	p.nodeReads.Add(1)
	if err != nil || locked {
		return
	}
	// Removed only as it was seen: a record written meanwhile is looked at again.
	data, again, err := p.opts.ZK.Get(ctx, zookeeper.NodePath(id))
	p.nodeReads.Add(1)
	if err != nil || again.Version != stat.Version || isJSONObject(data) {
		return
	}
	if err := p.opts.ZK.DeleteRecursive(ctx, zookeeper.NodePath(id)); err != nil {
		p.log.Warn("removing node znode without a record", "node_id", id, "error", err)
		return
	}
	p.forgetNode(id)
	p.log.Info("removed node znode without a record", "node_id", id)
}

// isJSONObject reports whether data is a JSON object.
func isJSONObject(data []byte) bool {
	data = bytes.TrimSpace(data)
	return len(data) > 0 && data[0] == '{' && json.Valid(data)
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
