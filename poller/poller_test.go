package poller

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/names"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/nodepool-temporal/nodepool-temporal/internal/testenv"
	"github.com/nodepool-temporal/nodepool-temporal/lifecycle"
	"github.com/nodepool-temporal/nodepool-temporal/workflows"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// fakeTemporal records starts and signals; a started workflow counts as running.
type fakeTemporal struct {
	mu      sync.Mutex
	starts  map[string]int
	inputs  map[string]any
	signals map[string][]string
	running map[string]bool
}

func newFakeTemporal() *fakeTemporal {
	return &fakeTemporal{starts: map[string]int{}, inputs: map[string]any{}, signals: map[string][]string{}, running: map[string]bool{}}
}

func (f *fakeTemporal) ExecuteWorkflow(_ context.Context, o client.StartWorkflowOptions, wf any, args ...any) (client.WorkflowRun, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if o.WorkflowIDConflictPolicy != enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING {
		panic("starts must attach to a running workflow")
	}
	f.starts[o.ID]++
	f.inputs[o.ID] = args[0]
	f.running[o.ID] = true
	return nil, nil
}

func (f *fakeTemporal) SignalWorkflow(_ context.Context, id, _, name string, _ any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.signals[id] = append(f.signals[id], name)
	return nil
}

func (f *fakeTemporal) QueryWorkflow(context.Context, string, string, string, ...any) (converter.EncodedValue, error) {
	return nil, serviceerror.NewNotFound("no ledger")
}

func (f *fakeTemporal) DescribeWorkflowExecution(_ context.Context, id, _ string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.running[id] {
		return nil, serviceerror.NewNotFound("no such workflow")
	}
	return &workflowservice.DescribeWorkflowExecutionResponse{WorkflowExecutionInfo: &workflowpb.WorkflowExecutionInfo{
		Status: enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING,
	}}, nil
}

func (f *fakeTemporal) count(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.starts[id]
}

func setup(t *testing.T) (*zookeeper.Client, *fakeTemporal, func()) {
	addr, chroot := testenv.ZooKeeperChroot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	zk, err := zookeeper.Connect(ctx, zookeeper.Options{Servers: []string{addr}, Chroot: chroot})
	require.NoError(t, err)
	t.Cleanup(zk.Close)
	ft := newFakeTemporal()
	p := New(Options{
		ZK: zk, Temporal: ft, TaskQueue: "tq", Register: true, Hostname: "host", Version: "test",
		Pools:        []Pool{{ID: "np-PoolWorker.sim-main", Provider: "sim", Name: "main", Labels: []string{"small"}, Priority: 100}},
		Policy:       lifecycle.Policy{Providers: map[string]bool{"sim": true}, PoolIDs: map[string]bool{"np-PoolWorker.sim-main": true}, OrphanGrace: time.Hour},
		ScanInterval: 100 * time.Millisecond,
	})
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(rctx) }()
	return zk, ft, func() { stop(); <-done }
}

func eventually(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func submit(t *testing.T, zk *zookeeper.Client, state zookeeper.RequestState, declinedBy ...string) string {
	req := &zookeeper.NodeRequest{State: state, NodeTypes: []string{"small"}, DeclinedBy: declinedBy, Reuse: true}
	id, err := zk.SubmitRequest(context.Background(), req, "100", false)
	require.NoError(t, err)
	return id
}

func TestPollerStartsOneWorkflowPerRequestAndSignalsDeletion(t *testing.T) {
	zk, ft, stop := setup(t)
	defer stop()

	id := submit(t, zk, zookeeper.StateRequested)
	wid := names.RequestWorkflowID("tq", id)
	eventually(t, func() bool { return ft.count(wid) == 1 }, "no workflow started")
	// Rescans and watch events do not start it again while the request is unchanged.
	time.Sleep(500 * time.Millisecond)
	require.Equal(t, 1, ft.count(wid))
	in := ft.inputs[wid].(workflows.RequestInput)
	require.Equal(t, id, in.RequestID)
	require.Equal(t, "tq", in.TaskQueue)

	// Requests that are not ours to take are ignored.
	declined := submit(t, zk, zookeeper.StateRequested, "np-PoolWorker.sim-main")
	fulfilled := submit(t, zk, zookeeper.StateFulfilled)
	time.Sleep(500 * time.Millisecond)
	require.Zero(t, ft.count(names.RequestWorkflowID("tq", declined)))
	require.Zero(t, ft.count(names.RequestWorkflowID("tq", fulfilled)))

	require.NoError(t, zk.DeleteRequest(context.Background(), id))
	eventually(t, func() bool {
		ft.mu.Lock()
		defer ft.mu.Unlock()
		return len(ft.signals[wid]) == 1 && ft.signals[wid][0] == workflows.SignalRequestDeleted
	}, "deletion not signalled")
}

func TestPollerRegistersPools(t *testing.T) {
	zk, _, stop := setup(t)
	eventually(t, func() bool {
		pools, err := zk.ListPools(context.Background())
		return err == nil && len(pools) == 1 && pools[0].ID == "np-PoolWorker.sim-main" &&
			pools[0].SupportedLabels[0] == "small" && !pools[0].Paused
	}, "pool not registered")
	stop()
	pools, err := zk.ListPools(context.Background())
	require.NoError(t, err)
	require.Empty(t, pools, "registration removed on stop")
}

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
