package workflows

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nodepool-temporal/nodepool-temporal/names"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/nodepool-temporal/nodepool-temporal/activities"
	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

const testTQ = "np-test"

// quietLogger keeps the test output readable.
type quietLogger struct{}

func (quietLogger) Debug(string, ...interface{}) {}
func (quietLogger) Info(string, ...interface{})  {}
func (quietLogger) Warn(string, ...interface{})  {}
func (quietLogger) Error(string, ...interface{}) {}

func launchPlan(labels ...string) activities.Plan {
	p := activities.Plan{
		Decision: activities.DecisionLaunch, Provider: "sim", Pool: "main", PoolID: "np-PoolWorker.sim-main",
		ProviderTaskQueue: testTQ + "-provider-sim", LaunchTimeoutSec: 600, LaunchRetries: 3, PollIntervalSec: 1,
		Limits: drivers.Resources{"instances": 10},
		Order:  activities.OrderKey{Priority: "100", Sequence: "0000000001"},
	}
	for _, l := range labels {
		p.Nodes = append(p.Nodes, activities.NodePlan{Label: l, Need: drivers.Resources{"instances": 1}})
	}
	return p
}

// fakeCloud scripts CreateStep/DeleteStep: every create needs two steps; ids are
// "i-<node>-<attempt>".
type fakeCloud struct {
	mu       sync.Mutex
	failNode map[string]error // node id -> error returned by the second step
	// failTimes limits failNode to the first n failures of a node (0 = always).
	failTimes map[string]int
	failed    map[string]int
	deleted   []string
	steps     int
	holdSteps bool // never complete (for cancellation tests)
}

func (f *fakeCloud) create(_ context.Context, in activities.CreateStepInput) (drivers.CreateState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.steps++
	st := in.State
	switch st.Step {
	case "":
		st.Step = "submit creating instance"
		st.ExternalID = "i-" + in.NodeID + "-" + string(rune('0'+st.Request.Attempt))
		st.Wait = 500 * time.Millisecond
		return st, nil
	default:
		if f.holdSteps {
			st.Step = "creating instance"
			st.Wait = time.Second
			return st, nil
		}
		if err := f.failNode[in.NodeID]; err != nil {
			if f.failed == nil {
				f.failed = map[string]int{}
			}
			if n := f.failTimes[in.NodeID]; n == 0 || f.failed[in.NodeID] < n {
				f.failed[in.NodeID]++
				return st, err
			}
		}
		st.Step = "complete"
		st.Complete = true
		st.Instance = &drivers.Instance{ExternalID: st.ExternalID, Ready: true, InterfaceIP: "192.0.2.10"}
		return st, nil
	}
}

func (f *fakeCloud) delete(_ context.Context, in activities.DeleteStepInput) (drivers.DeleteState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := in.State
	if st.Step == "" {
		st.Step = "deleting instance"
		st.Wait = time.Second
		return st, nil
	}
	f.deleted = append(f.deleted, st.ExternalID)
	st.Complete = true
	return st, nil
}

type harness struct {
	env    *testsuite.TestWorkflowEnvironment
	cloud  *fakeCloud
	planFn func(context.Context, activities.PlanInput) (activities.Plan, error)
	// The activities below default to the fake cloud and a plain acceptance; tests
	// replace them.
	acceptFn       func(context.Context, activities.AcceptInput) (activities.AcceptResult, error)
	createFn       func(context.Context, activities.CreateStepInput) (drivers.CreateState, error)
	deleteFn       func(context.Context, activities.DeleteStepInput) (drivers.DeleteState, error)
	nodeInstanceFn func(context.Context, activities.NodeRefInput) (activities.NodeInstanceResult, error)
	nodeReadyFn    func(context.Context, activities.NodeReadyInput) error

	mu sync.Mutex
	// ledgerSignals are the names of the signals sent to the ledger, in order.
	ledgerSignals []string
}

