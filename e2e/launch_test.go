package e2e

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/internal/zuul"
	"github.com/nodepool-temporal/nodepool-temporal/names"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

const poolID = "e2e-PoolWorker.sim-main"

// requireDeclinedByOurPool checks that the sim pool declined req, under the id one of
// the launcher's processes registered it with.
func requireDeclinedByOurPool(t *testing.T, req *zookeeper.NodeRequest) {
	t.Helper()
	require.True(t, slices.ContainsFunc(req.DeclinedBy, func(id string) bool { return names.IsPoolInstance(id, poolID) }),
		"pool %s not in declined_by %v", poolID, req.DeclinedBy)
}

func simCloud(maxServers int, labels ...string) *cloudSpec {
	return &cloudSpec{Provider: "sim", MaxServers: maxServers, Labels: labels}
}

func TestOneLabelFulfilledThenDeletedWhenUsed(t *testing.T) {
	cl := simCloud(5, "small")
	c := newCluster(t, clusterSpec{Clouds: []*cloudSpec{cl}})
	c.startLauncher("all")

	submitted := c.submitRequest("100", "small")
	id := submitted.ID
	req := c.waitRequest(id, 60*time.Second, stateIs(zookeeper.StateFulfilled))
	require.Len(t, req.Nodes, 1)
	// Zuul's private data survives the launcher's rewrites.
	require.JSONEq(t, string(submitted.RequestorData), string(req.RequestorData))
	require.Contains(t, string(req.RequestorData), `"job_name":"tox"`)
	require.Equal(t, "tenant-one", *req.TenantName)
	require.NotNil(t, req.EventID)

	n := c.node(req.Nodes[0])
	require.Equal(t, zookeeper.NodeReady, n.State)
	require.Equal(t, zookeeper.Labels{"small"}, n.Type)
	require.Equal(t, "sim", n.Provider)
	require.Equal(t, "main", n.Pool)
	require.Equal(t, poolID, n.Launcher)
	require.Equal(t, id, *n.AllocatedTo)
	require.NotEmpty(t, n.InterfaceIP)
	require.Equal(t, "ssh", *n.ConnectionType)
	require.JSONEq(t, "22", string(n.ConnectionPort))
	require.Equal(t, "zuul-user", *n.Username)
	require.Equal(t, "auto", *n.PythonPath)
	require.NotNil(t, n.HostKeys)
	require.Equal(t, "tenant-one", *n.TenantName)
	require.Equal(t, "zuul-e2e", *n.Requestor)
	require.Equal(t, "e2e", n.Attributes["executor-zone"])
	require.EqualValues(t, 1, n.Resources["instances"])
	require.NotEmpty(t, n.ExternalIDString())
	locked, err := c.zk.IsLocked(c.ctx(5*time.Second), zookeeper.NodeLockPath(n.ID))
	require.NoError(t, err)
	require.False(t, locked, "fulfilled nodes are unlocked for Zuul")

	held := c.accept(req)
	c.giveBack(held)
	c.waitNoNodes(30 * time.Second)
	waitCloudEmpty(t, cl, 30*time.Second)
	require.EqualValues(t, 1, cloudStats(t, cl)["instances.created"])
}

func TestNodesFollowNodeTypesOrder(t *testing.T) {
	cl := simCloud(10, "small", "large", "medium")
	c := newCluster(t, clusterSpec{Clouds: []*cloudSpec{cl}})
	c.startLauncher("all")

	labels := []string{"large", "small", "large", "medium"}
	id := c.submit("200", labels...)
	req := c.waitRequest(id, 60*time.Second, stateIs(zookeeper.StateFulfilled))
	require.Len(t, req.Nodes, len(labels))
	for i, nid := range req.Nodes {
		require.Equal(t, zookeeper.Labels{labels[i]}, c.node(nid).Type, "node %d", i)
	}
}

func TestUnknownLabelFails(t *testing.T) {
	cl := simCloud(5, "small")
	c := newCluster(t, clusterSpec{Clouds: []*cloudSpec{cl}})
	c.startLauncher("all")
	id := c.submit("100", "small", "no-such-label")
	req := c.waitRequest(id, 60*time.Second, stateIs(zookeeper.StateFailed))
	requireDeclinedByOurPool(t, req)
	require.Empty(t, c.nodeIDs())
	require.EqualValues(t, 0, cloudStats(t, cl)["instances.created"])
}

func TestRequestDeletedMidLaunchLeavesNothing(t *testing.T) {
	cl := simCloud(5, "small")
	cl.BootSteps = "[3, 3]"
	c := newCluster(t, clusterSpec{Clouds: []*cloudSpec{cl}})
	c.startLauncher("all")
	id := c.submit("100", "small", "small")
	c.waitRequest(id, 60*time.Second, stateIs(zookeeper.StatePending))
	// Wait until the cloud is building the instances, then cancel as Zuul does.
	deadline := time.Now().Add(30 * time.Second)
	for cloudStats(t, cl)["instances"] < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	require.EqualValues(t, 2, cloudStats(t, cl)["instances"])
	require.NoError(t, c.zk.DeleteRequest(c.ctx(5*time.Second), id))
	c.waitNoNodes(60 * time.Second)
	waitCloudEmpty(t, cl, 30*time.Second)
}

