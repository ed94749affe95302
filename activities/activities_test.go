package activities

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/drivers/sim"
	"github.com/nodepool-temporal/nodepool-temporal/internal/testenv"
	"github.com/nodepool-temporal/nodepool-temporal/names"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	poolID = "np-PoolWorker.sim-main"
	owner  = "tq/request/test"
)

type fixture struct {
	zk   *zookeeper.Client
	acts *Activities
	env  *testsuite.TestActivityEnvironment
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	addr, chroot := testenv.ZooKeeperChroot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	zk, err := zookeeper.Connect(ctx, zookeeper.Options{Servers: []string{addr}, Chroot: chroot})
	require.NoError(t, err)
	t.Cleanup(zk.Close)
	drv, err := sim.New("sim", sim.Config{
		Seed: 1, BootSteps: []float64{},
		Flavors: []sim.Flavor{{Name: "small", Cores: 2, RAM: 2048}},
		Pools: []sim.PoolConfig{{Name: "main", Labels: []sim.LabelConfig{
			{Name: "small", Flavor: "small"}, {Name: "large", Flavor: "small"},
		}}},
	})
	require.NoError(t, err)
	settings := Settings{
		LauncherName: "np", TaskQueue: "tq", PollInterval: time.Second,
		Labels:       map[string]LabelSettings{"small": {}, "large": {}},
		TenantLimits: map[string]drivers.Resources{"capped": {"instances": 1}},
		Providers: []ProviderSettings{{
			Name: "sim", TaskQueue: "tq-provider-sim", LaunchTimeout: time.Minute, LaunchRetries: 3,
			Pools: []PoolSettings{
				{Name: "main", ID: poolID, Labels: []string{"small", "large"}, Priority: 100, MaxServers: 4,
					Limits: drivers.Resources{"instances": 4}, NodeAttributes: map[string]any{"executor-zone": "z"}},
				{Name: "off", ID: "np-PoolWorker.sim-off", Labels: []string{"small"}, MaxServers: 0},
			},
		}},
	}
	acts := New(zk, map[string]drivers.Driver{"sim": drv}, settings, runningChains{}, nil)
	var s testsuite.WorkflowTestSuite
	s.SetLogger(quietLogger{})
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	return &fixture{zk: zk, acts: acts, env: env}
}

// runningChains answers DescribeWorkflowExecution as a server would: the workflow
// whose id is a key runs in the chain given as its value; every other is unknown.
type runningChains map[string]string

func (runningChains) SignalWithStartWorkflow(context.Context, string, string, any, client.StartWorkflowOptions, any, ...any) (client.WorkflowRun, error) {
	return nil, errors.New("no ledgers in activity tests")
}

func (runningChains) SignalWorkflow(context.Context, string, string, string, any) error {
	return errors.New("no ledgers in activity tests")
}

func (r runningChains) DescribeWorkflowExecution(_ context.Context, id, _ string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	chain, ok := r[id]
	if !ok {
		return nil, serviceerror.NewNotFound("workflow not found")
	}
	return &workflowservice.DescribeWorkflowExecutionResponse{WorkflowExecutionInfo: &workflowpb.WorkflowExecutionInfo{
		Status: enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, FirstRunId: chain,
	}}, nil
}

func (f *fixture) submit(t *testing.T, labels ...string) string {
	req := &zookeeper.NodeRequest{State: zookeeper.StateRequested, NodeTypes: labels, Reuse: true}
	id, err := f.zk.SubmitRequest(context.Background(), req, "200", false)
	require.NoError(t, err)
	return id
}

func (f *fixture) plan(t *testing.T, id string) Plan {
	v, err := f.env.ExecuteActivity(f.acts.PlanRequest, PlanInput{RequestID: id})
	require.NoError(t, err)
	var p Plan
	require.NoError(t, v.Get(&p))
	return p
}

func TestPlanRequest(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name     string
		labels   []string
		decision Decision
		reason   string
	}{
		{"served", []string{"small", "large"}, DecisionLaunch, ""},
		{"unknown label", []string{"small", "gpu"}, DecisionDecline, "not available"},
		{"larger than the pool", []string{"small", "small", "small", "small", "small"}, DecisionDecline, "exceed quota"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := f.plan(t, f.submit(t, tc.labels...))
			require.Equal(t, tc.decision, p.Decision, p.Reason)
			require.Contains(t, p.Reason, tc.reason)
			if p.Decision == DecisionDecline {
				require.ElementsMatch(t, []string{poolID, "np-PoolWorker.sim-off"}, p.DeclinePools)
				return
			}
			require.Equal(t, poolID, p.PoolID)
			require.Equal(t, "200", p.Order.Priority)
			require.Len(t, p.Nodes, len(tc.labels))
			require.EqualValues(t, 1, p.Nodes[0].Need["instances"])
			require.EqualValues(t, 2, p.Nodes[0].Need["cores"])
		})
	}
	t.Run("gone", func(t *testing.T) {
		require.Equal(t, DecisionSkip, f.plan(t, "200-0000009999").Decision)
	})
}