func newHarness(t *testing.T, plan activities.Plan, nodeIDs []string) *harness {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(quietLogger{})
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(HandleRequest)
	env.RegisterActivity(&activities.Activities{})
	h := &harness{env: env, cloud: &fakeCloud{failNode: map[string]error{}}}
	h.planFn = func(context.Context, activities.PlanInput) (activities.Plan, error) { return plan, nil }
	env.OnActivity(a.PlanRequest, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.PlanInput) (activities.Plan, error) { return h.planFn(ctx, in) })
	h.acceptFn = func(context.Context, activities.AcceptInput) (activities.AcceptResult, error) {
		return activities.AcceptResult{Accepted: true, NodeIDs: nodeIDs}, nil
	}
	h.createFn, h.deleteFn = h.cloud.create, h.cloud.delete
	h.nodeInstanceFn = func(context.Context, activities.NodeRefInput) (activities.NodeInstanceResult, error) {
		return activities.NodeInstanceResult{}, nil
	}
	env.OnActivity(a.AcceptRequest, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.AcceptInput) (activities.AcceptResult, error) {
			return h.acceptFn(ctx, in)
		})
	env.OnActivity(a.CreateStep, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.CreateStepInput) (drivers.CreateState, error) {
			return h.createFn(ctx, in)
		})
	env.OnActivity(a.DeleteStep, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.DeleteStepInput) (drivers.DeleteState, error) {
			return h.deleteFn(ctx, in)
		})
	env.OnActivity(a.NodeReady, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.NodeReadyInput) error {
			if h.nodeReadyFn == nil {
				return nil
			}
			return h.nodeReadyFn(ctx, in)
		})
	env.OnActivity(a.CheckRequest, mock.Anything, mock.Anything).Return(activities.CheckRequestResult{Exists: true, State: "requested"}, nil)
	env.OnActivity(a.NodeInstance, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.NodeRefInput) (activities.NodeInstanceResult, error) {
			return h.nodeInstanceFn(ctx, in)
		})
	env.OnSignalExternalWorkflow(mock.Anything, names.LedgerWorkflowID(testTQ, "sim", "main"), "", mock.Anything, mock.Anything).Return(
		func(_, _, _, signal string, _ interface{}) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.ledgerSignals = append(h.ledgerSignals, signal)
			return nil
		})
	// The ledger grants after a second of workflow time.
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalCapacity, Grant{Granted: true})
	}, time.Second)
	return h
}

func (h *harness) run() {
	h.env.ExecuteWorkflow(HandleRequest, RequestInput{RequestID: "100-0000000001", TaskQueue: testTQ})
}

func TestHandleRequestFulfils(t *testing.T) {
	tests := []struct {
		name   string
		labels []string
		nodes  []string
	}{
		{"one label", []string{"small"}, []string{"0000000007"}},
		{"two labels keep order", []string{"small", "large"}, []string{"0000000008", "0000000009"}},
		{"duplicate labels", []string{"small", "small", "small"}, []string{"0000000010", "0000000011", "0000000012"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, launchPlan(tc.labels...), tc.nodes)
			var fulfilled []string
			h.env.OnActivity(a.FulfillRequest, mock.Anything, mock.Anything).Return(
				func(_ context.Context, in activities.FulfillInput) (activities.FulfillResult, error) {
					fulfilled = in.NodeIDs
					return activities.FulfillResult{}, nil
				})
			h.run()
			require.True(t, h.env.IsWorkflowCompleted())
			require.NoError(t, h.env.GetWorkflowError())
			var res RequestResult
			require.NoError(t, h.env.GetWorkflowResult(&res))
			require.Equal(t, OutcomeFulfilled, res.Outcome)
			require.Equal(t, tc.nodes, res.NodeIDs)
			require.Equal(t, tc.nodes, fulfilled)
			require.Empty(t, h.cloud.deleted, "no instance deleted on success")
			require.Equal(t, 2*len(tc.nodes), h.cloud.steps, "one activity per state-machine step")
		})
	}
}

func TestHandleRequestRetriesThenDeclines(t *testing.T) {
	h := newHarness(t, launchPlan("small", "large"), []string{"0000000001", "0000000002"})
	h.cloud.failNode["0000000002"] = temporal.NewNonRetryableApplicationError("instance failed to boot", "BootFailed", nil)
	var declined activities.DeclineInput
	h.env.OnActivity(a.DeclineRequest, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DeclineInput) (activities.DeclineResult, error) {
			declined = in
			return activities.DeclineResult{State: "failed"}, nil
		})
	removed := map[string]bool{}
	h.env.OnActivity(a.RemoveNode, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.NodeRefInput) error { removed[in.NodeID] = true; return nil })
	h.env.OnSignalExternalWorkflow(mock.Anything, names.LedgerWorkflowID(testTQ, "sim", "main"), "", SignalRelease, mock.Anything).Return(nil)
	h.run()
	require.True(t, h.env.IsWorkflowCompleted())
	require.NoError(t, h.env.GetWorkflowError())
	var res RequestResult
	require.NoError(t, h.env.GetWorkflowResult(&res))
	require.Equal(t, OutcomeDeclined, res.Outcome)
	require.Equal(t, []string{"np-PoolWorker.sim-main"}, declined.PoolIDs)
	// Three failed attempts of node 2, each instance deleted before the next attempt,
	// then both nodes' instances and znodes deleted before declining.
	require.ElementsMatch(t, []string{"i-0000000002-1", "i-0000000002-2", "i-0000000002-3", "i-0000000001-1"}, h.cloud.deleted)
	require.True(t, removed["0000000001"] && removed["0000000002"])
}

