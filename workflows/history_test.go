package workflows

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/nodepool-temporal/nodepool-temporal/activities"
	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/internal/testenv"
	"github.com/nodepool-temporal/nodepool-temporal/names"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// stubLedger grants every acquire at once, as a pool ledger with room does.
func stubLedger(ctx workflow.Context, _ LedgerInput) error {
	acquires := workflow.GetSignalChannel(ctx, SignalAcquire)
	binds := workflow.GetSignalChannel(ctx, SignalBind)
	releases := workflow.GetSignalChannel(ctx, SignalRelease)
	for {
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(acquires, func(c workflow.ReceiveChannel, _ bool) {
			var acq LedgerAcquire
			c.Receive(ctx, &acq)
			_ = workflow.SignalExternalWorkflow(ctx, acq.Holder, "", SignalCapacity, Grant{Granted: true}).Get(ctx, nil)
		})
		sel.AddReceive(binds, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil) })
		sel.AddReceive(releases, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil) })
		sel.Select(ctx)
	}
}

// stubActivities stand in for the ZooKeeper and cloud activities: every request is
// planned to launch on a provider without a rate, every instance is ready after one
// step, and every deletion is confirmed at once.
type stubActivities struct {
	c     client.Client
	queue string
	nodes int
	mu    sync.Mutex
	next  int
}

func (s *stubActivities) register(w worker.Worker) {
	reg := func(fn any, name string) { w.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name}) }
	reg(s.plan, "PlanRequest")
	reg(s.accept, "AcceptRequest")
	reg(s.signalLedger, "SignalLedger")
	reg(func(context.Context, activities.CreateStepInput) (drivers.CreateState, error) {
		return drivers.CreateState{Step: "complete", Complete: true, ExternalID: "i-1",
			Instance: &drivers.Instance{ExternalID: "i-1", Ready: true, InterfaceIP: "192.0.2.1"}}, nil
	}, "CreateStep")
	reg(func(context.Context, activities.NodeReadyInput) error { return nil }, "NodeReady")
	reg(func(context.Context, activities.FulfillInput) (activities.FulfillResult, error) {
		return activities.FulfillResult{}, nil
	}, "FulfillRequest")
	reg(func(context.Context, string) (activities.CheckRequestResult, error) {
		return activities.CheckRequestResult{Exists: true, State: "requested"}, nil
	}, "CheckRequest")
	reg(func(_ context.Context, in activities.StartDeleteInput) (activities.StartDeleteResult, error) {
		return activities.StartDeleteResult{Proceed: true, ExternalID: "i-1", Provider: "sim", Pool: "main",
			TaskQueue: s.queue, Deleted: in.Finish != nil}, nil
	}, "StartDelete")
	reg(func(context.Context, activities.DeleteStepInput) (drivers.DeleteState, error) {
		return drivers.DeleteState{Complete: true}, nil
	}, "DeleteStep")
	reg(func(context.Context, activities.NodeRefInput) error { return nil }, "RemoveNode")
	reg(func(context.Context, activities.FinishDeleteInput) error { return nil }, "FinishDelete")
}

func (s *stubActivities) plan(ctx context.Context, in activities.PlanInput) (activities.Plan, error) {
	labels := make([]string, s.nodes)
	for i := range labels {
		labels[i] = "small"
	}
	p := launchPlan(labels...)
	p.ProviderTaskQueue = s.queue
	p.InlineSteps = true
	if t := in.Acquire; t != nil {
		acq := p.Acquire(t.Holder, t.Chain, in.RequestID)
		if err := s.signalLedger(ctx, activities.SignalLedgerInput{
			WorkflowID: names.LedgerWorkflowID(t.TaskQueue, p.Provider, p.Pool), WorkflowType: t.WorkflowType,
			Signal: t.Signal, Payload: activities.LedgerSignal{Acquire: &acq},
		}); err != nil {
			return p, err
		}
		p.Acquired = true
	}
	return p, nil
}

func (s *stubActivities) accept(_ context.Context, in activities.AcceptInput) (activities.AcceptResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := activities.AcceptResult{Accepted: true}
	for range in.Plan.Nodes {
		s.next++
		res.NodeIDs = append(res.NodeIDs, fmt.Sprintf("%010d", s.next))
	}
	return res, nil
}