func TestLaunchThroughActivities(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	id := f.submit(t, "large", "small")
	plan := f.plan(t, id)

	v, err := f.env.ExecuteActivity(f.acts.AcceptRequest, AcceptInput{RequestID: id, Owner: owner, Plan: plan})
	require.NoError(t, err)
	var acc AcceptResult
	require.NoError(t, v.Get(&acc))
	require.True(t, acc.Accepted)
	require.Len(t, acc.NodeIDs, 2)
	req, err := f.zk.GetRequest(ctx, id)
	require.NoError(t, err)
	require.Equal(t, zookeeper.StatePending, req.State)
	held, owned, err := f.zk.LockHolder(ctx, zookeeper.RequestLockPath(id))
	require.NoError(t, err)
	require.True(t, held)
	require.Equal(t, owner, owned)

	for i, nid := range acc.NodeIDs {
		n, err := f.zk.GetNode(ctx, nid)
		require.NoError(t, err)
		require.Equal(t, zookeeper.NodeBuilding, n.State)
		require.Equal(t, zookeeper.Labels{plan.Nodes[i].Label}, n.Type)
		require.Equal(t, poolID, n.Launcher)

		st := drivers.CreateState{Request: drivers.CreateRequest{NodeID: nid, Attempt: 1, Hostname: "np" + nid, Pool: "main",
			Label: plan.Nodes[i].Label, Metadata: map[string]string{drivers.MetaNodeID: nid, drivers.MetaProviderName: "sim", drivers.MetaPoolName: "main"}}}
		for steps := 0; !st.Complete; steps++ {
			require.Less(t, steps, 20)
			v, err := f.env.ExecuteActivity(f.acts.CreateStep, CreateStepInput{NodeID: nid, Owner: owner, Provider: "sim", State: st})
			require.NoError(t, err)
			require.NoError(t, v.Get(&st))
			time.Sleep(st.Wait)
		}
		n, err = f.zk.GetNode(ctx, nid)
		require.NoError(t, err)
		require.Equal(t, st.ExternalID, n.ExternalIDString(), "the external id is stored as soon as it is known")
		_, err = f.env.ExecuteActivity(f.acts.NodeReady, NodeReadyInput{NodeID: nid, Owner: owner, Instance: *st.Instance, Need: plan.Nodes[i].Need})
		require.NoError(t, err)
	}

	v, err = f.env.ExecuteActivity(f.acts.FulfillRequest, FulfillInput{RequestID: id, Owner: owner, NodeIDs: acc.NodeIDs})
	require.NoError(t, err)
	req, err = f.zk.GetRequest(ctx, id)
	require.NoError(t, err)
	require.Equal(t, zookeeper.StateFulfilled, req.State)
	require.Equal(t, acc.NodeIDs, req.Nodes)
	for _, nid := range append([]string{}, acc.NodeIDs...) {
		n, err := f.zk.GetNode(ctx, nid)
		require.NoError(t, err)
		require.Equal(t, zookeeper.NodeReady, n.State)
		require.Equal(t, id, *n.AllocatedTo)
		require.Equal(t, "z", n.Attributes["executor-zone"])
		locked, err := f.zk.IsLocked(ctx, zookeeper.NodeLockPath(nid))
		require.NoError(t, err)
		require.False(t, locked)
	}
	locked, err := f.zk.IsLocked(ctx, zookeeper.RequestLockPath(id))
	require.NoError(t, err)
	require.False(t, locked)

	// A retried fulfil after the write is harmless.
	_, err = f.env.ExecuteActivity(f.acts.FulfillRequest, FulfillInput{RequestID: id, Owner: owner, NodeIDs: acc.NodeIDs})
	require.NoError(t, err)
}

func (f *fixture) accept(t *testing.T, id, owner string, plan Plan) AcceptResult {
	t.Helper()
	v, err := f.env.ExecuteActivity(f.acts.AcceptRequest, AcceptInput{RequestID: id, Owner: owner, Plan: plan})
	require.NoError(t, err)
	var acc AcceptResult
	require.NoError(t, v.Get(&acc))
	return acc
}

func (f *fixture) nodeCount(t *testing.T) int {
	ids, err := f.zk.ListNodes(context.Background())
	require.NoError(t, err)
	return len(ids)
}

func TestAcceptIsIdempotent(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// between runs between the first and the repeated acceptance.
		between func(t *testing.T, f *fixture, first []string)
		reused  []bool // which node ids of the first acceptance come back
	}{
		{"retry after a crash", func(*testing.T, *fixture, []string) {}, []bool{true, true, true}},
		{"a recorded node vanished", func(t *testing.T, f *fixture, first []string) {
			require.NoError(t, f.zk.DeleteNode(ctx, first[1]))
		}, []bool{true, false, true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			id := f.submit(t, "small", "large", "small")
			plan := f.plan(t, id)
			first := f.accept(t, id, owner, plan)
			require.True(t, first.Accepted)
			require.Len(t, first.NodeIDs, 3)
			req, err := f.zk.GetRequest(ctx, id)
			require.NoError(t, err)
			require.Equal(t, first.NodeIDs, req.Nodes, "node ids are recorded in the request as they are created")

			tc.between(t, f, first.NodeIDs)
			again := f.accept(t, id, owner, plan)
			require.True(t, again.Accepted)
			require.Len(t, again.NodeIDs, 3)
			for i, same := range tc.reused {
				require.Equal(t, same, again.NodeIDs[i] == first.NodeIDs[i], "node %d", i)
			}
			require.Equal(t, 3, f.nodeCount(t), "a repeated acceptance creates no extra node")
			for i, nid := range again.NodeIDs {
				n, err := f.zk.GetNode(ctx, nid)
				require.NoError(t, err)
				require.Equal(t, zookeeper.NodeBuilding, n.State)
				require.Equal(t, zookeeper.Labels{plan.Nodes[i].Label}, n.Type)
				_, holder, err := f.zk.LockHolder(ctx, zookeeper.NodeLockPath(nid))
				require.NoError(t, err)
				require.Equal(t, owner, holder)
			}
		})
	}
}

func TestAcceptManyNodesInBatches(t *testing.T) {
	f := newFixture(t)
	f.acts.settings.Providers[0].Pools[0].Limits = nil
	labels := make([]string, 2*acceptBatch+7)
	for i := range labels {
		labels[i] = "small"
	}
	id := f.submit(t, labels...)
	plan := f.plan(t, id)
	require.Equal(t, DecisionLaunch, plan.Decision, plan.Reason)
	require.Equal(t, []string{"small"}, plan.Request.Labels, "a request's labels are carried once each")
	acc := f.accept(t, id, owner, plan)
	require.Len(t, acc.NodeIDs, len(labels))
	req, err := f.zk.GetRequest(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, acc.NodeIDs, req.Nodes)
	require.Equal(t, len(labels), f.nodeCount(t))
}

// A run chain that an operator terminated left its request pending, locked, with
// nodes; the new chain of the same workflow recovers it.
func TestPlanRecoversRequestOfEndedRun(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	const wf = "tq/request/x"
	oldOwner, newOwner := names.LockOwner(wf, "chain-old"), names.LockOwner(wf, "chain-new")
	f.acts.temporal = runningChains{wf: "chain-new"}
	id := f.submit(t, "small", "small")
	plan := f.plan(t, id)
	acc := f.accept(t, id, oldOwner, plan)
	require.NoError(t, f.acts.storeExternalID(ctx, acc.NodeIDs[0], "sim-42"))

	v, err := f.env.ExecuteActivity(f.acts.PlanRequest, PlanInput{RequestID: id, Owner: newOwner})
	require.NoError(t, err)
	var p Plan
	require.NoError(t, v.Get(&p))
	require.Equal(t, DecisionLaunch, p.Decision, p.Reason)

	req, err := f.zk.GetRequest(ctx, id)
	require.NoError(t, err)
	require.Equal(t, zookeeper.StateRequested, req.State)
	require.Empty(t, req.Nodes)
	locked, err := f.zk.IsLocked(ctx, zookeeper.RequestLockPath(id))
	require.NoError(t, err)
	require.False(t, locked, "the ended run's request lock is released")
	for _, nid := range acc.NodeIDs {
		n, err := f.zk.GetNode(ctx, nid)
		require.NoError(t, err)
		require.Equal(t, zookeeper.NodeFailed, n.State, "the ended run's nodes go to the deletion workflow")
		locked, err := f.zk.IsLocked(ctx, zookeeper.NodeLockPath(nid))
		require.NoError(t, err)
		require.False(t, locked)
	}
	n, err := f.zk.GetNode(ctx, acc.NodeIDs[0])
	require.NoError(t, err)
	require.Equal(t, "sim-42", n.ExternalIDString(), "the instance stays recorded for its deletion")

	// The new chain accepts it again; a step of the old chain still in flight is
	// refused.
	again := f.accept(t, id, newOwner, p)
	require.True(t, again.Accepted)
	err = f.acts.lockNode(ctx, again.NodeIDs[0], oldOwner)
	require.Equal(t, ErrTypeLockLost, errorTypeOf(err))
}