func TestHandleRequestDeletedMidLaunch(t *testing.T) {
	h := newHarness(t, launchPlan("small"), []string{"0000000003"})
	h.cloud.holdSteps = true
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(SignalRequestDeleted, nil) }, 10*time.Second)
	var removed []string
	h.env.OnActivity(a.RemoveNode, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.NodeRefInput) error {
			removed = append(removed, in.NodeID)
			return nil
		})
	h.env.OnActivity(a.ReleaseRequest, mock.Anything, mock.Anything).Return(nil)
	h.env.OnSignalExternalWorkflow(mock.Anything, names.LedgerWorkflowID(testTQ, "sim", "main"), "", SignalRelease, mock.Anything).Return(nil)
	h.run()
	require.True(t, h.env.IsWorkflowCompleted())
	require.NoError(t, h.env.GetWorkflowError())
	var res RequestResult
	require.NoError(t, h.env.GetWorkflowResult(&res))
	require.Equal(t, OutcomeGone, res.Outcome)
	require.Equal(t, []string{"i-0000000003-1"}, h.cloud.deleted)
	require.Equal(t, []string{"0000000003"}, removed)
}

func TestHandleRequestCancelDeclines(t *testing.T) {
	h := newHarness(t, launchPlan("small"), []string{"0000000004"})
	h.cloud.holdSteps = true
	h.env.RegisterDelayedCallback(h.env.CancelWorkflow, 10*time.Second)
	h.env.OnActivity(a.RemoveNode, mock.Anything, mock.Anything).Return(nil)
	declined := false
	h.env.OnActivity(a.DeclineRequest, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DeclineInput) (activities.DeclineResult, error) {
			declined = true
			return activities.DeclineResult{State: "failed"}, nil
		})
	h.env.OnSignalExternalWorkflow(mock.Anything, names.LedgerWorkflowID(testTQ, "sim", "main"), "", SignalRelease, mock.Anything).Return(nil)
	h.run()
	require.True(t, h.env.IsWorkflowCompleted())
	var canceled *temporal.CanceledError
	require.True(t, errors.As(h.env.GetWorkflowError(), &canceled), "workflow ends cancelled: %v", h.env.GetWorkflowError())
	require.True(t, declined)
	require.Equal(t, []string{"i-0000000004-1"}, h.cloud.deleted)
}

func TestHandleRequestHoldsFailedInstances(t *testing.T) {
	h := newHarness(t, launchPlan("small"), []string{"0000000005"})
	h.cloud.failNode["0000000005"] = errors.New("boom")
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(SignalHoldFailed, HoldFailed{HoldExpiration: 3600})
	}, 100*time.Millisecond)
	var held []activities.HoldInstanceInput
	h.env.OnActivity(a.HoldInstance, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.HoldInstanceInput) (activities.HoldInstanceResult, error) {
			held = append(held, in)
			return activities.HoldInstanceResult{NodeID: "90000000" + string(rune('0'+len(held)))}, nil
		})
	h.env.OnActivity(a.RemoveNode, mock.Anything, mock.Anything).Return(nil)
	h.env.OnActivity(a.DeclineRequest, mock.Anything, mock.Anything).Return(activities.DeclineResult{State: "failed"}, nil)
	h.env.OnSignalExternalWorkflow(mock.Anything, names.LedgerWorkflowID(testTQ, "sim", "main"), "", SignalRelease, mock.Anything).Return(nil)
	h.run()
	require.True(t, h.env.IsWorkflowCompleted())
	require.NoError(t, h.env.GetWorkflowError())
	var res RequestResult
	require.NoError(t, h.env.GetWorkflowResult(&res))
	require.Equal(t, OutcomeDeclined, res.Outcome)
	require.Len(t, held, 3, "every failed attempt's instance is held")
	require.Equal(t, 3600, held[0].HoldExpiration)
	require.Empty(t, h.cloud.deleted, "held instances are not deleted")
	require.Len(t, res.HeldNodes, 3)
}

