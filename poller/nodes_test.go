package poller

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/names"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

func TestPollerStartsDeletionsOnlyForDeletableNodes(t *testing.T) {
	zk, ft, stop := setup(t)
	defer stop()
	ctx := context.Background()
	mk := func(state zookeeper.NodeState, provider string) string {
		id, err := zk.CreateNode(ctx, &zookeeper.Node{State: state, Provider: provider, Pool: "main", Type: zookeeper.Labels{"small"},
			StateTime: float64(time.Now().Unix())})
		require.NoError(t, err)
		return id
	}
	used := mk(zookeeper.NodeUsed, "sim")
	ready := mk(zookeeper.NodeReady, "sim")
	foreign := mk(zookeeper.NodeUsed, "someone-elses")
	// As Zuul does: lock the ready node, then mark it in-use.
	inUse := mk(zookeeper.NodeReady, "sim")
	lock := zk.NewLock(zookeeper.NodeLockPath(inUse), "")
	ok, err := lock.TryAcquire(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	n, err := zk.GetNode(ctx, inUse)
	require.NoError(t, err)
	n.State = zookeeper.NodeInUse
	require.NoError(t, zk.UpdateNode(ctx, n))

	eventually(t, func() bool { return ft.count(names.DeleteWorkflowID("tq", used)) == 1 }, "used node not deleted")
	time.Sleep(500 * time.Millisecond)
	require.Zero(t, ft.count(names.DeleteWorkflowID("tq", ready)), "ready nodes are kept")
	require.Zero(t, ft.count(names.DeleteWorkflowID("tq", foreign)), "other launchers' nodes are theirs")
	require.Zero(t, ft.count(names.DeleteWorkflowID("tq", inUse)), "a locked in-use node belongs to Zuul")

	// Zuul's executor died: its lock vanished.
	require.NoError(t, lock.Release(ctx))
	eventually(t, func() bool { return ft.count(names.DeleteWorkflowID("tq", inUse)) == 1 }, "unlocked in-use node not deleted")
}

// rawNode creates a node znode with exactly data as its body.
func rawNode(t *testing.T, c *zookeeper.Client, data []byte) string {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, c.EnsurePath(ctx, zookeeper.NodesPath))
	p, err := c.Create(ctx, zookeeper.NodesPath+"/", data, zk.FlagSequence)
	require.NoError(t, err)
	return p[strings.LastIndex(p, "/")+1:]
}

func nodeExists(t *testing.T, c *zookeeper.Client, id string) bool {
	t.Helper()
	_, _, err := c.Get(context.Background(), zookeeper.NodePath(id))
	if errors.Is(err, zookeeper.ErrNotFound) {
		return false
	}
	require.NoError(t, err)
	return true
}

// Nodepool's cleanup removes node znodes without a record (kazoo's lock recipe re-creates
// a deleted node's znode empty when someone locks it late). A body that is not a JSON
// object at all is as useless; a JSON object with an unexpected field type may be a newer
// launcher's record and is kept.
func TestPollerRemovesUndecodableNodes(t *testing.T) {
	e := start(t, nil)
	ctx := context.Background()
	tests := []struct {
		name   string
		data   []byte
		locked bool
		remove bool
	}{
		{"empty", nil, false, true},
		{"whitespace", []byte("  \n"), false, true},
		{"not json", []byte("{not json"), false, true},
		{"json null", []byte("null"), false, true},
		{"json array", []byte(`["ready"]`), false, true},
		{"empty and locked", nil, true, false},
		{"object with a field of another type", []byte(`{"state": "ready", "provider": "sim", "type": 5}`), false, false},
		{"valid ready node", []byte(`{"state": "ready", "provider": "someone-elses", "type": ["small"]}`), false, false},
	}
	ids := make([]string, len(tests))
	for i, tc := range tests {
		ids[i] = rawNode(t, e.zk, tc.data)
		if tc.locked {
			// The lock directory is a child of the node: creating a contender below an
			// empty node znode is what leaves such znodes behind in the first place.
			lock := e.zk.NewLock(zookeeper.NodeLockPath(ids[i]), "zuul")
			ok, err := lock.TryAcquire(ctx)
			require.NoError(t, err)
			require.True(t, ok)
		}
	}
	// Within the grace period nothing is removed: a writer may still be filling it in.
	scans()
	for i, tc := range tests {
		require.True(t, nodeExists(t, e.zk, ids[i]), tc.name)
	}
	e.clock.Advance(badNodeGrace + time.Second)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.remove {
				eventually(t, func() bool { return !nodeExists(t, e.zk, ids[i]) }, "undecodable node not removed")
				return
			}
			scans()
			require.True(t, nodeExists(t, e.zk, ids[i]), "node removed")
		})
	}
	// The log names each undecodable node once, not once per scan.
	require.Equal(t, 1, strings.Count(e.logs.String(), "node_id="+ids[6]), e.logs.String())
}