func TestPlanResumesItsOwnPendingRequest(t *testing.T) {
	f := newFixture(t)
	own := names.LockOwner("tq/request/y", "chain")
	id := f.submit(t, "small")
	plan := f.plan(t, id)
	acc := f.accept(t, id, own, plan)
	require.True(t, acc.Accepted)
	v, err := f.env.ExecuteActivity(f.acts.PlanRequest, PlanInput{RequestID: id, Owner: own})
	require.NoError(t, err)
	var p Plan
	require.NoError(t, v.Get(&p))
	require.Equal(t, DecisionLaunch, p.Decision, "a run reset to before its acceptance resumes")
	require.Equal(t, acc.NodeIDs, f.accept(t, id, own, p).NodeIDs)
	// Someone else's pending request is skipped.
	require.Equal(t, DecisionSkip, f.plan(t, id).Decision)
}

func TestFulfillRequiresPending(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	id := f.submit(t, "small")
	acc := f.accept(t, id, owner, f.plan(t, id))
	// A clean-up took the request for lost and handed it back.
	_, _, err := f.acts.updateRequest(ctx, id, nil, func(r *zookeeper.NodeRequest) (bool, error) {
		r.State = zookeeper.StateRequested
		return true, nil
	})
	require.NoError(t, err)
	v, err := f.env.ExecuteActivity(f.acts.FulfillRequest, FulfillInput{RequestID: id, Owner: owner, NodeIDs: acc.NodeIDs})
	require.NoError(t, err)
	var res FulfillResult
	require.NoError(t, v.Get(&res))
	require.True(t, res.Gone, "a request that is no longer pending is not fulfilled")
	req, err := f.zk.GetRequest(ctx, id)
	require.NoError(t, err)
	require.Equal(t, zookeeper.StateRequested, req.State)
}

func TestDeclineRequest(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	reg, err := f.zk.RegisterPool(ctx, zookeeper.PoolComponent{Hostname: "h", ID: poolID, Kind: "pool", Name: "main", ProviderName: "sim"})
	require.NoError(t, err)
	other, err := f.zk.RegisterPool(ctx, zookeeper.PoolComponent{Hostname: "up", ID: "upstream-PoolWorker.aws-main", Kind: "pool"})
	require.NoError(t, err)

	decline := func(id string) string {
		v, err := f.env.ExecuteActivity(f.acts.DeclineRequest, DeclineInput{RequestID: id, Owner: owner, PoolIDs: []string{poolID}})
		require.NoError(t, err)
		var res DeclineResult
		require.NoError(t, v.Get(&res))
		return res.State
	}
	id := f.submit(t, "small")
	require.Equal(t, "requested", decline(id), "another registered pool may still take it")
	require.NoError(t, other.Unregister(ctx))
	id2 := f.submit(t, "small")
	require.Equal(t, "failed", decline(id2), "every registered pool declined")
	req, err := f.zk.GetRequest(ctx, id2)
	require.NoError(t, err)
	require.Equal(t, []string{poolID}, req.DeclinedBy)
	locked, err := f.zk.IsLocked(ctx, zookeeper.RequestLockPath(id2))
	require.NoError(t, err)
	require.False(t, locked)
	_ = reg
}

func TestStartDeleteRespectsLocksAndHolds(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	mk := func(n *zookeeper.Node) string {
		n.Provider, n.Pool = "sim", "main"
		id, err := f.zk.CreateNode(ctx, n)
		require.NoError(t, err)
		return id
	}
	start := func(id string) (StartDeleteResult, error) {
		v, err := f.env.ExecuteActivity(f.acts.StartDelete, StartDeleteInput{NodeID: id, Owner: "tq/delete/" + id})
		var res StartDeleteResult
		if err == nil {
			require.NoError(t, v.Get(&res))
		}
		return res, err
	}

	used := mk(&zookeeper.Node{State: zookeeper.NodeUsed, ExternalID: []byte(`"sim-9"`)})
	res, err := start(used)
	require.NoError(t, err)
	require.True(t, res.Proceed)
	require.Equal(t, "sim-9", res.ExternalID)
	n, err := f.zk.GetNode(ctx, used)
	require.NoError(t, err)
	require.Equal(t, zookeeper.NodeDeleting, n.State)

	held := mk(&zookeeper.Node{State: zookeeper.NodeHold, StateTime: float64(time.Now().Unix()), HoldExpiration: 3600})
	res, err = start(held)
	require.NoError(t, err)
	require.False(t, res.Proceed, "a held node within its expiry is kept")

	zuul := mk(&zookeeper.Node{State: zookeeper.NodeUsed})
	lock := f.zk.NewLock(zookeeper.NodeLockPath(zuul), "")
	ok, err := lock.TryAcquire(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	_, err = start(zuul)
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr))
	require.Equal(t, ErrTypeLocked, appErr.Type(), "a node Zuul holds is never touched")
}

type quietLogger struct{}

func (quietLogger) Debug(string, ...interface{}) {}
func (quietLogger) Info(string, ...interface{})  {}
func (quietLogger) Warn(string, ...interface{})  {}
func (quietLogger) Error(string, ...interface{}) {}