func TestHandleRequestDeclinesUnservable(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(quietLogger{})
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Activities{})
	env.OnActivity(a.PlanRequest, mock.Anything, mock.Anything).Return(activities.Plan{
		Decision: activities.DecisionDecline, Reason: "node type(s) [nope] not available", DeclinePools: []string{"p1", "p2"},
	}, nil)
	var got activities.DeclineInput
	env.OnActivity(a.DeclineRequest, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DeclineInput) (activities.DeclineResult, error) {
			got = in
			return activities.DeclineResult{State: "failed"}, nil
		})
	env.ExecuteWorkflow(HandleRequest, RequestInput{RequestID: "100-0000000009", TaskQueue: testTQ})
	require.NoError(t, env.GetWorkflowError())
	var res RequestResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, OutcomeDeclined, res.Outcome)
	require.Equal(t, "failed", res.State)
	require.Equal(t, []string{"p1", "p2"}, got.PoolIDs)
}

func TestHandleRequestStatusQuery(t *testing.T) {
	h := newHarness(t, launchPlan("small"), []string{"0000000006"})
	h.env.OnActivity(a.FulfillRequest, mock.Anything, mock.Anything).Return(activities.FulfillResult{}, nil)
	var mid RequestStatus
	h.env.RegisterDelayedCallback(func() {
		v, err := h.env.QueryWorkflow(QueryStatus)
		require.NoError(t, err)
		require.NoError(t, v.Get(&mid))
	}, 1200*time.Millisecond)
	h.run()
	require.NoError(t, h.env.GetWorkflowError())
	require.Equal(t, "launching", mid.Phase)
	require.Len(t, mid.Nodes, 1)
	require.Equal(t, "0000000006", mid.Nodes[0].NodeID)
	require.Equal(t, "submit creating instance", mid.Nodes[0].Step)
	require.Equal(t, "i-0000000006-1", mid.Nodes[0].ExternalID)
}

func TestHandleRequestWaitsWhileTenantAtLimit(t *testing.T) {
	h := newHarness(t, launchPlan("small"), []string{"0000000013"})
	plans := 0
	h.planFn = func(context.Context, activities.PlanInput) (activities.Plan, error) {
		plans++
		if plans < 3 {
			return activities.Plan{Decision: activities.DecisionDefer, Reason: "tenant t is at its resource limit (instances)"}, nil
		}
		return launchPlan("small"), nil
	}
	h.env.OnActivity(a.FulfillRequest, mock.Anything, mock.Anything).Return(activities.FulfillResult{}, nil)
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(SignalCapacity, Grant{Granted: true})
	}, time.Minute)
	h.run()
	require.NoError(t, h.env.GetWorkflowError())
	var res RequestResult
	require.NoError(t, h.env.GetWorkflowResult(&res))
	require.Equal(t, OutcomeFulfilled, res.Outcome)
	require.Equal(t, 3, plans, "planned again until the tenant had room")
}

func TestHandleRequestRetriesCapacityWithoutSpendingAttempts(t *testing.T) {
	tests := []struct {
		name string
		// resumable: the driver created nothing and returned a state to go on from.
		resumable bool
		deleted   int
	}{
		{"nothing created: go on from the driver's state", true, 0},
		{"instance lost: relaunch without counting the attempt", false, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, launchPlan("small"), []string{"0000000001"})
			failure := activities.StepFailure{RetryAfterSec: 7}
			if tc.resumable {
				failure.State = &drivers.CreateState{Step: "submit creating instance", ExternalID: "i-0000000001-1"}
			}
			h.cloud.failNode["0000000001"] = temporal.NewApplicationErrorWithOptions("no capacity", activities.ErrTypeCapacity,
				temporal.ApplicationErrorOptions{NonRetryable: true, Details: []any{failure}})
			h.cloud.failTimes = map[string]int{"0000000001": 5}
			h.env.OnActivity(a.FulfillRequest, mock.Anything, mock.Anything).Return(activities.FulfillResult{}, nil)
			h.run()
			require.True(t, h.env.IsWorkflowCompleted())
			require.NoError(t, h.env.GetWorkflowError())
			var res RequestResult
			require.NoError(t, h.env.GetWorkflowResult(&res))
			require.Equal(t, OutcomeFulfilled, res.Outcome, "five capacity errors do not use up three attempts")
			require.Len(t, h.cloud.deleted, tc.deleted)
		})
	}
}

