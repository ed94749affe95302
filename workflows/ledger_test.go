package workflows

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/nodepool-temporal/nodepool-temporal/activities"
	"github.com/nodepool-temporal/nodepool-temporal/drivers"
)

type ledgerHarness struct {
	env *testsuite.TestWorkflowEnvironment
	// mu guards the records: the test environment delivers signals on goroutines, so
	// grants given in one batch are recorded in no particular order.
	mu     sync.Mutex
	grants []string // holders granted, in order
	denied []string
	usage  map[string]drivers.Resources
}

func newLedgerHarness(t *testing.T) *ledgerHarness {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(quietLogger{})
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(PoolLedger, workflow.RegisterOptions{Name: LedgerWorkflowType})
	env.RegisterActivity(&activities.Activities{})
	h := &ledgerHarness{env: env, usage: map[string]drivers.Resources{}}
	env.OnSignalExternalWorkflow(mock.Anything, mock.Anything, "", SignalCapacity, mock.Anything).Return(
		func(_, workflowID, _, _ string, arg interface{}) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			g := arg.(Grant)
			if g.Granted {
				h.grants = append(h.grants, workflowID)
			} else {
				h.denied = append(h.denied, workflowID)
			}
			return nil
		})
	env.OnActivity(a.PoolUsage, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.PoolUsageInput) (activities.PoolUsageResult, error) {
			out := map[string]drivers.Resources{}
			for k, v := range h.usage {
				out[k] = v
			}
			return activities.PoolUsageResult{Nodes: out}, nil
		})
	return h
}

func acquire(holder, prio string, rel int, seq string, n int64) LedgerAcquire {
	return LedgerAcquire{
		Holder: holder, RequestID: prio + "-" + seq,
		Order:  activities.OrderKey{Priority: prio, RelativePriority: rel, Sequence: seq},
		Need:   drivers.Resources{"instances": n, "cores": 2 * n},
		Limits: drivers.Resources{"instances": 2, "cores": 8},
	}
}

func (h *ledgerHarness) at(d time.Duration, f func()) { h.env.RegisterDelayedCallback(f, d) }

func (h *ledgerHarness) granted() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string{}, h.grants...)
}

func (h *ledgerHarness) run(t *testing.T) {
	h.env.ExecuteWorkflow(PoolLedger, LedgerInput{Provider: "sim", Pool: "main", TaskQueue: testTQ, ReconcileSec: 3600, HistoryLimit: 200})
	require.True(t, h.env.IsWorkflowCompleted())
	var cont *workflow.ContinueAsNewError
	require.True(t, errors.As(h.env.GetWorkflowError(), &cont), "ledger ends only by continuing as new: %v", h.env.GetWorkflowError())
}

func TestLedgerGrantsInNodepoolOrderWithinLimits(t *testing.T) {
	h := newLedgerHarness(t)
	h.at(500*time.Millisecond, func() {
		h.env.SignalWorkflow(SignalAcquire, acquire("w-blocker", "300", 0, "0000000000", 2))
	})
	h.at(time.Second, func() {
		// Arrive out of order while the pool is full.
		h.env.SignalWorkflow(SignalAcquire, acquire("w-late", "200", 0, "0000000001", 1))
		h.env.SignalWorkflow(SignalAcquire, acquire("w-first", "100", 0, "0000000005", 1))
		h.env.SignalWorkflow(SignalAcquire, acquire("w-rel", "100", 5, "0000000002", 1))
		h.env.SignalWorkflow(SignalAcquire, acquire("w-third", "100", 0, "0000000009", 1))
	})
	var mid LedgerStatus
	h.at(1500*time.Millisecond, func() {
		require.Equal(t, []string{"w-blocker"}, h.granted())
		v, err := h.env.QueryWorkflow(QueryStatus)
		require.NoError(t, err)
		require.NoError(t, v.Get(&mid))
		h.env.SignalWorkflow(SignalRelease, LedgerRelease{Holder: "w-blocker"})
	})
	h.at(2*time.Second, func() {
		require.ElementsMatch(t, []string{"w-blocker", "w-first", "w-third"}, h.granted(), "two fit; priority, then relative priority, then sequence")
		h.env.SignalWorkflow(SignalBind, LedgerBind{Holder: "w-first", Nodes: map[string]drivers.Resources{"0000000001": {"instances": 1, "cores": 2}}})
		h.env.SignalWorkflow(SignalBind, LedgerBind{Holder: "w-third", Nodes: map[string]drivers.Resources{"0000000002": {"instances": 1, "cores": 2}}})
	})
	h.at(3*time.Second, func() {
		require.Len(t, h.granted(), 3, "nothing more until capacity frees")
		h.env.SignalWorkflow(SignalRelease, LedgerRelease{NodeIDs: []string{"0000000001"}})
	})
	h.at(4*time.Second, func() {
		require.ElementsMatch(t, []string{"w-blocker", "w-first", "w-third", "w-rel"}, h.granted())
		// A request that can never fit is refused at once, not queued.
		h.env.SignalWorkflow(SignalAcquire, acquire("w-huge", "100", 0, "0000000010", 3))
	})
	h.at(5*time.Second, func() {
		require.Equal(t, []string{"w-huge"}, h.denied)
		// Giving up an unbound grant frees it for the last waiter.
		h.env.SignalWorkflow(SignalRelease, LedgerRelease{Holder: "w-rel"})
	})
	h.run(t)
	require.ElementsMatch(t, []string{"w-blocker", "w-first", "w-third", "w-rel", "w-late"}, h.granted())
	require.True(t, mid.Paused)
	require.Equal(t, []string{"100-0000000005", "100-0000000009", "100-0000000002", "200-0000000001"}, mid.Waiting)
	require.Equal(t, int64(2), mid.Used["instances"])
}

func TestLedgerCountsUnknownNodesAndDropsVanishedOnes(t *testing.T) {
	h := newLedgerHarness(t)
	// Two nodes exist that no hold knows (from before the ledger, or another launcher).
	h.usage["0000000050"] = drivers.Resources{"instances": 1}
	h.usage["0000000051"] = drivers.Resources{"instances": 1}
	h.at(time.Second, func() {
		h.env.SignalWorkflow(SignalAcquire, acquire("w-a", "100", 0, "0000000001", 1))
	})
	h.at(2*time.Second, func() {
		require.Empty(t, h.granted(), "the pool is full of unknown nodes")
		delete(h.usage, "0000000050")
	})
	h.run(t)
	// The next reconciliation sees one node gone and grants.
	require.Equal(t, []string{"w-a"}, h.grants)
}

func TestLedgerRepeatedAcquireIsAnsweredAgain(t *testing.T) {
	h := newLedgerHarness(t)
	h.at(time.Second, func() { h.env.SignalWorkflow(SignalAcquire, acquire("w-a", "100", 0, "0000000001", 1)) })
	h.at(2*time.Second, func() { h.env.SignalWorkflow(SignalAcquire, acquire("w-a", "100", 0, "0000000001", 1)) })
	var st LedgerStatus
	h.at(3*time.Second, func() {
		v, err := h.env.QueryWorkflow(QueryStatus)
		require.NoError(t, err)
		require.NoError(t, v.Get(&st))
	})
	h.run(t)
	require.Equal(t, []string{"w-a", "w-a"}, h.grants)
	require.Equal(t, int64(1), st.Used["instances"], "a repeated acquire does not take capacity twice")
}