func TestPlanDefersTenantAtLimit(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tenant := "capped"
	submit := func() string {
		req := &zookeeper.NodeRequest{State: zookeeper.StateRequested, NodeTypes: []string{"small"}, Reuse: true, TenantName: &tenant}
		id, err := f.zk.SubmitRequest(ctx, req, "200", false)
		require.NoError(t, err)
		return id
	}
	require.Equal(t, DecisionLaunch, f.plan(t, submit()).Decision)
	_, err := f.zk.CreateNode(ctx, &zookeeper.Node{State: zookeeper.NodeInUse, Provider: "sim", Pool: "main",
		TenantName: &tenant, Resources: map[string]float64{"instances": 1}})
	require.NoError(t, err)
	p := f.plan(t, submit())
	require.Equal(t, DecisionDefer, p.Decision)
	require.Contains(t, p.Reason, "tenant capped is at its resource limit")
}

func TestPlanSkipsIdleProviders(t *testing.T) {
	f := newFixture(t)
	f.acts.settings.Providers[0].Idle = true
	p := f.plan(t, f.submit(t, "small"))
	require.Equal(t, DecisionSkip, p.Decision, "a provider with max-concurrency 0 neither takes nor declines")
}

func errorTypeOf(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Type()
	}
	return ""
}

func TestStoreExternalIDNeverForgetsTheEarlierInstance(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	id := f.submit(t, "small")
	acc := f.accept(t, id, owner, f.plan(t, id))
	nid := acc.NodeIDs[0]
	require.NoError(t, f.acts.storeExternalID(ctx, nid, "sim-1"))
	require.NoError(t, f.acts.storeExternalID(ctx, nid, "sim-1"), "storing the same id again changes nothing")
	require.Equal(t, 1, f.nodeCount(t))
	require.NoError(t, f.acts.storeExternalID(ctx, nid, "sim-2"))
	ids, err := f.zk.ListNodes(ctx)
	require.NoError(t, err)
	require.Len(t, ids, 2)
	for _, other := range ids {
		if other == nid {
			continue
		}
		n, err := f.zk.GetNode(ctx, other)
		require.NoError(t, err)
		require.Equal(t, zookeeper.NodeFailed, n.State, "the superseded instance is left to the deletion workflow")
		require.Equal(t, "sim-1", n.ExternalIDString())
		require.Equal(t, "sim", n.Provider)
	}
}

func TestLockOfAnEarlierReleaseIsTakenOver(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	const wf = "tq/request/z"
	id := f.submit(t, "small")
	acc := f.accept(t, id, wf, f.plan(t, id))
	f.acts.temporal = runningChains{wf: "chain-now"}
	require.NoError(t, f.acts.lockNode(ctx, acc.NodeIDs[0], names.LockOwner(wf, "chain-now")),
		"a lock written without a chain id by the same workflow is its own")
}

func TestReuseOfReadyNodes(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	ready := func() string {
		id, err := f.zk.CreateNode(ctx, &zookeeper.Node{State: zookeeper.NodeReady, Provider: "sim", Pool: "main",
			Type: zookeeper.Labels{"small"}, Resources: map[string]float64{"instances": 1}})
		require.NoError(t, err)
		return id
	}
	spare := ready()

	first := f.submit(t, "small", "large")
	p1 := f.plan(t, first)
	require.True(t, p1.Nodes[0].Reuse, "a ready node of the label serves the first node")
	require.False(t, p1.Nodes[1].Reuse)
	require.EqualValues(t, 1, p1.Need()["instances"], "only the launched node needs capacity")

	// A second request counts on the same node; the first takes it.
	second := f.submit(t, "small")
	p2 := f.plan(t, second)
	require.True(t, p2.Nodes[0].Reuse)
	require.Equal(t, 0, p2.Launches())

	acc := f.accept(t, first, owner, p1)
	require.True(t, acc.Accepted)
	require.Equal(t, spare, acc.NodeIDs[0])
	require.Equal(t, []bool{true, false}, acc.Reused)
	n, err := f.zk.GetNode(ctx, spare)
	require.NoError(t, err)
	require.Equal(t, first, *n.AllocatedTo)
	require.Equal(t, zookeeper.NodeReady, n.State)
	_, holder, err := f.zk.LockHolder(ctx, zookeeper.NodeLockPath(spare))
	require.NoError(t, err)
	require.Equal(t, owner, holder, "a reused node is locked until the request is fulfilled")

	other := "tq/request/other"
	late := f.accept(t, second, other, p2)
	require.False(t, late.Accepted)
	require.True(t, late.Replan, "the node went to the other request: plan again")
	req, err := f.zk.GetRequest(ctx, second)
	require.NoError(t, err)
	require.Equal(t, zookeeper.StateRequested, req.State, "a request to plan again is left untouched")
	locked, err := f.zk.IsLocked(ctx, zookeeper.RequestLockPath(second))
	require.NoError(t, err)
	require.False(t, locked)

	// Given back, the node serves the next request.
	_, err = f.env.ExecuteActivity(f.acts.ReturnNode, ReturnNodeInput{NodeID: spare, Owner: owner, RequestID: first})
	require.NoError(t, err)
	n, err = f.zk.GetNode(ctx, spare)
	require.NoError(t, err)
	require.Nil(t, n.AllocatedTo)
	f.acts.ready = nil
	p2 = f.plan(t, second)
	again := f.accept(t, second, other, p2)
	require.True(t, again.Accepted)
	require.Equal(t, []string{spare}, again.NodeIDs)

	// A request that does not allow reuse launches.
	noReuse := &zookeeper.NodeRequest{State: zookeeper.StateRequested, NodeTypes: []string{"small"}, Reuse: false}
	id, err := f.zk.SubmitRequest(ctx, noReuse, "200", false)
	require.NoError(t, err)
	ready()
	f.acts.ready = nil
	require.False(t, f.plan(t, id).Nodes[0].Reuse)
}