func TestCapacityBackoff(t *testing.T) {
	tests := []struct {
		n    int
		hint time.Duration
		want time.Duration
	}{
		{0, 0, capacityBackoffMin},
		{1, 0, 2 * capacityBackoffMin},
		{10, 0, capacityBackoffMax},
		{0, 7 * time.Second, 7 * time.Second},
		{0, time.Hour, capacityBackoffMax},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, capacityBackoff(tc.n, tc.hint), "n=%d hint=%s", tc.n, tc.hint)
	}
}

// A failed attempt's instance that cannot be deleted keeps a node record of its own,
// and an id the step never reported is read back from the node record.
func TestHandleRequestNeverForgetsAnInstance(t *testing.T) {
	h := newHarness(t, launchPlan("small"), []string{"0000000001"})
	// The step fails without reporting the instance the cloud created; the node
	// record has it.
	h.createFn = func(context.Context, activities.CreateStepInput) (drivers.CreateState, error) {
		return drivers.CreateState{}, temporal.NewNonRetryableApplicationError("describing instance failed", activities.ErrTypePermanent, nil)
	}
	h.nodeInstanceFn = func(context.Context, activities.NodeRefInput) (activities.NodeInstanceResult, error) {
		return activities.NodeInstanceResult{ExternalID: "i-recorded"}, nil
	}
	h.deleteFn = func(context.Context, activities.DeleteStepInput) (drivers.DeleteState, error) {
		return drivers.DeleteState{}, temporal.NewNonRetryableApplicationError("cloud refuses the delete", activities.ErrTypePermanent, nil)
	}
	var recorded []activities.HoldInstanceInput
	h.env.OnActivity(a.HoldInstance, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.HoldInstanceInput) (activities.HoldInstanceResult, error) {
			recorded = append(recorded, in)
			return activities.HoldInstanceResult{NodeID: "0000000099"}, nil
		})
	h.env.OnActivity(a.ReleaseNode, mock.Anything, mock.Anything).Return(nil)
	h.env.OnActivity(a.RemoveNode, mock.Anything, mock.Anything).Return(nil)
	h.env.OnSignalExternalWorkflow(mock.Anything, names.LedgerWorkflowID(testTQ, "sim", "main"), "", SignalRelease, mock.Anything).Return(nil)
	h.env.OnActivity(a.DeclineRequest, mock.Anything, mock.Anything).Return(activities.DeclineResult{State: "failed"}, nil)
	h.run()
	require.True(t, h.env.IsWorkflowCompleted())
	require.NoError(t, h.env.GetWorkflowError())
	require.Len(t, recorded, 1)
	require.Equal(t, "i-recorded", recorded[0].ExternalID)
	require.Equal(t, activities.InstanceFailed, recorded[0].State, "the undeleted instance goes to the deletion workflow")
}

func TestHandleRequestIgnoresGrantsForAnotherRunChain(t *testing.T) {
	h := newHarness(t, launchPlan("small"), []string{"0000000001"})
	accepted := false
	h.acceptFn = func(context.Context, activities.AcceptInput) (activities.AcceptResult, error) {
		accepted = true
		return activities.AcceptResult{Accepted: true, NodeIDs: []string{"0000000001"}}, nil
	}
	h.env.OnActivity(a.FulfillRequest, mock.Anything, mock.Anything).Return(activities.FulfillResult{}, nil)
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(SignalCapacity, Grant{Granted: true, Chain: "stale-ch"})
	}, 500*time.Millisecond)
	h.env.RegisterDelayedCallback(func() {
		require.False(t, accepted, "a grant meant for an ended run chain is not taken")
	}, 900*time.Millisecond)
	h.run()
	require.True(t, h.env.IsWorkflowCompleted())
	require.NoError(t, h.env.GetWorkflowError())
	require.True(t, accepted)
}

