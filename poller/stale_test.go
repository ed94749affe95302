package poller

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/names"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

func strp(s string) *string { return &s }

// pendingRequest submits a request that a launcher of another pool accepted, with
// nodes allocated to it in the given states. Nobody holds its lock.
func pendingRequest(t *testing.T, c *zookeeper.Client, nodeStates ...zookeeper.NodeState) (string, []string) {
	t.Helper()
	ctx := context.Background()
	id := submit(t, c, zookeeper.StatePending, "upstream-PoolWorker.other-main")
	var nodes []string
	for _, st := range nodeStates {
		nid, err := c.CreateNode(ctx, &zookeeper.Node{State: st, Provider: "other", Pool: "main", Launcher: "upstream-PoolWorker.other-main",
			Type: zookeeper.Labels{"small"}, AllocatedTo: strp(id)})
		require.NoError(t, err)
		nodes = append(nodes, nid)
	}
	// As Nodepool, the launcher lists the nodes on the request only when it fulfils it.
	return id, nodes
}

func lockAs(t *testing.T, c *zookeeper.Client, path, owner string) {
	t.Helper()
	held, err := c.EnsureLock(context.Background(), path, owner)
	require.NoError(t, err)
	require.True(t, held)
}

func getRequest(t *testing.T, c *zookeeper.Client, id string) *zookeeper.NodeRequest {
	t.Helper()
	r, err := c.GetRequest(context.Background(), id)
	require.NoError(t, err)
	return r
}

func getNode(t *testing.T, c *zookeeper.Client, id string) *zookeeper.Node {
	t.Helper()
	n, err := c.GetNode(context.Background(), id)
	require.NoError(t, err)
	return n
}

// A pending request nobody holds locked belongs to a launcher that died: as Nodepool's
// lost-request cleanup does, it is handed back to "requested" and its nodes are released.
func TestPollerResetsLostRequests(t *testing.T) {
	e := start(t, nil)
	ctx := context.Background()
	other := connect(t, e.addr, e.chroot)

	lost, lostNodes := pendingRequest(t, e.zk, zookeeper.NodeReady, zookeeper.NodeBuilding, zookeeper.NodeInit, zookeeper.NodeReady)
	// Zuul holds the last node: it is not ours to change.
	lockAs(t, other, zookeeper.NodeLockPath(lostNodes[3]), "zuul")
	// A live launcher works on this one.
	held, _ := pendingRequest(t, e.zk, zookeeper.NodeBuilding)
	lockAs(t, other, zookeeper.RequestLockPath(held), "upstream")
	// One of our launches whose worker lost its ZooKeeper session: the workflow runs and
	// locks it again on its next step.
	ours, _ := pendingRequest(t, e.zk, zookeeper.NodeBuilding)
	e.ft.run(names.RequestWorkflowID("tq", ours), "chain-1")

	// Not before the grace period.
	scans()
	require.Equal(t, zookeeper.StatePending, getRequest(t, e.zk, lost).State)
	e.clock.Advance(lostRequestGrace + time.Second)

	eventually(t, func() bool { return getRequest(t, e.zk, lost).State == zookeeper.StateRequested }, "lost request not reset")
	r := getRequest(t, e.zk, lost)
	require.Empty(t, r.Nodes)
	require.Equal(t, []string{"upstream-PoolWorker.other-main"}, r.DeclinedBy, "declined_by is kept")
	for i, want := range []zookeeper.NodeState{zookeeper.NodeReady, zookeeper.NodeBuilding, zookeeper.NodeDeleting} {
		n := getNode(t, e.zk, lostNodes[i])
		require.Nil(t, n.AllocatedTo, "node %d deallocated", i)
		require.Equal(t, want, n.State, "node %d", i)
		locked, err := e.zk.IsLocked(ctx, zookeeper.NodeLockPath(lostNodes[i]))
		require.NoError(t, err)
		require.False(t, locked, "node %d unlocked again", i)
	}
	require.Equal(t, lost, *getNode(t, e.zk, lostNodes[3]).AllocatedTo, "a node someone holds is left alone")
	locked, err := e.zk.IsLocked(ctx, zookeeper.RequestLockPath(lost))
	require.NoError(t, err)
	require.False(t, locked, "request unlocked again")
	// Now it is an ordinary waiting request, and ours to serve.
	eventually(t, func() bool { return e.ft.runCount(names.RequestWorkflowID("tq", lost)) == 1 }, "reset request not started")

	scans()
	require.Equal(t, zookeeper.StatePending, getRequest(t, e.zk, held).State, "a locked request is someone's")
	require.Equal(t, zookeeper.StatePending, getRequest(t, e.zk, ours).State, "a request of a running workflow is its own")
}

