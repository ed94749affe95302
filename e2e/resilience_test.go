package e2e

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/names"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/temporal"

	"github.com/nodepool-temporal/nodepool-temporal/workflows"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// serveAll acts as Zuul for a set of requests: every request that is fulfilled is
// accepted at once and given back after hold, until all are done. It returns the
// requests in the order they were fulfilled.
func (c *cluster) serveAll(ids []string, hold, timeout time.Duration) []string {
	c.t.Helper()
	pending := map[string]bool{}
	for _, id := range ids {
		pending[id] = true
	}
	var order []string
	var wg sync.WaitGroup
	deadline := time.Now().Add(timeout)
	for len(pending) > 0 {
		if time.Now().After(deadline) {
			c.t.Fatalf("requests not fulfilled within %s: %v", timeout, pending)
		}
		for _, id := range ids {
			if !pending[id] {
				continue
			}
			r, err := c.zk.GetRequest(c.ctx(5*time.Second), id)
			if err != nil {
				continue
			}
			require.NotEqual(c.t, zookeeper.StateFailed, r.State, "request %s failed: declined by %v", id, r.DeclinedBy)
			if r.State != zookeeper.StateFulfilled {
				continue
			}
			delete(pending, id)
			order = append(order, id)
			held := c.accept(r)
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(hold)
				c.giveBack(held)
			}()
		}
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	return order
}