func TestIndexedNodeIDsStayWithinTheSearchAttributeLimit(t *testing.T) {
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprintf("%010d", i)
	}
	got := indexedNodeIDs(ids)
	size := 0
	for _, id := range got {
		size += len(id) + 3
	}
	require.LessOrEqual(t, size, saBudget)
	require.NotEmpty(t, got)
	require.Equal(t, []string{"0000000001"}, indexedNodeIDs([]string{"0000000001"}))
}

func TestHandleRequestServedFromReadyNodes(t *testing.T) {
	plan := launchPlan("small", "small")
	plan.Nodes[0].Reuse, plan.Nodes[1].Reuse = true, true
	h := newHarness(t, plan, []string{"0000000001", "0000000002"})
	h.acceptFn = func(context.Context, activities.AcceptInput) (activities.AcceptResult, error) {
		return activities.AcceptResult{Accepted: true, NodeIDs: []string{"0000000001", "0000000002"}, Reused: []bool{true, true}}, nil
	}
	h.env.OnActivity(a.FulfillRequest, mock.Anything, mock.Anything).Return(activities.FulfillResult{}, nil)
	h.run()
	require.True(t, h.env.IsWorkflowCompleted())
	require.NoError(t, h.env.GetWorkflowError())
	var res RequestResult
	require.NoError(t, h.env.GetWorkflowResult(&res))
	require.Equal(t, OutcomeFulfilled, res.Outcome)
	require.Empty(t, h.ledgerSignals, "ready nodes need no capacity")
	require.Zero(t, h.cloud.steps, "nothing is launched")
}

func TestHandleRequestGivesReadyNodesBackOnFailure(t *testing.T) {
	plan := launchPlan("small", "small")
	plan.Nodes[0].Reuse = true
	h := newHarness(t, plan, []string{"0000000001", "0000000002"})
	h.acceptFn = func(context.Context, activities.AcceptInput) (activities.AcceptResult, error) {
		return activities.AcceptResult{Accepted: true, NodeIDs: []string{"0000000001", "0000000002"}, Reused: []bool{true, false}}, nil
	}
	h.cloud.failNode["0000000002"] = temporal.NewNonRetryableApplicationError("bad image", activities.ErrTypePermanent, nil)
	var returned, removed []string
	h.env.OnActivity(a.ReturnNode, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ReturnNodeInput) error {
			returned = append(returned, in.NodeID)
			return nil
		})
	h.env.OnActivity(a.RemoveNode, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.NodeRefInput) error {
			removed = append(removed, in.NodeID)
			return nil
		})
	h.env.OnSignalExternalWorkflow(mock.Anything, names.LedgerWorkflowID(testTQ, "sim", "main"), "", SignalRelease, mock.Anything).Return(nil)
	h.env.OnActivity(a.DeclineRequest, mock.Anything, mock.Anything).Return(activities.DeclineResult{State: "failed"}, nil)
	h.run()
	require.True(t, h.env.IsWorkflowCompleted())
	require.NoError(t, h.env.GetWorkflowError())
	require.Equal(t, []string{"0000000001"}, returned, "the ready node goes back to the pool")
	require.Equal(t, []string{"0000000002"}, removed, "the launched node is deleted")
}

func TestHandleRequestHonoursMaxConcurrency(t *testing.T) {
	plan := launchPlan("small", "small", "small")
	plan.MaxConcurrency = 1
	h := newHarness(t, plan, []string{"0000000001", "0000000002", "0000000003"})
	concurrency := names.ConcurrencyWorkflowID(testTQ, "sim")
	var acquired LedgerAcquire
	released := false
	h.env.OnSignalExternalWorkflow(mock.Anything, concurrency, "", SignalAcquire, mock.Anything).Return(
		func(_, _, _, _ string, arg interface{}) error {
			acquired = arg.(LedgerAcquire)
			h.env.RegisterDelayedCallback(func() {
				h.env.SignalWorkflow(SignalCapacity, Grant{Granted: true, Ledger: concurrency})
			}, time.Second)
			return nil
		})
	h.env.OnSignalExternalWorkflow(mock.Anything, concurrency, "", SignalRelease, mock.Anything).Return(
		func(string, string, string, string, interface{}) error { released = true; return nil })
	var mu sync.Mutex
	inFlight, most := 0, 0
	h.createFn = func(ctx context.Context, in activities.CreateStepInput) (drivers.CreateState, error) {
		mu.Lock()
		if in.State.Step == "" {
			inFlight++
			most = max(most, inFlight)
		} else {
			inFlight--
		}
		mu.Unlock()
		return h.cloud.create(ctx, in)
	}
	h.env.OnActivity(a.FulfillRequest, mock.Anything, mock.Anything).Return(activities.FulfillResult{}, nil)
	h.run()
	require.True(t, h.env.IsWorkflowCompleted())
	require.NoError(t, h.env.GetWorkflowError())
	var res RequestResult
	require.NoError(t, h.env.GetWorkflowResult(&res))
	require.Equal(t, OutcomeFulfilled, res.Outcome)
	require.EqualValues(t, 1, acquired.Need["launches"], "slots are taken up to max-concurrency")
	require.Equal(t, 1, most, "at most max-concurrency launches run at once")
	require.True(t, released, "the slots are given back")
}