func TestMinReadyPass(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	pass := func() MinReadyResult {
		v, err := f.env.ExecuteActivity(f.acts.MinReadyPass, MinReadyInput{
			Labels: []LabelCount{{Label: "small", Count: 3}}, Owner: "tq/min-ready"})
		require.NoError(t, err)
		var res MinReadyResult
		require.NoError(t, v.Get(&res))
		return res
	}
	minReady := func(state zookeeper.RequestState) *zookeeper.NodeRequest {
		ids, err := f.zk.ListRequests(ctx)
		require.NoError(t, err)
		for _, id := range ids {
			r, err := f.zk.GetRequest(ctx, id)
			require.NoError(t, err)
			if r.Requestor != nil && *r.Requestor == MinReadyRequestor && r.State == state {
				return r
			}
		}
		return nil
	}
	_, err := f.zk.CreateNode(ctx, &zookeeper.Node{State: zookeeper.NodeReady, Provider: "sim", Pool: "main", Type: zookeeper.Labels{"small"}})
	require.NoError(t, err)

	res := pass()
	require.Equal(t, 1, res.Ready["small"])
	require.Equal(t, 2, res.Submitted["small"], "one request per missing node")
	req := minReady(zookeeper.StateRequested)
	require.NotNil(t, req)
	require.Equal(t, "900", req.Priority())
	require.Equal(t, []string{"small"}, req.NodeTypes)
	require.False(t, req.Reuse, "min-ready requests launch fresh nodes")

	res = pass()
	require.Equal(t, 2, res.InFlight["small"])
	require.Zero(t, res.Submitted["small"], "requests in flight are not submitted twice")

	// One is fulfilled, one failed: the node is given back, both requests removed, and
	// the failed one's node is requested again.
	node, err := f.zk.CreateNode(ctx, &zookeeper.Node{State: zookeeper.NodeReady, Provider: "sim", Pool: "main",
		Type: zookeeper.Labels{"small"}, AllocatedTo: &req.ID})
	require.NoError(t, err)
	_, _, err = f.acts.updateRequest(ctx, req.ID, nil, func(r *zookeeper.NodeRequest) (bool, error) {
		r.State, r.Nodes = zookeeper.StateFulfilled, []string{node}
		return true, nil
	})
	require.NoError(t, err)
	other := minReady(zookeeper.StateRequested)
	_, _, err = f.acts.updateRequest(ctx, other.ID, nil, func(r *zookeeper.NodeRequest) (bool, error) {
		r.State = zookeeper.StateFailed
		return true, nil
	})
	require.NoError(t, err)
	res = pass()
	require.Equal(t, 2, res.Cleaned)
	require.Equal(t, 2, res.Ready["small"])
	require.Equal(t, 1, res.Submitted["small"])
	n, err := f.zk.GetNode(ctx, node)
	require.NoError(t, err)
	require.Nil(t, n.AllocatedTo, "the min-ready node is ready for any request")
	_, err = f.zk.GetRequest(ctx, req.ID)
	require.ErrorIs(t, err, zookeeper.ErrNotFound)
}

func TestYieldToOtherLaunchersPools(t *testing.T) {
	reqFor := func(provider string, declined ...string) *zookeeper.NodeRequest {
		r := &zookeeper.NodeRequest{NodeTypes: []string{"small"}, DeclinedBy: declined}
		if provider != "" {
			r.Provider = &provider
		}
		return r
	}
	pool := func(id, provider string, priority int, paused bool, labels ...string) zookeeper.PoolComponent {
		return zookeeper.PoolComponent{ID: id, ProviderName: provider, Priority: priority, Paused: paused, SupportedLabels: labels}
	}
	tests := []struct {
		name   string
		others []zookeeper.PoolComponent
		req    *zookeeper.NodeRequest
		yield  string
	}{
		{"higher priority", []zookeeper.PoolComponent{pool("up-a", "aws", 50, false, "small")}, reqFor(""), "up-a"},
		{"same priority", []zookeeper.PoolComponent{pool("up-a", "aws", 100, false, "small")}, reqFor(""), ""},
		{"lower priority", []zookeeper.PoolComponent{pool("up-a", "aws", 200, false, "small")}, reqFor(""), ""},
		{"declined already", []zookeeper.PoolComponent{pool("up-a", "aws", 50, false, "small")}, reqFor("", "up-a"), ""},
		{"paused at quota", []zookeeper.PoolComponent{pool("up-a", "aws", 50, true, "small")}, reqFor(""), ""},
		{"label not offered", []zookeeper.PoolComponent{pool("up-a", "aws", 50, false, "large")}, reqFor(""), ""},
		{"preferred provider", []zookeeper.PoolComponent{pool("up-b", "gcp", 300, false, "small")}, reqFor("gcp"), "up-b"},
		{"ours is the preferred one", []zookeeper.PoolComponent{pool("up-c", "aws", 10, false, "small")}, reqFor("sim"), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			preferred := ""
			if tc.req.Provider != nil {
				preferred = *tc.req.Provider
			}
			p, ok := yieldTo(tc.others, tc.req, preferred, "sim", 100)
			require.Equal(t, tc.yield != "", ok)
			require.Equal(t, tc.yield, p.ID)
		})
	}
}

func TestPlanDefersToAHigherPriorityPoolOfAnotherLauncher(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	reg, err := f.zk.RegisterPool(ctx, zookeeper.PoolComponent{Hostname: "up", ID: "upstream-PoolWorker.aws-main", Kind: "pool",
		ProviderName: "aws", SupportedLabels: []string{"small"}, Priority: 10})
	require.NoError(t, err)
	id := f.submit(t, "small")
	p := f.plan(t, id)
	require.Equal(t, DecisionDefer, p.Decision, "a higher-priority online pool goes first")
	require.Contains(t, p.Reason, "upstream-PoolWorker.aws-main")
	require.NoError(t, reg.Unregister(ctx))
	f.acts.pools = nil
	require.Equal(t, DecisionLaunch, f.plan(t, id).Decision, "once it is gone, ours serves the request")
}

// A request for a label only another launcher offers is left to it, as Nodepool's
// pools do, and declined once that launcher's pool has declined or gone.
func TestPlanDefersLabelsAnotherLauncherOffers(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	const upstream = "upstream-PoolWorker.fake-main"
	reg, err := f.zk.RegisterPool(ctx, zookeeper.PoolComponent{Hostname: "up", ID: upstream, Kind: "pool",
		ProviderName: "fake", SupportedLabels: []string{"fake-label"}, Priority: 100})
	require.NoError(t, err)
	id := f.submit(t, "fake-label")
	p := f.plan(t, id)
	require.Equal(t, DecisionDefer, p.Decision, "another launcher's pool offers the label")
	require.Contains(t, p.Reason, upstream)
	require.NotEmpty(t, p.DeclinePools, "an operator's cancel still declines for our pools")

	_, _, err = f.acts.updateRequest(ctx, id, nil, func(r *zookeeper.NodeRequest) (bool, error) {
		r.DeclinedBy = append(r.DeclinedBy, upstream)
		return true, nil
	})
	require.NoError(t, err)
	require.Equal(t, DecisionDecline, f.plan(t, id).Decision, "once it declined, ours declines too")

	other := f.submit(t, "fake-label")
	require.NoError(t, reg.Unregister(ctx))
	f.acts.pools = nil
	require.Equal(t, DecisionDecline, f.plan(t, other).Decision, "with the other launcher gone, ours declines")
}