func TestHeldNodeKeptUntilExpiry(t *testing.T) {
	cl := simCloud(5, "small")
	c := newCluster(t, clusterSpec{Clouds: []*cloudSpec{cl}, MaxHoldAge: 3600})
	c.startLauncher("all")
	id := c.submit("100", "small")
	req := c.waitRequest(id, 60*time.Second, stateIs(zookeeper.StateFulfilled))
	held := c.accept(req)
	// The build failed under an autohold: Zuul holds the node for 4 seconds.
	require.NoError(t, held.Hold(c.ctx(10*time.Second), zuul.Hold{
		Job: "tenant-one project tox refs/heads/.*", Reason: "debugging", Expiration: 4 * time.Second,
	}))
	c.giveBack(held)
	heldAt := time.Now()
	time.Sleep(2 * time.Second)
	n := c.node(req.Nodes[0])
	require.Equal(t, zookeeper.NodeHold, n.State, "a held node is kept")
	require.Equal(t, "debugging", *n.Comment)
	c.waitNoNodes(30 * time.Second)
	require.GreaterOrEqual(t, time.Since(heldAt), 4*time.Second, "not deleted before its hold expired")
	waitCloudEmpty(t, cl, 30*time.Second)
}

func TestPriorityOrderAtQuota(t *testing.T) {
	cl := simCloud(1, "small")
	cl.BootSteps = "[0.1]"
	c := newCluster(t, clusterSpec{Clouds: []*cloudSpec{cl}})
	c.startLauncher("all")

	blocker := c.waitRequest(c.submit("100", "small"), 60*time.Second, stateIs(zookeeper.StateFulfilled))
	held := c.accept(blocker)

	// Submitted in the opposite of the order they must be served in.
	low := c.submit("300", "small")
	normal := c.submit("200", "small")
	high := c.submit("100", "small")
	time.Sleep(2 * time.Second)
	for _, id := range []string{low, normal, high} {
		r := c.waitRequest(id, 5*time.Second, func(*zookeeper.NodeRequest) bool { return true })
		require.Equal(t, zookeeper.StateRequested, r.State, "waits while the pool is full")
	}
	pools, err := c.zk.ListPools(c.ctx(5 * time.Second))
	require.NoError(t, err)
	require.Len(t, pools, 1)
	require.True(t, pools[0].Paused, "the pool registers as paused while requests wait")

	c.giveBack(held)
	var order []string
	for range 3 {
		var next *zookeeper.NodeRequest
		deadline := time.Now().Add(60 * time.Second)
		for next == nil && time.Now().Before(deadline) {
			for _, id := range []string{high, normal, low} {
				r, err := c.zk.GetRequest(c.ctx(5*time.Second), id)
				if err == nil && r.State == zookeeper.StateFulfilled {
					next = r
					break
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		require.NotNil(t, next)
		order = append(order, next.ID)
		c.giveBack(c.accept(next))
	}
	require.Equal(t, []string{high, normal, low}, order)
}

// One request for 500 nodes: accepted in batches, launched in parallel, fulfilled with
// every node; Zuul uses and returns them all, and every instance is deleted once.
func TestOneRequestForFiveHundredNodes(t *testing.T) {
	const n = 500
	cl := simCloud(n, "small")
	cl.BootSteps = "[0.1]"
	c := newCluster(t, clusterSpec{Clouds: []*cloudSpec{cl}})
	c.startLauncher("all")

	labels := make([]string, n)
	for i := range labels {
		labels[i] = "small"
	}
	id := c.submit("100", labels...)
	req := c.waitRequest(id, 5*time.Minute, stateIs(zookeeper.StateFulfilled))
	require.Len(t, req.Nodes, n)
	require.Len(t, distinct(req.Nodes), n, "every node once")
	c.requireEagerStart(names.RequestWorkflowID(c.taskQueue, id))
	held := c.accept(req)
	c.giveBack(held)
	c.waitNoNodes(5 * time.Minute)
	waitCloudEmpty(t, cl, time.Minute)
	st := cloudStats(t, cl)
	require.EqualValues(t, n, st["instances.created"], "one instance per node")
	require.EqualValues(t, 0, st["instances.duplicate_nodes"])

	// Returned together, the nodes were deleted by a few batch workflows, each node
	// by exactly one deletion; the batches' first tasks went straight to the worker.
	deleted := map[string]int{}
	var workflowsUsed int
	require.Eventually(t, func() bool {
		singles, batches := c.deletions(req.Nodes)
		clear(deleted)
		for _, id := range singles {
			deleted[id]++
		}
		for _, ids := range batches {
			for _, id := range ids {
				deleted[id]++
			}
		}
		workflowsUsed = len(singles) + len(batches)
		return len(deleted) == n
	}, time.Minute, time.Second, "every node's deletion workflow listed")
	for id, times := range deleted {
		require.Equal(t, 1, times, "node %s deleted by one workflow", id)
	}
	require.Less(t, workflowsUsed, n/2, "nodes returned together share deletion workflows")
	_, batches := c.deletions(req.Nodes)
	for wid := range batches {
		c.requireEagerStart(wid)
	}
}

func distinct(ids []string) map[string]bool {
	out := map[string]bool{}
	for _, id := range ids {
		out[id] = true
	}
	return out
}
