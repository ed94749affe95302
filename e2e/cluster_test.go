package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/nodepool-temporal/nodepool-temporal/internal/devstack"
	"github.com/nodepool-temporal/nodepool-temporal/internal/devstack/zkready"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// clusterTestsEnv set to "0" skips the tests on the production topology; they need
// PostgreSQL (scripts/install-deps.sh installs it).
const clusterTestsEnv = "NODEPOOL_CLUSTER_TESTS"

// TestClusterTopologyServesZuul runs the production topology (devstack.StartCluster:
// PostgreSQL with SQL visibility, the four Temporal services as separate processes, a
// three-member ZooKeeper ensemble, two pollers, three workers) and acts as Zuul through
// ZooKeeper only: a single-label and a multi-label request are fulfilled, their nodes
// used and returned, then deleted with their instances; the request workflows are found
// in PostgreSQL visibility by the project's search attribute; and with one ZooKeeper
// member down a further request is served by the remaining quorum.
func TestClusterTopologyServesZuul(t *testing.T) {
	if os.Getenv(clusterTestsEnv) == "0" {
		t.Skipf("%s=0", clusterTestsEnv)
	}
	dir, err := os.MkdirTemp("", "e2e-cluster-")
	require.NoError(t, err)
	var zk *zookeeper.Client
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dc, err := devstack.StartCluster(ctx, devstack.ClusterOptions{
		Options:  devstack.Options{Dir: dir, BinDir: binDir},
		Pollers:  2,
		Workers:  3,
		UIPort:   -1,
		SimCloud: devstack.SimCloudConfig{Seed: 7, BootSteps: []float64{0.2, 0.3}, DeleteLatency: 0.2},
		PollerReady: func(ctx context.Context, dc *devstack.Cluster) (func(context.Context) error, error) {
			zctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			var err error
			if zk, err = zookeeper.Connect(zctx, zookeeper.Options{Servers: dc.ZooKeeperAddrs(), Logger: slog.New(slog.DiscardHandler)}); err != nil {
				return nil, fmt.Errorf("connecting to ZooKeeper: %w", err)
			}
			return zkready.PoolsRegistered(zk, devstack.ClusterProvider), nil
		},
	})
	if zk != nil {
		t.Cleanup(zk.Close)
	}
	require.NoError(t, err, "starting the cluster; logs in %s", dir)
	t.Cleanup(func() {
		if err := dc.Stop(); err != nil {
			t.Logf("stopping the cluster: %v", err)
		}
		if t.Failed() {
			t.Logf("configuration and logs kept in %s", dir)
		} else {
			_ = os.RemoveAll(dir)
		}
	})
	c := &cluster{t: t, stack: dc.Stack, cfgPath: dc.Config, taskQueue: "nodepool", providers: []string{devstack.ClusterProvider}, zk: zk}
	cloud := &cloudSpec{Provider: devstack.ClusterProvider, URL: dc.SimCloud.URL}

	// Zuul's requests, served across the pollers and workers.
	single := c.submit("100", "ubuntu-jammy")
	multi := c.submit("100", "debian-bookworm", "large", "ubuntu-jammy")
	reqSingle := c.waitRequest(single, 2*time.Minute, stateIs(zookeeper.StateFulfilled))
	reqMulti := c.waitRequest(multi, 2*time.Minute, stateIs(zookeeper.StateFulfilled))
	require.Len(t, reqSingle.Nodes, 1)
	require.Len(t, reqMulti.Nodes, 3)
	for i, label := range []string{"debian-bookworm", "large", "ubuntu-jammy"} {
		n := c.node(reqMulti.Nodes[i])
		require.Equal(t, zookeeper.Labels{label}, n.Type, "nodes follow the request's node types")
		require.Equal(t, zookeeper.NodeReady, n.State)
		require.Equal(t, multi, *n.AllocatedTo)
	}

	// The request workflows are in PostgreSQL visibility, with their search attributes.
	tc, err := client.Dial(client.Options{HostPort: dc.Temporal.Addr, Logger: quietLogger{}})
	require.NoError(t, err)
	defer tc.Close()
	for _, id := range []string{single, multi} {
		require.Eventually(t, func() bool {
			resp, err := tc.ListWorkflow(c.ctx(10*time.Second), &workflowservice.ListWorkflowExecutionsRequest{
				Namespace: "default",
				Query:     fmt.Sprintf("NodepoolRequestID = '%s'", id),
			})
			return err == nil && len(resp.GetExecutions()) == 1
		}, 30*time.Second, 200*time.Millisecond, "request %s's workflow by NodepoolRequestID", id)
	}

	for _, req := range []*zookeeper.NodeRequest{reqSingle, reqMulti} {
		c.giveBack(c.accept(req))
	}
	c.waitNoNodes(time.Minute)
	waitCloudEmpty(t, cloud, time.Minute)

	// One member of three down: the others keep a quorum and serve on.
	member := dc.Stack.Proc(devstack.ClusterZooKeeperName(3))
	require.NoError(t, member.Stop())
	// When the member stopped was the leader, the other two elect a new one first
	// (clients are refused meanwhile, as Zuul's would be, and retry): wait for a leader
	// and a follower, then for the test's session to be served again.
	addrs := dc.ZooKeeperAddrs()
	require.Eventually(t, func() bool {
		modes := []string{devstack.ZooKeeperMode(addrs[0]), devstack.ZooKeeperMode(addrs[1])}
		return slices.Contains(modes, "leader") && slices.Contains(modes, "follower")
	}, time.Minute, 200*time.Millisecond, "the remaining members elect a leader")
	require.Eventually(t, func() bool {
		_, err := c.zk.ListNodes(c.ctx(5 * time.Second))
		return err == nil
	}, time.Minute, 200*time.Millisecond, "the remaining members serve again")
	third := c.waitRequest(c.submit("100", "large"), 2*time.Minute, stateIs(zookeeper.StateFulfilled))
	c.giveBack(c.accept(third))
	c.waitNoNodes(time.Minute)
	waitCloudEmpty(t, cloud, time.Minute)
	require.NoError(t, member.Start(c.ctx(2*time.Minute)), "the member rejoins")
	require.NoError(t, dc.CheckAlive())
	require.EqualValues(t, 5, cloudStats(t, cloud)["instances.created"], "one instance per node")
}