// A request left pending by a run of our own workflow that ended (an operator terminated
// it) gets a new run, which takes the request and its nodes over.
func TestPollerRestartsPendingRequestsOfEndedRuns(t *testing.T) {
	e := start(t, nil)
	other := connect(t, e.addr, e.chroot)
	id, _ := pendingRequest(t, e.zk, zookeeper.NodeBuilding)
	wid := names.RequestWorkflowID("tq", id)
	lockAs(t, other, zookeeper.RequestLockPath(id), names.LockOwner(wid, "chain-1"))
	e.ft.run(wid, "chain-1")

	scans()
	e.clock.Advance(staleCheckAfter + time.Second)
	scans()
	require.Zero(t, e.ft.count(wid), "the run still runs")

	e.ft.terminate(wid)
	scans()
	e.clock.Advance(staleCheckAfter + time.Second)
	eventually(t, func() bool { return e.ft.runCount(wid) == 1 }, "no new run for a pending request of an ended run")
	locked, owner, err := e.zk.LockHolder(context.Background(), zookeeper.RequestLockPath(id))
	require.NoError(t, err)
	require.True(t, locked, "the new run takes the lock over itself")
	require.Equal(t, names.LockOwner(wid, "chain-1"), owner)
}

// Node locks of our workflows: a lock is released only when the run chain that owns it
// has ended, even if a new chain of the same workflow runs; and the many nodes of one
// launch cost one question to Temporal now and then, not one per node and scan.
func TestPollerReleasesNodeLocksOfEndedRunsOnly(t *testing.T) {
	e := start(t, nil)
	ctx := context.Background()
	other := connect(t, e.addr, e.chroot)
	mk := func(owner string) string {
		id, err := e.zk.CreateNode(ctx, &zookeeper.Node{State: zookeeper.NodeBuilding, Provider: "sim", Pool: "main",
			Launcher: testPoolID, Type: zookeeper.Labels{"small"}})
		require.NoError(t, err)
		lockAs(t, other, zookeeper.NodeLockPath(id), owner)
		return id
	}
	live := names.RequestWorkflowID("tq", "100-0000000001")
	e.ft.run(live, "chain-live")
	var liveNodes []string
	for range 40 {
		liveNodes = append(liveNodes, mk(names.LockOwner(live, "chain-live")))
	}
	replaced := names.RequestWorkflowID("tq", "100-0000000002")
	e.ft.run(replaced, "chain-new")
	old := mk(names.LockOwner(replaced, "chain-old"))
	ended := mk(names.LockOwner(names.RequestWorkflowID("tq", "100-0000000003"), "chain-gone"))
	foreign := mk("zuul")

	// Two minutes of scans, five seconds apart.
	for range 24 {
		time.Sleep(300 * time.Millisecond)
		e.clock.Advance(5 * time.Second)
	}
	eventually(t, func() bool {
		l1, _ := e.zk.IsLocked(ctx, zookeeper.NodeLockPath(old))
		l2, _ := e.zk.IsLocked(ctx, zookeeper.NodeLockPath(ended))
		return !l1 && !l2
	}, "locks of ended runs not released")
	for _, id := range append(liveNodes, foreign) {
		locked, err := e.zk.IsLocked(ctx, zookeeper.NodeLockPath(id))
		require.NoError(t, err)
		require.True(t, locked, "node %s", id)
	}
	e.ft.mu.Lock()
	asked := e.ft.describes[live]
	e.ft.mu.Unlock()
	t.Logf("asked about the running owner %d times", asked)
	require.LessOrEqual(t, asked, 12, "questions about one running owner of 40 node locks in 2 minutes")
}
