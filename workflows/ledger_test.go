package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/nodepool-temporal/nodepool-temporal/activities"
	"github.com/nodepool-temporal/nodepool-temporal/drivers"
	"github.com/nodepool-temporal/nodepool-temporal/names"
)

type ledgerHarness struct {
	env *testsuite.TestWorkflowEnvironment
	// mu guards the records: the test environment delivers signals on goroutines, so
	// grants given in one batch are recorded in no particular order.
	mu     sync.Mutex
	grants []string // holders granted, in order
	denied []string
	usage  map[string]drivers.Resources
	// ended are the request ids whose holders the reconciliation reports ended.
	ended []string
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
			name := holderNames[workflowID]
			if g.Granted {
				h.grants = append(h.grants, name)
			} else {
				h.denied = append(h.denied, name)
			}
			return nil
		})
	env.OnActivity(a.DeliverGrants, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DeliverGrantsInput) (activities.DeliverGrantsResult, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			for _, d := range in.Deliveries {
				name := holderNames[d.WorkflowID]
				if d.Grant.Granted {
					h.grants = append(h.grants, name)
				} else {
					h.denied = append(h.denied, name)
				}
			}
			return activities.DeliverGrantsResult{}, nil
		})
	env.OnActivity(a.PoolUsage, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.PoolUsageInput) (activities.PoolUsageResult, error) {
			out := map[string]drivers.Resources{}
			for k, v := range h.usage {
				out[k] = v
			}
			h.mu.Lock()
			defer h.mu.Unlock()
			return activities.PoolUsageResult{Nodes: out, Ended: h.ended}, nil
		})
	return h
}

// holderNames and requestIDs map the tests' names for requests to the holders'
// workflow ids and to request ids.
var (
	holderNames = map[string]string{}
	requestIDs  = map[string]string{}
)