// A ready node whose request Zuul deleted is given back to its pool, not deleted.
func TestPollerDeallocatesReadyNodesOfVanishedRequests(t *testing.T) {
	e := start(t, func(o *Options) { o.Now = nil; o.Policy.OrphanGrace = 200 * time.Millisecond })
	zk, ft := e.zk, e.ft
	ctx := context.Background()
	gone := "100-0000099999"
	id, err := zk.CreateNode(ctx, &zookeeper.Node{State: zookeeper.NodeReady, Provider: "sim", Pool: "main",
		Type: zookeeper.Labels{"small"}, AllocatedTo: &gone, StateTime: float64(time.Now().Unix())})
	require.NoError(t, err)
	eventually(t, func() bool {
		n, err := zk.GetNode(ctx, id)
		require.NoError(t, err)
		return n.AllocatedTo == nil
	}, "the ready node was not deallocated")
	n, err := zk.GetNode(ctx, id)
	require.NoError(t, err)
	require.Equal(t, zookeeper.NodeReady, n.State, "kept ready for the next request")
	locked, err := zk.IsLocked(ctx, zookeeper.NodeLockPath(id))
	require.NoError(t, err)
	require.False(t, locked)
	scans()
	require.Zero(t, ft.count(names.DeleteWorkflowID("tq", id)), "a deallocated ready node is kept")
}

// Nodes that Zuul returns together are deleted by a few workflows, not one each: while
// the first starts are under way, the nodes that must go gather into one DeleteNodes
// workflow, and every node is deleted exactly once.
func TestPollerBatchesDeletionsOfNodesReturnedTogether(t *testing.T) {
	e := start(t, func(o *Options) { o.Now = nil })
	gate := make(chan struct{})
	e.ft.mu.Lock()
	e.ft.gate = gate
	e.ft.mu.Unlock()
	var opened sync.Once
	open := func() { opened.Do(func() { close(gate) }) }
	// Cleanups run last-first: the gate opens before the poller is stopped, so a failed
	// assertion does not leave Run waiting for starts held at the gate.
	t.Cleanup(open)
	ctx := context.Background()
	const returned = 30
	var ids []string
	for range returned {
		id, err := e.zk.CreateNode(ctx, &zookeeper.Node{State: zookeeper.NodeUsed, Provider: "sim", Pool: "main",
			Type: zookeeper.Labels{"small"}, StateTime: float64(time.Now().Unix())})
		require.NoError(t, err)
		ids = append(ids, id)
	}
	queued := func() bool {
		e.p.mu.Lock()
		deleting := 0
		for _, id := range ids {
			if ns := e.p.nodes[id]; ns != nil && !ns.deleting.IsZero() {
				deleting++
			}
		}
		e.p.mu.Unlock()
		e.p.deletes.mu.Lock()
		defer e.p.deletes.mu.Unlock()
		return deleting == returned && e.p.deletes.inflight == deleteStartsInFlight && len(e.p.deletes.pending) > 0
	}
	// The first starts wait at the gate (each with the nodes queued when it began);
	// every other node queues behind them.
	eventually(t, queued, "deletions not queued")
	open()
	eventually(t, func() bool {
		for _, id := range ids {
			if e.ft.deletions("tq", id) != 1 {
				return false
			}
		}
		return true
	}, "not every node deleted once")
	scans()
	e.ft.mu.Lock()
	defer e.ft.mu.Unlock()
	starts := 0
	for _, n := range e.ft.starts {
		starts += n
	}
	require.LessOrEqual(t, starts, deleteStartsInFlight+1, "one workflow for the nodes that queued")
	require.NotEmpty(t, e.ft.batches)
	for _, b := range e.ft.batches {
		require.Equal(t, "tq", b.TaskQueue)
		require.LessOrEqual(t, len(b.Nodes), deleteBatchMax)
	}
}

// A watch's read that finishes after its node left the listing does not bring the node
// back: its last record ("deleting") with its lock gone would look like a node whose
// deletion must start again.
func TestPollerKeepsForgottenNodesForgotten(t *testing.T) {
	e := start(t, func(o *Options) { o.Now = nil })
	const id = "0000009999"
	deleting := &zookeeper.Node{State: zookeeper.NodeDeleting, Provider: "sim", Pool: "main", Type: zookeeper.Labels{"small"}}
	cases := []struct {
		name      string
		cancelled bool
		wantKept  bool
	}{
		{name: "a live watch records", wantKept: true},
		{name: "an ended watch records nothing", cancelled: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.p.forgetNode(id)
			wctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancelled {
				// As the listing does: the node's watches end, then it is forgotten.
				cancel()
			}
			kept := e.p.keepNode(wctx, id, func(ns *nodeState) { ns.rec = deleting })
			kept = e.p.keepNode(wctx, id, func(ns *nodeState) { ns.lockKnown, ns.locked = true, false }) && kept
			require.Equal(t, tc.wantKept, kept)
			if !tc.cancelled {
				return
			}
			e.p.mu.Lock()
			_, present := e.p.nodes[id]
			e.p.mu.Unlock()
			require.False(t, present, "the forgotten node stays forgotten")
			e.p.considerNode(context.Background(), id)
			require.Zero(t, e.ft.deletions("tq", id), "no deletion for a forgotten node")
		})
	}
	e.p.forgetNode(id)
}