// A retried step stores the same instance again; an id the driver gives as a JSON
// object (AWS) reads back from the record as its instance id, and is still the same.
func TestStoreExternalIDOfAnObjectIsStable(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	id := f.submit(t, "small")
	nid := f.accept(t, id, owner, f.plan(t, id)).NodeIDs[0]
	aws := `{"instance": "i-0abc", "region": "us-east-1"}`
	require.NoError(t, f.acts.storeExternalID(ctx, nid, aws))
	require.NoError(t, f.acts.storeExternalID(ctx, nid, aws))
	require.Equal(t, 1, f.nodeCount(t), "the same instance is not recorded as superseded")
}

func TestAwaitLockTakesTheLockWhenItsHolderLetsGo(t *testing.T) {
	cases := []struct {
		name string
		// holder locks the node first (with this identifier) unless empty; releaseAfter
		// lets it go after that long (0: never).
		holder       string
		releaseAfter time.Duration
		wait         time.Duration
		want         bool
		// within bounds how long the call may take.
		within time.Duration
	}{
		{name: "free", wait: time.Second, want: true, within: time.Second},
		{name: "held by us", holder: "tq/delete/me", wait: time.Second, want: true, within: time.Second},
		{name: "released while waiting", holder: "zuul", releaseAfter: 300 * time.Millisecond, wait: 5 * time.Second, want: true, within: 2 * time.Second},
		{name: "held throughout", holder: "zuul", wait: 500 * time.Millisecond, want: false, within: 2 * time.Second},
		{name: "no waiting", holder: "zuul", releaseAfter: 100 * time.Millisecond, wait: 0, want: false, within: time.Second},
	}
	f := newFixture(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			id, err := f.zk.CreateNode(ctx, &zookeeper.Node{State: zookeeper.NodeUsed, Provider: "sim", Pool: "main"})
			require.NoError(t, err)
			path := zookeeper.NodeLockPath(id)
			if tc.holder != "" {
				lock := f.zk.NewLock(path, tc.holder)
				ok, err := lock.TryAcquire(ctx)
				require.NoError(t, err)
				require.True(t, ok)
				if tc.releaseAfter > 0 {
					timer := time.AfterFunc(tc.releaseAfter, func() { _ = lock.Release(context.Background()) })
					defer timer.Stop()
				} else {
					defer func() { _ = lock.Release(context.Background()) }()
				}
			}
			started := time.Now()
			contender, held, err := f.acts.awaitLock(ctx, path, "tq/delete/me", tc.wait)
			require.NoError(t, err)
			require.Equal(t, tc.want, held)
			require.Equal(t, tc.want, contender != "", "the holding contender is named when held")
			require.Less(t, time.Since(started), tc.within)
			_, holder, err := f.zk.LockHolder(ctx, path)
			require.NoError(t, err)
			if tc.want {
				require.Equal(t, "tq/delete/me", holder)
			} else {
				require.NotEqual(t, "tq/delete/me", holder, "a lock someone else holds is left alone")
			}
		})
	}
}

// ledgerSignals records the ledger signals activities send; fail makes every send fail.
type ledgerSignals struct {
	runningChains
	mu      sync.Mutex
	fail    error
	started []string // signal-with-start: "<workflow id> <signal>"
	queues  []string // signal-with-start: the task queue a ledger would start on
	sent    []string // signal: "<workflow id> <signal>"
	args    []any
}

func (l *ledgerSignals) SignalWithStartWorkflow(_ context.Context, id, signal string, arg any, opts client.StartWorkflowOptions, _ any, _ ...any) (client.WorkflowRun, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		return nil, l.fail
	}
	l.started = append(l.started, id+" "+signal)
	l.queues = append(l.queues, opts.TaskQueue)
	l.args = append(l.args, arg)
	return nil, nil
}

func (l *ledgerSignals) SignalWorkflow(_ context.Context, id, _, signal string, arg any) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		return l.fail
	}
	l.sent = append(l.sent, id+" "+signal)
	l.args = append(l.args, arg)
	return nil
}

// withSignaller returns a fixture whose activities send ledger signals to l.
func (f *fixture) withSignaller(l Signaller) *fixture {
	acts := New(f.zk, f.acts.drivers, f.acts.settings, l, nil)
	var s testsuite.WorkflowTestSuite
	s.SetLogger(quietLogger{})
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	return &fixture{zk: f.zk, acts: acts, env: env}
}

func TestPlanAndAcceptSignalTheLedger(t *testing.T) {
	const ledger = "tq/ledger/sim/main"
	target := &AcquireTarget{TaskQueue: "tq", WorkflowType: "PoolLedger", Signal: "acquire", Holder: "tq/request/x", Chain: "chain-1"}
	cases := []struct {
		name    string
		labels  []string
		acquire *AcquireTarget
		bind    bool
		fail    error
		// wantStarted are the signals sent with start; wantErr a failed activity.
		wantStarted []string
		wantErr     bool
	}{
		{name: "plan acquires", labels: []string{"small", "large"}, acquire: target,
			wantStarted: []string{ledger + " acquire"}},
		{name: "plan without target sends nothing", labels: []string{"small"}},
		{name: "plan of an unknown label sends nothing", labels: []string{"nope"}, acquire: target},
		{name: "failed acquire fails the plan", labels: []string{"small"}, acquire: target, fail: errors.New("unavailable"), wantErr: true},
		{name: "accept binds", labels: []string{"small", "large"}, bind: true,
			wantStarted: []string{ledger + " bind"}},
		{name: "failed bind fails the acceptance", labels: []string{"small"}, bind: true, fail: errors.New("unavailable"), wantErr: true},
	}
	base := newFixture(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sig := &ledgerSignals{fail: tc.fail}
			f := base.withSignaller(sig)
			id := f.submit(t, tc.labels...)
			if !tc.bind {
				v, err := f.env.ExecuteActivity(f.acts.PlanRequest, PlanInput{RequestID: id, Owner: owner, Acquire: tc.acquire})
				if tc.wantErr {
					require.Error(t, err)
					return
				}
				require.NoError(t, err)
				var plan Plan
				require.NoError(t, v.Get(&plan))
				require.Equal(t, len(tc.wantStarted) > 0, plan.Acquired)
				require.Equal(t, tc.wantStarted, sig.started)
				if len(tc.wantStarted) > 0 {
					require.Equal(t, []string{"tq-ledger"}, sig.queues, "ledgers start on their own task queue")
					acq := sig.args[0].(LedgerAcquire)
					require.Equal(t, plan.Acquire(target.Holder, target.Chain, id), acq)
				}
				return
			}
			plan := f.plan(t, id)
			v, err := f.env.ExecuteActivity(f.acts.AcceptRequest, AcceptInput{RequestID: id, Owner: owner, Plan: plan,
				Bind: &BindTarget{Holder: "tq/request/x", Ledger: SignalLedgerInput{WorkflowID: ledger, WorkflowType: "PoolLedger", Signal: "bind"}}})
			if tc.wantErr {
				require.Error(t, err)
				// The retry adopts the nodes the failed try created.
				sig.mu.Lock()
				sig.fail = nil
				sig.mu.Unlock()
				v, err = f.env.ExecuteActivity(f.acts.AcceptRequest, AcceptInput{RequestID: id, Owner: owner, Plan: plan,
					Bind: &BindTarget{Holder: "tq/request/x", Ledger: SignalLedgerInput{WorkflowID: ledger, WorkflowType: "PoolLedger", Signal: "bind"}}})
			}
			require.NoError(t, err)
			var acc AcceptResult
			require.NoError(t, v.Get(&acc))
			require.True(t, acc.Accepted)
			require.Equal(t, []string{ledger + " bind"}, sig.started)
			bind := sig.args[0].(LedgerBind)
			require.Equal(t, "tq/request/x", bind.Holder)
			require.Len(t, bind.Nodes, len(acc.NodeIDs))
			for i, nid := range acc.NodeIDs {
				require.Equal(t, plan.Nodes[i].Need, bind.Nodes[nid])
			}
		})
	}
}

