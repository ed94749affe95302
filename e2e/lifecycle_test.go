package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// Zuul deletes a fulfilled request before using its node (a gate reset, say): the
// ready node goes back to its pool, and the next request that allows reuse is served
// from it without a launch.
func TestReadyNodeOfCancelledRequestIsReused(t *testing.T) {
	cl := simCloud(5, "small")
	c := newCluster(t, clusterSpec{Clouds: []*cloudSpec{cl}})
	c.startLauncher("all")

	first := c.waitRequest(c.submit("100", "small"), 60*time.Second, stateIs(zookeeper.StateFulfilled))
	node := first.Nodes[0]
	require.NoError(t, c.zk.DeleteRequest(c.ctx(5*time.Second), first.ID))

	deadline := time.Now().Add(60 * time.Second)
	for {
		n := c.node(node)
		require.Equal(t, zookeeper.NodeReady, n.State, "the node is kept, not deleted")
		if n.AllocatedTo == nil {
			break
		}
		require.True(t, time.Now().Before(deadline), "the node was not given back to its pool")
		time.Sleep(200 * time.Millisecond)
	}

	second := c.waitRequest(c.submit("100", "small"), 30*time.Second, stateIs(zookeeper.StateFulfilled))
	require.Equal(t, []string{node}, second.Nodes, "the ready node serves the next request")
	require.EqualValues(t, 1, cloudStats(t, cl)["instances.created"], "nothing new is launched")
	n := c.node(node)
	require.Equal(t, second.ID, *n.AllocatedTo)

	c.giveBack(c.accept(second))
	c.waitNoNodes(30 * time.Second)
	waitCloudEmpty(t, cl, 30*time.Second)
}