func (s *stubActivities) signalLedger(ctx context.Context, in activities.SignalLedgerInput) error {
	var arg any
	switch {
	case in.Payload.Acquire != nil:
		arg = *in.Payload.Acquire
	case in.Payload.Bind != nil:
		arg = *in.Payload.Bind
	case in.Payload.Release != nil:
		arg = *in.Payload.Release
	}
	_, err := s.c.SignalWithStartWorkflow(ctx, in.WorkflowID, in.Signal, arg,
		client.StartWorkflowOptions{ID: in.WorkflowID, TaskQueue: s.queue}, LedgerWorkflowType, LedgerInput{})
	return err
}

// TestHistoryEventsPerNode runs request and deletion workflows on a real Temporal
// server (with stand-ins for every activity and the ledger) and bounds the history
// events each costs per node: the server's work grows with them.
func TestHistoryEventsPerNode(t *testing.T) {
	addr := testenv.Temporal(t)
	c, err := client.Dial(client.Options{HostPort: addr, Logger: quietLogger{}})
	require.NoError(t, err)
	defer c.Close()
	cases := []struct {
		name  string
		nodes int
		// maxPerNode bounds the request workflow's events per node.
		maxPerNode float64
	}{
		{name: "one node", nodes: 1, maxPerNode: 17},
		{name: "fifty nodes", nodes: 50, maxPerNode: 1.5},
		{name: "five hundred nodes", nodes: 500, maxPerNode: 1.5},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			queue := fmt.Sprintf("history-%d-%d", time.Now().UnixNano(), i)
			stubs := &stubActivities{c: c, queue: queue, nodes: tc.nodes}
			w := worker.New(c, queue, worker.Options{})
			w.RegisterWorkflowWithOptions(HandleRequest, workflow.RegisterOptions{Name: RequestWorkflowType})
			w.RegisterWorkflowWithOptions(DeleteNode, workflow.RegisterOptions{Name: DeleteWorkflowType})
			w.RegisterWorkflowWithOptions(stubLedger, workflow.RegisterOptions{Name: LedgerWorkflowType})
			stubs.register(w)
			require.NoError(t, w.Start())
			defer w.Stop()
			ledger := names.LedgerWorkflowID(queue, "sim", "main")
			_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: ledger, TaskQueue: queue}, LedgerWorkflowType, LedgerInput{})
			require.NoError(t, err)
			defer func() { _ = c.TerminateWorkflow(context.Background(), ledger, "", "test over") }()

			id := names.RequestWorkflowID(queue, "100-0000000001")
			run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue}, RequestWorkflowType,
				RequestInput{RequestID: "100-0000000001", TaskQueue: queue})
			require.NoError(t, err)
			var res RequestResult
			require.NoError(t, run.Get(ctx, &res))
			require.Equal(t, OutcomeFulfilled, res.Outcome)
			events := historyLength(ctx, t, c, id)

			del := names.DeleteWorkflowID(queue, res.NodeIDs[0])
			run, err = c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: del, TaskQueue: queue}, DeleteWorkflowType,
				DeleteInput{NodeID: res.NodeIDs[0], TaskQueue: queue, PollIntervalSec: 1})
			require.NoError(t, err)
			var dres DeleteResult
			require.NoError(t, run.Get(ctx, &dres))
			require.Equal(t, "deleted", dres.Outcome)
			delEvents := historyLength(ctx, t, c, del)

			perNode := float64(events) / float64(tc.nodes)
			t.Logf("request of %d node(s): %d events (%.2f per node); deletion: %d events", tc.nodes, events, perNode, delEvents)
			require.LessOrEqual(t, perNode, tc.maxPerNode)
			require.LessOrEqual(t, delEvents, 8)
		})
	}
}

func historyLength(ctx context.Context, t *testing.T, c client.Client, id string) int {
	t.Helper()
	n := 0
	it := c.GetWorkflowHistory(ctx, id, "", false, 0)
	for it.HasNext() {
		_, err := it.Next()
		require.NoError(t, err)
		n++
	}
	return n
}
