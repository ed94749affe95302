package poller

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"

	"github.com/nodepool-temporal/nodepool-temporal/names"
	"github.com/nodepool-temporal/nodepool-temporal/workflows"
	"github.com/nodepool-temporal/nodepool-temporal/zookeeper"
)

// A request that is still "requested" must have a running workflow: one whose run ended
// (an operator terminated it, or it gave up after seeing the request locked for a moment)
// gets a new run, at a bounded rate.
func TestPollerRestartsStrandedRequests(t *testing.T) {
	tests := []struct {
		name     string
		state    zookeeper.RequestState
		declined []string
		end      bool // the first run ends
		runs     int  // runs in the end
	}{
		{name: "run terminated while the request waits", state: zookeeper.StateRequested, end: true, runs: 2},
		{name: "run still running", state: zookeeper.StateRequested, runs: 1},
		{name: "declined by every pool of ours", state: zookeeper.StateRequested, declined: []string{testPoolID}},
		{name: "fulfilled", state: zookeeper.StateFulfilled},
	}
	e := start(t, nil)
	wids := make([]string, len(tests))
	for i, tc := range tests {
		wids[i] = names.RequestWorkflowID("tq", submit(t, e.zk, tc.state, tc.declined...))
	}
	eventually(t, func() bool { return e.ft.runCount(wids[0]) == 1 && e.ft.runCount(wids[1]) == 1 }, "no first runs")
	for i, tc := range tests {
		if tc.end {
			e.ft.terminate(wids[i])
		}
	}
	// The poller does not ask Temporal about a run it has just started.
	scans()
	for i, tc := range tests {
		require.Equal(t, min(tc.runs, 1), e.ft.runCount(wids[i]), tc.name)
	}
	e.clock.Advance(strandedCheckAfter + time.Second)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eventually(t, func() bool { return e.ft.runCount(wids[i]) == tc.runs }, "runs")
			scans()
			require.Equal(t, tc.runs, e.ft.runCount(wids[i]))
		})
	}
}

// With more waiting requests than one scan may check, the checks go round all of them,
// most overdue first: a workflow that ended is found whatever its request's id (with
// 10,000 waiting, the budget used to go to the same first ids every scan, and the
// ended workflows of later ones were never restarted).
func TestPollerChecksEveryWaitingRequestInTurn(t *testing.T) {
	e := start(t, func(o *Options) { o.StrandedChecksPerScan = 1 })
	var wids []string
	for range 4 {
		wids = append(wids, names.RequestWorkflowID("tq", submit(t, e.zk, zookeeper.StateRequested)))
	}
	last := wids[len(wids)-1]
	eventually(t, func() bool {
		for _, w := range wids {
			if e.ft.runCount(w) != 1 {
				return false
			}
		}
		return true
	}, "no first runs")
	e.ft.terminate(last)
	// Every step makes every request due again; a scan checks one.
	for range 12 {
		e.clock.Advance(strandedRecheck + time.Second)
		time.Sleep(120 * time.Millisecond)
		if e.ft.runCount(last) == 2 {
			return
		}
	}
	t.Fatalf("the ended workflow of %s was not restarted", last)
}

// A workflow that keeps ending at once (it finds nothing to do) is not restarted on every
// scan: the interval between restarts grows.
func TestPollerBacksOffRestartingStrandedRequests(t *testing.T) {
	e := start(t, nil)
	e.ft.mu.Lock()
	e.ft.endAtOnce = true
	e.ft.mu.Unlock()
	wid := names.RequestWorkflowID("tq", submit(t, e.zk, zookeeper.StateRequested))
	eventually(t, func() bool { return e.ft.runCount(wid) == 1 }, "no first run")
	// Two minutes of scans, five seconds apart.
	for range 24 {
		e.clock.Advance(5 * time.Second)
		time.Sleep(150 * time.Millisecond)
	}
	runs := e.ft.runCount(wid)
	require.GreaterOrEqual(t, runs, 3, "restarts at all")
	require.LessOrEqual(t, runs, 7, "restarts back off")
}