func TestFinishDeleteRemovesTheNodeAndReleasesItsCapacity(t *testing.T) {
	cases := []struct {
		name     string
		fail     error
		lockedBy string // someone else holds the node
		wantErr  string // error type
		wantSent []string
	}{
		{name: "released", wantSent: []string{"tq/ledger/sim/main release"}},
		{name: "a failed release is left to reconciliation", fail: errors.New("unavailable")},
		{name: "no ledger", fail: serviceerror.NewNotFound("no such workflow")},
		{name: "lock lost", lockedBy: "zuul", wantErr: ErrTypeLockLost},
	}
	base := newFixture(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			sig := &ledgerSignals{fail: tc.fail}
			f := base.withSignaller(sig)
			id, err := f.zk.CreateNode(ctx, &zookeeper.Node{State: zookeeper.NodeDeleting, Provider: "sim", Pool: "main"})
			require.NoError(t, err)
			me := "tq/delete/" + id
			if tc.lockedBy != "" {
				ok, err := f.zk.NewLock(zookeeper.NodeLockPath(id), tc.lockedBy).TryAcquire(ctx)
				require.NoError(t, err)
				require.True(t, ok)
			} else {
				held, err := f.zk.EnsureLock(ctx, zookeeper.NodeLockPath(id), me)
				require.NoError(t, err)
				require.True(t, held)
			}
			_, err = f.env.ExecuteActivity(f.acts.FinishDelete, FinishDeleteInput{NodeID: id, Owner: me, Ledger: "tq/ledger/sim/main", Signal: "release"})
			_, gerr := f.zk.GetNode(ctx, id)
			if tc.wantErr != "" {
				require.Equal(t, tc.wantErr, errorTypeOf(err))
				require.NoError(t, gerr, "a node someone else holds is not removed")
				require.Empty(t, sig.sent)
				return
			}
			require.NoError(t, err)
			require.ErrorIs(t, gerr, zookeeper.ErrNotFound)
			require.Equal(t, tc.wantSent, sig.sent)
			if len(tc.wantSent) > 0 {
				require.Equal(t, LedgerRelease{NodeIDs: []string{id}}, sig.args[0])
			}
		})
	}
}

func TestCreateStepMarksTheNodeReady(t *testing.T) {
	cases := []struct {
		name      string
		markReady bool
		// lockedBy makes someone else hold the node lock before the step.
		lockedBy  string
		wantState zookeeper.NodeState
		wantErr   string
	}{
		{name: "ready in the completing step", markReady: true, wantState: zookeeper.NodeReady},
		{name: "left building for the workflow", wantState: zookeeper.NodeBuilding},
		{name: "lock lost", markReady: true, lockedBy: "zuul", wantState: zookeeper.NodeBuilding, wantErr: ErrTypeLockLost},
	}
	f := newFixture(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			id := f.submit(t, "small")
			plan := f.plan(t, id)
			acc := f.accept(t, id, owner, plan)
			require.True(t, acc.Accepted)
			nid := acc.NodeIDs[0]
			if tc.lockedBy != "" {
				require.NoError(t, f.zk.ReleaseOwned(ctx, zookeeper.NodeLockPath(nid), owner))
				ok, err := f.zk.NewLock(zookeeper.NodeLockPath(nid), tc.lockedBy).TryAcquire(ctx)
				require.NoError(t, err)
				require.True(t, ok)
			}
			st := drivers.CreateState{Request: drivers.CreateRequest{NodeID: nid, Attempt: 1, Hostname: "np" + nid, Pool: "main",
				Label: "small", Metadata: map[string]string{drivers.MetaNodeID: nid, drivers.MetaProviderName: "sim", drivers.MetaPoolName: "main"}}}
			var err error
			for steps := 0; !st.Complete && err == nil; steps++ {
				require.Less(t, steps, 20)
				var v converter.EncodedValue
				v, err = f.env.ExecuteActivity(f.acts.CreateStep, CreateStepInput{NodeID: nid, Owner: owner, Provider: "sim", State: st,
					MarkReady: tc.markReady, Need: plan.Nodes[0].Need})
				if err == nil {
					require.NoError(t, v.Get(&st))
					time.Sleep(st.Wait)
				}
			}
			if tc.wantErr != "" {
				require.Equal(t, tc.wantErr, errorTypeOf(err))
			} else {
				require.NoError(t, err)
			}
			n, gerr := f.zk.GetNode(ctx, nid)
			require.NoError(t, gerr)
			require.Equal(t, tc.wantState, n.State)
			if tc.wantState == zookeeper.NodeReady {
				require.Equal(t, st.ExternalID, n.ExternalIDString())
				require.Equal(t, st.Instance.InterfaceIP, n.InterfaceIP)
				require.Equal(t, "z", n.Attributes["executor-zone"])
			}
		})
	}
}