func TestHandleRequestScansHostKeys(t *testing.T) {
	plan := launchPlan("small")
	plan.HostKeyChecking = true
	plan.BootTimeoutSec = 60
	h := newHarness(t, plan, []string{"0000000001"})
	scans := 0
	h.env.OnActivity(a.ScanNode, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.ScanNodeInput) (activities.ScanNodeResult, error) {
			scans++
			if scans == 1 {
				return activities.ScanNodeResult{}, temporal.NewNonRetryableApplicationError("no answer", activities.ErrTypeNodescan, nil)
			}
			return activities.ScanNodeResult{HostKeys: []string{"ssh-ed25519 AAAA"}}, nil
		})
	h.env.OnActivity(a.FulfillRequest, mock.Anything, mock.Anything).Return(activities.FulfillResult{}, nil)
	h.run()
	require.True(t, h.env.IsWorkflowCompleted())
	require.NoError(t, h.env.GetWorkflowError())
	require.Equal(t, 2, scans, "a node that does not answer fails its attempt; the next attempt is scanned again")
	require.Equal(t, []string{"i-0000000001-1"}, h.cloud.deleted, "the failed attempt's instance is deleted")
}

func TestHandleRequestLeanBookkeeping(t *testing.T) {
	ledger := names.LedgerWorkflowID(testTQ, "sim", "main")
	nodeIDs := func(n int) []string {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("%010d", i+1)
		}
		return ids
	}
	cases := []struct {
		name  string
		nodes int
		// planAcquires makes planning report that it sent the acquire; acceptFails
		// fails that many acceptances (retryably).
		planAcquires bool
		acceptFails  int
		wantLocal    bool
		// wantSignals are the ledger signals the workflow sends itself.
		wantSignals []string
	}{
		{name: "planning acquires, acceptance binds", nodes: 1, planAcquires: true, wantLocal: true},
		{name: "largest request accepted locally", nodes: acceptLocalMax, planAcquires: true, wantLocal: true},
		{name: "larger request accepted by an activity that heartbeats", nodes: acceptLocalMax + 1, planAcquires: true},
		{name: "acceptance retried", nodes: 2, planAcquires: true, acceptFails: 2, wantLocal: true},
		{name: "planning that did not acquire", nodes: 1, wantLocal: true, wantSignals: []string{SignalAcquire}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			labels := make([]string, tc.nodes)
			for i := range labels {
				labels[i] = "small"
			}
			ids := nodeIDs(tc.nodes)
			h := newHarness(t, launchPlan(labels...), ids)
			var planIn activities.PlanInput
			h.planFn = func(_ context.Context, in activities.PlanInput) (activities.Plan, error) {
				planIn = in
				p := launchPlan(labels...)
				p.Acquired = tc.planAcquires
				return p, nil
			}
			var acceptIn activities.AcceptInput
			accepts, local := 0, false
			h.acceptFn = func(ctx context.Context, in activities.AcceptInput) (activities.AcceptResult, error) {
				acceptIn, local = in, activity.GetInfo(ctx).IsLocalActivity
				accepts++
				if accepts <= tc.acceptFails {
					return activities.AcceptResult{}, errors.New("zookeeper unavailable")
				}
				return activities.AcceptResult{Accepted: true, NodeIDs: ids}, nil
			}
			h.env.OnActivity(a.FulfillRequest, mock.Anything, mock.Anything).Return(activities.FulfillResult{}, nil)
			h.run()
			require.True(t, h.env.IsWorkflowCompleted())
			require.NoError(t, h.env.GetWorkflowError())
			var res RequestResult
			require.NoError(t, h.env.GetWorkflowResult(&res))
			require.Equal(t, OutcomeFulfilled, res.Outcome)

			require.NotNil(t, planIn.Acquire, "planning sends the acquire")
			holder := planIn.Acquire.Holder
			require.NotEmpty(t, holder)
			require.Equal(t, activities.AcquireTarget{TaskQueue: testTQ, WorkflowType: LedgerWorkflowType, Signal: SignalAcquire,
				Holder: holder, Chain: planIn.Acquire.Chain}, *planIn.Acquire)
			require.NotNil(t, acceptIn.Bind, "the acceptance binds its nodes")
			require.Equal(t, holder, acceptIn.Bind.Holder)
			require.Equal(t, ledger, acceptIn.Bind.Ledger.WorkflowID)
			require.Equal(t, SignalBind, acceptIn.Bind.Ledger.Signal)
			require.Equal(t, tc.wantLocal, local)
			require.Equal(t, tc.acceptFails+1, accepts)
			h.mu.Lock()
			defer h.mu.Unlock()
			require.Equal(t, tc.wantSignals, h.ledgerSignals)
		})
	}
}