// peakSampler records the most instances a cloud ever held at once.
func peakSampler(t *testing.T, cl *cloudSpec) (stop func() int64) {
	ctx, cancel := context.WithCancel(context.Background())
	var peak int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if n := cloudStats(t, cl)["instances"]; n > peak {
				peak = n
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return func() int64 { cancel(); <-done; return peak }
}

func TestMaxServersHoldsWithTwoWorkerProcesses(t *testing.T) {
	cl := simCloud(3, "small")
	cl.BootSteps = "[0.2, 0.2]"
	cl.DeleteLatency = 0.2
	c := newCluster(t, clusterSpec{Clouds: []*cloudSpec{cl}})
	c.startLauncher("all")
	c.startLauncher("worker")
	stop := peakSampler(t, cl)

	var ids []string
	for range 10 {
		ids = append(ids, c.submit("200", "small"))
	}
	c.serveAll(ids, 300*time.Millisecond, 3*time.Minute)
	c.waitNoNodes(60 * time.Second)
	waitCloudEmpty(t, cl, 30*time.Second)
	peak := stop()
	st := cloudStats(t, cl)
	require.LessOrEqual(t, peak, int64(3), "max-servers exceeded")
	require.EqualValues(t, 10, st["instances.created"], "one instance per node, no duplicates")
	require.EqualValues(t, 0, st["instances.duplicate_nodes"])
}

func TestWorkerKilledMidBurstLosesNothing(t *testing.T) {
	cl := simCloud(20, "small")
	cl.BootSteps = "[1, 1.5]"
	c := newCluster(t, clusterSpec{Clouds: []*cloudSpec{cl}})
	first := c.startLauncher("all")

	var ids []string
	for range 8 {
		ids = append(ids, c.submit("200", "small"))
	}
	// Kill the only launcher while the cloud is booting the burst.
	deadline := time.Now().Add(60 * time.Second)
	for cloudStats(t, cl)["instances.building"] < 4 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	first.kill9()
	time.Sleep(time.Second)
	c.startLauncher("all")

	c.serveAll(ids, 0, 3*time.Minute)
	c.waitNoNodes(60 * time.Second)
	waitCloudEmpty(t, cl, 30*time.Second)
	st := cloudStats(t, cl)
	require.EqualValues(t, 8, st["instances.created"], "no duplicate instance after the crash")
	require.EqualValues(t, 0, st["instances.duplicate_nodes"])
}

func TestOperatorCancelAndHoldSignal(t *testing.T) {
	cl := simCloud(5, "small", "slow")
	// Boots never finish within the launch timeout, so every attempt fails with an
	// instance that exists.
	cl.BootSteps = "[30]"
	cl.LaunchTimeout = 1.5
	cl.LaunchRetries = 2
	c := newCluster(t, clusterSpec{Clouds: []*cloudSpec{cl}, MaxHoldAge: 3600})
	c.startLauncher("all")
	ctx := c.ctx(2 * time.Minute)

	t.Run("hold failed instances", func(t *testing.T) {
		id := c.submit("100", "slow")
		wid := names.RequestWorkflowID(c.taskQueue, id)
		c.waitRequest(id, 60*time.Second, stateIs(zookeeper.StatePending))
		require.NoError(t, c.temporal.SignalWorkflow(ctx, wid, "", workflows.SignalHoldFailed,
			workflows.HoldFailed{Comment: "keep for debugging", HoldExpiration: 3600}))
		req := c.waitRequest(id, 90*time.Second, stateIs(zookeeper.StateFailed))
		requireDeclinedByOurPool(t, req)

		var res workflows.RequestResult
		require.NoError(t, c.temporal.GetWorkflow(ctx, wid, "").Get(ctx, &res))
		require.Len(t, res.HeldNodes, 2, "both failed attempts were held")
		for _, nid := range res.HeldNodes {
			n := c.node(nid)
			require.Equal(t, zookeeper.NodeHold, n.State)
			require.Equal(t, "keep for debugging", *n.Comment)
			require.NotEmpty(t, n.ExternalIDString(), "the held node names the instance")
		}
		require.EqualValues(t, 2, cloudStats(t, cl)["instances"], "held instances are kept")
		require.NoError(t, c.zk.DeleteRequest(ctx, id))
	})

	t.Run("cancel declines and cleans up", func(t *testing.T) {
		before := len(c.nodeIDs())
		id := c.submit("100", "slow")
		wid := names.RequestWorkflowID(c.taskQueue, id)
		c.waitRequest(id, 60*time.Second, stateIs(zookeeper.StatePending))
		require.NoError(t, c.temporal.CancelWorkflow(ctx, wid, ""))
		req := c.waitRequest(id, 60*time.Second, stateIs(zookeeper.StateFailed))
		requireDeclinedByOurPool(t, req)
		var canceled *temporal.CanceledError
		require.ErrorAs(t, c.temporal.GetWorkflow(ctx, wid, "").Get(ctx, nil), &canceled)
		desc, err := c.temporal.DescribeWorkflowExecution(ctx, wid, "")
		require.NoError(t, err)
		require.Equal(t, enums.WORKFLOW_EXECUTION_STATUS_CANCELED, desc.WorkflowExecutionInfo.Status)
		require.Len(t, c.nodeIDs(), before, "the cancelled launch's node is gone")
		require.EqualValues(t, 2, cloudStats(t, cl)["instances"], "only the held instances remain")
	})

	t.Run("status query names the step", func(t *testing.T) {
		id := c.submit("100", "slow")
		wid := names.RequestWorkflowID(c.taskQueue, id)
		c.waitRequest(id, 60*time.Second, stateIs(zookeeper.StatePending))
		var st workflows.RequestStatus
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			v, err := c.temporal.QueryWorkflow(ctx, wid, "", workflows.QueryStatus)
			var nf *serviceerror.NotFound
			if err != nil && !errors.As(err, &nf) {
				require.NoError(t, err)
			}
			if err == nil {
				require.NoError(t, v.Get(&st))
				if len(st.Nodes) == 1 && st.Nodes[0].Step != "" {
					break
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		require.Len(t, st.Nodes, 1)
		require.Equal(t, "slow", st.Nodes[0].Label)
		require.NotEmpty(t, st.Nodes[0].Step)
		require.NoError(t, c.zk.DeleteRequest(ctx, id))
	})
}