// Zuul revises the relative priority of waiting requests; the running workflow is told
// with a signal, not restarted.
func TestPollerSignalsRelativePriorityChanges(t *testing.T) {
	e := start(t, nil)
	ctx := context.Background()
	setPriority := func(id string, prio int) {
		t.Helper()
		_, _, err := e.zk.ModifyRequest(ctx, id, nil, func(r *zookeeper.NodeRequest) (bool, error) {
			r.RelativePriority = prio
			return true, nil
		})
		require.NoError(t, err)
	}
	running := submit(t, e.zk, zookeeper.StateRequested)
	ended := submit(t, e.zk, zookeeper.StateRequested)
	runningID, endedID := names.RequestWorkflowID("tq", running), names.RequestWorkflowID("tq", ended)
	eventually(t, func() bool { return e.ft.runCount(runningID) == 1 && e.ft.runCount(endedID) == 1 }, "no first runs")

	setPriority(running, 3)
	eventually(t, func() bool { return len(e.ft.signalsOf(runningID)) == 1 }, "priority change not signalled")
	s := e.ft.signalsOf(runningID)[0]
	require.Equal(t, workflows.SignalRequestUpdated, s.name)
	require.Equal(t, workflows.RequestUpdated{RelativePriority: 3}, s.arg)
	scans()
	require.Equal(t, 1, e.ft.count(runningID), "no start for a priority change")
	require.Len(t, e.ft.signalsOf(runningID), 1, "one signal per change")

	// Zuul revised it once more: one more signal.
	setPriority(running, 1)
	eventually(t, func() bool { return len(e.ft.signalsOf(runningID)) == 2 }, "second change not signalled")
	require.Equal(t, workflows.RequestUpdated{RelativePriority: 1}, e.ft.signalsOf(runningID)[1].arg)

	// A request whose run ended gets a new run, which reads the new priority itself.
	e.ft.terminate(endedID)
	setPriority(ended, 7)
	eventually(t, func() bool { return e.ft.runCount(endedID) == 2 }, "request with an ended run not restarted")
}

// rawRequest creates a request znode with exactly data as its body.
func rawRequest(t *testing.T, c *zookeeper.Client, data []byte) string {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, c.EnsurePath(ctx, zookeeper.RequestsPath))
	p, err := c.Create(ctx, zookeeper.RequestsPath+"/200-", data, zk.FlagSequence)
	require.NoError(t, err)
	return p[strings.LastIndex(p, "/")+1:]
}

// A request whose body cannot be read is left alone (as Zuul skips it) and logged once per
// version; one that reads but cannot be served is declined by its workflow's plan.
func TestPollerHandlesMalformedRequests(t *testing.T) {
	tests := []struct {
		name  string
		data  string
		start bool
	}{
		{"empty", "", false},
		{"not json", "{not json", false},
		{"json array", `["small"]`, false},
		{"field of the wrong type", `{"state": "requested", "node_types": "small"}`, false},
		{"no node types", `{"state": "requested", "node_types": []}`, true},
		{"unknown label", `{"state": "requested", "node_types": ["huge"]}`, true},
	}
	e := start(t, nil)
	ids := make([]string, len(tests))
	for i, tc := range tests {
		ids[i] = rawRequest(t, e.zk, []byte(tc.data))
	}
	for range 3 {
		scans()
		e.clock.Advance(time.Minute)
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wid := names.RequestWorkflowID("tq", ids[i])
			if tc.start {
				require.Equal(t, 1, e.ft.runCount(wid))
				return
			}
			require.Zero(t, e.ft.count(wid))
			require.Equal(t, 1, strings.Count(e.logs.String(), "request_id="+ids[i]), "logged once: %s", e.logs.String())
		})
	}
	// A new version of a bad body is logged again; a good one is served.
	e.set(t, zookeeper.RequestPath(ids[0]), []byte("still bad"))
	eventually(t, func() bool { return strings.Count(e.logs.String(), "request_id="+ids[0]) == 2 }, "new version not logged")
	e.set(t, zookeeper.RequestPath(ids[1]), []byte(`{"state": "requested", "node_types": ["small"]}`))
	eventually(t, func() bool { return e.ft.runCount(names.RequestWorkflowID("tq", ids[1])) == 1 }, "repaired request not started")
}
