package e2e

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

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

// A change of the configuration file applies without a restart: a label added to a
// pool is served, and a file that does not validate is refused while the running
// configuration stays in force.
func TestConfigurationReloadsWithoutRestart(t *testing.T) {
	cl := simCloud(5, "small")
	c := newCluster(t, clusterSpec{Clouds: []*cloudSpec{cl}})
	launcher := c.startLauncher("all")

	data, err := os.ReadFile(c.cfgPath)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal(data, &doc))

	// A broken file first: refused, the launcher keeps serving.
	require.NoError(t, os.WriteFile(c.cfgPath, append(append([]byte{}, data...), []byte("max-hold-age: forever\n")...), 0o644))
	waitLog(t, launcher.LogPath(), "refusing the changed configuration", 30*time.Second)
	c.waitRequest(c.submit("100", "small"), 60*time.Second, stateIs(zookeeper.StateFulfilled))

	// Then a new label on the pool.
	doc["labels"] = append(doc["labels"].([]any), map[string]any{"name": "large"})
	pool := doc["providers"].([]any)[0].(map[string]any)["pools"].([]any)[0].(map[string]any)
	pool["labels"] = append(pool["labels"].([]any), map[string]any{"name": "large", "flavor": "small", "cloud-image": "img"})
	out, err := yaml.Marshal(doc)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(c.cfgPath, out, 0o644))
	waitLog(t, launcher.LogPath(), "configuration reloaded", 30*time.Second)

	req := c.waitRequest(c.submit("100", "large"), 90*time.Second, stateIs(zookeeper.StateFulfilled, zookeeper.StateFailed))
	require.Equal(t, zookeeper.StateFulfilled, req.State, "the new label is served without a restart")
	require.Equal(t, zookeeper.Labels{"large"}, c.node(req.Nodes[0]).Type)
}

// waitLog waits until the log file at path contains text.
func waitLog(t *testing.T, path, text string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		data, _ := os.ReadFile(path)
		if strings.Contains(string(data), text) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q not logged within %s", text, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// min-ready keeps ready nodes of a label, in upstream's visible form, and a request
// that allows reuse is served from them at once.
func TestMinReadyKeepsReadyNodesForReuse(t *testing.T) {
	cl := simCloud(5, "small")
	c := newCluster(t, clusterSpec{Clouds: []*cloudSpec{cl}})
	data, err := os.ReadFile(c.cfgPath)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal(data, &doc))
	doc["labels"].([]any)[0].(map[string]any)["min-ready"] = 2
	out, err := yaml.Marshal(doc)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(c.cfgPath, out, 0o644))
	// Two launcher processes: one coordinator between them, so no overshoot.
	c.startLauncher("all")
	c.startLauncher("all")

	readyUnallocated := func() []string {
		var ids []string
		for _, id := range c.nodeIDs() {
			n, err := c.zk.GetNode(c.ctx(5*time.Second), id)
			if err == nil && n.State == zookeeper.NodeReady && n.AllocatedTo == nil {
				ids = append(ids, id)
			}
		}
		return ids
	}
	deadline := time.Now().Add(90 * time.Second)
	for len(readyUnallocated()) < 2 {
		require.True(t, time.Now().Before(deadline), "min-ready nodes not launched; nodes: %v", c.nodeIDs())
		time.Sleep(300 * time.Millisecond)
	}
	time.Sleep(20 * time.Second) // more coordinator passes: nothing more is launched
	require.Len(t, c.nodeIDs(), 2, "exactly min-ready nodes, however many launchers run")
	require.EqualValues(t, 2, cloudStats(t, cl)["instances.created"])

	spare := readyUnallocated()
	req := c.waitRequest(c.submit("100", "small"), 30*time.Second, stateIs(zookeeper.StateFulfilled))
	require.Contains(t, spare, req.Nodes[0], "the request is served from a min-ready node")
	c.giveBack(c.accept(req))
}
