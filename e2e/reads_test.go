package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/internal/devstack"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// A launcher process reads a changed node record once: its poller, its activities
// (ready nodes, pool usage) and its stats share the records the poller's watches keep,
// instead of each watching the node tree. Counted by ZooKeeper itself (`cons`), for
// the launcher's session, against an idle window of the same length.
func TestLauncherReadsAChangedNodeOnce(t *testing.T) {
	c := newCluster(t, clusterSpec{Clouds: []*cloudSpec{{Provider: "sim", Labels: []string{"small"}, MaxServers: 2}}})
	c.startLauncher("all")
	ctx := c.ctx(time.Minute)
	sid := launcherSession(t, c)

	// A node of a provider nobody here serves: every reader keeps it, none acts on it.
	n := &zookeeper.Node{State: zookeeper.NodeReady, Provider: "elsewhere", Pool: "main", Type: zookeeper.Labels{"small"}}
	id, err := c.zk.CreateNode(ctx, n)
	require.NoError(t, err)
	n.ID = id
	time.Sleep(2 * time.Second) // read by everyone that keeps it

	const changes = 10
	const window = 3 * time.Second
	count := func() int64 {
		counts, err := devstack.ZooKeeperSessionRequests(ctx, c.zkAddr)
		require.NoError(t, err)
		v, ok := counts[sid]
		require.True(t, ok, "the launcher's session %#x is connected", sid)
		return v
	}
	before := count()
	time.Sleep(window)
	idle := count() - before

	before = count()
	for i := range changes {
		comment := fmt.Sprintf("change %d", i)
		n.Comment = &comment
		require.NoError(t, c.zk.UpdateNode(ctx, n))
		time.Sleep(window / changes)
	}
	busy := count() - before
	t.Logf("launcher session: %d requests idle, %d with %d changes of one node", idle, busy, changes)
	require.LessOrEqual(t, busy-idle, int64(changes+changes/2),
		"each change is read once in the process (twice or more when the poller and a node mirror both watch)")
}

// launcherSession returns the ZooKeeper session of the cluster's launcher: the owner
// of its ephemeral pool registrations.
func launcherSession(t *testing.T, c *cluster) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	regs, err := c.zk.Children(ctx, zookeeper.PoolComponentsPath)
	require.NoError(t, err)
	require.NotEmpty(t, regs, "the launcher registered its pools")
	_, stat, err := c.zk.Get(ctx, zookeeper.PoolComponentsPath+"/"+regs[0])
	require.NoError(t, err)
	require.NotZero(t, stat.EphemeralOwner)
	return stat.EphemeralOwner
}