// A pool of ours that offers every label but cannot serve the request declines it at
// once, while a pool of ours lacking a label defers to another launcher's pool: the other
// launchers yield to a pool that offers the labels until it declines.
func TestPlanDeclinesWhatOurPoolsCannotServeBeforeDeferring(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	const upstream = "upstream-PoolWorker.fake-main"
	_, err := f.zk.RegisterPool(ctx, zookeeper.PoolComponent{Hostname: "up", ID: upstream, Kind: "pool",
		ProviderName: "fake", SupportedLabels: []string{"large"}, Priority: 100})
	require.NoError(t, err)
	// Five nodes: more than main's max-servers; the disabled pool lacks "large".
	id := f.submit(t, "large", "large", "large", "large", "large")
	p := f.plan(t, id)
	require.Equal(t, DecisionDefer, p.Decision, "another launcher's pool offers the labels")
	req, err := f.zk.GetRequest(ctx, id)
	require.NoError(t, err)
	require.Equal(t, zookeeper.StateRequested, req.State)
	require.Equal(t, []string{poolID}, req.DeclinedBy, "main offers the label but cannot serve five nodes: it declines now")
	locked, _, err := f.zk.LockHolder(ctx, zookeeper.RequestLockPath(id))
	require.NoError(t, err)
	require.False(t, locked, "the request is left unlocked")

	require.Equal(t, DecisionDefer, f.plan(t, id).Decision, "planned again, it still defers")
	req, err = f.zk.GetRequest(ctx, id)
	require.NoError(t, err)
	require.Equal(t, []string{poolID}, req.DeclinedBy, "declined once")
}

// With a node mirror, the activities that look at every node read the mirror, and
// follow the records as they change.
func TestForEachNodeReadsTheMirror(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newFixture(t)
	var ids []string
	for range 3 {
		id, err := f.zk.CreateNode(ctx, &zookeeper.Node{State: zookeeper.NodeReady, Provider: "sim", Pool: "main", Type: zookeeper.Labels{"small"}})
		require.NoError(t, err)
		ids = append(ids, id)
	}
	m := f.zk.MirrorNodes(ctx)
	acts := New(f.zk, f.acts.drivers, f.acts.settings, nil, nil, WithNodeRecords(m))
	require.Eventually(t, func() bool { _, unread, listed := m.Records(); return listed && len(unread) == 0 }, 10*time.Second, 10*time.Millisecond)
	reads := m.Reads()
	visit := func() []string {
		var seen []string
		require.NoError(t, acts.forEachNode(ctx, func(n *zookeeper.Node) { seen = append(seen, n.ID+" "+string(n.State)) }))
		return seen
	}
	for range 5 {
		require.Equal(t, []string{ids[0] + " ready", ids[1] + " ready", ids[2] + " ready"}, visit())
	}
	require.Equal(t, reads, m.Reads(), "no record read again")

	n, err := f.zk.GetNode(ctx, ids[1])
	require.NoError(t, err)
	n.State = zookeeper.NodeUsed
	require.NoError(t, f.zk.UpdateNode(ctx, n))
	require.Eventually(t, func() bool {
		return slices.Equal([]string{ids[0] + " ready", ids[1] + " used", ids[2] + " ready"}, visit())
	}, 10*time.Second, 10*time.Millisecond)
}

// While nodes are being created (a burst), the node records always have one that has
// just appeared and is not read yet: only that one is read, not every node.
func TestForEachNodeReadsOnlyUnreadNodes(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	recs := map[string]*zookeeper.Node{}
	var ids []string
	for i := range 20 {
		n := &zookeeper.Node{State: zookeeper.NodeReady, Provider: "sim", Pool: "main", Type: zookeeper.Labels{"small"}}
		id, err := f.zk.CreateNode(ctx, n)
		require.NoError(t, err)
		ids = append(ids, id)
		if i > 0 {
			n.ID = id
			recs[id] = n
		}
	}
	src := partialRecords{recs: recs, unread: ids[:1]}
	acts := New(f.zk, f.acts.drivers, f.acts.settings, nil, nil, WithNodeRecords(src))
	before := f.zk.Requests()
	var seen []string
	require.NoError(t, acts.forEachNode(ctx, func(n *zookeeper.Node) { seen = append(seen, n.ID) }))
	require.Equal(t, ids, seen)
	require.Equal(t, uint64(1), f.zk.Requests()-before, "only the unread node is read")
}

// partialRecords is node records with some listed nodes not read yet.
type partialRecords struct {
	recs   map[string]*zookeeper.Node
	unread []string
}

func (p partialRecords) Records() (map[string]*zookeeper.Node, []string, bool) {
	return maps.Clone(p.recs), p.unread, true
}

// Deleting a node Zuul returned, inline (lock, re-check, mark deleting, delete the
// instance, remove the znode, release), costs six ZooKeeper requests: take the free
// lock (three), read the node, mark it deleting, and remove node and lock in one
// transaction. The request it was allocated to is not looked up for a used node.
func TestStartDeleteOfAReturnedNodeRequests(t *testing.T) {
	base := newFixture(t)
	settings := base.acts.settings
	settings.Providers = slices.Clone(settings.Providers)
	settings.Providers[0].InlineSteps = true
	sig := &ledgerSignals{}
	acts := New(base.zk, base.acts.drivers, settings, sig, nil)
	var s testsuite.WorkflowTestSuite
	s.SetLogger(quietLogger{})
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	ctx := context.Background()

	req := "100-0000000001"
	id, err := base.zk.CreateNode(ctx, &zookeeper.Node{State: zookeeper.NodeUsed, Provider: "sim", Pool: "main",
		AllocatedTo: &req, ExternalID: []byte(`"sim-returned"`)})
	require.NoError(t, err)
	// Zuul held the node while it ran the job and released it on return.
	zuul := base.zk.NewLock(zookeeper.NodeLockPath(id), "zuul")
	ok, err := zuul.TryAcquire(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, zuul.Release(ctx))

	before := base.zk.Requests()
	v, err := env.ExecuteActivity(acts.StartDelete, StartDeleteInput{
		NodeID: id, Owner: "tq/delete/" + id, Finish: &FinishTarget{TaskQueue: "tq", Signal: "release"},
	})
	require.NoError(t, err)
	requests := base.zk.Requests() - before
	var res StartDeleteResult
	require.NoError(t, v.Get(&res))
	require.True(t, res.Deleted, "%+v", res)
	_, err = base.zk.GetNode(ctx, id)
	require.ErrorIs(t, err, zookeeper.ErrNotFound)
	require.Equal(t, []string{"tq/ledger/sim/main release"}, sig.sent)
	require.LessOrEqual(t, requests, uint64(6), "ZooKeeper requests for one deletion")
}