// acquire is the acquire of the request named name (its id is prio-seq).
func acquire(name, prio string, rel int, seq string, n int64) LedgerAcquire {
	rid := prio + "-" + seq
	holder := names.RequestWorkflowID(testTQ, rid)
	holderNames[holder], requestIDs[name] = name, rid
	return LedgerAcquire{
		Holder: holder, RequestID: rid,
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
	h.runWith(t, LedgerInput{Provider: "sim", Pool: "main", TaskQueue: testTQ, ReconcileSec: 3600, HistoryLimit: 200})
}

// runWith runs the ledger until it continues as new and returns the state it carries.
func (h *ledgerHarness) runWith(t *testing.T, in LedgerInput) *LedgerState {
	h.env.ExecuteWorkflow(PoolLedger, in)
	require.True(t, h.env.IsWorkflowCompleted())
	var cont *workflow.ContinueAsNewError
	require.True(t, errors.As(h.env.GetWorkflowError(), &cont), "ledger ends only by continuing as new: %v", h.env.GetWorkflowError())
	var next LedgerInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(cont.Input, &next))
	return next.State
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
		h.env.SignalWorkflow(SignalRelease, LedgerRelease{RequestID: requestIDs["w-blocker"]})
	})
	h.at(2*time.Second, func() {
		require.ElementsMatch(t, []string{"w-blocker", "w-first", "w-third"}, h.granted(), "two fit; priority, then relative priority, then sequence")
		h.env.SignalWorkflow(SignalBind, LedgerBind{RequestID: requestIDs["w-first"], Nodes: map[string]drivers.Resources{"0000000001": {"instances": 1, "cores": 2}}})
		h.env.SignalWorkflow(SignalBind, LedgerBind{RequestID: requestIDs["w-third"], Nodes: map[string]drivers.Resources{"0000000002": {"instances": 1, "cores": 2}}})
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
		h.env.SignalWorkflow(SignalRelease, LedgerRelease{RequestID: requestIDs["w-rel"]})
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

// A batch signal's inputs count exactly as if each had come alone, in order.
func TestLedgerHandlesBatchSignalsAsSingleOnes(t *testing.T) {
	h := newLedgerHarness(t)
	h.at(time.Second, func() {
		a, b, c := acquire("b-a", "100", 0, "0000000001", 1), acquire("b-b", "100", 0, "0000000002", 1), acquire("b-c", "100", 0, "0000000003", 1)
		h.env.SignalWorkflow(SignalBatch, LedgerBatch{Signals: []activities.LedgerSignal{{Acquire: &a}, {Acquire: &b}, {Acquire: &c}}})
	})
	var st LedgerStatus
	h.at(2*time.Second, func() {
		require.ElementsMatch(t, []string{"b-a", "b-b"}, h.granted(), "two fit the pool's two instances, in order")
		bind := LedgerBind{RequestID: requestIDs["b-a"], Nodes: map[string]drivers.Resources{"0000000001": {"instances": 1, "cores": 2}}}
		release := LedgerRelease{RequestID: requestIDs["b-b"]}
		h.env.SignalWorkflow(SignalBatch, LedgerBatch{Signals: []activities.LedgerSignal{{Bind: &bind}, {Release: &release}}})
	})
	h.at(3*time.Second, func() {
		v, err := h.env.QueryWorkflow(QueryStatus)
		require.NoError(t, err)
		require.NoError(t, v.Get(&st))
	})
	h.run(t)
	require.Equal(t, []string{"b-a", "b-b", "b-c"}, h.grants, "b-b's release lets b-c in")
	require.Equal(t, 1, st.Nodes, "the bound node")
	require.Equal(t, int64(2), st.Used["instances"])
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

func TestLedgerCarriesEverySignalAcrossContinueAsNew(t *testing.T) {
	h := newLedgerHarness(t)
	const n = 60
	delivered := 0
	h.at(time.Second, func() {
		for i := range n {
			h.env.SignalWorkflow(SignalAcquire, acquire(fmt.Sprintf("w-%d", i), "100", 0, fmt.Sprintf("%010d", i), 1))
		}
		delivered += n
	})
	// More keep arriving, one at a time, while the ledger answers grants.
	for i := range 20 {
		h.at(time.Second+time.Duration(i+1)*10*time.Millisecond, func() {
			if h.env.IsWorkflowCompleted() {
				return
			}
			h.env.SignalWorkflow(SignalAcquire, acquire(fmt.Sprintf("w-late-%d", i), "100", 0, fmt.Sprintf("9%09d", i), 1))
			delivered++
		})
	}
	st := h.runWith(t, LedgerInput{Provider: "sim", Pool: "main", TaskQueue: testTQ, ReconcileSec: 3600, HistoryLimit: 40})
	require.Greater(t, delivered, n)
	require.Len(t, st.Holds, delivered, "no acquire is dropped at continue-as-new")
	granted := 0
	for _, hold := range st.Holds {
		if hold.Granted {
			granted++
		}
	}
	require.Equal(t, 2, granted, "the pool's two slots are granted, the rest wait")
	data, err := json.Marshal(st)
	require.NoError(t, err)
	require.Less(t, len(data)/delivered, 80, "a waiting request costs a few dozen bytes of state")
}

func TestLedgerVoidsGrantsOfEndedWorkflows(t *testing.T) {
	h := newLedgerHarness(t)
	h.at(time.Second, func() {
		h.env.SignalWorkflow(SignalAcquire, acquire("w-dead", "100", 0, "0000000001", 2))
		h.env.SignalWorkflow(SignalAcquire, acquire("w-next", "100", 0, "0000000002", 2))
	})
	h.at(2*time.Second, func() {
		require.Equal(t, []string{"w-dead"}, h.granted())
		// The holder was terminated between its grant and its bind.
		h.mu.Lock()
		h.ended = []string{requestIDs["w-dead"]}
		h.mu.Unlock()
	})
	h.runWith(t, LedgerInput{Provider: "sim", Pool: "main", TaskQueue: testTQ, ReconcileSec: 5, HistoryLimit: 200})
	require.Equal(t, []string{"w-dead", "w-next"}, h.granted(), "the ended holder's capacity returns")
}

func TestLedgerNewRunChainReplacesTheOldGrant(t *testing.T) {
	h := newLedgerHarness(t)
	old := acquire("w-a", "100", 0, "0000000001", 2)
	// Run ids are version 7 UUIDs: two chains started within a minute share their first
	// characters.
	old.Chain = "01a24245-0f24-7ae2-861d-57a1820e822c"
	renewed := old
	renewed.Chain = "01a24245-a125-7ac6-9022-946097393cb0"
	h.at(time.Second, func() { h.env.SignalWorkflow(SignalAcquire, old) })
	var st LedgerStatus
	h.at(2*time.Second, func() { h.env.SignalWorkflow(SignalAcquire, renewed) })
	h.at(3*time.Second, func() {
		v, err := h.env.QueryWorkflow(QueryStatus)
		require.NoError(t, err)
		require.NoError(t, v.Get(&st))
	})
	h.run(t)
	require.Equal(t, []string{"w-a", "w-a"}, h.granted(), "the new chain is granted afresh")
	require.Equal(t, int64(2), st.Used["instances"], "the old chain's grant is void, not added")
}

func TestLedgerFollowsRevisedRelativePriority(t *testing.T) {
	h := newLedgerHarness(t)
	h.at(time.Second, func() {
		h.env.SignalWorkflow(SignalAcquire, acquire("w-blocker", "100", 0, "0000000000", 2))
		h.env.SignalWorkflow(SignalAcquire, acquire("w-revised", "100", 0, "0000000001", 1))
		h.env.SignalWorkflow(SignalAcquire, acquire("w-plain", "100", 0, "0000000002", 1))
		h.env.SignalWorkflow(SignalAcquire, acquire("w-plain2", "100", 0, "0000000003", 1))
	})
	h.at(2*time.Second, func() {
		// Zuul moved the first waiting request down the queue.
		h.env.SignalWorkflow(SignalAcquire, acquire("w-revised", "100", 3, "0000000001", 1))
	})
	h.at(3*time.Second, func() {
		h.env.SignalWorkflow(SignalRelease, LedgerRelease{RequestID: requestIDs["w-blocker"]})
	})
	h.run(t)
	// The two free slots go to the plain requests, not to the revised one.
	require.ElementsMatch(t, []string{"w-blocker", "w-plain", "w-plain2"}, h.granted(),
		"a request revised to a lower priority goes after the plain ones")
}

func TestLedgerStateReadsTheEarlierFormat(t *testing.T) {
	legacy := `{"limits":{"instances":4},"holds":{
		"np/request/100-0000000001":{"holder":"np/request/100-0000000001","request_id":"100-0000000001",
			"order":{"priority":"100","relative_priority":2,"sequence":"0000000001"},"need":{"instances":2},
			"granted":true,"bound":true,"nodes":{"0000000007":{"instances":1},"0000000008":{"instances":1}}},
		"np/request/100-0000000002":{"holder":"np/request/100-0000000002","request_id":"100-0000000002",
			"order":{"priority":"100","relative_priority":0,"sequence":"0000000002"},"need":{"instances":1}}},
		"external":{"0000000009":{"instances":1}},"epoch":3,"bind_epoch":{"0000000007":2}}`
	var st LedgerState
	require.NoError(t, json.Unmarshal([]byte(legacy), &st))
	require.Len(t, st.Holds, 2)
	bound := st.Holds["100-0000000001"]
	require.True(t, bound.Granted && bound.Bound)
	require.Equal(t, 2, bound.RelPrio)
	require.Len(t, bound.Nodes, 2)
	waiting := st.Holds["100-0000000002"]
	require.False(t, waiting.Granted)
	require.Equal(t, drivers.Resources{"instances": 1}, st.Needs[waiting.Need])
	require.Equal(t, drivers.Resources{"instances": 1}, st.Needs[st.External["0000000009"]])
	require.Equal(t, 3, st.Epoch)

	// The current format round-trips.
	data, err := json.Marshal(&st)
	require.NoError(t, err)
	var again LedgerState
	require.NoError(t, json.Unmarshal(data, &again))
	require.Equal(t, st, again)
}

func TestLedgerRefusesNoWaitAcquiresAtQuota(t *testing.T) {
	h := newLedgerHarness(t)
	h.at(time.Second, func() {
		h.env.SignalWorkflow(SignalAcquire, acquire("w-full", "100", 0, "0000000001", 2))
		h.env.SignalWorkflow(SignalAcquire, acquire("w-wait", "200", 0, "0000000002", 1))
		mr := acquire("w-minready", "900", 0, "0000000003", 1)
		mr.NoWait = true
		h.env.SignalWorkflow(SignalAcquire, mr)
	})
	var st LedgerStatus
	h.at(2*time.Second, func() {
		v, err := h.env.QueryWorkflow(QueryStatus)
		require.NoError(t, err)
		require.NoError(t, v.Get(&st))
	})
	h.run(t)
	require.Equal(t, []string{"w-full"}, h.granted())
	require.Equal(t, []string{"w-minready"}, h.denied, "a min-ready request is declined at quota")
	require.Equal(t, []string{requestIDs["w-wait"]}, st.Waiting, "an ordinary request waits")
}

// A new run chain of a workflow whose old chain had bound nodes waits for those nodes to
// go, then is granted: the old chain's nodes are not its capacity.
func TestLedgerNewRunChainAfterTheOldOneBoundNodes(t *testing.T) {
	h := newLedgerHarness(t)
	old := acquire("w-a", "100", 0, "0000000001", 2)
	old.Chain = "01a24245-0f24-7ae2-861d-57a1820e822c"
	renewed := old
	renewed.Chain = "01a24245-a125-7ac6-9022-946097393cb0"
	h.at(time.Second, func() { h.env.SignalWorkflow(SignalAcquire, old) })
	h.at(2*time.Second, func() {
		h.env.SignalWorkflow(SignalBind, LedgerBind{RequestID: old.RequestID, Nodes: map[string]drivers.Resources{
			"0000000010": {"instances": 1, "cores": 2}, "0000000011": {"instances": 1, "cores": 2}}})
	})
	h.at(3*time.Second, func() { h.env.SignalWorkflow(SignalAcquire, renewed) })
	h.at(4*time.Second, func() {
		require.Equal(t, []string{"w-a"}, h.granted(), "the old chain's nodes still fill the pool")
		h.env.SignalWorkflow(SignalRelease, LedgerRelease{NodeIDs: []string{"0000000010", "0000000011"}})
	})
	h.run(t)
	require.Equal(t, []string{"w-a", "w-a"}, h.granted(), "the new chain is granted once the old nodes are gone")
}