func TestHandleRequestInlineCreateSteps(t *testing.T) {
	cases := []struct {
		name   string
		inline bool
		// transient fails that many steps retryably; failNode fails node 1's second
		// step once, ending the attempt.
		transient int
		failNode  bool
		hostKeys  bool
		wantLocal bool
		// wantDeleted are the instances of failed attempts deleted.
		wantDeleted []string
	}{
		{name: "provider with a rate", inline: false},
		{name: "provider without a rate", inline: true, wantLocal: true},
		{name: "retried step", inline: true, transient: 2, wantLocal: true},
		{name: "failed attempt", inline: true, failNode: true, wantLocal: true, wantDeleted: []string{"i-0000000001-1"}},
		{name: "ready written after the host key scan", inline: true, hostKeys: true, wantLocal: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			plan := launchPlan("small")
			plan.InlineSteps = tc.inline
			plan.HostKeyChecking = tc.hostKeys
			h := newHarness(t, plan, []string{"0000000001"})
			if tc.failNode {
				h.cloud.failNode["0000000001"] = temporal.NewNonRetryableApplicationError("instance failed to boot", "BootFailed", nil)
				h.cloud.failTimes = map[string]int{"0000000001": 1}
			}
			var mu sync.Mutex
			steps, failures, readies := 0, 0, 0
			locals, markReady := map[bool]int{}, map[bool]int{}
			h.createFn = func(ctx context.Context, in activities.CreateStepInput) (drivers.CreateState, error) {
				mu.Lock()
				steps++
				locals[activity.GetInfo(ctx).IsLocalActivity]++
				markReady[in.MarkReady]++
				if in.MarkReady {
					require.Equal(t, drivers.Resources{"instances": 1}, in.Need)
				}
				if failures < tc.transient {
					failures++
					mu.Unlock()
					return in.State, errors.New("cloud unavailable")
				}
				mu.Unlock()
				return h.cloud.create(ctx, in)
			}
			h.env.OnActivity(a.FulfillRequest, mock.Anything, mock.Anything).Return(activities.FulfillResult{}, nil)
			h.env.OnActivity(a.RemoveNode, mock.Anything, mock.Anything).Return(nil)
			h.env.OnActivity(a.ScanNode, mock.Anything, mock.Anything).Return(activities.ScanNodeResult{HostKeys: []string{"ssh-ed25519 AAAA"}}, nil)
			h.nodeReadyFn = func(context.Context, activities.NodeReadyInput) error { readies++; return nil }
			h.run()
			require.True(t, h.env.IsWorkflowCompleted())
			require.NoError(t, h.env.GetWorkflowError())
			var res RequestResult
			require.NoError(t, h.env.GetWorkflowResult(&res))
			require.Equal(t, OutcomeFulfilled, res.Outcome)
			require.Equal(t, map[bool]int{tc.wantLocal: steps}, locals, "every step runs the same way")
			// The step that completes the launch writes the node ready unless a scan
			// comes first.
			require.Equal(t, map[bool]int{!tc.hostKeys: steps}, markReady)
			if tc.hostKeys {
				require.Equal(t, 1, readies)
			} else {
				require.Zero(t, readies)
			}
			require.Equal(t, tc.wantDeleted, h.cloud.deleted)
		})
	}
}
